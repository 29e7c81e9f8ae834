"""One file per family of ONNX ops; importing this package registers them all."""

from migrate.core.registry import import_family_modules

import_family_modules(__name__, __path__)
