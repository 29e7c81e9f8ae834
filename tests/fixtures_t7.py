"""Access to the ground truth in ../shared/fixtures/torch7 (written by real Lua Torch7)."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("MIGRATE_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
T7_DIR = os.path.join(SHARED, "fixtures", "torch7")
RAW_DIR = os.path.join(T7_DIR, "raw")
REAL_DIR = os.path.join(SHARED, "fixtures", "real")
PROJECT_FIXTURES = os.path.join(ROOT, "fixtures")
# the 28 real SpyNet models and what real Torch7 computed with them on one input
SPYNET_MODELS = sorted(glob.glob(os.path.join(REAL_DIR, "spynet", "modelL*.t7")))
SPYNET_REF = os.path.join(REAL_DIR, "spynet_ref")


def spynet_input() -> np.ndarray:
    """The 1x8x24x32 input every SpyNet reference output was computed on."""
    return np.fromfile(os.path.join(SPYNET_REF, "input_1x8x24x32.f64"), "<f8").reshape(
        1, 8, 24, 32)


def spynet_expected(stem: str) -> np.ndarray:
    """Real Torch7's output of the SpyNet model `stem` (e.g. modelL1_3) on spynet_input()."""
    (path,) = glob.glob(os.path.join(SPYNET_REF, f"{stem}_output.*.f64"))
    shape = [int(d) for d in os.path.basename(path).split(".")[1].split("x")]
    return np.fromfile(path, "<f8").reshape(shape)


def read_raw(stem: str) -> list[np.ndarray]:
    """Arrays stored as `<stem>[.<k>].<d1xd2..>.f64` (k = 1-based index for tables)."""
    found = []
    for path in glob.glob(os.path.join(RAW_DIR, glob.escape(stem) + ".*f64")):
        name = os.path.basename(path)[len(stem):]
        m = re.fullmatch(r"(?:\.(\d+))?\.([\dx]+)\.f64", name)
        if m is None:
            continue
        k = int(m.group(1) or 1)
        shape = [int(d) for d in m.group(2).split("x")]
        found.append((k, np.fromfile(path, dtype="<f8").reshape(shape)))
    return [a for _, a in sorted(found, key=lambda t: t[0])]


# Models whose stored input/output are another case's (same network, other encoding).
_SAME_DATA_AS = {"misc_lenet_long4": "a_lenet_float"}


@dataclass
class Case:
    name: str  # e.g. a_lenet_float
    model: str  # path of the .t7

    @property
    def data_name(self) -> str:
        return _SAME_DATA_AS.get(self.name, self.name)

    @property
    def inputs(self) -> list[np.ndarray]:
        return read_raw(f"{self.data_name}_input")

    @property
    def outputs(self) -> list[np.ndarray]:
        return read_raw(f"{self.data_name}_output")


def manifest_names(manifest: str) -> list[str]:
    """The case names a manifest lists (`[name]` headers), e.g. manifest_n.txt."""
    path = os.path.join(T7_DIR, manifest)
    if not os.path.isfile(path):
        return []
    return re.findall(r"^\[(\w+)\]", open(path).read(), flags=re.M)


def cases(prefixes: list[str] | None = None) -> list[Case]:
    """Fixture models that have stored inputs and outputs, optionally filtered by group."""
    found = []
    for path in sorted(glob.glob(os.path.join(T7_DIR, "*.t7"))):
        name = os.path.basename(path)[:-3]
        data_name = _SAME_DATA_AS.get(name, name)
        if name.endswith(("_input", "_output")) or not read_raw(f"{data_name}_input"):
            continue
        base = re.sub(r"_(float|double)$", "", name)
        if prefixes is None or base in prefixes:
            found.append(Case(name, path))
    return found
