"""qassemoquab/stnbhwd: the spatial transformer's grid generator and bilinear sampler,
in its BHWD layout (batch, height, width, channels: images and grids alike).

- AffineGridGeneratorBHWD(H, W): B x 2 x 3 affine matrices -> B x H x W x 2 grids,
  grid[b, i, j] = A_b (y_i, x_j, 1) over the stored baseGrid (normalised coordinates,
  y first).
- BilinearSamplerBHWD: {images B x H x W x D, grids B x h x w x 2} -> B x h x w x D,
  bilinear with -1/+1 at the first/last pixel centre and corners outside the image
  counting as zeros: ONNX GridSample (align_corners=1, zeros padding) once the
  layout is NCHW and the grid's (y, x) become (x, y).
- AffineTransformMatrixGenerator(rotation, scale, translation): B x k parameters ->
  rows 1-2 of Rot(angle) * Scale(s) * Trans(tx, ty), or the 6 values as they are.
"""

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter
from migrate.readers.torch7.values import as_tensor, as_tensors

PACKAGE = "qassemoquab/stnbhwd"


def _with_batch(ctx, x, rank, fn):
    """stnbhwd accepts one sample without the batch dimension (addOuterDim)."""
    return ctx.batched(x, rank, fn)


@converter("nn.AffineGridGeneratorBHWD", package=PACKAGE)
def affine_grid_generator(ctx, module, x):
    x = as_tensor(x, "AffineGridGeneratorBHWD")
    height, width = module.int("height"), module.int("width")
    base = module.tensor("baseGrid")
    if base is None:  # rebuilt exactly as the class's __init__ does
        base = np.empty((height, width, 3), np.float64)
        base[:, :, 0] = (-1 + np.arange(height) / (height - 1) * 2)[:, None]
        base[:, :, 1] = (-1 + np.arange(width) / (width - 1) * 2)[None, :]
        base[:, :, 2] = 1
        base = base.astype(np.float32)
    if base.shape != (height, width, 3):
        raise ConversionError(f"baseGrid is {list(base.shape)}, expected {[height, width, 3]}")

    def grid(matrices):
        shape = ctx.shape(matrices)
        if shape[1:] != (2, 3):
            raise ConversionError(f"takes B x 2 x 3 affine matrices, got {list(shape)}")
        # grid[b, i, j, k] = sum_m base[i, j, m] * A[b, k, m]
        a = ctx.op("Reshape", [matrices, ctx.int64s([shape[0], 1, 1, 2, 3])], hint="matrices")
        base5 = ctx.const(np.ascontiguousarray(base.reshape(1, height, width, 1, 3)), "base_grid")
        products = ctx.op("Mul", [base5, a], hint="grid_terms")
        return ctx.op("ReduceSum", [products, ctx.int64s([4], "axes")], hint="grid",
                      keepdims=0)

    return _with_batch(ctx, x, 3, grid)


@converter("nn.BilinearSamplerBHWD", package=PACKAGE)
def bilinear_sampler(ctx, module, x):
    images, grids = as_tensors(x, "BilinearSamplerBHWD", size=2)
    image_rank, grid_rank = len(ctx.shape(images)), len(ctx.shape(grids))
    if image_rank != grid_rank or image_rank not in (3, 4):
        raise ConversionError(f"takes BHWD images and grids, got {ctx.shape(images)} and "
                              f"{ctx.shape(grids)}")
    if image_rank == 3:
        axes = ctx.int64s([0], "axes")
        images = ctx.op("Unsqueeze", [images, axes], hint="batch")
        grids = ctx.op("Unsqueeze", [grids, axes], hint="batch")
    if ctx.shape(grids)[3] != 2 or ctx.shape(grids)[0] != ctx.shape(images)[0]:
        raise ConversionError(f"grids {list(ctx.shape(grids))} do not match images "
                              f"{list(ctx.shape(images))}")
    nchw = ctx.op("Transpose", [images], hint="to_nchw", perm=[0, 3, 1, 2])
    y, x_ = ctx.builder.op("Split", [grids, ctx.int64s([1, 1], "split")], {"axis": 3},
                           num_outputs=2, hint="grid_yx").producer().outputs
    xy = ctx.op("Concat", [x_, y], hint="grid_xy", axis=3)
    sampled = ctx.op("GridSample", [nchw, xy], hint="sample", mode="bilinear",
                     padding_mode="zeros", align_corners=1)
    out = ctx.op("Transpose", [sampled], hint="to_bhwd", perm=[0, 2, 3, 1])
    if image_rank == 3:
        out = ctx.op("Squeeze", [out, ctx.int64s([0], "axes")], hint="unbatch")
    return out


@converter("nn.AffineTransformMatrixGenerator", package=PACKAGE)
def affine_transform_matrix_generator(ctx, module, x):
    x = as_tensor(x, "AffineTransformMatrixGenerator")
    full = module.bool("fullMode")
    use = [module.bool("useRotation"), module.bool("useScale"), module.bool("useTranslation")]
    wanted = 6 if full else use[0] + use[1] + 2 * use[2]

    def matrices(params):
        batch, count = ctx.shape(params)
        if count != wanted:
            raise ConversionError(f"expects {wanted} parameters per sample, got {count}")
        if full:
            return ctx.op("Reshape", [params, ctx.int64s([batch, 2, 3])], hint="matrix")
        columns = list(ctx.builder.op("Split", [params, ctx.int64s([1] * count, "split")],
                                      {"axis": 1}, num_outputs=count,
                                      hint="param").producer().outputs) if count > 1 else [params]
        m = _identity()
        k = 0
        if use[0]:
            angle = columns[k]
            k += 1
            cos = ctx.op("Cos", [angle], hint="cos")
            sin = ctx.op("Sin", [angle], hint="sin")
            m = _product(ctx, m, [[cos, ("neg", sin), 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
        if use[1]:
            s = columns[k]
            k += 1
            m = _product(ctx, m, [[s, 0.0, 0.0], [0.0, s, 0.0], [0.0, 0.0, 1.0]])
        if use[2]:
            tx, ty = columns[k], columns[k + 1]
            m = _product(ctx, m, [[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])
        entries = [_materialize(ctx, e, batch) for e in m[0] + m[1]]
        return ctx.op("Reshape", [ctx.op("Concat", entries, hint="matrix", axis=1),
                                  ctx.int64s([batch, 2, 3])], hint="matrix")

    return _with_batch(ctx, x, 2, matrices)


# -- 3 x 3 products whose entries are numbers or B x 1 graph values ---------------------

def _identity():
    return [[1.0 if i == j else 0.0 for j in range(3)] for i in range(3)]


def _resolve(ctx, entry):
    if isinstance(entry, tuple):  # ("neg", value)
        return ctx.op("Neg", [entry[1]], hint="neg")
    return entry


def _is(entry, number):
    return isinstance(entry, float) and entry == number


def _times(ctx, a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a * b
    if _is(a, 0.0) or _is(b, 0.0):
        return 0.0
    if _is(a, 1.0):
        return _resolve(ctx, b)
    if _is(b, 1.0):
        return _resolve(ctx, a)
    a, b = _resolve(ctx, a), _resolve(ctx, b)
    if isinstance(a, float):
        return ctx.op("Mul", [b, ctx.scalar(a, "factor")], hint="term")
    if isinstance(b, float):
        return ctx.op("Mul", [a, ctx.scalar(b, "factor")], hint="term")
    return ctx.op("Mul", [a, b], hint="term")


def _plus(ctx, a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a + b
    if _is(a, 0.0):
        return b
    if _is(b, 0.0):
        return a
    if isinstance(a, float):
        a, b = b, a
    other = ctx.scalar(b, "addend") if isinstance(b, float) else b
    return ctx.op("Add", [a, other], hint="sum")


def _product(ctx, a, b):
    """a * b (torch.bmm of the class) for 3 x 3 matrices of numbers and B x 1 values."""
    out = []
    for i in range(3):
        row = []
        for j in range(3):
            total = 0.0
            for m in range(3):
                total = _plus(ctx, total, _times(ctx, a[i][m], b[m][j]))
            row.append(total)
        out.append(row)
    return out


def _materialize(ctx, entry, batch):
    if isinstance(entry, float):
        return ctx.const(np.full((batch, 1), entry, np.float32), "entry")
    return _resolve(ctx, entry)
