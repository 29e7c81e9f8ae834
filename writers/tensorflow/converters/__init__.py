"""ONNX op -> stored-layout ops, one module per op family (every module here is imported)."""

from migrate.core.registry import import_family_modules

import_family_modules(__name__, __path__)
