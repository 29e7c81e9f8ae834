"""Getting an ExportedProgram out of what the user has: a `.pt2`, a checkpoint with the
model's code, or a live module. Nothing is ever unpickled but tensors and plain
containers (torch.load(weights_only=True)); the model's code is the user's own file,
named on the command line."""

from __future__ import annotations

import atexit
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from typing import Any

from migrate.core.errors import (
    ConversionError,
    CorruptFileError,
    TooLargeError,
    UnsupportedError,
    UsageError,
)
from migrate.core.formats.torch_export import TorchLogs

TORCH_HINT = "pip install 'torch7-migrate[torch]'"
# where checkpoints keep the state_dict, most common first
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "net", "model", "state", "network",
                   "module", "model_state", "weights", "params", "ema")
_LISTED = 12  # keys named in a mismatch message, per kind


def require_torch():
    try:
        import torch
    except ImportError:
        raise UsageError(f"PyTorch models need PyTorch, which is not installed: {TORCH_HINT}"
                         ) from None
    return torch


# -- checkpoints -------------------------------------------------------------------------

def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _declared_bytes(path: str) -> int:
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(i.file_size for i in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise CorruptFileError(f"not a readable zip archive ({exc})") from None


def load_checkpoint(path: str, max_bytes: int) -> Any:
    """torch.load(weights_only=True): tensors, numbers, strings and plain containers
    only; tensors memory-mapped from the file where its format allows."""
    torch = require_torch()
    is_zip = zipfile.is_zipfile(path)
    declared = _declared_bytes(path) if is_zip else os.path.getsize(path)
    if declared > max_bytes:
        raise TooLargeError(f"the checkpoint declares {declared:,} bytes, over the limit of "
                            f"{max_bytes:,} (--max-bytes)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except MemoryError:
        raise
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, ...
        text = str(exc)
        found = re.findall(r"GLOBAL ([\w.]+)", text) or re.findall(r"global '?([\w.]+)", text)
        if "Weights only load failed" in text or found:
            what = f" ({', '.join(dict.fromkeys(found))})" if found else ""
            raise UnsupportedError(
                f"it holds pickled Python objects{what}, not just tensors; it is never "
                "unpickled here (unpickling runs code): save model.state_dict() with "
                "torch.save, or export the model with torch.export.save") from None
        raise CorruptFileError(f"torch.load cannot read it: {first_line(exc)}"[:400]) from None


def _is_state_dict(value: Any) -> bool:
    torch = sys.modules["torch"]
    return (isinstance(value, dict) and bool(value)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()))


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(repr(k) for k in list(value)[:8])
        return f"a dict with keys {keys}" + (" ..." if len(value) > 8 else "")
    return f"a {type(value).__name__}"


def find_state_dict(loaded: Any) -> tuple[dict[str, Any], str]:
    """The state_dict in a checkpoint, and where it was ('' at the top, else its key):
    nested checkpoints such as {'net': state_dict, 'acc': 93.1, 'epoch': 200}."""
    if _is_state_dict(loaded):
        return loaded, ""
    if isinstance(loaded, dict):
        for key in STATE_DICT_KEYS:
            if _is_state_dict(loaded.get(key)):
                return loaded[key], key
        found = [k for k, v in loaded.items() if _is_state_dict(v)]
        if len(found) == 1:
            return loaded[found[0]], str(found[0])
        if len(found) > 1:
            listed = ", ".join(map(repr, found))
            raise UsageError(f"the checkpoint holds several state_dicts ({listed}): save the "
                             "one to convert on its own")
    raise UnsupportedError(f"no state_dict (a dict of parameter names to tensors) in it: it "
                           f"holds {_describe(loaded)}")


def _strip(keys: Sequence[str], prefix: str) -> list[str]:
    return [k[len(prefix):] if k.startswith(prefix) else k for k in keys]


def match_keys(state: dict[str, Any], wanted: Sequence[str]) -> tuple[dict[str, Any], str]:
    """The state_dict with the prefix a wrapper added removed ('module.' from
    DataParallel / DistributedDataParallel, possibly repeated), and a note."""
    want = set(wanted)
    keys = list(state)
    prefix = ""
    while keys and all(k.startswith("module.") for k in keys) and not set(keys) <= want:
        keys = _strip(keys, "module.")
        prefix += "module."
    if prefix:
        return dict(zip(keys, state.values(), strict=True)), \
            f"'{prefix}' prefix of DataParallel removed from the checkpoint's keys"
    return state, ""


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def load_weights(module: Any, state: dict[str, Any], where: str) -> None:
    """load_state_dict(strict=True), every mismatch listed in one error."""
    model_state = module.state_dict()
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    shapes = [f"{k} (checkpoint {'x'.join(map(str, state[k].shape)) or 'scalar'}, model "
              f"{'x'.join(map(str, v.shape)) or 'scalar'})"
              for k, v in model_state.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing (in the model, not the checkpoint): {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected (in the checkpoint, not the model): {_listing(unexpected)}")
    if shapes:
        problems.append(f"shapes differ: {_listing(shapes)}")
    if problems:
        raise UsageError(f"the checkpoint's weights do not fit {where}: " + "; ".join(problems))
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except Exception as exc:  # a dtype the module refuses, ...
        raise UsageError(f"load_state_dict failed: {first_line(exc)}"[:400]) from None


# -- the model's code ----------------------------------------------------------------------

def build_model(spec: str) -> tuple[Any, str]:
    """An instance from `path/to/models.py:ResNet18` (a class or a function taking no
    arguments), and its description."""
    torch = require_torch()
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name.isidentifier():
        raise UsageError(f"bad --model-class '{spec}' (expected FILE.py:NAME, e.g. "
                         "models.py:ResNet18)")
    if os.path.isdir(path):
        path = os.path.join(path, "__init__.py")
    if not os.path.isfile(path):
        raise UsageError("no such file (--model-class)", file=path)
    folder = os.path.dirname(os.path.abspath(path))
    package = os.path.basename(folder) if path.endswith("__init__.py") else None
    module_name = package or f"_migrate_model_{abs(hash(os.path.abspath(path)))}"
    # the model's file may import its siblings (from models.resnet import ...)
    search = os.path.dirname(folder) if package else folder
    sys.path.insert(0, search)
    try:
        loader_spec = importlib.util.spec_from_file_location(
            module_name, path, submodule_search_locations=[folder] if package else None)
        if loader_spec is None or loader_spec.loader is None:
            raise UsageError("cannot import it as Python (--model-class)", file=path)
        code = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = code
        loader_spec.loader.exec_module(code)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"importing the model's code failed: {type(exc).__name__}: "
                         f"{first_line(exc)}"[:400], file=path) from None
    finally:
        if sys.path and sys.path[0] == search:
            sys.path.pop(0)
    factory = getattr(code, name, None)
    if factory is None:
        found = sorted(n for n, v in vars(code).items()
                       if isinstance(v, type) and issubclass(v, torch.nn.Module)
                       and v.__module__ == module_name)
        raise UsageError(f"{os.path.basename(path)} defines no '{name}'"
                         + (f" (its modules: {', '.join(found)})" if found else ""), file=path)
    try:
        module = factory()
    except TypeError as exc:
        raise UsageError(f"{name}() needs arguments ({first_line(exc)}): name a function in "
                         f"{os.path.basename(path)} that builds the model without any") from None
    except Exception as exc:
        raise UsageError(f"{name}() failed: {type(exc).__name__}: {first_line(exc)}"[:400]
                         ) from None
    if not isinstance(module, torch.nn.Module):
        raise UsageError(f"{name}() gives a {type(module).__name__}, not a torch.nn.Module")
    return module, f"{name} from {os.path.basename(path)}"


# -- exporting -----------------------------------------------------------------------------

def quiet_torch() -> TorchLogs:
    """torch.export logs tracebacks of the failures it then raises, and warns about its
    own internals; the failure is reported once, as our error."""
    return TorchLogs()


def example_tensors(example_inputs: Sequence[Any] | None,
                    input_shapes: Sequence[Sequence[int]] | None) -> tuple[Any, ...]:
    torch = require_torch()
    if example_inputs is not None:
        items = example_inputs if isinstance(example_inputs, list | tuple) else (example_inputs,)
        return tuple(x if isinstance(x, torch.Tensor) else torch.as_tensor(x) for x in items)
    if input_shapes is None:
        raise UsageError("a PyTorch module needs example inputs to be traced: pass "
                         "example_inputs=(torch.rand(1, 3, 224, 224),) or --input-shape")
    generator = torch.Generator().manual_seed(0)
    return tuple(torch.randn([int(d) for d in s], generator=generator) for s in input_shapes)


def export_module(module: Any, example: tuple[Any, ...], notes: list[str]) -> Any:
    """torch.export of the module in inference (eval) mode; its mode is restored."""
    torch = require_torch()
    if isinstance(module, torch.jit.ScriptModule):
        raise UnsupportedError("a TorchScript module cannot be exported: convert the Python "
                               "nn.Module it was scripted from")
    training = module.training
    if training:
        notes.append("exported in eval mode (the module was in training mode)")
    module.eval()
    try:
        with quiet_torch():
            return torch.export.export(module, example)
    except MemoryError:
        raise
    except Exception as exc:
        raise ConversionError(f"torch.export cannot export the module: {type(exc).__name__}: "
                              f"{first_line(exc)}"[:500]) from None
    finally:
        module.train(training)


_TEMP: list[str] = []


def save_for_reference(program: Any) -> str:
    """The program as a `.pt2` in a private temporary folder (removed at exit): what the
    PyTorch runtime runs as the reference of a conversion."""
    torch = require_torch()
    if not _TEMP:
        _TEMP.append(tempfile.mkdtemp(prefix="migrate-pytorch-"))
        atexit.register(shutil.rmtree, _TEMP[0], True)
    path = os.path.join(_TEMP[0], f"program-{len(os.listdir(_TEMP[0]))}.pt2")
    with quiet_torch():
        torch.export.save(program, path)
    return path
