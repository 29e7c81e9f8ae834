"""torch7-migrate: convert models from dead deep-learning formats, verified."""

__version__ = "0.1.0"

from migrate._startup import defer_sympy

defer_sympy()
