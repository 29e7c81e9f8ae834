"""Matrix products: nn.Linear for Gemm/MatMul with constant weights, torch.matmul or
torch.addmm otherwise."""

from __future__ import annotations

import numpy as np

from migrate.writers.pytorch.codegen import CodeGen, literal
from migrate.writers.pytorch.registry import op_converter


def _linear_bias(g: CodeGen, c, n_out: int, beta: float) -> np.ndarray | None | bool:
    """The Linear bias for Gemm's C: an array, None when there is none, False when C is
    not a per-output-feature vector."""
    if c is None:
        return None
    bias = g.const(c)
    if bias is None or bias.size != n_out or bias.ndim > 2 or (bias.ndim == 2 and
                                                              bias.shape[0] != 1):
        return False
    bias = bias.reshape(n_out)
    return bias if beta == 1.0 else (bias * np.float32(beta)).astype(bias.dtype)


@op_converter("Gemm")
def gemm(g: CodeGen, node) -> None:
    a, b = node.inputs[0], node.inputs[1]
    c = node.inputs[2] if len(node.inputs) > 2 else None
    alpha = node.attributes.get_float("alpha", 1.0)
    beta = node.attributes.get_float("beta", 1.0)
    trans_a = node.attributes.get_int("transA", 0)
    trans_b = node.attributes.get_int("transB", 0)
    weight = g.const(b)
    if weight is not None and not trans_a and weight.ndim == 2:
        # nn.Linear keeps its weight as (out, in), as Gemm's B with transB=1
        if not trans_b:
            weight = np.ascontiguousarray(weight.T)
        if alpha != 1.0:
            weight = (weight * np.float32(alpha)).astype(weight.dtype)
        bias = _linear_bias(g, c, weight.shape[0], beta)
        if bias is not False:
            params = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
            extra = ", bias=False" if bias is None else ""
            layer = g.module("fc", f"nn.Linear({weight.shape[1]}, {weight.shape[0]}{extra})",
                             params)
            g.emit(f"{layer}({g.ref(a)})")
            return
    left = g.ref(a, "gemm_a") + (".t()" if trans_a else "")
    right = g.ref(b, "gemm_b") + (".t()" if trans_b else "")
    if c is None:
        product = f"{left} @ {right}"
        g.emit(product if alpha == 1.0 else f"{literal(alpha, np.float32)} * ({product})",
               comment=True)
        return
    options = ""
    if beta != 1.0:
        options += f", beta={literal(beta, np.float32)}"
    if alpha != 1.0:
        options += f", alpha={literal(alpha, np.float32)}"
    g.emit(f"torch.addmm({g.ref(c, 'gemm_c')}, {left}, {right}{options})", comment=True)


@op_converter("MatMul")
def matmul(g: CodeGen, node) -> None:
    a, b = node.inputs
    weight = g.const(b)
    if weight is not None and weight.ndim == 2 and len(g.shape(a)) >= 2 \
            and weight.dtype.kind == "f":
        weight = np.ascontiguousarray(weight.T)
        layer = g.module("fc", f"nn.Linear({weight.shape[1]}, {weight.shape[0]}, bias=False)",
                         {"weight": weight})
        g.emit(f"{layer}({g.ref(a)})")
        return
    g.emit(f"torch.matmul({g.ref(a, 'matmul_a')}, {g.ref(b, 'matmul_b')})", comment=True)
