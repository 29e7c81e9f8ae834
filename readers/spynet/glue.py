"""The Lua glue of spynet.lua as common-graph (ONNX) ops, step by step.

Each function adds the ops of one step; the caller tags them with the step's layer
path first. Line numbers cite anuragranj/spynet's spynet.lua (S:) as the fixtures'
README does. Where SpyNet's CPU C kernels differ from the CUDA ones it runs, the CUDA
arithmetic is the one reproduced (extras/*/...cu).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from migrate.readers.torch7.reader import BuildContext

# S:22-25, applied by transforms.lua ColorNormalize to channels i and 3+i
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def normalize(ctx: BuildContext, images: ir.Value) -> ir.Value:
    """ColorNormalize on the stacked pair: x + (float)(-mean), then / (float)std, each
    rounded to float32 as Torch7's in-place add and div do."""
    minus_mean = np.asarray([-m for m in MEAN] * 2, np.float32).reshape(1, 6, 1, 1)
    std = np.asarray(STD * 2, np.float32).reshape(1, 6, 1, 1)
    centred = ctx.op("Add", [images, ctx.const(minus_mean, "minus_mean")], hint="centred")
    return ctx.op("Div", [centred, ctx.const(std, "std")], hint="normalized")


def resize_linear(ctx: BuildContext, x: ir.Value, height: int, width: int, hint: str
                  ) -> ir.Value:
    """Linear interpolation with corners on corners (align_corners): torch/image's
    bilinear image.scale when enlarging (S:363), and ScaleBHWD's CUDA kernel
    (xin = (w_in - 1) * x_out / (w_out - 1), S:57-61)."""
    n, c = ctx.shape(x)[:2]
    return ctx.op("Resize", [x, None, None, ctx.int64s([n, c, height, width], "sizes")],
                  hint=hint, mode="linear", coordinate_transformation_mode="align_corners")


def downsample(ctx: BuildContext, images: ir.Value) -> ir.Value:
    """nn.SpatialAveragePooling(2,2,2,2): the mean of each 2x2 block (S:51-55)."""
    return ctx.op("AveragePool", [images], hint="images", kernel_shape=[2, 2], strides=[2, 2])


def split_pair(ctx: BuildContext, images: ir.Value) -> tuple[ir.Value, ir.Value]:
    """im1 and im2 of a level: channels 1-3 and 4-6."""
    node = ctx.builder.op("Split", [images, ctx.int64s([3, 3], "split")], {"axis": 1},
                          num_outputs=2, hint="image").producer()
    return node.outputs[0], node.outputs[1]


def sample_points(ctx: BuildContext, flow: ir.Value) -> ir.Value:
    """p + flow(p) in pixels (x, then y; 0-based), as the CUDA kernel's xf + xOut.

    The pixel coordinates are added as a row of x (1x2x1xw, zero in the y channel) and
    a column of y (1x2xhx1, zero in the x channel): the same sums as one 1x2xhxw grid
    (adding zero is exact) with constants of h + w values, not h * w."""
    _, _, height, width = ctx.shape(flow)
    columns = np.zeros((1, 2, 1, width), np.float32)
    columns[0, 0, 0] = np.arange(width, dtype=np.float32)
    rows = np.zeros((1, 2, height, 1), np.float32)
    rows[0, 1, :, 0] = np.arange(height, dtype=np.float32)
    at_x = ctx.op("Add", [flow, ctx.const(columns, "pixel_x")], hint="sample_x")
    return ctx.op("Add", [at_x, ctx.const(rows, "pixel_y")], hint="sample_at")


def warp_gridsample(ctx: BuildContext, image: ir.Value, flow: ir.Value) -> ir.Value:
    """image sampled at p + flow(p) (pixels, x first), bilinear, coordinates clamped into
    the image (S:38-49 with spynet's BilinearSamplerBHWD.cu): ONNX GridSample with border
    padding and align_corners=1 once the pixel coordinates are normalised to [-1, 1]
    (2 x / (w - 1) - 1; clamping before or after interpolating gives the same values)."""
    _, _, height, width = ctx.shape(image)
    points = sample_points(ctx, flow)
    to_unit = np.asarray([2.0 / (width - 1), 2.0 / (height - 1)], np.float32).reshape(1, 2, 1, 1)
    scaled = ctx.op("Mul", [points, ctx.const(to_unit, "to_unit")], hint="sample_scaled")
    unit = ctx.op("Sub", [scaled, ctx.scalar(1.0, "one")], hint="sample_unit")
    grid = ctx.op("Transpose", [unit], hint="grid", perm=[0, 2, 3, 1])
    return ctx.op("GridSample", [image, grid], hint="warped", mode="bilinear",
                  padding_mode="border", align_corners=1)


def warp_gather(ctx: BuildContext, image: ir.Value, flow: ir.Value) -> ir.Value:
    """The same warp with no sampler: the CUDA kernel's arithmetic spelled out.

    x = clamp(flow_x + x_out, 0, w - 1), x0 = floor(x), wx = 1 - (x - x0) (same in y);
    v = wx*wy*TL + (1-wx)*wy*TR + wx*(1-wy)*BL + (1-wx)*(1-wy)*BR, the four pixels
    gathered from the image laid out as a table of pixels (n*h*w rows of channels).
    A right or bottom neighbour past the edge has weight 0 (its index is clamped).
    """
    n, channels, height, width = ctx.shape(image)
    points = sample_points(ctx, flow)
    node = ctx.builder.op("Split", [points, ctx.int64s([1, 1], "split")], {"axis": 1},
                          num_outputs=2, hint="sample_xy").producer()
    one = ctx.scalar(1.0, "one")
    corners, weights = [], []
    for axis, size in ((0, width), (1, height)):
        tag = "xy"[axis]
        coord = ctx.op("Clip", [node.outputs[axis], ctx.scalar(0.0, "zero"),
                                ctx.scalar(float(size - 1), f"{tag}_last")], hint=f"{tag}_clamped")
        low = ctx.op("Floor", [coord], hint=f"{tag}0")
        high = ctx.op("Clip", [ctx.op("Add", [low, one], hint=f"{tag}1_unclamped"),
                               ctx.scalar(0.0, "zero"), ctx.scalar(float(size - 1), f"{tag}_last")],
                      hint=f"{tag}1")
        weight = ctx.op("Sub", [one, ctx.op("Sub", [coord, low], hint=f"{tag}_frac")],
                        hint=f"{tag}_weight")
        corners.append((low, high))
        weights.append((weight, ctx.op("Sub", [one, weight], hint=f"{tag}_weight1")))
    (x0, x1), (y0, y1) = corners
    (wx, wx1), (wy, wy1) = weights
    # pixel index n*h*w + y*w + x, exact in float32 below 2^24 pixels (checked by caller)
    offsets = (np.arange(n, dtype=np.float32) * (height * width)).reshape(n, 1, 1, 1)
    base = {}
    for name, row in (("0", y0), ("1", y1)):
        scaled = ctx.op("Mul", [row, ctx.scalar(float(width), "row_length")], hint=f"row{name}")
        base[name] = ctx.op("Add", [scaled, ctx.const(offsets, "image_offset")],
                            hint=f"row{name}_start")
    pixels = ctx.op("Reshape", [ctx.op("Transpose", [image], hint="nhwc", perm=[0, 2, 3, 1]),
                                ctx.int64s([n * height * width, channels])], hint="pixels")
    flat = ctx.int64s([n * height * width], "flat")
    column = ctx.int64s([n * height * width, 1], "column")

    def tap(row: str, x: ir.Value, weight: ir.Value, tag: str) -> ir.Value:
        index = ctx.op("Cast", [ctx.op("Add", [base[row], x], hint=f"{tag}_at")],
                       hint=f"{tag}_index", to=ir.DataType.INT64)
        values = ctx.op("Gather", [pixels, ctx.op("Reshape", [index, flat], hint=f"{tag}_flat")],
                        hint=f"{tag}_values", axis=0)
        return ctx.op("Mul", [ctx.op("Reshape", [weight, column], hint=f"{tag}_w"), values],
                      hint=f"{tag}_term")

    # the kernel's order: ((wx*wy)*TL + ((1-wx)*wy)*TR) + (wx*(1-wy))*BL + ...
    terms = [tap("0", x0, ctx.op("Mul", [wx, wy], hint="tl_weight"), "tl"),
             tap("0", x1, ctx.op("Mul", [wx1, wy], hint="tr_weight"), "tr"),
             tap("1", x0, ctx.op("Mul", [wx, wy1], hint="bl_weight"), "bl"),
             tap("1", x1, ctx.op("Mul", [wx1, wy1], hint="br_weight"), "br")]
    total = terms[0]
    for term in terms[1:]:
        total = ctx.op("Add", [total, term], hint="warped_sum")
    nhwc = ctx.op("Reshape", [total, ctx.int64s([n, height, width, channels])], hint="warped_nhwc")
    return ctx.op("Transpose", [nhwc], hint="warped", perm=[0, 3, 1, 2])


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """torch/image's 'simple' scale (S:326-334, generic/image.c Main_scaleSimple):
    destination i copies source (long)((float)i * ((float)src / (float)dst)), at most
    src - 1; float32 arithmetic as in C."""
    step = np.float32(src) / np.float32(dst)
    index = np.floor(np.arange(dst, dtype=np.float32) * step).astype(np.int64)
    return np.minimum(index, src - 1)


def deadjust(ctx: BuildContext, flow: ir.Value, height: int, width: int) -> ir.Value:
    """DeAdjustFlow (S:326-334): the fine-size flow scaled back to the images' size by
    nearest neighbour, then x multiplied by W / fineW and y by H / fineH."""
    _, _, fine_h, fine_w = ctx.shape(flow)
    if fine_h != height:
        flow = ctx.op("Gather", [flow, ctx.const(nearest_indices(fine_h, height), "rows")],
                      hint="flow_rows", axis=2)
    if fine_w != width:
        flow = ctx.op("Gather", [flow, ctx.const(nearest_indices(fine_w, width), "columns")],
                      hint="flow_columns", axis=3)
    # Lua computes h / fineH in double; FloatTensor * number rounds it to float
    factors = np.asarray([width / fine_w, height / fine_h], np.float32).reshape(1, 2, 1, 1)
    return ctx.op("Mul", [flow, ctx.const(factors, "flow_scale")], hint="flow_deadjusted")
