"""3-D convolution and pooling as 2-D ops over depth planes, for ExecuTorch.

ExecuTorch's runtime (the pip package's portable kernels and XNNPACK) has no 3-D pooling
kernels and convolves in 1-D and 2-D only. The generated PyTorch module's Conv3d,
ConvTranspose3d, MaxPool3d and AvgPool3d submodules are swapped, before export, for
modules that compute the same numbers with 2-D ops:

- convolution: one 2-D convolution per kernel depth tap, over every output plane at once
  (the planes are folded into the batch), summed;
- transposed convolution: one 2-D transposed convolution per tap, each placed at its
  output planes (zeros between planes for the depth stride), summed, then cropped;
- pooling: windows are boxes, so a max or an average over one is the max or average over
  H and W, then over depth (a 2-D pool with a (kD, 1) kernel). The average's divisor
  factors too: per axis, PyTorch counts the window's part inside the (padded) input.

What has no such form (pooling that returns indices for an unpooling, a divisor override,
a padding mode other than zeros) stays as it was, and the writer refuses it by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def split_depth(module: nn.Module) -> int:
    """Swap every 3-D convolution and pooling submodule that has a 2-D form; returns how
    many were swapped. Attribute names stay, so layers keep their source names."""
    swapped = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            planar = _planar(child)
            if planar is not None:
                setattr(parent, name, planar)
                swapped += 1
    return swapped


def _planar(child: nn.Module) -> nn.Module | None:
    if isinstance(child, nn.Conv3d) and child.padding_mode == "zeros" \
            and not isinstance(child.padding, str):
        return ConvByPlanes(child)
    if isinstance(child, nn.ConvTranspose3d) and child.padding_mode == "zeros":
        return ConvTransposeByPlanes(child)
    if isinstance(child, nn.MaxPool3d) and not child.return_indices:
        return MaxPoolByPlanes(child)
    if isinstance(child, nn.AvgPool3d) and child.divisor_override is None:
        return AvgPoolByPlanes(child)
    return None


def _triple(value) -> tuple[int, int, int]:
    return tuple(value) if isinstance(value, tuple | list) else (value, value, value)


def _store_taps(planar: nn.Module, conv: nn.Module) -> int:
    """One 4-D weight per depth tap, stored apart so each stays a constant XNNPACK can
    take, and the bias; returns the number of taps."""
    taps = conv.weight.shape[2]
    for k in range(taps):
        planar.register_buffer(f"weight_{k}", conv.weight.detach()[:, :, k].contiguous())
    planar.register_buffer("bias", None if conv.bias is None else conv.bias.detach())
    return taps


class ConvByPlanes(nn.Module):
    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        self.stride, self.padding = conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups
        self.taps = _store_taps(self, conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (s_d, s_h, s_w), (p_d, p_h, p_w) = self.stride, self.padding
        (d_d, d_h, d_w) = self.dilation
        if p_d:
            x = F.pad(x, (0, 0, 0, 0, p_d, p_d))
        n, c, depth, h, w = x.shape
        planes = (depth - d_d * (self.taps - 1) - 1) // s_d + 1
        out = None
        for k in range(self.taps):
            start = k * d_d
            tap = x[:, :, start:start + s_d * (planes - 1) + 1:s_d]  # (N, C, OD, H, W)
            tap = tap.transpose(1, 2).reshape(n * planes, c, h, w)
            y = F.conv2d(tap, getattr(self, f"weight_{k}"), self.bias if k == 0 else None,
                         (s_h, s_w), (p_h, p_w), (d_h, d_w), self.groups)
            out = y if out is None else out + y
        return out.reshape(n, planes, *out.shape[1:]).transpose(1, 2)


class ConvTransposeByPlanes(nn.Module):
    def __init__(self, conv: nn.ConvTranspose3d) -> None:
        super().__init__()
        self.stride, self.padding = conv.stride, conv.padding
        self.output_padding, self.dilation = conv.output_padding, conv.dilation
        self.groups = conv.groups
        self.taps = _store_taps(self, conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (s_d, s_h, s_w), (p_d, p_h, p_w) = self.stride, self.padding
        (o_d, o_h, o_w), (d_d, d_h, d_w) = self.output_padding, self.dilation
        n, c, depth, h, w = x.shape
        flat = x.transpose(1, 2).reshape(n * depth, c, h, w)
        spread = (depth - 1) * s_d + 1  # input planes at stride s_d, zeros between
        full = spread + d_d * (self.taps - 1) + o_d  # before the padding is cropped
        out = None
        for k in range(self.taps):
            y = F.conv_transpose2d(flat, getattr(self, f"weight_{k}"), None, (s_h, s_w),
                                   (p_h, p_w), (o_h, o_w), self.groups, (d_h, d_w))
            y = y.reshape(n, depth, *y.shape[1:])  # (N, D, O, OH, OW)
            if s_d > 1:
                gaps = y.new_zeros((n, depth, s_d - 1, *y.shape[2:]))
                y = torch.cat([y.unsqueeze(2), gaps], 2).reshape(n, depth * s_d, *y.shape[2:])
                y = y[:, :spread]
            before = k * d_d
            y = F.pad(y, (0, 0, 0, 0, 0, 0, before, full - before - spread))
            out = y if out is None else out + y
        out = out[:, p_d:full - p_d]
        if self.bias is not None:
            out = out + self.bias.reshape(1, 1, -1, 1, 1)
        return out.transpose(1, 2)


class MaxPoolByPlanes(nn.Module):
    def __init__(self, pool: nn.MaxPool3d) -> None:
        super().__init__()
        self.kernel = _triple(pool.kernel_size)
        self.stride = _triple(pool.stride if pool.stride is not None else pool.kernel_size)
        self.padding, self.dilation = _triple(pool.padding), _triple(pool.dilation)
        self.ceil_mode = pool.ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, depth, h, w = x.shape
        k, s, p, d = self.kernel, self.stride, self.padding, self.dilation
        y = F.max_pool2d(x.reshape(n, c * depth, h, w), k[1:], s[1:], p[1:], d[1:],
                         ceil_mode=self.ceil_mode)
        oh, ow = y.shape[2:]
        y = F.max_pool2d(y.reshape(n, c, depth, oh * ow), (k[0], 1), (s[0], 1), (p[0], 0),
                         (d[0], 1), ceil_mode=self.ceil_mode)
        return y.reshape(n, c, y.shape[2], oh, ow)


class AvgPoolByPlanes(nn.Module):
    def __init__(self, pool: nn.AvgPool3d) -> None:
        super().__init__()
        self.kernel = _triple(pool.kernel_size)
        self.stride = _triple(pool.stride if pool.stride is not None else pool.kernel_size)
        self.padding = _triple(pool.padding)
        self.ceil_mode, self.count_include_pad = pool.ceil_mode, pool.count_include_pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, depth, h, w = x.shape
        k, s, p = self.kernel, self.stride, self.padding
        y = F.avg_pool2d(x.reshape(n, c * depth, h, w), k[1:], s[1:], p[1:],
                         ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)
        oh, ow = y.shape[2:]
        y = F.avg_pool2d(y.reshape(n, c, depth, oh * ow), (k[0], 1), (s[0], 1), (p[0], 0),
                         ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)
        return y.reshape(n, c, y.shape[2], oh, ow)
