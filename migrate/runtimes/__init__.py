"""Real frameworks that run a format, for verification: one subpackage per runtime,
whose light __init__ registers its spec (the code that runs models is imported on use).
Importing this package registers them all."""

from migrate.core.registry import import_family_modules

import_family_modules(__name__, __path__)
