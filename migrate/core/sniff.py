"""Byte-level content tests: what a file is, by its bytes, never by its name.

Readers and writers build their content tests from these (cheap: the first bytes of
a file, or a walk over a protobuf's top-level field headers, no decoding of weights),
and `describe_unknown` names the files no reader claims, so the user learns what the
file is and what to do instead of a decoder's complaint from deep inside it.
"""

from __future__ import annotations

import mmap
import os
import re
import zipfile

from migrate.core.protowire import (  # noqa: F401  (re-exported for content tests)
    FIXED32,
    FIXED64,
    LEN,
    VARINT,
    WireField,
    encode_len_field,
    encode_varint,
    wire_fields,
)
from migrate.core.registry import FileHead

HEAD_BYTES = 1 << 16


def read_head(path: str, size: int = HEAD_BYTES) -> FileHead:
    with open(path, "rb") as fh:
        head = fh.read(size)
        total = os.fstat(fh.fileno()).st_size
    return FileHead(path, total, head)


# -- protobuf -------------------------------------------------------------------------------

def field_map(data, start: int = 0, end: int | None = None, limit: int = 4096
              ) -> dict[int, set[int]] | None:
    """{field number: wire types seen} of a message (its first `limit` fields), or
    None when the bytes are not protobuf."""
    seen: dict[int, set[int]] = {}
    try:
        for f in wire_fields(data, start, end, limit):
            seen.setdefault(f.number, set()).add(f.wire_type)
    except ValueError:
        return None
    return seen


def _fits(seen: dict[int, set[int]], schema: dict[int, set[int]]) -> bool:
    return bool(seen) and all(n in schema and types <= schema[n] for n, types in seen.items())


# ONNX ModelProto: ir_version 1, producer_name 2, producer_version 3, domain 4,
# model_version 5, doc_string 6, graph 7, opset_import 8, metadata_props 14,
# training_info 20, functions 25, configuration 26
_ONNX_MODEL = {1: {VARINT}, 2: {LEN}, 3: {LEN}, 4: {LEN}, 5: {VARINT}, 6: {LEN}, 7: {LEN},
               8: {LEN}, 14: {LEN}, 20: {LEN}, 25: {LEN}, 26: {LEN}}
# Caffe2 NetDef: name 1, op 2, type 3, num_workers 4, device_option 5, arg 6,
# external_input 7, external_output 8, partition_info 9
_NETDEF = {1: {LEN}, 2: {LEN}, 3: {LEN}, 4: {VARINT}, 5: {LEN}, 6: {LEN}, 7: {LEN}, 8: {LEN},
           9: {LEN}}
# Caffe2 OperatorDef: input 1, output 2, name 3, type 4, arg 5, device_option 6,
# engine 7, control_input 8, is_gradient_op 9, debug_info 10, domain 11, op_version 12
_OPERATORDEF = {1: {LEN}, 2: {LEN}, 3: {LEN}, 4: {LEN}, 5: {LEN}, 6: {LEN}, 7: {LEN},
                8: {LEN}, 9: {VARINT}, 10: {LEN}, 11: {LEN}, 12: {VARINT}}
# Caffe NetParameter: name 1, layers (V1) 2, input 3, input_dim 4, force_backward 5,
# state 6, debug_info 7, input_shape 8, layer 100
_NETPARAMETER = {1: {LEN}, 2: {LEN}, 3: {LEN}, 4: {VARINT, LEN}, 5: {VARINT}, 6: {LEN},
                 7: {VARINT}, 8: {LEN}, 100: {LEN}}


def is_onnx_model(head: bytes) -> bool:
    """An ONNX ModelProto: ir_version as its varint field 1, only ModelProto fields."""
    seen = field_map(head)
    return seen is not None and VARINT in seen.get(1, set()) and _fits(seen, _ONNX_MODEL) \
        and bool(seen.keys() & {7, 8})


def _first_submessage(data, number: int, end: int | None = None) -> tuple[int, int] | None:
    try:
        for f in wire_fields(data, 0, end, 64):
            if f.number == number and f.wire_type == LEN:
                return f.start, f.start + f.length
    except ValueError:
        return None
    return None


def protobuf_kind(head: bytes) -> str | None:
    """'onnx', 'netdef' (Caffe2) or 'caffe' (Caffe NetParameter) for a binary protobuf."""
    if is_onnx_model(head):
        return "onnx"
    seen = field_map(head)
    if not seen:
        return None
    if 100 in seen or VARINT in seen.get(5, set()) or VARINT in seen.get(7, set()):
        return "caffe" if _fits(seen, _NETPARAMETER) else None
    first = _first_submessage(head, 2)
    if first is not None:
        sub = field_map(head, first[0], first[1])
        if sub is None:
            return None
        # a V1 Caffe layer has its type as an enum (varint field 5); an OperatorDef
        # has its args in field 5
        if VARINT in sub.get(5, set()) and _fits(seen, _NETPARAMETER):
            return "caffe"
        if _fits(sub, _OPERATORDEF) and _fits(seen, _NETDEF):
            return "netdef"
        return None
    if _fits(seen, _NETDEF) and seen.keys() & {7, 8}:
        return "netdef"
    if _fits(seen, _NETPARAMETER) and seen.keys() & {3, 4, 8}:
        return "caffe"
    return None


def netdef_op_types(path: str, max_ops: int = 1 << 20) -> list[str]:
    """The `type` of every op of a binary Caffe2 NetDef (walks field headers only)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return []
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            types = []
            try:
                for f in wire_fields(data, 0, None, max_ops):
                    if f.number != 2 or f.wire_type != LEN:
                        continue
                    op_type = ""
                    for g in wire_fields(data, f.start, f.start + f.length, 64):
                        if g.number == 4 and g.wire_type == LEN:
                            op_type = bytes(data[g.start:g.start + min(g.length, 256)]).decode(
                                "utf-8", "replace")
                            break
                    types.append(op_type)
            except ValueError:
                pass
            return types


def is_init_net(op_types: list[str]) -> bool:
    """An init net holds only fills (GivenTensorFill, ConstantFill, XavierFill, ...)."""
    return bool(op_types) and all(t.endswith("Fill") for t in op_types)


# -- text ---------------------------------------------------------------------------------

def text_of(head: bytes) -> str | None:
    """The head as text when it looks like text (UTF-8, no control bytes but whitespace)."""
    if not head or b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut by the head's end
            return None
        text = head[:exc.start].decode("utf-8")
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f\v")
    return text if controls == 0 else None


_COMMENTS = re.compile(r"#[^\n]*")
CAFFE_TEXT = re.compile(r"^\s*(layers?\s*\{|input\s*:|input_dim\s*:|input_shape\s*\{)", re.M)
NETDEF_TEXT = re.compile(r"^\s*(op\s*\{|external_input\s*:|external_output\s*:)", re.M)


def text_protobuf_kind(head: bytes) -> str | None:
    """'caffe' for a Caffe prototxt, 'netdef' for a Caffe2 text NetDef."""
    text = text_of(head)
    if text is None:
        return None
    text = _COMMENTS.sub("", text)
    if NETDEF_TEXT.search(text) and re.search(r"\btype\s*:\s*\"", text) or \
            re.search(r"^\s*external_(in|out)put\s*:", text, re.M):
        return "netdef"
    if CAFFE_TEXT.search(text):
        return "caffe"
    return None


# -- other formats, so that an unclaimed file gets a useful message -----------------------

LEGACY_TORCH_MAGIC = bytes.fromhex("6cfc9c46f9206aa85019")  # 0x1950a86a20f9469cfc6c, LE


def zip_names(path: str, limit: int = 100_000) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    return [i.filename for i in infos[:limit]]


def pytorch_kind(head: FileHead) -> str | None:
    """'checkpoint' (torch.save), 'exported' (torch.export.save), 'torchscript'
    (torch.jit.save) or 'legacy' (torch.save before 1.6) for a PyTorch file."""
    if head.head.startswith(b"\x80") and LEGACY_TORCH_MAGIC in head.head[:64]:
        return "legacy"
    if not head.head.startswith(b"PK\x03\x04"):
        return None
    names = zip_names(head.path)
    if not names:
        return None
    if any(n.endswith(("serialized_exported_program.json", "archive_format"))
           or "/models/" in n and n.endswith(".json") for n in names):
        return "exported"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("data.pkl") for n in names):
        return "checkpoint"
    return None


_PYTORCH_WORDS = {
    "checkpoint": "a PyTorch checkpoint (torch.save zip)",
    "legacy": "a PyTorch checkpoint (torch.save, pre-1.6 format)",
    "exported": "a PyTorch ExportedProgram (torch.export.save)",
    "torchscript": "a TorchScript module (torch.jit.save)",
}


def describe_unknown(head: FileHead) -> str:
    """What a file no reader claims looks like, in a few words."""
    data = head.head
    if head.size == 0:
        return "an empty file"
    kind = pytorch_kind(head)
    if kind:
        return _PYTORCH_WORDS[kind]
    magic = [
        (b"\x89HDF\r\n\x1a\n", "an HDF5 file (e.g. a Keras .h5 model)"),
        (b"\x93NUMPY", "a NumPy array (.npy), not a model"),
        (b"\x89PNG", "a PNG image, not a model"),
        (b"\xff\xd8\xff", "a JPEG image, not a model"),
        (b"GIF8", "a GIF image, not a model"),
        (b"%PDF", "a PDF document, not a model"),
        (b"\x1f\x8b", "a gzip-compressed file (decompress it first)"),
        (b"BZh", "a bzip2-compressed file (decompress it first)"),
        (b"\xfd7zXZ", "an xz-compressed file (decompress it first)"),
        (b"\x7fELF", "an executable, not a model"),
        (b"PK\x03\x04", "a zip archive that is no PyTorch file (unpack it first)"),
    ]
    for prefix, words in magic:
        if data.startswith(prefix):
            return words
    if data[4:8] == b"TFL3":
        return "a TensorFlow Lite / LiteRT flatbuffer (.tflite)"
    if len(data) > 8 and data[8:10] == b'{"' and int.from_bytes(data[:8], "little") < head.size:
        return "a safetensors file (weights only, no network)"
    if data.startswith(b"\x80") and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (never unpickled here: it can run code)"
    kind = protobuf_kind(data)
    if kind is not None:
        return {"onnx": "an ONNX model", "netdef": "a Caffe2 NetDef (protobuf)",
                "caffe": "a Caffe model (binary NetParameter)"}[kind]
    text = text_of(data)
    if text is not None:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        return f"a text file (it starts with {first[:40]!r})"
    return "binary data of no format known here"
