"""Caffe models: a net definition (text prototxt or binary NetParameter) and its trained
weights (.caffemodel), in the current or the old V1/V0 formats."""

from __future__ import annotations

import os
import re

from migrate.core.registry import Claim, FileHead, ReaderSpec, register_reader
from migrate.core.sniff import LEN, protobuf_kind, text_protobuf_kind, wire_fields

# NetParameter.layers (V1) = 2 and .layer = 100; their blobs are fields 6 and 7; a V0
# layer (field 1 of a V1 layer) keeps its blobs in field 50
_V1_LAYERS, _LAYER = 2, 100


def _holds_blobs(head: bytes) -> bool:
    """Whether a layer in the first bytes of a binary NetParameter holds blobs (weights):
    blobs come right after a layer's name, type, bottoms and tops, so a caffemodel
    shows them in its first layers with weights."""
    try:
        for f in wire_fields(head, 0, len(head), 100_000):
            if f.wire_type != LEN or f.number not in (_V1_LAYERS, _LAYER):
                continue
            blobs = 6 if f.number == _V1_LAYERS else 7
            for g in wire_fields(head, f.start, min(f.end, len(head)), 1000):
                if g.wire_type == LEN and g.number == blobs:
                    return True
                if f.number == _V1_LAYERS and g.number == 1 and g.wire_type == LEN:
                    for h in wire_fields(head, g.start, min(g.end, len(head)), 1000):
                        if h.number == 50 and h.wire_type == LEN:
                            return True
    except ValueError:
        return False
    return False


def sniff(head: FileHead) -> Claim | None:
    if text_protobuf_kind(head.head) == "caffe":
        return Claim("caffe", "net", "a Caffe net definition (text prototxt)")
    if protobuf_kind(head.head) != "caffe":
        return None
    if _holds_blobs(head.head):
        return Claim("caffe", "weights", "Caffe weights (a .caffemodel)")
    # no blobs: a definition saved as binary, or the caffemodel of a net without weights
    return Claim("caffe", "net", "a Caffe net definition (binary NetParameter)",
                 alternatives=("weights",))


# -- batch: which definition goes with which caffemodel -------------------------------------

_NAME = re.compile(rb'\bname\s*:\s*"([^"\n]{1,200})"')


def _definition_names(path: str) -> set[str]:
    """Layer names in a text prototxt (a cheap look, for pairing files in a folder)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(4 << 20)
    except OSError:
        return set()
    return {m.group(1).decode("utf-8", "replace") for m in _NAME.finditer(data)}


def _weight_names(path: str) -> set[str]:
    """Names of the layers with blobs in the first MBs of a caffemodel (headers only)."""
    names: set[str] = set()
    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 20)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return names
    try:
        for f in wire_fields(data, 0, len(data), 100_000):
            if f.wire_type != LEN or f.number not in (_V1_LAYERS, _LAYER):
                continue
            name_field = 4 if f.number == _V1_LAYERS else 1
            for g in wire_fields(data, f.start, min(f.end, len(data)), 64):
                if g.number == name_field and g.wire_type == LEN and g.end <= len(data):
                    names.add(bytes(data[g.start:g.end]).decode("utf-8", "replace"))
                    break
            if f.end >= min(len(data), size):
                break
    except ValueError:
        pass
    return names


def group(claims: list[tuple[str, Claim]]) -> list[list[str]]:
    """Pair each definition with a caffemodel: the one of the same stem (deploy words
    aside), else the one whose layer names the definition shares most. Unpaired files
    come back alone (they fail with a message that says what is missing)."""
    from migrate.batch.discover import stem_key

    nets = [p for p, c in claims if c.role == "net"]
    weights = [p for p, c in claims if c.role == "weights"]
    groups: list[list[str]] = []
    free = list(weights)
    unmatched = []
    for net in nets:
        key = stem_key(os.path.basename(net))
        same = [w for w in free if stem_key(os.path.basename(w)) == key
                or stem_key(os.path.basename(w)).startswith(key + "_")]
        if len(same) == 1:
            groups.append([net, same[0]])
            free.remove(same[0])
        else:
            unmatched.append(net)
    for net in unmatched:
        names = _definition_names(net)
        scored = sorted(((len(names & _weight_names(w)), w) for w in free), reverse=True)
        if scored and scored[0][0] > 0 and (len(scored) == 1 or scored[1][0] < scored[0][0]):
            groups.append([net, scored[0][1]])
            free.remove(scored[0][1])
        else:
            groups.append([net])
    groups += [[w] for w in free]
    return groups


SPEC = register_reader(ReaderSpec(
    name="caffe",
    title="Caffe (.prototxt + .caffemodel)",
    module="migrate.readers.caffe.reader",
    sniff=sniff,
    role_sets=(frozenset({"net", "weights"}),),
    role_order=("net", "weights"),
    suffixes=(".prototxt", ".caffemodel"),
    runtime="caffe",
    group=group,
    role_words=(("net", "net definition (the deploy .prototxt)"),
                ("weights", "trained weights (the .caffemodel; a definition holds none, and "
                            "random weights prove nothing)")),
))
