"""The protobuf wire format, walked by hand: field headers, lengths and varints.

Readers use it to find a file's weights without letting protobuf parse (and copy) them;
writers use it to stream weights into packed fields; content tests use it to recognise
formats from a file's first bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from migrate.core.errors import CorruptFileError, TruncatedFileError

# protobuf wire types
VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True)
class WireField:
    number: int
    wire_type: int
    start: int  # offset of the value (after the tag and, for LEN, the length)
    length: int  # bytes of the value (LEN), else 0; may run past the data when truncated
    value: int = 0  # VARINT value
    offset: int = 0  # offset of the field's tag
    end: int = 0  # offset just past the field


def _varint(data, pos: int, end: int) -> tuple[int, int] | None:
    result = shift = 0
    while pos < end and shift < 70:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    return None


def wire_fields(data, start: int = 0, end: int | None = None,
                limit: int = 1 << 20) -> Iterator[WireField]:
    """The fields of one protobuf message, as headers (values are not decoded).

    Stops quietly at the end of `data` (a head of a longer file); raises ValueError
    where the bytes cannot be protobuf (bad wire type, field number 0, a varint that
    never ends inside the data it could end in)."""
    end = len(data) if end is None else min(end, len(data))
    pos = start
    count = 0
    while pos < end:
        count += 1
        if count > limit:
            return
        offset = pos
        tag = _varint(data, pos, end)
        if tag is None:
            return  # cut off by the end of the head
        key, pos = tag
        number, wire_type = key >> 3, key & 7
        if number == 0 or number > 536_870_911:
            raise ValueError("field number 0")
        if wire_type == VARINT:
            value = _varint(data, pos, end)
            if value is None:
                return
            yield WireField(number, wire_type, pos, 0, value[0], offset, value[1])
            pos = value[1]
        elif wire_type == FIXED64:
            yield WireField(number, wire_type, pos, 8, 0, offset, pos + 8)
            pos += 8
        elif wire_type == FIXED32:
            yield WireField(number, wire_type, pos, 4, 0, offset, pos + 4)
            pos += 4
        elif wire_type == LEN:
            length = _varint(data, pos, end)
            if length is None:
                return
            stop = length[1] + length[0]
            yield WireField(number, wire_type, length[1], length[0], 0, offset, stop)
            pos = stop
        else:
            raise ValueError(f"wire type {wire_type}")


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_len_field(number: int, payload: bytes) -> bytes:
    return encode_varint(number << 3 | LEN) + encode_varint(len(payload)) + payload


def checked_fields(data, start: int, end: int, what: str, limit: int,
                   format_name: str) -> Iterator[WireField]:
    """The fields of a message in a file: one that runs past its enclosing message is a
    truncated file, bytes that cannot be protobuf are a corrupt one."""
    try:
        for f in wire_fields(data, start, end, limit):
            if f.end > end:
                raise TruncatedFileError(f"{what} ends before its field {f.number} is complete "
                                         f"(needs byte {f.end:,}, has {end:,})")
            yield f
    except ValueError as exc:
        raise CorruptFileError(f"not a {format_name}: {exc} in {what}") from None


def packed_varints(data, start: int, end: int) -> list[int]:
    """A packed repeated int64 field (e.g. a tensor's dims), negatives as two's complement."""
    values, pos = [], start
    while pos < end:
        result = shift = 0
        while True:
            if pos >= end or shift > 63:
                raise CorruptFileError("bad packed integer")
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        values.append(result - (1 << 64) if result >= 1 << 63 else result)
    return values
