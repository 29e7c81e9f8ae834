"""GridSample (bilinear; zeros or border padding) as Caffe2 ops: Caffe2 has no
sampler, so the four neighbours of every sampling point are gathered from the image
laid out as a table of pixels, weighted and summed.

For N x C x H x W images and N x h x w x 2 grids of normalised (x, y):
  ix = (gx + 1) (W - 1) / 2          (align_corners=1; else ((gx + 1) W - 1) / 2)
  x0 = floor(ix), wx1 = ix - x0, wx0 = 1 - wx1       (same for y)
  out = sum over the corners (x0|x0+1, y0|y0+1) of wx * wy * image[y, x],
with a corner outside the image counting as zero (zeros padding) or the coordinates
clamped into the image first (border padding). This is the arithmetic of Torch7's
stnbhwd BilinearSamplerBHWD and of ONNX GridSample. The pixel index n*H*W + y*W + x
is computed in float32 (exact below 2^24 pixels) and cast to int64 only for the
Gather, so the init net holds float32 parameters alone (mobile-ready); larger
images compute it in int64. One image (N = 1) is gathered from plane by plane (index
y*W + x into each channel's H*W values), which needs no NHWC copy of the image or
of the result.
"""

import numpy as np

from migrate.core.errors import ConversionError
from migrate.writers.caffe2.registry import op_converter

FLOAT, INT64 = 1, 10  # caffe2.proto TensorProto.DataType
FLOAT_EXACT = 1 << 24  # float32 holds every integer below this exactly


@op_converter("GridSample")
def grid_sample(w, node):
    image, grid = node.inputs
    attrs = node.attributes
    mode = attrs.get_string("mode", "bilinear")
    padding = attrs.get_string("padding_mode", "zeros")
    align = attrs.get_int("align_corners", 0)
    if mode not in ("bilinear", "linear") or padding not in ("zeros", "border"):
        raise ConversionError(f"GridSample mode={mode} padding_mode={padding} has no Caffe2 "
                              "construction (bilinear with zeros or border padding has)")
    n, c, height, width = w.shape(image)
    _, out_h, out_w, _ = w.shape(grid)
    name = w.prefix("gridsample")
    w.note("GridSample (no Caffe2 operator) -> Gather of the 4 neighbours, weighted and summed")

    def blob(suffix):
        return f"{name}_{suffix}"

    def const(value, suffix, dtype=np.float32):
        return w.param(np.asarray(value, dtype).reshape(-1), blob(suffix))

    one = const(1.0, "one")
    # One image: each channel's plane is gathered from directly (no layout change).
    # Several: a table of pixels (NHWC rows), offset per image.
    planar = n == 1
    if planar:
        w.emit("Reshape", [w.blob(image)], [blob("pixels"), blob("pixels_old_shape")],
               shape=[c, height * width])
    else:
        w.emit("Transpose", [w.blob(image)], [blob("nhwc")], axes=[0, 2, 3, 1])
        w.emit("Reshape", [blob("nhwc")], [blob("pixels"), blob("pixels_old_shape")],
               shape=[n * height * width, c])

    def coordinate(axis, size):
        """Pixel coordinate along one axis (0: x from grid[..., 0], 1: y), its floor and
        the two interpolation weights."""
        tag = "xy"[axis]
        ends = [-1, -1, -1, axis + 1]
        sliced = blob(f"g{tag}_nhw1" if planar else f"g{tag}")
        w.emit("Slice", [w.blob(grid)], [sliced], starts=[0, 0, 0, axis], ends=ends)
        if planar:  # 1 x 1 x h x w: broadcasts over the channels of 1 x C x h x w
            w.emit("Reshape", [sliced], [blob(f"g{tag}"), blob(f"g{tag}_old_shape")],
                   shape=[1, 1, out_h, out_w])
        w.emit("Add", [blob(f"g{tag}"), one], [blob(f"{tag}_plus1")])
        if align:
            w.emit("Scale", [blob(f"{tag}_plus1")], [blob(f"{tag}_scaled")], scale=float(size - 1))
        else:
            w.emit("Scale", [blob(f"{tag}_plus1")], [blob(f"{tag}_times")], scale=float(size))
            w.emit("Add", [blob(f"{tag}_times"), const(-1.0, f"{tag}_minus1")],
                   [blob(f"{tag}_scaled")])
        w.emit("Scale", [blob(f"{tag}_scaled")], [blob(f"i{tag}")], scale=0.5)
        coord = blob(f"i{tag}")
        if padding == "border":
            w.emit("Clip", [coord], [blob(f"i{tag}_clamped")], min=0.0, max=float(size - 1))
            coord = blob(f"i{tag}_clamped")
        w.emit("Floor", [coord], [blob(f"{tag}0")])
        w.emit("Sub", [coord, blob(f"{tag}0")], [blob(f"{tag}_w1")])
        w.emit("Negative", [blob(f"{tag}_w1")], [blob(f"{tag}_neg_w1")])
        w.emit("Add", [blob(f"{tag}_neg_w1"), one], [blob(f"{tag}_w0")])
        w.emit("Add", [blob(f"{tag}0"), one], [blob(f"{tag}1")])
        if padding == "zeros":
            low, high = const(0.0, f"{tag}_low"), const(float(size - 1), f"{tag}_high")
        for k in (0, 1):
            corner = blob(f"{tag}{k}")
            if padding == "zeros":  # inside the image? (border: clamped coordinates are)
                w.emit("GE", [corner, low], [blob(f"{tag}{k}_ge")])
                w.emit("LE", [corner, high], [blob(f"{tag}{k}_le")])
                w.emit("And", [blob(f"{tag}{k}_ge"), blob(f"{tag}{k}_le")],
                       [blob(f"{tag}{k}_in")])
            # clamped: the index (float32 below 2^24 pixels, else int64)
            w.emit("Clip", [corner], [blob(f"{tag}{k}_clamped")], min=0.0, max=float(size - 1))
            if index_type == INT64:
                w.emit("Cast", [blob(f"{tag}{k}_clamped")], [blob(f"{tag}{k}_index")], to=INT64)

    def index(tag, k):
        return blob(f"{tag}{k}_index" if index_type == INT64 else f"{tag}{k}_clamped")

    index_type = FLOAT if n * height * width < FLOAT_EXACT else INT64
    index_dtype = np.float32 if index_type == FLOAT else np.int64
    coordinate(0, width)
    coordinate(1, height)
    row = const(width, "row", index_dtype)
    w.emit("Mul", [index("y", 0), row], [blob("y0_row")])
    w.emit("Mul", [index("y", 1), row], [blob("y1_row")])
    if not planar:
        offsets = (np.arange(n, dtype=index_dtype) * height * width).reshape(n, 1, 1, 1)
        w.param(offsets, blob("image_offset"))
    terms = []
    for ky in (0, 1):
        for kx in (0, 1):
            corner = f"c{ky}{kx}"
            w.emit("Add", [blob(f"y{ky}_row"), index("x", kx)], [blob(f"{corner}_in_image")])
            at = blob(f"{corner}_in_image")
            if not planar:
                w.emit("Add", [at, blob("image_offset")], [blob(f"{corner}_at")])
                at = blob(f"{corner}_at")
            if index_type == FLOAT:
                w.emit("Cast", [at], [blob(f"{corner}_index")], to=INT64)
                at = blob(f"{corner}_index")
            # planar: C x (1 x 1 x h x w) values; else (n x h x w x 1) rows of C values
            w.emit("Gather", [blob("pixels"), at], [blob(f"{corner}_rows")],
                   axis=1 if planar else None)
            w.emit("Reshape", [blob(f"{corner}_rows")],
                   [blob(f"{corner}_values"), blob(f"{corner}_old_shape")],
                   shape=[1, c, out_h, out_w] if planar else [n, out_h, out_w, c])
            w.emit("Mul", [blob(f"x_w{kx}"), blob(f"y_w{ky}")], [blob(f"{corner}_weight")])
            weight = blob(f"{corner}_weight")
            if padding == "zeros":
                w.emit("And", [blob(f"x{kx}_in"), blob(f"y{ky}_in")], [blob(f"{corner}_in")])
                w.emit("Cast", [blob(f"{corner}_in")], [blob(f"{corner}_mask")], to=FLOAT)
                w.emit("Mul", [weight, blob(f"{corner}_mask")], [blob(f"{corner}_masked")])
                weight = blob(f"{corner}_masked")
            w.emit("Mul", [blob(f"{corner}_values"), weight], [blob(f"{corner}_term")])
            terms.append(blob(f"{corner}_term"))
    if planar:
        w.emit("Sum", terms, [name])
    else:
        w.emit("Sum", terms, [blob("nhwc_out")])
        w.emit("Transpose", [blob("nhwc_out")], [name], axes=[0, 3, 1, 2])
    w.bind(node.outputs[0], name)
