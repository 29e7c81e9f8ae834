"""Lua Torch7 `.t7` models (binary with 8- or 4-byte longs, or ascii)."""

from __future__ import annotations

import re
import struct

from migrate.core.registry import Claim, FileHead, ReaderSpec, register_reader

_ASCII_HEAD = re.compile(rb"\s*([34])\r?\n1\r?\n(?:3\r?\nV 1\r?\n)?\d+\r?\n(\S+)")


def _class_name(head: bytes) -> tuple[int, str] | None:
    """(type tag, class name) at the start of a .t7 file: a table (3) or a Torch
    object (4) with object index 1, the version string 'V 1', then its class."""
    if len(head) >= 8 and head[:4] in (b"\x03\0\0\0", b"\x04\0\0\0") and head[4:8] == b"\x01\0\0\0":
        tag = head[0]
        if tag == 3:
            return 3, ""
        pos = 8
        for _ in range(2):  # "V 1", then the class name (old files: the class name only)
            if len(head) < pos + 4:
                return tag, ""
            (size,) = struct.unpack_from("<i", head, pos)
            if not 0 < size < 256:
                return None
            name = head[pos + 4:pos + 4 + size]
            pos += 4 + size
            if not name.startswith(b"V "):
                return tag, name.decode("latin-1")
        return tag, ""
    match = _ASCII_HEAD.match(head)
    if match:
        return int(match.group(1)), "" if match.group(1) == b"3" else match.group(2).decode(
            "latin-1")
    return None


def _is_function(head: bytes) -> bool:
    """A Lua function saved at the top (tag 6, 7 or 8, index 1, LuaJIT/Lua bytecode)."""
    return (len(head) >= 16 and head[:4] in (b"\x06\0\0\0", b"\x07\0\0\0", b"\x08\0\0\0")
            and head[4:8] == b"\x01\0\0\0" and head[12:15] in (b"\x1bLJ", b"\x1bLu"))


def sniff(head: FileHead) -> Claim | None:
    if _is_function(head.head):
        return Claim("torch7", "model", "a Torch7 file holding a Lua function")
    found = _class_name(head.head)
    if found is None:
        return None
    tag, cls = found
    if cls.startswith("torch.") and cls.endswith("Tensor"):
        return Claim("torch7", "tensor", f"a Torch7 tensor ({cls}): data, not a model")
    if tag == 3:
        return Claim("torch7", "model", "a Torch7 file holding a Lua table")
    return Claim("torch7", "model", f"a Torch7 model ({cls or 'torch object'})")


SPEC = register_reader(ReaderSpec(
    name="torch7",
    title="Lua Torch7 (.t7, binary or ascii)",
    module="migrate.readers.torch7.reader",
    sniff=sniff,
    suffixes=(".t7", ".th", ".net", ".t7model", ".torch"),
))
