"""The Nomad HTTP client (python-nomad underneath), shared by the Nomad target, the Variables store and deploy."""
