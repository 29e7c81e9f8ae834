"""Target formats: one package per format; each reads only the common graph and imports
only migrate.core. Importing this package registers every writer (their __init__
modules are light: a spec)."""

from migrate.core.registry import import_family_modules

import_family_modules(__name__, __path__)
