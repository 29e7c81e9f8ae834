"""Layouts: how a stored tensor holds a value of the common graph (whose layout is the
source's, NCHW).

A layout splits the source shape into *atoms* (each source axis is one atom, or a run
of atoms when a Reshape split it) and lists the order in which the atoms are stored:

    stored = reshape(transpose(reshape(source, atoms), order), stored_shape)

The usual case is a permutation layout (atoms = source axes, `order` = a permutation,
stored shape = the permuted shape), e.g. NCHW held as NHWC: order (0, 2, 3, 1). The
other case is made by a Flatten of a channels-last tensor feeding a dense layer: the
flattened axis holds its (C, H, W) atoms in (H, W, C) order, and the dense weights are
permuted to match instead of the activations being transposed.

Everything here is pure arithmetic on shapes; `lowering.py` turns the plans into ops.
A change of layout that only moves axes of size 1 is a reshape, never a transpose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Step = tuple[str, tuple[int, ...]]  # ("reshape", shape) or ("transpose", perm)


def channels_last(rank: int) -> tuple[int, ...]:
    """(0, 2, 3, ..., 1): NCHW -> NHWC, NCW -> NWC, NCDHW -> NDHWC."""
    if rank < 3:
        return tuple(range(rank))
    return (0, *range(2, rank), 1)


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


@dataclass(frozen=True)
class Layout:
    shape: tuple[int, ...]  # the source value's shape
    atoms: tuple[int, ...]  # sizes, source order; every axis is a product of its atoms
    groups: tuple[tuple[int, ...], ...]  # the atoms of each source axis
    order: tuple[int, ...]  # storage order of the atoms

    @staticmethod
    def permuted(shape: Sequence[int], perm: Sequence[int]) -> Layout:
        shape = tuple(int(d) for d in shape)
        return Layout(shape, shape, tuple((i,) for i in range(len(shape))), tuple(perm))

    @staticmethod
    def identity(shape: Sequence[int]) -> Layout:
        return Layout.permuted(shape, identity(len(shape)))

    @property
    def perm(self) -> tuple[int, ...] | None:
        """The permutation when this is a permutation layout, else None."""
        if len(self.atoms) == len(self.shape) and all(
                g == (i,) for i, g in enumerate(self.groups)):
            return self.order
        return None

    @property
    def is_identity(self) -> bool:
        return self.perm == identity(len(self.shape))

    def permuted_shape(self) -> tuple[int, ...]:
        perm = self.perm
        assert perm is not None
        return tuple(self.shape[p] for p in perm)

    def axis_of(self, atom: int) -> int:
        for axis, group in enumerate(self.groups):
            if atom in group:
                return axis
        raise ValueError(atom)

    def stored_axis(self, axis: int) -> int:
        """Where source axis `axis` is stored (permutation layouts)."""
        perm = self.perm
        assert perm is not None
        return perm.index(axis)


# -- factorizations --------------------------------------------------------------------

def refine(a: Sequence[int], b: Sequence[int]) -> list[int] | None:
    """The coarsest sizes that both `a` and `b` are products of runs of (row-major), or
    None (e.g. 6x4 and 4x6 share no such split). Sizes of 1 are ignored."""
    a = [int(d) for d in a if d != 1]
    b = [int(d) for d in b if d != 1]
    if math.prod(a) != math.prod(b):
        return None
    cuts = sorted({*_prefix_products(a), *_prefix_products(b)})
    sizes, previous = [], 1
    for cut in cuts:
        if cut % previous:
            return None
        sizes.append(cut // previous)
        previous = cut
    return sizes


def _prefix_products(sizes: Sequence[int]) -> list[int]:
    out, product = [], 1
    for d in sizes:
        product *= d
        out.append(product)
    return out


def _cover(sizes: Sequence[int], refined: Sequence[int]) -> list[list[int]]:
    """For each entry of `sizes` (1s included, covering nothing), the indices of the
    `refined` sizes whose product it is."""
    out, k = [], 0
    for d in sizes:
        ids, product = [], 1
        while product < d:
            product *= refined[k]
            ids.append(k)
            k += 1
        out.append(ids)
    return out


# -- plans -------------------------------------------------------------------------------

def _refined_sequences(src: Layout, dst: Layout):
    """Both layouts' storage orders over common atoms (sizes of 1 dropped)."""
    assert src.shape == dst.shape, (src.shape, dst.shape)
    sizes: list[int] = []
    src_atoms: dict[int, list[int]] = {}
    dst_atoms: dict[int, list[int]] = {}
    for axis in range(len(src.shape)):
        a = [src.atoms[i] for i in src.groups[axis]]
        b = [dst.atoms[i] for i in dst.groups[axis]]
        common = refine(a, b)
        if common is None:
            return None
        base = len(sizes)
        sizes += common
        for atom, ids in zip(src.groups[axis], _cover(a, common), strict=True):
            src_atoms[atom] = [base + i for i in ids]
        for atom, ids in zip(dst.groups[axis], _cover(b, common), strict=True):
            dst_atoms[atom] = [base + i for i in ids]
    src_seq = [i for atom in src.order for i in src_atoms[atom]]
    dst_seq = [i for atom in dst.order for i in dst_atoms[atom]]
    return sizes, src_seq, dst_seq


def convert_plan(src: Layout, src_stored: Sequence[int], dst: Layout,
                 dst_stored: Sequence[int]) -> list[Step] | None:
    """Steps turning a tensor stored as `src` (shape `src_stored`) into one stored as
    `dst`; at most one transpose. None when the atoms of the two cannot be matched."""
    src_stored, dst_stored = tuple(src_stored), tuple(dst_stored)
    found = _refined_sequences(src, dst)
    if found is None:
        return None
    sizes, src_seq, dst_seq = found
    if src_seq == dst_seq:
        return [] if src_stored == dst_stored else [("reshape", dst_stored)]
    if src.perm is not None and dst.perm is not None and src_stored == src.permuted_shape():
        # a plain transpose of the stored axes (the usual NCHW <-> NHWC)
        perm = tuple(src.order.index(axis) for axis in dst.order)
        return [("transpose", perm)]
    # merge atoms that stay neighbours, so the transpose has the lowest rank possible
    blocks: list[list[int]] = []
    for atom in dst_seq:
        if blocks and src_seq.index(atom) == src_seq.index(blocks[-1][-1]) + 1:
            blocks[-1].append(atom)
        else:
            blocks.append([atom])
    block_of = {block[0]: block for block in blocks}
    src_blocks = [block_of[a] for a in src_seq if a in block_of]
    shape = tuple(math.prod(sizes[a] for a in block) for block in src_blocks)
    perm = tuple(src_blocks.index(block) for block in blocks)
    steps: list[Step] = []
    if shape != src_stored:
        steps.append(("reshape", shape))
    steps.append(("transpose", perm))
    if tuple(shape[p] for p in perm) != dst_stored:
        steps.append(("reshape", dst_stored))
    return steps


def reshaped(src: Layout, target: Sequence[int]) -> Layout | None:
    """The layout of reshape(source, target) held in the *same memory* as `src`, or
    None when the two factorizations do not match (materialize first)."""
    target = tuple(int(d) for d in target)
    in_source_order = [a for group in src.groups for a in group if src.atoms[a] != 1]
    sizes = [src.atoms[a] for a in in_source_order]
    common = refine(sizes, target)
    if common is None:
        return None
    atom_ids = dict(zip(in_source_order, _cover(sizes, common), strict=True))
    groups = tuple(tuple(ids) for ids in _cover(target, common))
    order = tuple(i for atom in src.order if src.atoms[atom] != 1 for i in atom_ids[atom])
    return Layout(target, tuple(common), groups, order)


def as_permutation(layout: Layout, preferred: Sequence[Sequence[int]] = ()) -> Layout | None:
    """The same memory seen as a permutation layout, when every axis's atoms are stored
    together and in order; axes of size 1 go where a preferred permutation puts them."""
    if layout.perm is not None:
        return layout
    position = {atom: k for k, atom in enumerate(layout.order)}
    stored_axes: list[tuple[int, int]] = []
    for axis, group in enumerate(layout.groups):
        real = [a for a in group if layout.atoms[a] != 1]
        if not real:
            continue
        spots = [position[a] for a in real]
        if spots != list(range(spots[0], spots[0] + len(spots))):
            return None
        stored_axes.append((spots[0], axis))
    sequence = [axis for _, axis in sorted(stored_axes)]
    shape = layout.shape
    for perm in preferred:
        if [p for p in perm if shape[p] != 1] == sequence:
            return Layout.permuted(shape, perm)
    perm = list(sequence)
    for axis in range(len(shape)):
        if shape[axis] == 1:
            at = perm.index(axis - 1) + 1 if axis > 0 else 0
            perm.insert(at, axis)
    return Layout.permuted(shape, perm)


def dense_order(layout: Layout) -> np.ndarray | None:
    """For a 2-D value (batch, features) stored with the batch atoms first, or a 1-D
    value (features): the source feature index of each stored feature (None when the
    batch is not first)."""
    if len(layout.shape) not in (1, 2):
        return None
    batch = [a for a in layout.groups[0] if layout.atoms[a] != 1] \
        if len(layout.shape) == 2 else []
    features = [a for a in layout.groups[-1] if layout.atoms[a] != 1]
    order = [a for a in layout.order if layout.atoms[a] != 1]
    if order[:len(batch)] != batch:
        return None
    sizes = [layout.atoms[a] for a in features]
    stored = [features.index(a) for a in order[len(batch):]]
    index = np.arange(layout.shape[-1]).reshape(sizes) if sizes else np.arange(1)
    return index.transpose(stored).reshape(-1)


def source_view(layout: Layout) -> tuple[list[int], list[int]]:
    """(atoms, order) a runtime needs to map the stored tensor back to the source."""
    return list(layout.atoms), list(layout.order)


def permute_features(array: np.ndarray, layout: Layout, axis: int) -> np.ndarray:
    """`array` with its `axis` (the features of a dense input stored as `layout`) in
    stored order, as a reshape and a transpose (no gather): weights follow the input."""
    features = [a for a in layout.groups[-1] if layout.atoms[a] != 1]
    order = [a for a in layout.order if a in features]
    sizes = [layout.atoms[a] for a in features]
    if order == features:
        return array
    axis = axis % array.ndim
    shape = array.shape[:axis] + tuple(sizes) + array.shape[axis + 1:]
    perm = (list(range(axis)) + [axis + features.index(a) for a in order]
            + list(range(axis + len(sizes), len(shape))))
    return np.ascontiguousarray(array.reshape(shape).transpose(perm)).reshape(array.shape)
