"""Caffe net definitions (text prototxt or binary NetParameter) -> caffe_pb2.NetParameter.

A text prototxt is cut into its top-level entries first (a scanner that knows strings,
comments and braces, no parsing): each `layer {...}` block is parsed on its own, so that

- a million-layer file is refused after counting, before anything is parsed;
- an error names the line and the layer it is in;
- a field the schema does not know (a fork's extension) is tied to its layer: harmless
  on a layer no converter takes (it is reported among the unsupported layers), an
  error on a layer we would otherwise convert without it (never silently wrong).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from google.protobuf import text_format
from google.protobuf.message import DecodeError

from migrate.core.errors import CorruptFileError, TooLargeError, TruncatedFileError, UsageError
from migrate.core.formats import caffe_pb2
from migrate.core.sniff import LEN, wire_fields

MAX_DEFINITION_BYTES = 256 << 20
MAX_LAYERS = 100_000

_TOKEN = re.compile(r"[\"'#{}<>]")
_STRING = {'"': re.compile(r'"(?:[^"\\\n]|\\.)*"'), "'": re.compile(r"'(?:[^'\\\n]|\\.)*'")}
_BLOCK_NAME = re.compile(r"([A-Za-z_]\w*)\s*:?\s*\Z")
_UNKNOWN_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "(\w+)"')


@dataclass
class Definition:
    net: caffe_pb2.NetParameter
    binary: bool
    # layer index (in net.layer or net.layers, whichever the file uses) -> a field the
    # schema does not know, e.g. "PoolingParameter.foo"
    unknown: dict[int, list[str]] = field(default_factory=dict)
    lines: dict[int, int] = field(default_factory=dict)  # layer index -> line of its block
    texts: dict[int, str] = field(default_factory=dict)  # layer index -> its block's text


def read_definition(path: str) -> Definition:
    size = os.path.getsize(path)
    if size > MAX_DEFINITION_BYTES:
        raise TooLargeError(f"a net definition of {size / 1e6:,.0f} MB (more than "
                            f"{MAX_DEFINITION_BYTES >> 20} MB) is not a real net", file=path)
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        if _is_text(data):
            return parse_text(data.decode("utf-8", "replace"))
        return parse_binary(data)
    except (CorruptFileError, TooLargeError, UsageError) as exc:
        raise exc.with_file(path) from None


def _is_text(data: bytes) -> bool:
    from migrate.core.sniff import text_of

    return text_of(data[:65536]) is not None


# -- text ---------------------------------------------------------------------------------

def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


@dataclass
class _Block:
    name: str
    start: int  # where its field name starts
    inner: int  # just after its opening brace
    end: int  # just after its closing brace


def scan_blocks(text: str, max_layers: int = MAX_LAYERS) -> list[_Block]:
    """The top-level `name { ... }` blocks of a text proto, without parsing it."""
    blocks: list[_Block] = []
    depth = 0
    pos = 0
    opened_at = 0
    boundary = 0  # end of the previous top-level block
    layers = 0
    while True:
        match = _TOKEN.search(text, pos)
        if match is None:
            break
        ch, at = match.group(), match.start()
        if ch == "#":
            newline = text.find("\n", at)
            if newline < 0:
                break
            pos = newline + 1
        elif ch in _STRING:
            string = _STRING[ch].match(text, at)
            if string is None:
                raise TruncatedFileError(f"line {_line_of(text, at)}: a string that never ends")
            pos = string.end()
        elif ch in "{<":
            if depth == 0:
                opened_at = at
            depth += 1
            pos = at + 1
        else:
            depth -= 1
            if depth < 0:
                raise CorruptFileError(f"line {_line_of(text, at)}: '{ch}' closes no block")
            if depth == 0:
                name = _BLOCK_NAME.search(text, boundary, opened_at)
                if name is None:
                    raise CorruptFileError(f"line {_line_of(text, opened_at)}: a block "
                                           "without a field name")
                blocks.append(_Block(name.group(1), name.start(), opened_at + 1, at + 1))
                if name.group(1) in ("layer", "layers"):
                    layers += 1
                    if layers > max_layers:
                        raise TooLargeError(f"more than {max_layers:,} layers: not a real "
                                            "net (a damaged or hostile file)")
                boundary = at + 1
            pos = at + 1
    if depth > 0:
        raise TruncatedFileError(f"the block opened at line {_line_of(text, opened_at)} is "
                                 "never closed (the file is cut short?)")
    return blocks


def _parse_error(exc: text_format.ParseError, first_line: int, where: str) -> CorruptFileError:
    message = str(exc)
    line = exc.GetLine() if exc.GetLine() else None
    # ParseError's text starts with "line:column : "; say the file's line instead
    message = re.sub(r"^\d+:\d+ : ", "", message)
    if line is not None:
        return CorruptFileError(f"line {line + first_line - 1}{where}: {message}"[:400])
    return CorruptFileError(f"{where.lstrip(', ')}: {message}"[:400])


def _parse(text: str, message, first_line: int, where: str) -> list[str]:
    """Parse strictly; when the schema lacks a field, parse again skipping such fields
    and return the first one (named as `message type.field`)."""
    try:
        text_format.Parse(text, message)
        return []
    except text_format.ParseError as exc:
        unknown = _UNKNOWN_FIELD.search(str(exc))
        if unknown is None:
            raise _parse_error(exc, first_line, where) from None
    except RecursionError:
        raise CorruptFileError(f"line {first_line}{where}: messages nested too deep") from None
    message.Clear()
    try:
        text_format.Parse(text, message, allow_unknown_field=True)
    except text_format.ParseError as exc:
        raise _parse_error(exc, first_line, where) from None
    except RecursionError:
        raise CorruptFileError(f"line {first_line}{where}: messages nested too deep") from None
    return [f"{unknown.group(1).removeprefix('caffe.')}.{unknown.group(2)}"]


def parse_text(text: str) -> Definition:
    blocks = scan_blocks(text)
    layer_blocks = [b for b in blocks if b.name in ("layer", "layers")]
    kinds = {b.name for b in layer_blocks}
    if len(kinds) > 1:
        # Caffe refuses this too (UpgradeV1Net)
        raise CorruptFileError("the definition mixes `layer` (current) and `layers` (V1) "
                               "blocks: Caffe refuses such a file")
    # everything but the layers, with the layers' lines kept (blank) so that errors
    # give the file's line numbers
    pieces, pos = [], 0
    for b in layer_blocks:
        pieces.append(text[pos:b.start])
        pieces.append("\n" * text.count("\n", b.start, b.end))
        pos = b.end
    pieces.append(text[pos:])
    net = caffe_pb2.NetParameter()
    unknown = _parse("".join(pieces), net, 1, "")
    if unknown:
        raise CorruptFileError(f"the net has a field BVLC Caffe's schema lacks: {unknown[0]}")
    definition = Definition(net, binary=False)
    target = net.layers if kinds == {"layers"} else net.layer
    for index, b in enumerate(layer_blocks):
        layer = target.add()
        line = _line_of(text, b.inner)
        body = text[b.inner:b.end - 1]
        name = re.search(r'\bname\s*:\s*"((?:[^"\\\n]|\\.)*)"', body)
        where = f", layer '{name.group(1)}'" if name else f", layer {index + 1}"
        unknown_fields = _parse(body, layer, line, where)
        if unknown_fields:
            definition.unknown[index] = unknown_fields
        definition.lines[index] = _line_of(text, b.start)
        definition.texts[index] = text[b.start:b.end]
    return definition


# -- binary -------------------------------------------------------------------------------

# NetParameter.layers (V1) = 2, .layer = 100
_V1_LAYERS, _LAYER = 2, 100


def parse_binary(data: bytes) -> Definition:
    layers = 0
    try:
        for f in wire_fields(data, 0, len(data), MAX_LAYERS * 4):
            if f.end > len(data):
                raise TruncatedFileError(f"the file ends inside its field {f.number} (needs "
                                         f"byte {f.end:,}, has {len(data):,})")
            if f.number in (_V1_LAYERS, _LAYER) and f.wire_type == LEN:
                layers += 1
                if layers > MAX_LAYERS:
                    raise TooLargeError(f"more than {MAX_LAYERS:,} layers: not a real net")
    except ValueError as exc:
        raise CorruptFileError(f"not a Caffe NetParameter: {exc}") from None
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise CorruptFileError(f"not a valid Caffe NetParameter ({exc})"[:300]) from None
    definition = Definition(net, binary=True)
    for index, layer in enumerate(net.layer if net.layer else net.layers):
        if _has_unknown_fields(layer):
            definition.unknown[index] = ["fields at numbers BVLC Caffe's schema lacks (a "
                                         "fork's): give the text prototxt instead"]
    return definition


def _has_unknown_fields(message) -> bool:
    from google.protobuf import unknown_fields

    if len(unknown_fields.UnknownFieldSet(message)):
        return True
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        values = value if descriptor.is_repeated else [value]
        if any(_has_unknown_fields(v) for v in values):
            return True
    return False
