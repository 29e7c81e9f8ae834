"""SpyNet's whole coarse-to-fine flow estimator (anuragranj/spynet) as one network.

No single file holds it: SpyNet ships one Torch7 network per pyramid level
(`modelL{1..6}_{3,4,C,F,K}.t7`) and glues them together in Lua (spynet.lua). A
`SpyNetPyramid` names the folder of level files and the model type; the reader
(`pyramid.py`) loads the level networks with the Torch7 reader and composes the
glue around them in one common graph. No file's content is claimed (`sniff`
recognises nothing): the pyramid is asked for by `migrate spynet-pyramid DIR` or
`migrate.convert(SpyNetPyramid(DIR, "sintelFinal"), input_shapes=[[1, 3, H, W]])`.

Light: no numpy or onnx here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrate.core.registry import Claim, FileHead, ReaderSpec, register_reader

# SpyNet's model types (spynet.lua setup()): the suffix of each level's file, level 1
# first. The chairs models have no level 6: spynet.lua loads modelL5_* again there.
TYPES: dict[str, tuple[str, ...]] = {
    "sintelFinal": ("L1_F", "L2_F", "L3_F", "L4_F", "L5_F", "L6_F"),
    "sintelClean": ("L1_C", "L2_C", "L3_C", "L4_C", "L5_C", "L6_C"),
    "kittiFinal": ("L1_K", "L2_K", "L3_K", "L4_K", "L5_K", "L6_K"),
    "chairsClean": ("L1_4", "L2_4", "L3_4", "L4_4", "L5_4", "L5_4"),
    "chairsFinal": ("L1_3", "L2_3", "L3_3", "L4_3", "L5_3", "L5_3"),
}
DEFAULT_TYPE = "sintelFinal"  # what spynet.lua's easy_setup loads


def level_file(model_type: str, level: int) -> str:
    """The file name spynet.lua loads at `level` (1 = coarsest) for `model_type`."""
    return f"model{TYPES[model_type][level - 1]}.t7"


@dataclass(frozen=True)
class SpyNetPyramid:
    """What to build: the folder holding the level files, and SpyNet's model type.

    `warp` chooses how the warp is written in the common graph: "gridsample" (one ONNX
    GridSample; targets without a sampler get their writer's construction) or
    "gather" (the CUDA kernel's arithmetic spelled out with Gather, for targets whose
    writers have no GridSample at all)."""

    models_dir: str
    model_type: str = DEFAULT_TYPE
    warp: str = "gridsample"


def _sniff(head: FileHead) -> Claim | None:
    return None  # a folder of Torch7 files, never one file: see SpyNetPyramid


def _accepts(obj: Any) -> bool:
    return isinstance(obj, SpyNetPyramid)


SPEC = register_reader(ReaderSpec(
    name="spynet",
    title="SpyNet flow pyramid (a folder of level .t7 files: `migrate spynet-pyramid DIR`)",
    module="migrate.readers.spynet.pyramid",
    sniff=_sniff,
    accepts_object=_accepts,
))
