"""Deserialize Lua Torch7 `.t7` files into Python objects and numpy arrays.

We build on `torchfile` (its object model: `TorchObject`, `hashable_uniq_dict`,
`LuaFunction`, and its `read_obj` dispatcher) and replace only the pieces that
fall short for archived models:

* torchfile reads from a file object with struct/array/np.fromfile and trusts
  every declared size; we read from one memory map and check each size against
  the bytes that are really left before touching them (no huge allocation, no
  out-of-bounds tensor views), and tensor data becomes zero-copy numpy views.
* ascii files (`torch.save(..., "ascii")`) and 4-byte longs (Windows builds):
  torchfile supports neither (its 4-byte path calls py2's `xrange`).
* HalfTensor/HalfStorage: torchfile refuses them; numpy has float16.
* Lua lists holding tensors crash torchfile's list heuristic (it compares a
  numpy array with `==`), so we always read tables as dicts.
* Deeply nested tables: an explicit depth limit gives a clear error instead of
  a RecursionError.

Lua function bytecode is kept as opaque bytes (torchfile's `LuaFunction`) and is
never loaded or run.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torchfile

from migrate.core.errors import CorruptFileError, MigrateError, TooLargeError, TruncatedFileError
from migrate.core.mapped import register_mapping
from migrate.core.model import DEFAULT_MAX_BYTES  # total tensor bytes a file may declare

MAX_DEPTH = 20_000  # nesting of Lua values (tables, objects) in one file

_STORAGE_DTYPES: dict[bytes, np.dtype] = {}
for _prefix in (b"torch.", b"torch.Cuda"):
    for _kind, _dtype in (
        ("Byte", np.uint8), ("Char", np.int8), ("Short", np.int16), ("Int", np.int32),
        ("Long", np.int64), ("Float", np.float32), ("Double", np.float64), ("Half", np.float16),
    ):
        # torch.CudaTensor / torch.CudaStorage are the float CUDA types.
        name = "" if (_prefix == b"torch.Cuda" and _kind == "Float") else _kind
        _STORAGE_DTYPES[_prefix + name.encode() + b"Storage"] = np.dtype(_dtype)
_TENSOR_DTYPES = {k[: -len(b"Storage")] + b"Tensor": v for k, v in _STORAGE_DTYPES.items()}


class _Buffer:
    """A read cursor over the file's bytes that never reads past the end."""

    def __init__(self, data: bytes | mmap.mmap, name: str) -> None:
        self.data = data
        self.view = memoryview(data)
        self.pos = 0
        self.name = name

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> memoryview:
        if n < 0:
            raise CorruptFileError(f"negative size {n} for {what} at byte {self.pos}")
        if n > self.remaining():
            raise TruncatedFileError(
                f"{what} needs {n} bytes at byte {self.pos} but only {self.remaining()} are left"
            )
        chunk = self.view[self.pos : self.pos + n]
        self.pos += n
        return chunk

    # torchfile's own methods call `self.f.read(n)`
    def read(self, n: int) -> bytes:
        return bytes(self.take(n, "data"))


_TOKEN = re.compile(rb"\s*(\S+)")


class T7Reader(torchfile.T7Reader):
    """torchfile's reader on a checked buffer, for binary (4/8-byte long) and ascii files."""

    def __init__(self, buf: _Buffer, *, ascii: bool, long_size: int, max_bytes: int) -> None:
        super().__init__(buf, use_list_heuristic=False, use_int_heuristic=True)
        self.buf = buf
        self.ascii = ascii
        self.long_format = "<q" if long_size == 8 else "<i"
        self.long_size = long_size
        self.max_bytes = max_bytes
        self.tensor_bytes = 0
        self.depth = 0

    # -- primitives: binary or ascii --------------------------------------
    def _token(self, what: str) -> bytes:
        match = _TOKEN.match(self.buf.data, self.buf.pos)
        if match is None:
            raise TruncatedFileError(f"file ends where {what} was expected (byte {self.buf.pos})")
        self.buf.pos = match.end()
        return match.group(1)

    def _end_ascii_item(self) -> None:
        # Torch's ascii DiskFile writes a newline after every item it writes.
        if self.buf.pos < len(self.buf.data) and self.buf.data[self.buf.pos] in (10, 13):
            self.buf.pos += 1

    def _ascii_number(self, what: str, kind: Callable[[str], Any]) -> Any:
        token = self._token(what)
        self._end_ascii_item()
        try:
            return kind(token.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise CorruptFileError(f"bad {what} {token[:20]!r} at byte {self.buf.pos}") from None

    def read_int(self) -> int:
        if self.ascii:
            return self._ascii_number("integer", int)
        return struct.unpack("<i", self.buf.take(4, "integer"))[0]

    def read_long(self) -> int:
        if self.ascii:
            return self._ascii_number("long", int)
        return struct.unpack(self.long_format, self.buf.take(self.long_size, "long"))[0]

    def read_long_array(self, n: int) -> list[int]:
        if n < 0 or n * (2 if self.ascii else self.long_size) > self.buf.remaining():
            raise TruncatedFileError(f"array of {n} longs does not fit in the rest of the file")
        if self.ascii:
            values = [int(self._token("long")) for _ in range(n)]
            self._end_ascii_item()
            return values
        raw = self.buf.take(n * self.long_size, "long array")
        return np.frombuffer(raw, dtype="<i8" if self.long_size == 8 else "<i4").tolist()

    def read_double(self) -> float:
        if self.ascii:
            return self._ascii_number("number", float)
        return struct.unpack("<d", self.buf.take(8, "number"))[0]

    def read_float(self) -> float:
        if self.ascii:
            return self._ascii_number("number", float)
        return struct.unpack("<f", self.buf.take(4, "number"))[0]

    def read_string(self, disable_utf8: bool = False) -> bytes:
        size = self.read_int()
        data = bytes(self.buf.take(size, "string"))
        if self.ascii:
            self._end_ascii_item()
        return data

    def read_obj(self) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CorruptFileError(f"values nested more than {MAX_DEPTH} deep")
        try:
            return super().read_obj()
        except torchfile.T7ReaderException as exc:
            raise CorruptFileError(f"{exc} at byte {self.buf.pos}") from None
        finally:
            self.depth -= 1

    # -- storages and tensors --------------------------------------------
    def read_storage(self, dtype: np.dtype) -> np.ndarray:
        count = self.read_long()
        if count < 0:
            raise CorruptFileError(f"storage of negative size {count}")
        # LongStorage elements are written with the file's long size (4 on Windows).
        file_dtype = np.dtype("<i4") if dtype == np.int64 and self.long_size == 4 else dtype
        nbytes = count * file_dtype.itemsize
        self.tensor_bytes += nbytes
        if self.tensor_bytes > self.max_bytes:
            raise TooLargeError(
                f"tensor data exceeds the limit of {self.max_bytes} bytes (--max-bytes)"
            )
        if self.ascii:
            if count * 2 > self.buf.remaining() + 1:
                raise TruncatedFileError(f"storage of {count} values does not fit in the file")
            tokens = [self._token("storage value") for _ in range(count)]
            self._end_ascii_item()
            try:
                return np.array([float(t) for t in tokens], dtype=np.float64).astype(dtype)
            except ValueError:
                raise CorruptFileError("bad number in ascii storage") from None
        raw = self.buf.take(nbytes, f"storage of {count} values")
        # Zero-copy view into the memory map; read-only, converters copy what they keep.
        array = np.frombuffer(raw, dtype=file_dtype.newbyteorder("<"), count=count)
        return array.astype(np.int64) if file_dtype != dtype else array

    def read_tensor(self, dtype: np.dtype) -> np.ndarray:
        ndim = self.read_int()
        if ndim < 0 or ndim > 64:
            raise CorruptFileError(f"tensor with {ndim} dimensions")
        size = self.read_long_array(ndim)
        stride = self.read_long_array(ndim)
        offset = self.read_long() - 1  # Lua is 1-based
        storage = self.read_obj()
        if storage is None or ndim == 0:
            return np.empty((0,), dtype=dtype)
        if any(s == 0 for s in size):
            return np.empty(size, dtype=dtype)
        if not isinstance(storage, np.ndarray):
            raise CorruptFileError("tensor storage is not a storage")
        if any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
            raise CorruptFileError(f"tensor with size {size} stride {stride} offset {offset + 1}")
        last = offset + sum((n - 1) * st for n, st in zip(size, stride, strict=True))
        if last >= storage.size:
            raise CorruptFileError(
                f"tensor view (size {size}, stride {stride}, offset {offset + 1}) "
                f"reaches past its storage of {storage.size} elements"
            )
        item = storage.dtype.itemsize
        return np.lib.stride_tricks.as_strided(
            storage[offset:], shape=size, strides=[s * item for s in stride], writeable=False
        )


def _make_handler(kind: str, dtype: np.dtype, fallback: Callable | None) -> Callable:
    def handler(reader: Any, version: Any) -> np.ndarray:
        if not isinstance(reader, T7Reader):  # someone else's plain torchfile reader
            if fallback is None:
                raise NotImplementedError("use readers.torch7 to read this type")
            return fallback(reader, version)
        return reader.read_storage(dtype) if kind == "storage" else reader.read_tensor(dtype)

    return handler


# Torch classes whose `write` metamethod writes nothing after the class name, so the
# next value in the file belongs to the enclosing table, not to them. nn.Profile
# gives torch.Timer such a dummy write (nn/Profile.lua, makeTorchTimerSerializable).
_EMPTY_PAYLOAD_CLASSES = (b"torch.Timer",)


def _empty_payload_handler(name: bytes) -> Callable:
    def handler(reader: Any, version: Any) -> torchfile.TorchObject:
        return torchfile.TorchObject(name, {})

    return handler


def _install_handlers() -> None:
    """Register our storage/tensor readers through torchfile's handler table."""
    for name in _EMPTY_PAYLOAD_CLASSES:
        torchfile.type_handlers.setdefault(name, _empty_payload_handler(name))
    for name, dtype in _STORAGE_DTYPES.items():
        old = torchfile.type_handlers.get(name)
        torchfile.type_handlers[name] = _make_handler("storage", dtype, old)
    for name, dtype in _TENSOR_DTYPES.items():
        old = torchfile.type_handlers.get(name)
        torchfile.type_handlers[name] = _make_handler("tensor", dtype, old)


_install_handlers()


def _looks_ascii(data: bytes | mmap.mmap) -> bool:
    # A binary file starts with a 4-byte little-endian type tag (0..8): "\x04\0\0\0".
    # An ascii file starts with the tag as decimal digits and a newline: "4\n".
    head = bytes(data[:16])
    return bool(re.match(rb"\s*-?\d+\s", head))


def load(path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Read one `.t7` file; returns torchfile objects with numpy tensors.

    Raises a `MigrateError` subclass (never another exception) for bad files.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise TruncatedFileError("empty file", file=path)
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise MigrateError(f"cannot read: {exc.strerror or exc}", file=path) from None
    register_mapping(data, path)
    return loads(data, name=path, max_bytes=max_bytes)


def loads(data: bytes | mmap.mmap, *, name: str = "<bytes>", max_bytes: int = DEFAULT_MAX_BYTES):
    """Like `load`, from bytes already in memory."""
    ascii_format = _looks_ascii(data)
    # Which long size the writer used is not recorded in the file. A right guess
    # decodes exactly one object that ends at the end of the file; 8-byte longs
    # (what Linux and macOS builds wrote) are tried first, 4-byte (Windows) next.
    attempts = [8] if ascii_format else [8, 4]
    first_error: MigrateError | None = None
    partial: Any = _NOTHING
    for long_size in attempts:
        reader = T7Reader(
            _Buffer(data, name), ascii=ascii_format, long_size=long_size, max_bytes=max_bytes
        )
        try:
            value = _run_with_deep_stack(reader.read_obj)
        except MigrateError as exc:
            first_error = first_error or exc
            continue
        except RecursionError as exc:
            first_error = first_error or CorruptFileError(f"cannot decode: {type(exc).__name__}")
            continue
        except Exception as exc:  # anything torchfile itself may raise on garbage
            first_error = first_error or CorruptFileError(
                f"not a readable Torch7 file ({type(exc).__name__}: {exc})"
            )
            continue
        if ascii_format or reader.buf.remaining() == 0:
            return value
        if partial is _NOTHING and long_size == 8:
            partial = value  # decoded, but bytes are left over: keep looking
    if partial is not _NOTHING:
        return partial
    assert first_error is not None
    raise first_error.with_file(name)


_NOTHING = object()


def _run_with_deep_stack(fn: Callable[[], Any]) -> Any:
    """Run the recursive decoder on a thread with a large stack (nested tables)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # re-raised on the calling thread
            result["error"] = exc

    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, MAX_DEPTH * 4 + 1000))
    old_stack = threading.stack_size(512 * 1024 * 1024)
    try:
        thread = threading.Thread(target=target, name="t7-decode")
        thread.start()
        thread.join()
    finally:
        threading.stack_size(old_stack)
        sys.setrecursionlimit(old_limit)
    if "error" in result:
        raise result["error"]
    return result["value"]
