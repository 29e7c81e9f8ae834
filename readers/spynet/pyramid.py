"""SpyNet's coarse-to-fine pyramid (spynet.lua easyComputeFlow) as one common graph.

    im1, im2 (Nx3xHxW, RGB in [0, 1])
      input.stack      cat(im1, im2)                                  S:343
      input.normalize  ColorNormalize (ImageNet mean/std)             S:344
      input.scale      image.scale to the next multiple of 32         S:346-363 (if needed)
      level{k}.images  2x2 average pooling of level k+1's images      S:51-55
      level1.modelin   cat(images, zero flow)                          S:119-130
      level{k}.upflow  ScaleBHWD(2) of level k-1's flow                S:57-61
      level{k}.flowinit  upflow * 2                                    S:134...
      level{k}.warp    im2 sampled at p + flowinit(p)                  S:38-49, 135-136
      level{k}.modelin cat(im1, warped im2, flowinit)                  S:138
      level{k}.model.modules[i]   the level network (its last output: the residual)
      level{k}.flow    residual + flowinit                             S:141
      output.deadjust  back to HxW, flow rescaled (if resized)         S:326-334
    flow (Nx2xHxW, pixels, channel 0 = x, channel 1 = y)

Each node's `source.path` is the step's name above, so layer-by-layer verification
names the level and step where two runs part.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import onnx_ir as ir

from migrate.core.errors import ConversionError, MigrateError, UsageError
from migrate.core.graph import GraphBuilder, static_shape
from migrate.core.model import InputInfo, ReadOptions, SourceModel
from migrate.readers.spynet import SpyNetPyramid, glue
from migrate.readers.spynet.levels import (
    LEVEL_OUTPUT_PLANES,
    ROOT_PATH,
    Geometry,
    check_model_type,
    geometry,
    level_paths,
    load_level,
)
from migrate.readers.torch7.module import T7Module
from migrate.readers.torch7.reader import BuildContext

WARPS = {"gridsample": glue.warp_gridsample, "gather": glue.warp_gather}
# the float32 pixel index of the gather warp is exact up to 2^24
MAX_GATHER_PIXELS = 1 << 24
INPUT_EXPECTS = "RGB in [0, 1] (SpyNet's loadImage: byte / 255); ImageNet mean/std inside"


class Pyramid:
    """Builds the graph level by level (coarsest first, as the recursion unwinds)."""

    def __init__(self, geo: Geometry, levels: list[T7Module], warp: str) -> None:
        self.geo = geo
        self.levels = levels
        self.warp = WARPS[warp]
        self.builder = GraphBuilder(name="spynet")
        self.ctx = BuildContext(self.builder)
        self.steps = 0
        self.builder.unique_name("flow")  # kept for the output

    def step(self, path: str, cls: str) -> None:
        """Tag the ops made from now on as this step of the glue."""
        self.builder.set_origin(path, cls)
        self.steps += 1

    def build(self) -> ir.Model:
        geo, ctx = self.geo, self.ctx
        shape = [geo.batch, 3, geo.height, geo.width]
        im1 = self.builder.add_input("im1", shape)
        im2 = self.builder.add_input("im2", shape)
        self.step("input.stack", "torch.cat")
        images = ctx.op("Concat", [im1, im2], hint="images", axis=1)
        self.step("input.normalize", "transforms.ColorNormalize")
        images = glue.normalize(ctx, images)
        if geo.resized:
            self.step("input.scale", "image.scale")
            images = glue.resize_linear(ctx, images, *geo.fine, hint="images_scaled")
        pyramid = {geo.levels: images}
        for level in range(geo.levels - 1, 0, -1):
            self.step(f"level{level}.images", "nn.SpatialAveragePooling")
            pyramid[level] = glue.downsample(ctx, pyramid[level + 1])
        flow = None
        for level in range(1, geo.levels + 1):
            flow = self.level(level, pyramid[level], flow)
        if geo.resized:
            self.step("output.deadjust", "DeAdjustFlow")
            flow = glue.deadjust(ctx, flow, geo.height, geo.width)
        flow.name = "flow"
        self.builder.set_outputs([flow])
        return self.builder.model()

    def level(self, level: int, images: ir.Value, coarser: ir.Value | None) -> ir.Value:
        ctx, name = self.ctx, f"level{level}"
        n, _, height, width = ctx.shape(images)
        if coarser is None:  # level 1 starts from zero flow (S:119-130)
            self.step(f"{name}.modelin", "torch.cat")
            zeros = ctx.const(np.zeros((n, 2, height, width), np.float32), "zero_flow")
            residual = self.network(level, ctx.op("Concat", [images, zeros], hint="modelin",
                                                  axis=1))
            return residual
        self.step(f"{name}.upflow", "nn.ScaleBHWD")
        upflow = glue.resize_linear(ctx, coarser, height, width, hint="upflow")
        self.step(f"{name}.flowinit", "torch.mul")
        flowinit = ctx.op("Mul", [upflow, ctx.scalar(2.0, "two")], hint="flowinit")
        self.step(f"{name}.warp", "nn.BilinearSamplerBHWD")
        im1, im2 = glue.split_pair(ctx, images)
        warped = self.warp(ctx, im2, flowinit)
        self.step(f"{name}.modelin", "torch.cat")
        modelin = ctx.op("Concat", [im1, warped, flowinit], hint="modelin", axis=1)
        residual = self.network(level, modelin)
        self.step(f"{name}.flow", "torch.add")
        return ctx.op("Add", [residual, flowinit], hint=f"{name}_flow")

    def network(self, level: int, modelin: ir.Value) -> ir.Value:
        """The level's Torch7 network, converted by the Torch7 reader's converters."""
        root = self.levels[level - 1]
        out = self.ctx.convert(root, modelin)
        if not isinstance(out, ir.Value) or \
                static_shape(out) != (*static_shape(modelin)[:1], LEVEL_OUTPUT_PLANES,
                                      *static_shape(modelin)[2:]):
            got = list(static_shape(out)) if isinstance(out, ir.Value) else "a table"
            raise ConversionError(f"not a SpyNet level network: it outputs {got} for an input "
                                  f"{list(static_shape(modelin))} (a level network outputs "
                                  "the 2-plane flow residual at its input's size)",
                                  where=root.path)
        return out


def build(request: SpyNetPyramid, shapes: Sequence[Sequence[int]] | None,
          max_bytes: int) -> SourceModel:
    """The pyramid's common graph for images of `shapes` (one for both, or one each)."""
    model_type = check_model_type(request.model_type)
    if request.warp not in WARPS:
        raise UsageError(f"unknown warp '{request.warp}' (choose from {', '.join(WARPS)})")
    geo = geometry(shapes)
    fine_h, fine_w = geo.fine
    if request.warp == "gather" and geo.batch * fine_h * fine_w >= MAX_GATHER_PIXELS:
        raise UsageError(f"the gather warp indexes at most {MAX_GATHER_PIXELS:,} pixels "
                         "exactly; use the gridsample warp for images this large")
    paths = level_paths(request.models_dir, model_type, geo.levels)
    loaded: dict[str, T7Module] = {}
    levels = []
    for level, path in enumerate(paths, start=1):
        # chairs types reuse the level-5 file at level 6: one load, its weights stored once
        first = loaded.get(path)
        if first is None:
            first = loaded[path] = load_level(path, level, max_bytes)
            levels.append(first)
        else:
            levels.append(first.child(first.obj, ROOT_PATH.format(level=level)))
    pyramid = Pyramid(geo, levels, request.warp)
    try:
        model = pyramid.build()
    except MigrateError as exc:
        where = exc.where or ""
        level = where.partition(".")[0]
        if level.startswith("level") and level[5:].isdigit() and exc.file is None:
            exc.file = paths[int(level[5:]) - 1]
        raise
    files = ", ".join(dict.fromkeys(os.path.basename(p) for p in paths))
    notes = [f"{geo.levels} pyramid level(s) for {fine_h}x{fine_w}: {files}"]
    if geo.resized:
        notes.append(f"images resized to {fine_h}x{fine_w} inside (SpyNet's multiple of 32) "
                     f"and the flow scaled back to {geo.height}x{geo.width}")
    inputs = [InputInfo(v.name, list(static_shape(v)), layout="NCHW", expects=INPUT_EXPECTS)
              for v in model.graph.inputs]
    return SourceModel(
        model, "spynet", list(dict.fromkeys(paths)),
        f"SpyNet {model_type} pyramid, {geo.levels} level(s)",
        pyramid.steps + pyramid.ctx.converted, layer_word="modules and glue steps",
        inputs=inputs, notes=notes + pyramid.ctx.notes,
        stem=f"spynet_{model_type}_{geo.height}x{geo.width}")


def read_object(request: SpyNetPyramid, options: ReadOptions) -> SourceModel:
    """The reader registry's entry point for a SpyNetPyramid."""
    return build(request, options.input_shapes, options.max_bytes)


def read(paths: Sequence[str], options: ReadOptions) -> SourceModel:
    raise UsageError("a SpyNet pyramid is a folder of level files: migrate spynet-pyramid DIR")
