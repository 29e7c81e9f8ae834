"""One file per family of PyTorch (core ATen) operators; importing this package
registers them all."""

from migrate.core.registry import import_family_modules

import_family_modules(__name__, __path__)
