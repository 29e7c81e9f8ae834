"""GridSample (bilinear; zeros or border padding; either align_corners) as a GATHER of
the four neighbours of every sampling point, weighted and summed: LiteRT has no sampler.

For N x C x H x W images and N x h x w x 2 grids of normalised (x, y):
  ix = (gx + 1) (W - 1) / 2          (align_corners=1; else ((gx + 1) W - 1) / 2)
  x0 = floor(ix), wx1 = ix - x0, wx0 = 1 - wx1       (same for y)
  out = sum over the corners (x0|x0+1, y0|y0+1) of wx * wy * image[y, x],
a corner outside the image counting as zero (zeros padding), or the coordinates clamped
into the image first (border padding): ONNX GridSample's arithmetic, and Torch7 stnbhwd's
BilinearSamplerBHWD's. The image is channels last, so it is a table of pixels (one row
of C values per n, y, x) and each corner is one GATHER of rows at (n H + y) W + x
(int32), which gives the result channels last as well; the grid is read in whatever
layout it has and the result keeps its order (no transpose of either)."""

from __future__ import annotations

import numpy as np

from migrate.writers.tensorflow.registry import op_lowering


def _scalar(ctx, value: float, hint: str):
    return ctx.const(np.asarray(value, np.float32), hint)


@op_lowering("GridSample")
def grid_sample(ctx, node):
    image_value, grid_value = node.inputs
    mode = node.attributes.get_string("mode", "bilinear")
    padding = node.attributes.get_string("padding_mode", "zeros")
    align = bool(node.attributes.get_int("align_corners", 0))
    if mode not in ("bilinear", "linear") or padding not in ("zeros", "border"):
        raise ctx.error(f"GridSample mode={mode} padding_mode={padding} has no LiteRT "
                        "construction here (bilinear with zeros or border padding has)")
    if len(ctx.shape(image_value)) != 4:
        raise ctx.error("GridSample of a volume is not supported for TensorFlow/LiteRT "
                        "(of an image is)")
    n, c, height, width = ctx.shape(image_value)
    image = ctx.channels_last(image_value, "GridSample gathers pixels channels last")
    pixels = ctx.reshape(image, (n * height * width, c), hint="pixels")
    grid, perm = ctx.permutation(grid_value)
    rest = [p for p in perm if p != 3]  # the grid's (n, h, w) axes in stored order
    shape = tuple(ctx.shape(grid_value)[p] for p in rest)
    coordinate_axis = perm.index(3)
    parts = list(grid.shape)
    parts[coordinate_axis] = 1
    gx, gy = (ctx.reshape(t, shape, hint=name) for t, name in zip(ctx.emit_many(
        "SPLIT_V", [grid, ctx.int32s([1, 1], "sizes"),
                    ctx.const(np.asarray(coordinate_axis, np.int32), "axis")],
        [parts, parts], grid.dtype, hint="grid", num_splits=2, axis=coordinate_axis,
        sizes=(1, 1)), ("gx", "gy"), strict=True))

    def corners(g, size: int, tag: str):
        """Per corner k (0, 1): (weight, int32 index clamped into the image, inside?)."""
        t = ctx.emit("ADD", [g, _scalar(ctx, 1.0, "one")], shape, hint=f"{tag}_plus1")
        if align:
            t = ctx.emit("MUL", [t, _scalar(ctx, (size - 1) / 2, "half_extent")], shape,
                         hint=f"i{tag}")
        else:
            t = ctx.emit("MUL", [t, _scalar(ctx, size / 2, "half_size")], shape,
                         hint=f"{tag}_scaled")
            t = ctx.emit("SUB", [t, _scalar(ctx, 0.5, "half")], shape, hint=f"i{tag}")
        if padding == "border":
            t = _clamp(ctx, t, size, f"i{tag}")
        low = ctx.emit("FLOOR", [t], shape, hint=f"{tag}0")
        w1 = ctx.emit("SUB", [t, low], shape, hint=f"{tag}_w1")
        w0 = ctx.emit("SUB", [_scalar(ctx, 1.0, "one"), w1], shape, hint=f"{tag}_w0")
        high = ctx.emit("ADD", [low, _scalar(ctx, 1.0, "one")], shape, hint=f"{tag}1")
        found = []
        for k, (at, weight) in enumerate(((low, w0), (high, w1))):
            clamped = _clamp(ctx, at, size, f"{tag}{k}")
            inside = None
            if padding == "zeros":
                inside = ctx.emit("EQUAL", [at, clamped], shape, "bool", hint=f"{tag}{k}_in")
            index = ctx.emit("CAST", [clamped], shape, "int32", hint=f"{tag}{k}_index",
                             in_dtype="float32", out_dtype="int32")
            found.append((weight, index, inside))
        return found

    xs = corners(gx, width, "x")
    ys = corners(gy, height, "y")
    image_rows = np.arange(n, dtype=np.int32) * height
    at_n = [1] * len(shape)
    at_n[rest.index(0)] = n
    first_row = ctx.const(image_rows.reshape(at_n), "image_row")
    terms = []
    for ky, (wy, y, y_in) in enumerate(ys):
        if n > 1:
            y = ctx.emit("ADD", [y, first_row], shape, "int32", hint=f"y{ky}_row")
        row = ctx.emit("MUL", [y, ctx.const(np.asarray(width, np.int32), "width")], shape,
                       "int32", hint=f"y{ky}_start")
        for kx, (wx, x, x_in) in enumerate(xs):
            at = ctx.emit("ADD", [row, x], shape, "int32", hint=f"c{ky}{kx}_at")
            values = ctx.emit("GATHER", [pixels, at], (*shape, c), pixels.dtype,
                              hint=f"c{ky}{kx}_values", axis=0)
            weight = ctx.emit("MUL", [wx, wy], shape, hint=f"c{ky}{kx}_weight")
            if padding == "zeros":
                inside = ctx.emit("LOGICAL_AND", [x_in, y_in], shape, "bool",
                                  hint=f"c{ky}{kx}_in")
                weight = ctx.emit("SELECT_V2", [inside, weight, _scalar(ctx, 0.0, "zero")],
                                  shape, hint=f"c{ky}{kx}_weight")
            weight = ctx.reshape(weight, (*shape, 1), hint=f"c{ky}{kx}_weight")
            terms.append(ctx.emit("MUL", [values, weight], (*shape, c),
                                  hint=f"c{ky}{kx}_term"))
    y = terms[0]
    for term in terms[1:]:
        y = ctx.emit("ADD", [y, term], (*shape, c), hint="sample")
    # grid axes (n, h, w) are the output's axes 0, 2, 3; the channels (last) its axis 1
    ctx.bind_permuted(node.outputs[0], y, [{0: 0, 1: 2, 2: 3}[p] for p in rest] + [1])


def _clamp(ctx, t, size: int, hint: str):
    t = ctx.emit("MAXIMUM", [t, _scalar(ctx, 0.0, "zero")], t.shape, hint=f"{hint}_low")
    return ctx.emit("MINIMUM", [t, _scalar(ctx, float(size - 1), "last")], t.shape,
                    hint=f"{hint}_clamped")
