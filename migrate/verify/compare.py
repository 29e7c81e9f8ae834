"""Numerical verification: does the written model compute what the source computes?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-4


@dataclass
class Comparison:
    max_abs: float
    max_rel: float  # max |a - b| / max |b|: the error relative to the output's range
    passed: bool
    detail: str = ""

    def describe(self) -> str:
        verdict = "OK" if self.passed else "MISMATCH"
        text = f"max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}  {verdict}"
        return f"{text} ({self.detail})" if self.detail else text


def compare(
    actual: Sequence[np.ndarray],
    expected: Sequence[np.ndarray],
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
) -> Comparison:
    """Compare output lists element by element (shapes must match; nothing is sorted)."""
    if len(actual) != len(expected):
        return Comparison(float("inf"), float("inf"), False,
                          f"{len(actual)} outputs instead of {len(expected)}")
    worst_abs = worst_rel = 0.0
    passed, details = True, []
    for k, (a, b) in enumerate(zip(actual, expected, strict=True)):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            if a.size == b.size:
                details.append(f"output {k} has shape {a.shape}, expected {b.shape}")
                a = a.reshape(b.shape)
            else:
                return Comparison(float("inf"), float("inf"), False,
                                  f"output {k} has shape {a.shape}, expected {b.shape}")
        if a.size == 0:
            continue
        diff = np.abs(a - b)
        finite = np.isfinite(a) == np.isfinite(b)
        max_abs = float(np.nanmax(np.where(np.isfinite(diff), diff, 0.0)))
        scale = float(np.nanmax(np.abs(np.where(np.isfinite(b), b, 0.0)))) or 1.0
        worst_abs = max(worst_abs, max_abs)
        worst_rel = max(worst_rel, max_abs / scale)
        ok = bool(np.all(finite)) and bool(np.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))
        if not ok:
            passed = False
            details.append(f"output {k} differs beyond atol={atol:g} rtol={rtol:g}")
    return Comparison(worst_abs, worst_rel, passed, "; ".join(details))


def random_inputs(shapes: Sequence[Sequence[int]], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(list(s)).astype(np.float32) for s in shapes]
