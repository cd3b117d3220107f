"""forescale's control loop: config, decide, Nomad target, notifiers, daemon and CLI."""

__version__ = "0.1.0"
