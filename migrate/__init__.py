"""torch7-migrate: convert models between deep-learning formats and prove the numbers match.

Public API (imported lazily, so `import migrate` stays cheap):

    migrate.convert(["model.t7"], to="onnx", out_dir="out")   -> ConversionSummary
    migrate.load(["net.prototxt", "net.caffemodel"])          -> onnx_ir.Model
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

__version__ = "0.2.0"


class _SourceCheckoutStages(importlib.abc.MetaPathFinder):
    """In a source checkout the repository's readers/ and writers/ folders sit beside
    migrate/; installed, they are migrate/readers and migrate/writers (setup.py maps
    them). This finder gives a checkout the installed names, so code and tests import
    `migrate.readers...` either way."""

    def __init__(self, root: str) -> None:
        self.root = root

    def find_spec(self, fullname, path=None, target=None):
        stage = fullname.partition("migrate.")[2]
        if stage not in ("readers", "writers"):
            return None
        folder = os.path.join(self.root, stage)
        return importlib.util.spec_from_file_location(
            fullname, os.path.join(folder, "__init__.py"), submodule_search_locations=[folder])


def _map_source_checkout() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    if not os.path.isdir(os.path.join(here, "readers")) and os.path.isfile(
            os.path.join(root, "readers", "__init__.py")):
        sys.meta_path.insert(0, _SourceCheckoutStages(root))


_map_source_checkout()

from migrate.core.startup import defer_sympy  # noqa: E402

defer_sympy()


def convert(source, to: str = "caffe2", out_dir: str = ".", **options):
    """Convert a model and verify it; returns the summary the command line prints.

    `source`: a path, a list of paths (two-file formats take both, in any order), or a
    live object a reader accepts (a torch.nn.Module with `example_inputs=`).
    Options are those of `migrate.pipeline.ConvertOptions` (input_shapes, verify, ...).
    """
    from migrate.pipeline import convert as _convert

    return _convert(source, to=to, out_dir=out_dir, **options)


def load(source, **options):
    """The common graph (an `onnx_ir.Model` with ONNX semantics) of a source model."""
    from migrate.pipeline import load as _load

    return _load(source, **options)


__all__ = ["__version__", "convert", "load"]
