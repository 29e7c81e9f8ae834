"""Target formats: one package per format; each reads only the common graph and imports
only migrate.core. Importing this package registers every built-in writer."""

from migrate.writers import caffe2, onnx  # noqa: F401
