"""Source formats: one package per format; each builds the common graph and imports
only migrate.core. Importing this package registers every built-in reader."""

from migrate.readers import onnx, torch7  # noqa: F401
