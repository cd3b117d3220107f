"""The policy: ``decide`` (pure) and the tick that runs metrics → predictor → decide → target → notify."""
