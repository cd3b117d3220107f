"""Time-based rules and manual overrides that shape a pool's count inside ``decide``."""
