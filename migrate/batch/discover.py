"""Find the models under a folder: every file a reader claims by content (and every
file named like a model, so a broken one is reported, not skipped), multi-file models
assembled from the files of one folder."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from migrate.core.detect import claim
from migrate.core.registry import READERS, Claim


@dataclass
class Found:
    paths: list[str]  # relative to the root, in the reader's role order
    format: str  # reader name, or "" for a file no reader claims (recorded as a failure)

    @property
    def key(self) -> str:
        return self.paths[0]


def _walk(root: str, exclude: str | None) -> Iterator[tuple[str, list[str]]]:
    exclude = os.path.abspath(exclude) if exclude else None
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and os.path.abspath(os.path.join(folder, d)) != exclude)
        yield folder, sorted(f for f in files if not f.startswith("."))


_ROLE_WORDS = re.compile(r"(^|[_.-])(init|predict)(_?net)?$|(^|[_.-])(deploy|weights|net)$",
                         re.I)


def stem_key(name: str) -> str:
    """A file name without extension and role words: x_init_net.pb and x_predict_net.pb
    share 'x'; lenet.prototxt and lenet.caffemodel share 'lenet'."""
    stem = name.split(".", 1)[0]
    return _ROLE_WORDS.sub("", stem) or stem


def group_by_stem(claims: list[tuple[str, Claim]], roles: tuple[str, ...]) -> list[list[str]]:
    """Files of one folder that complete each other: same stem key, else the only file
    of each role in the folder. Files left unmatched come back alone (they fail with a
    message that names what is missing)."""
    groups: list[list[str]] = []
    by_stem: dict[str, dict[str, str]] = {}
    for path, found in claims:
        by_stem.setdefault(stem_key(os.path.basename(path)), {}).setdefault(found.role, path)
    left: dict[str, list[str]] = {}
    for members in by_stem.values():
        if set(members) >= set(roles):
            groups.append([members[r] for r in roles])
        else:
            for role, path in members.items():
                left.setdefault(role, []).append(path)
    if left and all(len(left.get(r, [])) == 1 for r in roles):
        groups.append([left[r][0] for r in roles])
        left = {}
    groups += [[p] for paths in left.values() for p in paths]
    return groups


def discover(root: str, exclude: str | None = None) -> list[Found]:
    """Every model under root, sorted by its first file."""
    suffixes = tuple(s for spec in READERS.all() for s in spec.suffixes)
    found: list[Found] = []
    for folder, files in _walk(root, exclude):
        claimed: dict[str, list[tuple[str, Claim]]] = {}
        for name in files:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            try:
                what = claim(path)
            except OSError:
                what = None
            if what is None:
                if name.lower().endswith(suffixes):  # named like a model: report it
                    found.append(Found([relative], ""))
                continue
            spec = READERS.get(what.format)
            if spec is None or not any(what.role in roles for roles in spec.role_sets):
                continue  # recognised, and not a model (e.g. a Torch7 tensor of data)
            claimed.setdefault(what.format, []).append((relative, what))
        for fmt, claims in claimed.items():
            spec = READERS.get(fmt)
            assert spec is not None
            if spec.file_count == 1:
                found += [Found([p], fmt) for p, _ in claims]
                continue
            grouper = spec.group or (lambda c, roles=spec.role_order: group_by_stem(c, roles))
            # a reader's grouper may look into the files: it gets paths it can open
            absolute = [(os.path.join(root, p), c) for p, c in claims]
            found += [Found([os.path.relpath(p, root) for p in paths], fmt)
                      for paths in grouper(absolute)]
    return sorted(found, key=lambda f: f.key)
