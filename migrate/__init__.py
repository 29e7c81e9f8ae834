"""torch7-migrate: convert models from dead deep-learning formats, verified."""

__version__ = "0.1.0"
