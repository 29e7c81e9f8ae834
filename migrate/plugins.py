"""Plugins: user code that teaches the converter new layers.

A plugin is a Python file (or module) that registers converters:

    from migrate.plugins import torch7_converter

    @torch7_converter("inn.SpatialCrossResponseNormalization")
    def cross_response_normalization(ctx, module, x):
        return ctx.op("LRN", [x], size=module.int("size"), ...)

A Torch7 converter receives the build context `ctx` (`ctx.op`, `ctx.const`,
`ctx.scalar`, `ctx.shape`, `ctx.convert` for child modules), the module
(`module.int/float/bool/get/tensor(...)` read its fields) and its input (a graph
value, or a list for Lua tables), and returns the output the same way, using
ONNX operators. A Caffe layer type is taught with `caffe_layer` the same way. A target
writer that lacks an operator can be taught it with `caffe2_converter`.

Plugins are loaded from `migrate --plugin FILE` and from installed packages that
declare an entry point in the group `torch7_migrate.plugins`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

from migrate.core.errors import MigrateError, UsageError

ENTRY_POINT_GROUP = "torch7_migrate.plugins"


def torch7_converter(*class_names: str):
    """Decorator: convert these Torch7 module classes (overrides a built-in converter)."""
    import migrate.readers.torch7.converters  # noqa: F401  (built-ins first, then the plugin)
    from migrate.readers.torch7.registry import converter

    return converter(*class_names)


def caffe2_converter(*op_types: str):
    """Decorator: write these ONNX ops for Caffe2 (overrides a built-in converter)."""
    import migrate.writers.caffe2.converters  # noqa: F401  (built-ins first, then the plugin)
    from migrate.writers.caffe2.registry import op_converter

    return op_converter(*op_types)


def caffe_layer(*layer_types: str):
    """Decorator: convert these Caffe layer types (e.g. a fork's layer; overrides a
    built-in converter). The function gets the layer's context `ctx` (`ctx.op`,
    `ctx.const`, `ctx.scalar`, `ctx.shape`, `ctx.blobs(*shapes)` for its trained blobs,
    `ctx.text` for its prototxt block, whose fork-only parameters the schema skips), the
    layer (caffe_pb2.LayerParameter) and its bottoms, and returns its top(s)."""
    import migrate.readers.caffe.layers  # noqa: F401  (built-ins first, then the plugin)
    from migrate.readers.caffe.registry import caffe_layer as register

    return register(*layer_types)


__all__ = ["torch7_converter", "caffe2_converter", "caffe_layer", "load_plugin_file",
           "load_installed_plugins"]


def load_plugin_file(path: str) -> ModuleType:
    """Import a plugin file so that its decorators register its converters."""
    if not os.path.isfile(path):
        raise UsageError("plugin file not found", file=path)
    name = "torch7_migrate_plugin_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError("not a Python file", file=path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the plugin's own error, reported with its file
        raise MigrateError(f"plugin failed to load: {type(exc).__name__}: {exc}",
                           file=path) from exc
    return module


def load_installed_plugins() -> list[str]:
    """Load every plugin that installed packages declare; returns their names."""
    from importlib.metadata import entry_points  # scans every installed package: on demand

    loaded = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as exc:
            raise MigrateError(f"installed plugin '{entry.name}' ({entry.value}) failed to "
                               f"load: {type(exc).__name__}: {exc}") from exc
        loaded.append(entry.name)
    return loaded
