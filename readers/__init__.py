"""Source formats: one package per format; each builds the common graph and imports
only migrate.core. Importing this package registers every reader (their __init__
modules are light: a spec and a content test)."""

from migrate.core.registry import import_family_modules

import_family_modules(__name__, __path__)
