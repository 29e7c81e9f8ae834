"""PyTorch ExportedProgram graphs: the layer key of every FX node.

Shared by the PyTorch reader (which tags the common graph's nodes with these keys)
and the PyTorch runtime (which runs a `.pt2` and returns each layer's output under
the same key), so the two sides of a layer-by-layer comparison agree.

torch.export records, for every node, the stack of modules that called it
(`nn_module_stack`, outermost first: key -> (module path, class)) and the torch
function it came from (`torch_fn`: (call id, "type.name")). A layer is:

- a module that calls no other module (Conv2d, ReLU, a user's Swish): its path,
  e.g. `layer1.0.conv1`; torch.export marks the k-th repeated call of a module
  (a ReLU used twice) with `@k`, kept here (`layer1.0.relu@1`);
- a function called directly in a container's forward (the residual add, a
  torch.flatten): `CONTAINER:FUNCTION`, e.g. `layer1.0:add` or `forward:flatten` at
  the top level; repeated calls of one function in one forward get `@k` too.

A layer's output is what its last node in the graph computes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

ROOT = "forward"  # stands for the top-level module in keys of its direct calls
_CALL_SUFFIX = re.compile(r"@\d+$")
_COUNTER = re.compile(r"_\d+$")


def short_class(qualified: str) -> str:
    """`torch.nn.modules.conv.Conv2d` -> `torch.nn.Conv2d` (the name users write)."""
    if qualified.startswith("torch.nn.modules."):
        return "torch.nn." + qualified.rsplit(".", 1)[-1]
    return qualified


def _module_stack(meta: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(stack key, module path, class), outermost first."""
    stack = meta.get("nn_module_stack") or {}
    found = []
    for key, entry in stack.items():
        try:
            path, cls = entry
        except (TypeError, ValueError):
            continue
        cls = cls if isinstance(cls, str) else getattr(cls, "__qualname__", str(cls))
        found.append((str(key), str(path), str(cls)))
    return found


def _function_name(meta: Mapping[str, Any], fallback: str) -> tuple[str, str]:
    """(call id, function name) of the torch function a node came from."""
    fn = meta.get("torch_fn")
    if isinstance(fn, tuple | list) and len(fn) == 2:
        call, kind = str(fn[0]), str(fn[1])
        return call, kind.rsplit(".", 1)[-1] or _COUNTER.sub("", call)
    return fallback, fallback


def _aten_name(target: Any) -> str:
    name = getattr(target, "__name__", str(target))  # "convolution.default"
    return name.split(".")[0]


def layer_keys(nodes: Iterable[Any]) -> dict[str, tuple[str, str]]:
    """FX node name -> (layer key, class) for every call_function node of a graph."""
    nodes = [n for n in nodes if n.op == "call_function"]
    stacks = {n.name: _module_stack(n.meta) for n in nodes}
    # a module is a container when some node was called from deeper inside it
    containers = {key for stack in stacks.values() for key, _, _ in stack[:-1]}
    keys: dict[str, tuple[str, str]] = {}
    calls: dict[tuple[str, str], str] = {}  # (container key, call id) -> layer key
    counts: dict[str, int] = {}
    for node in nodes:
        stack = stacks[node.name]
        if stack and stack[-1][0] not in containers:
            key, path, cls = stack[-1]
            suffix = _CALL_SUFFIX.search(key)
            keys[node.name] = (path + (suffix.group(0) if suffix else ""), short_class(cls))
            continue
        owner_key, owner_path = (stack[-1][0], stack[-1][1]) if stack else ("", "")
        call, fn = _function_name(node.meta, _aten_name(node.target))
        layer = calls.get((owner_key, call))
        if layer is None:
            owner = owner_path or ROOT
            suffix = _CALL_SUFFIX.search(owner_key)
            if suffix and owner_path:
                owner += suffix.group(0)
            base = f"{owner}:{fn}"
            seen = counts.get(base, 0)
            counts[base] = seen + 1
            layer = base if seen == 0 else f"{base}@{seen}"
            calls[(owner_key, call)] = layer
        keys[node.name] = (layer, f"{fn}()")
    return keys


# -- .pt2 archives: what torch.export.load would do with them, checked first -------------

def _archive_root(names: list[str]) -> str:
    """The folder every entry of a .pt2 sits in (`m/` for m.pt2), with its `archive_format`."""
    for name in names:
        if name.endswith("archive_format") and name.count("/") <= 1:
            return name[: -len("archive_format")]
    return ""


def check_exported_archive(path: str, max_bytes: int) -> None:
    """Refuse a `.pt2` that torch.export.load would unpickle arbitrary objects from, or
    run compiled code of, or that declares more data than `max_bytes`.

    torch.export.load unpickles (weights_only=False) tensors flagged `use_pickle`,
    custom and opaque objects among the constants, and the weights of the older
    layout (`data/weights/MODEL.pt`); it loads AOTInductor shared libraries. None
    of that is ever done here: a plain torch.export.save of a model has none of it.
    """
    import json
    import zipfile

    from migrate.core.errors import CorruptFileError, TooLargeError, UnsupportedError

    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > 1_000_000:
                raise CorruptFileError(f"the archive lists {len(infos):,} entries")
            declared = sum(i.file_size for i in infos)
            if declared > max_bytes:
                raise TooLargeError(f"the archive declares {declared:,} bytes, over the limit "
                                    f"of {max_bytes:,} (--max-bytes)")
            names = [i.filename for i in infos]
            root = _archive_root(names)
            if any(n.startswith(f"{root}data/aotinductor/") for n in names):
                raise UnsupportedError(
                    "an AOTInductor package (compiled native code, never loaded here): give "
                    "the ExportedProgram itself, as torch.export.save writes it")
            legacy = [n for n in names if re.fullmatch(
                re.escape(root) + r"data/(weights|constants)/[^/]+\.pt", n)]
            if legacy:
                raise UnsupportedError(
                    f"an older .pt2 layout that stores its weights as Python pickles "
                    f"({legacy[0]}), which are never unpickled here: load and save it again "
                    "with torch.export.save of a current PyTorch")
            for name in names:
                if not name.endswith("_config.json") or "/data/" not in f"/{name}":
                    continue
                info = archive.getinfo(name)
                if info.file_size > 64 << 20:
                    raise CorruptFileError(f"{name} declares {info.file_size:,} bytes")
                try:
                    config = json.loads(archive.read(name)).get("config", {})
                except (ValueError, AttributeError):
                    raise CorruptFileError(f"{name} is not valid JSON") from None
                _check_payloads(name, config)
    except zipfile.BadZipFile as exc:
        raise CorruptFileError(f"not a readable zip archive ({exc})") from None
    except (OSError, EOFError) as exc:
        raise CorruptFileError(f"cannot read the archive ({exc})") from None


def _check_payloads(name: str, config: Any) -> None:
    from migrate.core.errors import CorruptFileError, UnsupportedError

    if not isinstance(config, dict):
        raise CorruptFileError(f"{name} has no config table")
    for fqn, payload in config.items():
        if not isinstance(payload, dict):
            raise CorruptFileError(f"{name}: entry {fqn!r} is not a table")
        stored = str(payload.get("path_name", ""))
        if payload.get("use_pickle"):
            raise UnsupportedError(
                f"'{fqn}' is stored as a Python pickle (a tensor subclass), which is never "
                "unpickled here: save plain tensors")
        if "constants" in name and not stored.startswith("tensor_"):
            raise UnsupportedError(
                f"constant '{fqn}' is a custom Python or TorchScript object ({stored}), which "
                "is never unpickled here: only programs whose constants are tensors convert")


class TorchLogs:
    """Context manager: torch's log records and warnings kept, not printed, while a call
    runs. torch logs tracebacks of failures it then raises (or replaces by a generic
    error: torch.export.load's "check the warnings above"); a failure is reported
    once, as our own error, and `first_error` recovers the real cause."""

    def __init__(self) -> None:
        self.records: list = []

    def __enter__(self):
        import logging
        import warnings

        records = self.records

        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record)

        keep = Keep()
        # torch gives several of its loggers handlers of their own (propagate off)
        names = [n for n in logging.Logger.manager.loggerDict
                 if n == "torch" or n.startswith("torch.")]
        self.saved = []
        for name in names:
            logger = logging.getLogger(name)
            if logger.handlers or name == "torch":
                self.saved.append((logger, logger.handlers[:], logger.propagate))
                logger.handlers = [keep]
                logger.propagate = False
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.simplefilter("ignore")
        return self

    def __exit__(self, *exc) -> None:
        self.warnings.__exit__(*exc)
        for logger, handlers, propagate in self.saved:
            logger.handlers = handlers
            logger.propagate = propagate

    def first_error(self) -> BaseException | None:
        for record in self.records:
            if record.exc_info and record.exc_info[1] is not None:
                return record.exc_info[1]
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_exported(path: str, max_bytes: int):
    """torch.export.load of a checked archive, every torch.load in it forced to
    weights_only (the sample inputs are tensors too)."""
    import os

    import torch

    from migrate.core.errors import CorruptFileError, UnsupportedError

    check_exported_archive(path, max_bytes)
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    captured = TorchLogs()
    try:
        with captured:
            return torch.export.load(path)
    except MemoryError:
        raise
    except Exception as exc:  # torch raises RuntimeError, KeyError, SerializeError, ...
        cause = captured.first_error() if "deserializing" in str(exc) else None
        text = _first_line(cause or exc)
        if "Weights only load failed" in text:  # a pickle of more than tensors inside
            raise UnsupportedError("it holds pickled Python objects, not just tensors "
                                   "(e.g. its sample inputs); they are never unpickled here"
                                   ) from None
        raise CorruptFileError(f"torch.export.load cannot read it: {text}"[:400]) from None
    finally:
        if previous is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous
