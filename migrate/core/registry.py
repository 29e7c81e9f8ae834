"""Registries: name -> thing tables, for per-layer converters and for whole formats.

Three registries describe what the tool can do, and the pipeline, the command line,
batch and verification know formats only through them:

- READERS: a source format (its content test, how many files it takes, `read`);
- WRITERS: a target format (`write`, which runtime runs its files, how to recognise them);
- RUNTIMES: a real framework that runs one or more formats, for verification.

A spec names the module that does the work; that module is imported only when the
format is used, so listing formats or sniffing a file costs no heavy imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Generic, TypeVar

F = TypeVar("F", bound=Callable)
T = TypeVar("T")


class Registry(Generic[F]):
    """A name -> converter table; each reader and writer keeps its own."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, F] = {}

    def register(self, *names: str) -> Callable[[F], F]:
        """Decorator: the function converts every one of `names`."""
        def add(fn: F) -> F:
            for name in names:
                self._entries[name] = fn
            return fn

        return add

    def get(self, name: str) -> F | None:
        found = self._entries.get(name)
        if found is None and _load_installed_plugins_once():
            found = self._entries.get(name)
        return found

    def names(self) -> list[str]:
        return sorted(self._entries)


_plugins_loaded = False


def _load_installed_plugins_once() -> bool:
    """Plugins of installed packages (entry points) are loaded the first time a name has
    no converter: scanning every installed distribution costs ~30 ms that commands which
    need no plugin should not pay. Returns whether they were loaded just now."""
    global _plugins_loaded
    if _plugins_loaded:
        return False
    _plugins_loaded = True
    from migrate.plugins import load_installed_plugins

    return bool(load_installed_plugins())


# -- format specs ------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """What a content test found: a file of `format` playing `role` in it."""

    format: str
    role: str  # e.g. "model", "net", "weights", "init_net", "predict_net"
    what: str  # for messages: "a Caffe net definition (text prototxt)"
    # roles the same bytes can also play, taken when `role` is already filled (a Caffe
    # binary NetParameter without blobs is a definition, or the caffemodel of a net
    # that has no weights)
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileHead:
    """What a content test looks at: the path, the file size and its first bytes."""

    path: str
    size: int
    head: bytes


def _import(module: str) -> ModuleType:
    return importlib.import_module(module)


@dataclass(frozen=True)
class ReaderSpec:
    """A source format.

    `module` provides `read(paths: list[str], options: ReadOptions) -> SourceModel`
    (paths in role order) and optionally `inspect(paths, options) -> str` and
    `read_object(obj, options) -> SourceModel` for live objects (`accepts_object`).
    """

    name: str
    title: str
    module: str
    sniff: Callable[[FileHead], Claim | None]
    # the role sets a model of this format is made of, e.g. ({"net", "weights"},);
    # the first is the complete form; `read` receives paths in the order of `role_order`
    role_sets: tuple[frozenset[str], ...] = (frozenset({"model"}),)
    role_order: tuple[str, ...] = ("model",)
    suffixes: tuple[str, ...] = ()  # usual file names (messages and batch discovery only)
    runtime: str | None = None  # the runtime that runs the source files themselves
    accepts_object: Callable[[Any], bool] | None = None
    # groups claimed files of one folder into models (batch); default: each file alone
    group: Callable[[list[tuple[str, Claim]]], list[list[str]]] | None = None
    # how messages name a missing role, e.g. ("weights", "trained weights (.caffemodel)")
    role_words: tuple[tuple[str, str], ...] = ()

    def load(self) -> ModuleType:
        return _import(self.module)

    @property
    def file_count(self) -> int:
        return len(self.role_order)


@dataclass(frozen=True)
class WriterSpec:
    """A target format.

    `module` provides `write(model: ir.Model, out_dir, stem, options: WriteOptions)
    -> WriteResult` and `recognize(paths) -> dict[role, path] | None`, which tells
    whether already written files are of this format (for `migrate verify`).
    """

    name: str
    title: str
    module: str
    runtime: str  # the runtime that runs the written files
    aliases: tuple[str, ...] = ()
    outputs: str = ""  # what gets written, for --help and `migrate formats`
    extra: str | None = None  # pip extra the writer needs, e.g. "torch"
    # whether inference optimizations may fold layers into weights (BatchNorm into the
    # convolution, Dropout removed); False for targets people fine-tune (PyTorch)
    fold_weights: bool = True

    def load(self) -> ModuleType:
        return _import(self.module)


@dataclass(frozen=True)
class RuntimeSpec:
    """A real framework that runs files of some formats.

    `module` provides `status() -> RuntimeStatus` and
    `run(files: dict[role, path], inputs, *, layers: bool, options) -> RunResult`;
    a side runtime also `install() -> None` and `run_many(jobs)`.
    """

    name: str
    label: str  # short, for summaries: "Caffe2", "onnxruntime"
    title: str
    module: str
    formats: tuple[str, ...]
    install_hint: str  # how a user gets it
    side: bool = False  # runs in its own interpreter (a subprocess)

    def load(self) -> ModuleType:
        return _import(self.module)


@dataclass
class _Table(Generic[T]):
    what: str
    entries: dict[str, T] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def add(self, spec: T, aliases: Sequence[str] = ()) -> T:
        name = spec.name  # type: ignore[attr-defined]
        self.entries[name] = spec
        for alias in aliases:
            self.aliases[alias] = name
        return spec

    def get(self, name: str) -> T | None:
        _load_builtins()
        key = name.lower()
        return self.entries.get(self.aliases.get(key, key))

    def all(self) -> list[T]:
        _load_builtins()
        return list(self.entries.values())

    def names(self) -> list[str]:
        return [s.name for s in self.all()]  # type: ignore[attr-defined]


READERS: _Table[ReaderSpec] = _Table("reader")
WRITERS: _Table[WriterSpec] = _Table("writer")
RUNTIMES: _Table[RuntimeSpec] = _Table("runtime")


def register_reader(spec: ReaderSpec) -> ReaderSpec:
    return READERS.add(spec)


def register_writer(spec: WriterSpec) -> WriterSpec:
    return WRITERS.add(spec, spec.aliases)


def register_runtime(spec: RuntimeSpec) -> RuntimeSpec:
    return RUNTIMES.add(spec)


_loaded = False


def _load_builtins() -> None:
    """Import the reader, writer and runtime packages (each registers its spec).

    Their __init__ modules are light (specs and byte-level content tests); the code
    that does the work is imported on use."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package in ("migrate.readers", "migrate.writers", "migrate.runtimes"):
        _import(package)


def import_family_modules(package: str, path: Sequence[str]) -> None:
    """Import every module of a converters package (one file per layer or op family),
    so adding a family is adding a file."""
    import pkgutil

    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        _import(f"{package}.{info.name}")
