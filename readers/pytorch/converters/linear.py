"""Matrix products: nn.Linear (addmm, or mm without bias), matmul/bmm."""

from migrate.readers.pytorch.context import Const
from migrate.readers.pytorch.registry import converter


def _transposed_weight(matrix):
    """(W, True) when `matrix` is the transpose of a stored weight W (nn.Linear keeps
    (out, in) and computes x @ W.T): Gemm then reads W as stored (transB=1)."""
    if isinstance(matrix, Const) and matrix.tensor.dim() == 2:
        base = matrix.tensor.t()
        if base.is_contiguous():
            return Const(base, matrix.name), True
    return matrix, False


@converter("aten.addmm")
def addmm(ctx, bias, a, b, beta=1, alpha=1):
    b, transposed = _transposed_weight(b)
    return ctx.op("Gemm", [a, b, bias], hint="gemm", transB=int(transposed),
                  alpha=None if alpha == 1 else float(alpha),
                  beta=None if beta == 1 else float(beta))


@converter("aten.mm")
def mm(ctx, a, b):
    if isinstance(b, Const):
        b, transposed = _transposed_weight(b)
        return ctx.op("Gemm", [a, b], hint="gemm", transB=int(transposed))
    return ctx.op("MatMul", [a, b], hint="matmul")


@converter("aten.bmm", "aten.matmul")
def matmul(ctx, a, b):
    return ctx.op("MatMul", [a, b], hint="matmul")
