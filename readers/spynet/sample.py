"""A test input for SpyNet: two frames of a smooth pattern moving by a known amount.

Random noise makes a poor input for checking a flow network: warping noise turns the
smallest difference in the flow into a large one in the image, and every level after
it amplifies that. A smooth moving pattern is what SpyNet is made for, and its true
flow is known everywhere.
"""

from __future__ import annotations

import numpy as np

MOTION = (2.6, -1.4)  # (x, y) pixels, the forward flow im1 -> im2
DESCRIPTION = "a synthetic {}x{} image pair (a smooth pattern moved by (+2.6, -1.4) px)"


def moving_pair(shape: list[int], seed: int = 0) -> list[np.ndarray]:
    """im1, im2: Nx3xHxW float32 in [0.05, 0.95]; im1 a sum of random waves (wavelengths
    8 to 64 px, per channel), im2 the same pattern moved by MOTION: im2(p + MOTION) =
    im1(p), computed exactly from the waves (no resampling)."""
    n, channels, height, width = (int(d) for d in shape)
    rng = np.random.default_rng(seed)
    waves = 6
    angle = rng.uniform(0, 2 * np.pi, (channels, waves))
    frequency = 2 * np.pi / rng.uniform(8, 64, (channels, waves))
    phase = rng.uniform(0, 2 * np.pi, (channels, waves))
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)

    def pattern(dx: float, dy: float) -> np.ndarray:
        image = np.zeros((channels, height, width))
        for c in range(channels):
            for k in range(waves):
                along = np.cos(angle[c, k]) * (x - dx) + np.sin(angle[c, k]) * (y - dy)
                image[c] += np.sin(frequency[c, k] * along + phase[c, k])
        return 0.5 + 0.45 * image / waves

    return [np.ascontiguousarray(np.broadcast_to(im, (n, channels, height, width)), np.float32)
            for im in (pattern(0.0, 0.0), pattern(*MOTION))]
