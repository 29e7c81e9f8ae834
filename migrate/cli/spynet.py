"""`migrate spynet-pyramid MODELS_DIR`: SpyNet's whole flow estimator as one network."""

from __future__ import annotations

import argparse
import math
import re

from migrate import __version__
from migrate.cli.options import (
    add_output_options,
    add_target_options,
    add_verify_options,
    new_parser,
    size,
)
from migrate.core.errors import MigrateError, UsageError, VerificationError
from migrate.core.model import DEFAULT_MAX_BYTES

DESCRIPTION = """\
SpyNet (anuragranj/spynet) as one deployable network: two frames in, optical flow out.

  migrate spynet-pyramid models/ --type sintelFinal --input-shape 1x3x384x512 --to caffe2 -o out/
  migrate spynet-pyramid models/ --type kittiFinal --input-shape 1x3x128x160 --to onnx \\
      --input frame1.png --input frame2.png --report

MODELS_DIR holds SpyNet's level networks modelL{1..6}_{3,4,C,F,K}.t7. The level count
follows SpyNet's rule from the image size (rounded up to a multiple of 32: <= 32 px: 1
level ... > 512 px: 6); only the levels needed are loaded. The network's inputs are
`im1` and `im2` (Nx3xHxW RGB in [0, 1], as SpyNet's loadImage gives them; image files
given with --input are read that way); its output is `flow` (Nx2xHxW, pixels, channel 0
= x, channel 1 = y, the forward flow im1 -> im2). Everything spynet.lua does around the
level networks is inside: ImageNet normalisation, resizing to the multiple of 32, the
2x2 average-pooling pyramid, flow upsampling (bilinear, corners aligned) and doubling,
the warp of im2 by the flow (bilinear, border replicate, as SpyNet's CUDA kernel), the
residual additions and the final rescaling. Every op is named after its level and step
(e.g. level3.warp, level3.model.modules[5]) in layer-by-layer reports.
"""

# --warp auto: the sampler, or its Gather construction for writers that have no sampler
WARP_CHOICES = ("auto", "gridsample", "gather")
_PREPROCESSING = ("input_bgr_to_rgb", "input_mean")


def parser() -> argparse.ArgumentParser:
    from migrate.readers.spynet import DEFAULT_TYPE, TYPES

    p = new_parser("migrate spynet-pyramid", DESCRIPTION)
    p.add_argument("models_dir", metavar="MODELS_DIR",
                   help="the folder holding SpyNet's modelL{k}_{T}.t7 level files")
    p.add_argument("--type", default=DEFAULT_TYPE, metavar="TYPE",
                   help=f"SpyNet's model type (default {DEFAULT_TYPE}): {', '.join(TYPES)}\n"
                        "(sintelFinal: _F files, sintelClean: _C, kittiFinal: _K,\n"
                        "chairsClean: _4, chairsFinal: _3, level-5 model reused at level 6)")
    p.add_argument("--input-shape", action="append", default=[], metavar="SHAPE",
                   help="the images' shape Nx3xHxW, once for both or once per image\n"
                        "(default: the --input images' shape)")
    add_output_options(
        p, to_help="target format (default: caffe2); see `migrate formats`",
        report_help="write STEM.report.html and .json (every level's steps compared)\n"
                    "and print the layer-by-layer table")
    p.add_argument("--warp", choices=WARP_CHOICES, default="auto",
                   help="how the warp is written: one GridSample (a sampler; Caffe2 gets its\n"
                        "exact Gather construction), or the CUDA kernel's arithmetic with\n"
                        "Gather; auto (default): GridSample, Gather where the target's\n"
                        "writer has no GridSample")
    p.add_argument("--max-bytes", type=size, default=DEFAULT_MAX_BYTES, metavar="SIZE",
                   help="refuse level files declaring more tensor data than this (default 64G)")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    add_verify_options(p)
    for action in p._actions:  # shared options that do not apply (normalisation is inside)
        if action.dest in (*_PREPROCESSING, "input_scale"):
            action.help = argparse.SUPPRESS
    add_target_options(p)
    p.add_argument("--version", action="version", version=f"torch7-migrate {__version__}")
    return p


def run_spynet_pyramid(argv: list[str]) -> int:
    args = parser().parse_args(argv)  # before the heavy imports: --help stays fast
    from migrate.cli.options import convert_options
    from migrate.pipeline import MAX_VERIFY_ELEMENTS, convert_source
    from migrate.readers.spynet import SpyNetPyramid
    from migrate.readers.spynet.pyramid import build
    from migrate.readers.spynet.sample import DESCRIPTION, moving_pair
    from migrate.verify.layerwise import format_table

    for flag in _PREPROCESSING:
        if getattr(args, flag):
            raise UsageError(f"--{flag.replace('_', '-')} does not apply: SpyNet takes RGB in "
                             "[0, 1] and normalises inside the network")
    if args.input_scale != 1.0:
        raise UsageError("--input-scale does not apply: SpyNet takes RGB in [0, 1] and "
                         "normalises inside the network")
    args.input_shape = ",".join(args.input_shape) or None
    input_paths, args.input = args.input, []  # read below, as SpyNet reads images
    options = convert_options(args, target=args.to, out_dir=args.output_dir,
                              verify=not args.no_verify, report=args.report,
                              optimize=not args.no_optimize)
    options.inputs = pair_inputs(input_paths) if input_paths else None
    shapes = options.read_options().input_shapes
    request = SpyNetPyramid(args.models_dir, args.type,
                            "gridsample" if args.warp == "auto" else args.warp)
    # Read once here: an error in a level file names that file. Later errors (writing,
    # verifying) concern the pyramid as a whole and name the folder.
    level_files = build(request, shapes, args.max_bytes).paths
    # no --input: a smooth moving pattern, not random noise (see sample.py)
    synthetic = options.inputs is None and (options.verify or options.report) and \
        2 * math.prod(shapes[0]) <= MAX_VERIFY_ELEMENTS
    if synthetic:
        options.inputs = moving_pair(list(shapes[0]))
    try:
        summary = convert_source(request, options)
    except MigrateError as exc:
        if args.warp != "auto" or not _failed_warp(exc):
            raise _named(exc, level_files, args.models_dir) from None
        # the target's writer has no GridSample: the Gather construction instead
        try:
            summary = convert_source(SpyNetPyramid(args.models_dir, args.type, "gather"),
                                     options)
        except MigrateError as again:
            if _failed_warp(again):
                again.message += (f" (SpyNet's warp needs a sampler or a Gather with computed "
                                  f"indices; the {args.to} writer has neither)")
            raise _named(again, level_files, args.models_dir) from None
        summary.notes.append("warp: the Gather construction (the target has no GridSample)")
    if synthetic:
        summary.input_description = DESCRIPTION.format(*options.inputs[0].shape[2:])
    if args.report and summary.verification is not None:
        print(format_table(summary.verification, args.atol, args.rtol))
    print(summary)
    return 0


def _failed_warp(exc: MigrateError) -> bool:
    """A writer could not express a warp step (not a verification failure)."""
    return not isinstance(exc, VerificationError) and \
        re.search(r"\blevel\d+\.warp\b", f"{exc.where or ''} {exc.message}") is not None


def _named(exc: MigrateError, level_files: list[str], models_dir: str) -> MigrateError:
    """The pipeline names a failure after the source's first file; past reading, the
    pyramid as a whole is meant: name its folder."""
    if exc.file in level_files:
        exc.file = models_dir
    return exc


def pair_inputs(paths: list[str]):
    """--input files as the network takes them: Nx3xHxW float32; image files read as
    SpyNet's loadImage does (RGB, byte / 255), one file per image or one holding both."""
    import numpy as np

    from migrate.verify.inputs import IMAGE_SUFFIXES, load_inputs

    arrays = []
    for path in paths:
        for array in load_inputs([path]):
            if path.lower().endswith(IMAGE_SUFFIXES):
                if array.shape[1] != 3:
                    raise UsageError("SpyNet takes colour images (this one is grey)", file=path)
                # torch/image's load(path, 3, 'float'): the bytes times (float)(1/255)
                array = array * np.float32(1 / 255)
            if array.ndim == 3:  # CxHxW, as SpyNet's loadImage returns it
                array = array[None]
            arrays.append(np.ascontiguousarray(array, np.float32))
    if len(arrays) != 2:
        raise UsageError(f"{len(arrays)} input image(s) in {', '.join(paths)}: SpyNet takes "
                         "two (--input im1 --input im2)")
    return arrays


