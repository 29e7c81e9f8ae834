"""Benchmark models in the real Torch7 binary format (written with bench/t7write.py)."""

from __future__ import annotations

import numpy as np

from bench import t7write as t7

VGG16_CHANNELS = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                  512, 512, 512, "M"]


def _conv_params(rng, n_in, n_out, k=3):
    std = float(np.sqrt(2.0 / (n_in * k * k)))
    weight = (rng.standard_normal((n_out, n_in, k, k), dtype=np.float32) * std)
    return weight, (rng.standard_normal(n_out, dtype=np.float32) * 0.01)


def _bn(rng, n):
    return t7.batch_norm(
        rng.standard_normal(n, dtype=np.float32) * 0.1,
        rng.uniform(0.5, 1.5, n).astype(np.float32),
        rng.uniform(0.5, 1.5, n).astype(np.float32),
        rng.standard_normal(n, dtype=np.float32) * 0.1)


def vgg16(seed: int = 0, width: float = 1.0, image: int = 224, classes: int = 1000,
          hidden: int = 4096, batch_norm: bool = False) -> t7.TorchObject:
    """VGG-16 as Torch7 ports of it were saved (13 convs, 5 pools, 3 Linear; ~528 MB).
    `width`, `image`, `hidden` shrink it for small instances; `batch_norm` adds
    SpatialBatchNormalization after every convolution (VGG-BN)."""
    rng = np.random.default_rng(seed)
    layers, n_in = [], 3
    for item in VGG16_CHANNELS:
        if item == "M":
            layers.append(t7.max_pool(2, 2))
            continue
        n_out = max(1, int(item * width))
        layers.append(t7.conv(*_conv_params(rng, n_in, n_out), stride=1, pad=1))
        if batch_norm:
            layers.append(_bn(rng, n_out))
        layers.append(t7.relu())
        n_in = n_out
    side = image // 32
    flat = n_in * side * side
    sizes = [flat, hidden, hidden, classes]
    layers.append(t7.view(-1, flat))
    for k in range(3):
        std = float(np.sqrt(1.0 / sizes[k]))
        weight = rng.standard_normal((sizes[k + 1], sizes[k]), dtype=np.float32) * std
        layers.append(t7.linear(weight, rng.standard_normal(sizes[k + 1], dtype=np.float32)
                                * 0.01))
        if k < 2:
            layers += [t7.relu(), t7.dropout(0.5)]
    layers.append(t7.softmax())
    return t7.sequential(*layers)


def resnet(seed: int = 0, width: int = 32, blocks: int = 4, image_channels: int = 3,
           classes: int = 10) -> t7.TorchObject:
    """A ResNet-style network as fb.resnet.torch saved them: conv-BN-ReLU stem, residual
    blocks ConcatTable{conv-BN-ReLU-conv-BN, Identity} -> CAddTable -> ReLU."""
    rng = np.random.default_rng(seed)
    layers = [t7.conv(*_conv_params(rng, image_channels, width), pad=1), _bn(rng, width),
              t7.relu()]
    for _ in range(blocks):
        branch = t7.sequential(
            t7.conv(*_conv_params(rng, width, width), pad=1), _bn(rng, width), t7.relu(),
            t7.conv(*_conv_params(rng, width, width), pad=1), _bn(rng, width))
        layers += [t7.concat_table(branch, t7.identity()), t7.cadd_table(), t7.relu()]
    return t7.sequential(*layers)
