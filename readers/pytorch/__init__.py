"""PyTorch models: ExportedPrograms (`.pt2`, torch.export.save), checkpoints
(torch.save state_dicts, with the model's code), TorchScript files, and live
`torch.nn.Module` / `ExportedProgram` objects from Python."""

from __future__ import annotations

import re
import struct
import sys
from typing import Any

from migrate.core.registry import Claim, FileHead, ReaderSpec, register_reader
from migrate.core.sniff import pytorch_kind

_WHAT = {
    "exported": "a PyTorch ExportedProgram (torch.export.save)",
    "checkpoint": "a PyTorch checkpoint (torch.save)",
    "legacy": "a PyTorch checkpoint (torch.save, pre-1.6 format)",
    "torchscript": "a TorchScript module (torch.jit.save)",
}


# the first entry torch.save / torch.export.save / torch.jit.save write into their zip
_FIRST_ENTRY = re.compile(rb"[^/]{1,200}/(data\.pkl|data/|archive_format|version|byteorder|"
                          rb"\.data/|\.format_version|models/|code/|constants\.pkl)")


def _damaged_pytorch_zip(head: bytes) -> bool:
    """A zip whose directory cannot be read (so its kind is unknown) but whose first
    entry is named as PyTorch names them: a damaged PyTorch file, reported as such."""
    if len(head) < 30 or not head.startswith(b"PK\x03\x04"):
        return False
    (name_length,) = struct.unpack_from("<H", head, 26)
    return _FIRST_ENTRY.match(head[30:30 + name_length]) is not None


def sniff(head: FileHead) -> Claim | None:
    kind = pytorch_kind(head)
    if kind is not None:
        return Claim("pytorch", "model", _WHAT[kind])
    if _damaged_pytorch_zip(head.head):
        return Claim("pytorch", "model", "a damaged PyTorch file (zip)")
    return None


def accepts_object(obj: Any) -> bool:
    """A torch.nn.Module or ExportedProgram; torch is not imported to find out (an
    object of torch exists only once the user imported torch)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    export = sys.modules.get("torch.export")
    program = getattr(export, "ExportedProgram", None) if export is not None else None
    return isinstance(obj, torch.nn.Module) or (program is not None and isinstance(obj, program))


SPEC = register_reader(ReaderSpec(
    name="pytorch",
    title="PyTorch (.pt2 ExportedProgram; checkpoint + --model-class; nn.Module)",
    module="migrate.readers.pytorch.reader",
    sniff=sniff,
    suffixes=(".pt2", ".pt", ".pth", ".ckpt"),
    runtime="torch",
    accepts_object=accepts_object,
))
