"""Which level networks a SpyNet pyramid needs, and loading them.

spynet.lua's rules (easyComputeFlow): both images are resized to the next multiple of
32 (fineW x fineH); the longer side picks the number of levels (<= 32: 1, <= 64: 2,
<= 128: 3, <= 256: 4, <= 512: 5, more: 6); level k (1 = coarsest) runs on the fine
size divided by 2^(levels - k).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from migrate.core.errors import (
    ConversionError,
    MigrateError,
    UnsupportedModulesError,
    UsageError,
)
from migrate.readers.spynet import TYPES, level_file
from migrate.readers.torch7.module import T7Module, lua_list
from migrate.readers.torch7.reader import find_unsupported, iter_modules, load_root

MULTIPLE = 32  # spynet.lua rounds both sides up to this
# Smallest side we accept. SpyNet itself runs on anything (it stretches the image to
# 32 px), but an image under 16 px would be more interpolation than image: a caller
# passing such a shape has almost surely mistyped it (e.g. 1x3x38x4 for 1x3x384x512).
MIN_SIDE = 16
LEVEL_INPUT_PLANES = 8  # image 1, warped image 2, flow x, flow y
LEVEL_OUTPUT_PLANES = 2  # the flow residual, x then y
ROOT_PATH = "level{level}.model"  # layer paths of level k's modules: level3.model.modules[5]


@dataclass(frozen=True)
class Geometry:
    """Sizes of one pyramid: the images as given, as SpyNet resizes them, per level."""

    batch: int
    height: int
    width: int

    @property
    def fine(self) -> tuple[int, int]:
        return round_up(self.height), round_up(self.width)

    @property
    def levels(self) -> int:
        return level_count(*self.fine)

    def level_size(self, level: int) -> tuple[int, int]:
        """(h, w) at `level` (1 = coarsest, `levels` = the fine size)."""
        shift = self.levels - level
        fine_h, fine_w = self.fine
        return fine_h >> shift, fine_w >> shift

    @property
    def resized(self) -> bool:
        return self.fine != (self.height, self.width)


def round_up(size: int) -> int:
    return -(-size // MULTIPLE) * MULTIPLE


def level_count(fine_h: int, fine_w: int) -> int:
    longest = max(fine_h, fine_w)
    for level, limit in enumerate((32, 64, 128, 256, 512), start=1):
        if longest <= limit:
            return level
    return 6


def check_model_type(model_type: str) -> str:
    """SpyNet's spelling of a type name (matched without regard to case)."""
    for name in TYPES:
        if name.lower() == model_type.lower():
            return name
    raise UsageError(f"unknown --type '{model_type}' (SpyNet's model types: "
                     f"{', '.join(TYPES)})")


def geometry(shapes: Sequence[Sequence[int]] | None) -> Geometry:
    """The pyramid's sizes from the images' shapes (one shape for both, or one each)."""
    if not shapes:
        raise UsageError("give the images' size: --input-shape 1x3xHxW (e.g. 1x3x384x512)")
    if len(shapes) > 2:
        raise UsageError(f"{len(shapes)} input shapes given; SpyNet takes two images "
                         "(give one shape for both, or one per image)")
    shapes = [list(s) for s in shapes]
    for shape in shapes:
        if len(shape) != 4 or shape[1] != 3:
            raise UsageError(f"input shape {'x'.join(map(str, shape))} is not an RGB image "
                             "batch: SpyNet takes Nx3xHxW (e.g. 1x3x384x512)")
    if len(shapes) == 2 and shapes[0] != shapes[1]:
        raise UsageError(f"the images differ in size ({'x'.join(map(str, shapes[0]))} and "
                         f"{'x'.join(map(str, shapes[1]))}): SpyNet stacks them, give two "
                         "images of one size")
    batch, _, height, width = shapes[0]
    if min(height, width) < MIN_SIDE:
        raise UsageError(f"input size {height}x{width} is too small for SpyNet: each side "
                         f"needs at least {MIN_SIDE} px")
    return Geometry(batch, height, width)


def level_paths(models_dir: str, model_type: str, levels: int) -> list[str]:
    """The files spynet.lua loads for `levels` levels; a clear error names missing ones."""
    if not os.path.isdir(models_dir):
        what = "no such folder" if not os.path.exists(models_dir) else "not a folder"
        raise UsageError(f"{what}: give the folder holding SpyNet's level files "
                         "(modelL{1..6}_{3,4,C,F,K}.t7)", file=models_dir)
    names = [level_file(model_type, k) for k in range(1, levels + 1)]
    missing = sorted({n for n in names if not os.path.isfile(os.path.join(models_dir, n))})
    if missing:
        present = sorted(n for n in os.listdir(models_dir)
                         if n.startswith("modelL") and n.endswith(".t7"))
        hint = (f" (it holds {', '.join(present[:8])}{' ...' if len(present) > 8 else ''})"
                if present else " (it holds no SpyNet level files modelL{k}_{T}.t7)")
        raise UsageError(f"missing {', '.join(missing)}: --type {model_type} needs "
                         f"{', '.join(dict.fromkeys(names))} for {levels} level(s){hint}",
                         file=models_dir)
    return [os.path.join(models_dir, n) for n in names]


def load_level(path: str, level: int, max_bytes: int) -> T7Module:
    """One level network, checked to be SpyNet's kind (its first layer takes 8 planes,
    every class converts), its modules named `level{k}.model...`."""
    root = load_root(path, max_bytes)
    obj = root.obj
    if root.cls == "nn.DataParallelTable":  # spynet.lua unwraps it (`:get(1)`)
        inner = lua_list(root.fields.get("modules"))
        if not inner:
            raise ConversionError("an empty nn.DataParallelTable holds no level network",
                                  file=path)
        obj = inner[0]
    try:
        root = T7Module(obj, ROOT_PATH.format(level=level))
        planes = next((m.int("nInputPlane") for m in iter_modules(root)
                       if "nInputPlane" in m.fields), None)
    except MigrateError as exc:  # e.g. a container holding itself
        raise exc.with_file(path) from None
    except (TypeError, ValueError, OverflowError):
        raise ConversionError("not a SpyNet level network: its nInputPlane is no number",
                              file=path) from None
    if planes != LEVEL_INPUT_PLANES:
        took = f"takes {planes} planes" if planes is not None else "is no convolution"
        raise ConversionError(f"not a SpyNet level network: its first layer {took} (a level "
                              f"network takes {LEVEL_INPUT_PLANES}: image 1, warped image 2, "
                              "flow x, flow y)", file=path)
    unsupported = find_unsupported(root)
    if unsupported:
        raise UnsupportedModulesError(unsupported, file=path)
    return root
