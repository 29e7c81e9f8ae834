"""Which reader takes which files: formats found by content, multi-file models assembled."""

from __future__ import annotations

import os
from collections.abc import Sequence

from migrate.core.errors import UsageError
from migrate.core.registry import READERS, WRITERS, Claim, ReaderSpec
from migrate.core.sniff import describe_unknown, read_head


def _check_file(path: str) -> None:
    if os.path.isdir(path):
        raise UsageError("is a folder; `migrate batch FOLDER -o OUT` converts a whole archive",
                         file=path)
    if not os.path.isfile(path):
        raise UsageError("no such file", file=path)
    if not os.access(path, os.R_OK):
        raise UsageError("cannot read it (permission denied)", file=path)


def claim(path: str) -> Claim | None:
    """The reader that recognises this file by its content, and the file's role."""
    head = read_head(path)
    for spec in READERS.all():
        try:
            found = spec.sniff(head)
        except (OSError, ValueError):
            found = None
        if found is not None:
            return found
    return None


def formats_line() -> str:
    return ", ".join(f"{s.name} ({s.title})" for s in READERS.all())


def unknown_file_error(path: str) -> UsageError:
    what = describe_unknown(read_head(path))
    advice = ""
    if what.startswith(("a PyTorch", "a TorchScript")):
        advice = (": not Torch7, despite a name like .t7 (old PyTorch code saved checkpoints "
                  "that way); PyTorch files need the PyTorch reader")
    return UsageError(f"not a model format this tool reads: it looks like {what}{advice}. "
                      f"Formats read: {formats_line()}", file=path)


def resolve_source(paths: Sequence[str]) -> tuple[ReaderSpec, list[str]]:
    """The reader for a source model and its files in the reader's role order."""
    if not paths:
        raise UsageError("no model file given")
    for path in paths:
        _check_file(path)
    claims = []
    for path in paths:
        found = claim(path)
        if found is None:
            raise unknown_file_error(path)
        claims.append((path, found))
    formats = {c.format for _, c in claims}
    if len(formats) > 1:
        listing = "; ".join(f"{p} is {c.what}" for p, c in claims)
        raise UsageError(f"these files are of different formats ({listing}): give one model")
    spec = READERS.get(claims[0][1].format)
    assert spec is not None
    return spec, order_roles(spec, claims)


def order_roles(spec: ReaderSpec, claims: list[tuple[str, Claim]]) -> list[str]:
    roles: dict[str, str] = {}
    # files that can play another role are placed last, in the order given
    for path, found in sorted(claims, key=lambda c: bool(c[1].alternatives)):
        role = found.role
        if role in roles:
            role = next((r for r in found.alternatives if r not in roles), role)
        if role in roles:
            raise UsageError(f"{roles[role]} and {path} are both {found.what}: "
                             f"a {spec.title} model takes one of each", file=path)
        roles[role] = path
    given = frozenset(roles)
    if given not in spec.role_sets:
        complete = spec.role_sets[0]
        missing = sorted(complete - given)
        if given < complete:
            path, found = claims[0]
            words = dict(spec.role_words)
            wanted = " and ".join(words.get(r, f"{r} file") for r in missing)
            raise UsageError(f"this is {found.what}; a {spec.title} model also needs its "
                             f"{wanted}: give both files", file=path)
        raise UsageError(f"a {spec.title} model is made of {', '.join(sorted(complete))}; "
                         f"got {', '.join(sorted(given))}")
    return [roles[r] for r in spec.role_order if r in roles]


def split_source_and_converted(paths: Sequence[str]) -> tuple[ReaderSpec, list[str], list[str]]:
    """`migrate verify SOURCE... CONVERTED...`: the source is the first file and the
    files of its format that complete it; the rest are the converted files."""
    if len(paths) < 2:
        raise UsageError("give the source model's file(s), then the converted file(s)")
    _check_file(paths[0])
    for path in paths[1:]:  # converted outputs may be folders (a TensorFlow SavedModel)
        if not os.path.exists(path):
            raise UsageError("no such file or folder", file=path)
    first = claim(paths[0])
    if first is None:
        raise unknown_file_error(paths[0])
    spec = READERS.get(first.format)
    assert spec is not None
    source = [(paths[0], first)]
    rest = list(paths[1:])
    needed = max(len(s) for s in spec.role_sets)
    while len(source) < needed and len(rest) > 1 and os.path.isfile(rest[0]):
        found = claim(rest[0])
        roles = {c.role for _, c in source}
        if found is None or found.format != spec.name or (
                found.role in roles and all(r in roles for r in found.alternatives)):
            break
        source.append((rest.pop(0), found))
    return spec, order_roles(spec, source), rest


def recognize_converted(paths: Sequence[str]) -> tuple[str, dict[str, str]]:
    """(writer name, {role: path}) for files one of our writers wrote."""
    for spec in WRITERS.all():
        try:
            files = spec.load().recognize(list(paths))
        except (OSError, ValueError):
            files = None
        if files:
            return spec.name, files
    names = ", ".join(WRITERS.names())
    raise UsageError(f"cannot tell which format {' '.join(paths)} are (known targets: {names})")
