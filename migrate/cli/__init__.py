"""The `migrate` command line: one module per command, dispatched here.

Heavy libraries (numpy, onnx, onnxruntime, the frameworks) are imported inside the
commands that use them, so `migrate --help` and `migrate formats` start fast.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence

from migrate.core.errors import MigrateError, VerificationError

EXIT_OK, EXIT_VERIFY_FAILED, EXIT_ERROR = 0, 1, 2


def _command(name: str) -> Callable[[list[str]], int]:
    import importlib

    module, function = COMMANDS[name]
    return getattr(importlib.import_module(f"migrate.cli.{module}"), function)


# command -> (module in migrate/cli, function)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("convert", "run_convert"),
    "verify": ("verify", "run_verify"),
    "inspect": ("inspect", "run_inspect"),
    "check-mobile": ("mobile", "run_check_mobile"),
    "batch": ("batch", "run_batch_command"),
    "formats": ("formats", "run_formats"),
    "runtimes": ("formats", "run_runtimes"),
    "spynet-pyramid": ("spynet", "run_spynet_pyramid"),
}


# commands that always import numpy (they read weights)
_NUMPY_COMMANDS = {"convert", "verify", "inspect", "batch", "spynet-pyramid"}


def _import_numpy_without_blas_threads() -> None:
    """numpy's OpenBLAS starts one spinning thread per core when numpy is imported: about
    0.1 s of CPU per command here (bench/bench_wall.py), for nothing, as a conversion
    copies weights and multiplies none of note. Only for this process, and only when the
    user has not chosen: child processes (Caffe's runtime does use BLAS) get the
    environment as it was."""
    import os

    if "numpy" in sys.modules or "OPENBLAS_NUM_THREADS" in os.environ:
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401
    finally:
        del os.environ["OPENBLAS_NUM_THREADS"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = "convert"
    if argv and argv[0] in COMMANDS:
        name = argv.pop(0)
    if name in _NUMPY_COMMANDS and "--help" not in argv and "-h" not in argv:
        _import_numpy_without_blas_threads()
    debug = "--debug" in argv
    try:
        return _command(name)(argv)
    except VerificationError as exc:
        if debug:
            traceback.print_exc()
        print(f"migrate: error: {exc}", file=sys.stderr)
        return EXIT_VERIFY_FAILED
    except MigrateError as exc:
        if debug:
            traceback.print_exc()
        print(f"migrate: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError:
        print("migrate: error: out of memory (is the model larger than this machine's memory?)",
              file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("migrate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `migrate ... | head`
        sys.stderr.close()
        return EXIT_OK
