"""Contract suites: what each port's Protocol promises, asserted over every implementation (see README.md)."""
