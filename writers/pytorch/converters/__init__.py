"""Op converters of the PyTorch writer, one module per op family (auto-imported: adding a
family is adding a file)."""

from migrate.core.registry import import_family_modules

import_family_modules(__name__, __path__)
