"""Caffe2 NetDef files: loading, telling an init net from a predict net, layer keys."""

from __future__ import annotations

from collections.abc import Sequence

from migrate.core.errors import CorruptFileError, UsageError
from migrate.core.formats.caffe2_pb2 import NetDef, OperatorDef
from migrate.core.sniff import is_init_net, netdef_op_types, read_head, text_protobuf_kind


def load_netdef(path: str) -> NetDef:
    """A binary or text NetDef."""
    from google.protobuf import text_format

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read: {exc.strerror or exc}", file=path) from None
    if text_protobuf_kind(data[:1 << 16]) == "netdef":
        try:
            return text_format.Parse(data.decode("utf-8"), NetDef(),
                                     allow_unknown_field=True)
        except (text_format.ParseError, UnicodeDecodeError) as exc:
            raise CorruptFileError(f"not a valid text NetDef: {exc}"[:300], file=path) from None
    try:
        net = NetDef.FromString(data)
    except Exception:  # protobuf's DecodeError
        raise CorruptFileError("not a Caffe2 NetDef (it does not parse)", file=path) from None
    return check_strings(net, path)


def check_strings(net: NetDef, path: str) -> NetDef:
    """protobuf hands out invalid UTF-8 in a string field as bytes: a damaged file."""
    fields = [net.name, *net.external_input, *net.external_output]
    for op in net.op:
        fields += [op.type, op.engine, op.debug_info, op.name, *op.input, *op.output]
        fields += [arg.name for arg in op.arg]
    if any(not isinstance(value, str) for value in fields):
        raise CorruptFileError("a name in the NetDef is not valid UTF-8 text", file=path)
    return net


def netdef_role(path: str) -> str:
    """'init_net' or 'predict_net', by content (an init net holds only fills)."""
    head = read_head(path)
    if text_protobuf_kind(head.head) == "netdef":
        types = [op.type for op in load_netdef(path).op]
    else:
        types = netdef_op_types(path)
    return "init_net" if is_init_net(types) else "predict_net"


def classify_pair(paths: Sequence[str]) -> dict[str, str]:
    """{'init_net': path, 'predict_net': path} for two NetDef files in either order."""
    roles: dict[str, str] = {}
    for path in paths:
        role = netdef_role(path)
        if role in roles:
            raise UsageError(f"both {roles[role]} and {path} look like a {role} "
                             "(an init net holds only *Fill ops)")
        roles[role] = path
    return roles


def layer_key(index: int, op: OperatorDef) -> tuple[str, str]:
    """(layer path, class) of one predict-net op, as readers, writers and the Caffe2
    runtime all name it: the source module recorded in debug_info by our writer
    ('model.modules[3] (nn.SpatialConvolution)'), else the op's position and first
    output ('op[3]:conv1', 'Conv')."""
    if op.debug_info and op.debug_info.endswith(")") and " (" in op.debug_info:
        path, cls = op.debug_info[:-1].rsplit(" (", 1)
        return path, cls
    first = op.output[0] if op.output else ""
    return f"op[{index}]:{first}", op.type
