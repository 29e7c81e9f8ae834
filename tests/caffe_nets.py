"""Hand-written Caffe nets for the layers the real models lack.

Each net is a prototxt whose weights real Caffe makes (its own fillers, declared in the
prototxt; blobs without a filler, such as BatchNorm's statistics, get seeded random
values in Caffe's process) and saves with `net.save`; real Caffe's forward pass on a
seeded input is the expected output, layer by layer. Input sizes are odd on purpose.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

G = 'weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "uniform" min: -1 max: 1 }'


def _input(shape: str, name: str = "data") -> str:
    dims = " ".join(f"dim: {d}" for d in shape.split("x"))
    return f'input: "{name}"\ninput_shape {{ {dims} }}\n'


def layer(name: str, kind: str, bottom: str | list[str], top: str | list[str],
          params: str = "") -> str:
    bottoms = [bottom] if isinstance(bottom, str) else bottom
    tops = [top] if isinstance(top, str) else top
    lines = [f'layer {{ name: "{name}" type: "{kind}"']
    lines += [f'  bottom: "{b}"' for b in bottoms] + [f'  top: "{t}"' for t in tops]
    if params:
        lines.append(f"  {params}")
    return "\n".join(lines) + "\n}\n"


# name -> prototxt (inputs declared in it)
NETS: dict[str, str] = {
    # Caffe's pooling: ceil rounding, last-window clipping with padding, averages divided
    # by windows clipped to input + pad, both rounding modes, global pooling
    "pooling": _input("1x3x8x11") + "".join([
        layer("max_ceil", "Pooling", "data", "max_ceil",
              "pooling_param { pool: MAX kernel_size: 3 stride: 2 }"),
        layer("max_pad_clip", "Pooling", "data", "max_pad_clip",
              "pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 }"),
        layer("ave_ceil", "Pooling", "data", "ave_ceil",
              "pooling_param { pool: AVE kernel_size: 3 stride: 2 }"),
        layer("ave_pad_ceil", "Pooling", "data", "ave_pad_ceil",
              "pooling_param { pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 "
              "pad_h: 1 pad_w: 1 }"),
        layer("ave_pad_exact", "Pooling", "data", "ave_pad_exact",
              "pooling_param { pool: AVE kernel_size: 3 stride: 1 pad: 1 }"),
        layer("max_floor", "Pooling", "data", "max_floor",
              "pooling_param { pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR }"),
        layer("global_max", "Pooling", "data", "global_max",
              "pooling_param { pool: MAX global_pooling: true }"),
        layer("global_ave", "Pooling", "data", "global_ave",
              "pooling_param { pool: AVE global_pooling: true }"),
    ]),
    # grouped, dilated, non-square, strided convolutions; no bias; deconvolution
    "convolution": _input("1x4x9x7") + "".join([
        layer("grouped", "Convolution", "data", "grouped",
              f"convolution_param {{ num_output: 6 kernel_size: 3 group: 2 pad: 1 {G} }}"),
        layer("dilated", "Convolution", "grouped", "dilated",
              f"convolution_param {{ num_output: 4 kernel_size: 3 dilation: 2 pad: 2 stride: 2 "
              f"{G} }}"),
        layer("rect", "Convolution", "data", "rect",
              f"convolution_param {{ num_output: 3 kernel_h: 3 kernel_w: 1 stride_h: 2 "
              f"stride_w: 1 pad_h: 0 pad_w: 1 bias_term: false {G} }}"),
        layer("depthwise", "Convolution", "data", "depthwise",
              f"convolution_param {{ num_output: 4 kernel_size: 3 group: 4 {G} }}"),
        layer("deconv", "Deconvolution", "dilated", "deconv",
              f"convolution_param {{ num_output: 6 kernel_size: 4 stride: 2 pad: 1 group: 2 "
              f"{G} }}"),
        layer("deconv_plain", "Deconvolution", "rect", "deconv_plain",
              f"convolution_param {{ num_output: 2 kernel_size: 3 bias_term: false {G} }}"),
    ]),
    # BatchNorm (its third blob divides the first two) with and without Scale; PReLU
    "normalization": _input("2x3x5x7") + "".join([
        layer("bn", "BatchNorm", "data", "bn"),
        layer("bn_scale", "Scale", "bn", "bn_scale",
              'scale_param { bias_term: true filler { type: "uniform" min: 0.5 max: 2 } '
              'bias_filler { type: "gaussian" std: 1 } }'),
        layer("bn_alone", "BatchNorm", "data", "bn_alone", "batch_norm_param { eps: 0.001 }"),
        layer("prelu", "PReLU", "bn_scale", "prelu",
              'prelu_param { filler { type: "uniform" min: -0.5 max: 0.5 } }'),
        layer("prelu_shared", "PReLU", "bn_alone", "prelu_shared",
              'prelu_param { channel_shared: true filler { type: "constant" value: -0.3 } }'),
        layer("lrn_across", "LRN", "data", "lrn_across",
              "lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 }"),
        layer("lrn_within", "LRN", "data", "lrn_within",
              "lrn_param { local_size: 3 alpha: 0.7 beta: 0.6 norm_region: WITHIN_CHANNEL }"),
        layer("mvn", "MVN", "data", "mvn"),
        layer("mvn_across", "MVN", "data", "mvn_across",
              "mvn_param { across_channels: true normalize_variance: false }"),
        layer("scale_axis0", "Scale", "data", "scale_axis0",
              'scale_param { axis: 0 num_axes: 2 filler { type: "gaussian" std: 1 } }'),
        layer("bias", "Bias", "data", "bias",
              'bias_param { axis: 2 num_axes: -1 filler { type: "gaussian" std: 1 } }'),
        layer("factor", "Reduction", "data", "factor",
              "reduction_param { axis: 2 operation: MEAN }"),
        layer("scale2", "Scale", ["data", "factor"], "scale2",
              'scale_param { axis: 0 bias_term: true bias_filler { type: "gaussian" } }'),
    ]),
    # element-wise: Eltwise with coefficients, PROD, MAX; the neuron layers
    "elementwise": _input("2x3x4x5") + _input("2x3x4x5", "data2") + "".join([
        layer("eltsum", "Eltwise", ["data", "data2"], "eltsum",
              "eltwise_param { operation: SUM coeff: 0.5 coeff: -2 }"),
        layer("eltprod", "Eltwise", ["data", "data2", "eltsum"], "eltprod",
              "eltwise_param { operation: PROD }"),
        layer("eltmax", "Eltwise", ["data", "data2"], "eltmax", "eltwise_param { operation: MAX }"),
        layer("leaky", "ReLU", "data", "leaky", "relu_param { negative_slope: 0.1 }"),
        layer("relu_inplace", "ReLU", "leaky", "leaky"),
        layer("elu", "ELU", "data", "elu", "elu_param { alpha: 0.7 }"),
        layer("sigmoid", "Sigmoid", "data", "sigmoid"),
        layer("tanh", "TanH", "data", "tanh"),
        layer("absval", "AbsVal", "data", "absval"),
        layer("bnll", "BNLL", "data", "bnll"),
        layer("power", "Power", "absval", "power",
              "power_param { power: 1.5 scale: 2 shift: 0.5 }"),
        layer("square", "Power", "data", "square", "power_param { power: 2 }"),
        layer("exp", "Exp", "data", "exp", "exp_param { base: 2 scale: 0.5 shift: 0.1 }"),
        layer("exp_e", "Exp", "data", "exp_e"),
        layer("log", "Log", "power", "log", "log_param { base: 10 scale: 3 shift: 1 }"),
        layer("threshold", "Threshold", "data", "threshold", "threshold_param { threshold: 0.2 }"),
        layer("clip", "Clip", "data", "clip", "clip_param { min: -0.5 max: 0.7 }"),
        layer("swish", "Swish", "data", "swish", "swish_param { beta: 1.5 }"),
        layer("dropout", "Dropout", "data", "dropout"),
    ]),
    # moving values around
    "shape": _input("2x6x5x4") + "".join([
        layer("slice", "Slice", "data", ["s1", "s2", "s3"],
              "slice_param { axis: 1 slice_point: 1 slice_point: 4 }"),
        layer("slice_eq", "Slice", "data", ["e1", "e2"], "slice_param { slice_dim: 1 }"),
        layer("small", "Pooling", "data", "small", "pooling_param { kernel_size: 2 stride: 2 }"),
        layer("concat", "Concat", ["s3", "s1", "s2"], "concat", "concat_param { axis: 1 }"),
        layer("concat_dim", "Concat", ["e1", "e2"], "concat_dim", "concat_param { concat_dim: 3 }"),
        layer("split", "Split", "concat", ["c1", "c2"]),
        layer("crop", "Crop", ["c1", "s2"], "crop",
              "crop_param { axis: 1 offset: 2 offset: 0 offset: 0 }"),
        layer("crop_hw", "Crop", ["c2", "small"], "crop_hw",
              "crop_param { axis: 2 offset: 1 offset: 2 }"),
        layer("reshape", "Reshape", "data", "reshape",
              "reshape_param { shape { dim: 0 dim: -1 dim: 2 } }"),
        layer("reshape_axes", "Reshape", "data", "reshape_axes",
              "reshape_param { shape { dim: 3 dim: 2 } axis: 1 num_axes: 1 }"),
        layer("flatten", "Flatten", "data", "flatten"),
        layer("flatten_axes", "Flatten", "data", "flatten_axes",
              "flatten_param { axis: 1 end_axis: 2 }"),
        layer("softmax", "Softmax", "data", "softmax"),
        layer("softmax_axis", "Softmax", "data", "softmax_axis", "softmax_param { axis: 2 }"),
        layer("tile", "Tile", "s1", "tile", "tile_param { axis: 2 tiles: 3 }"),
        layer("argmax", "ArgMax", "data", "argmax", "argmax_param { axis: 1 }"),
        layer("argmax_top", "ArgMax", "data", "argmax_top",
              "argmax_param { top_k: 3 out_max_val: true }"),
        layer("argmax_vals", "ArgMax", "data", "argmax_vals",
              "argmax_param { axis: 2 top_k: 2 out_max_val: true }"),
        layer("reduce_sumsq", "Reduction", "data", "reduce_sumsq",
              "reduction_param { operation: SUMSQ axis: 1 coeff: 0.5 }"),
        layer("reduce_asum", "Reduction", "data", "reduce_asum",
              "reduction_param { operation: ASUM axis: 2 }"),
        layer("reduce_all", "Reduction", "data", "reduce_all"),
        layer("ip", "InnerProduct", "data", "ip",
              f"inner_product_param {{ num_output: 7 {G} }}"),
        layer("ip_axis", "InnerProduct", "data", "ip_axis",
              f"inner_product_param {{ num_output: 3 axis: 2 transpose: true {G} }}"),
        layer("silence", "Silence", "e2", []),
    ]),
}

# word indices (stored as floats, 0..9) through an embedding, plus a learned Parameter blob
NETS["embed"] = _input("2x5") + "".join([
    layer("embed", "Embed", "data", "embed",
          f"embed_param {{ num_output: 4 input_dim: 10 {G} }}"),
    layer("learned", "Parameter", [], "learned", "parameter_param { shape { dim: 2 dim: 5 "
                                                  "dim: 4 } }"),
    layer("sum", "Eltwise", ["embed", "learned"], "sum"),
])
INTEGER_INPUTS = {"embed": 10}  # nets whose input values are indices below this

# nearest-neighbour upsampling by 2 as BVLC Caffe can express it: a per-channel
# deconvolution with a 2x2 kernel of ones; the real-Caffe reference for the forks' Upsample
NETS["deconv_upsample"] = _input("1x4x5x6") + layer(
    "up", "Deconvolution", "data", "up",
    'convolution_param { num_output: 4 group: 4 kernel_size: 2 stride: 2 bias_term: false '
    'weight_filler { type: "constant" value: 1 } }')

# a training definition (data layers per phase, loss and accuracy) and the deploy net
# with the same layers, whose caffemodel serves both
NETS["deploy"] = _input("1x3x8x8") + "".join([
    layer("conv1", "Convolution", "data", "conv1",
          f"convolution_param {{ num_output: 4 kernel_size: 3 {G} }}"),
    layer("relu1", "ReLU", "conv1", "conv1"),
    layer("fc", "InnerProduct", "conv1", "fc", f"inner_product_param {{ num_output: 5 {G} }}"),
])
TRAIN_VAL = textwrap.dedent("""    name: "train_val"
    layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
      transform_param { mirror: true crop_size: 8 mean_value: 104 mean_value: 117
        mean_value: 123 scale: 0.017 }
      data_param { source: "train_lmdb" batch_size: 64 backend: LMDB } }
    layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
      transform_param { crop_size: 8 mean_value: 104 mean_value: 117 mean_value: 123
        scale: 0.017 }
      data_param { source: "val_lmdb" batch_size: 50 backend: LMDB } }
    layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
      param { lr_mult: 1 } param { lr_mult: 2 }
      convolution_param { num_output: 4 kernel_size: 3 } }
    layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
    layer { name: "drop1" type: "Dropout" bottom: "conv1" top: "conv1"
      include { phase: TRAIN } }
    layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc"
      inner_product_param { num_output: 5 } }
    layer { name: "accuracy" type: "Accuracy" bottom: "fc" bottom: "label" top: "accuracy"
      include { phase: TEST } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
    """)

# the forks' layers (BVLC Caffe cannot parse them; OpenCV's importer runs them)
FORK_NET = _input("1x4x5x6") + "".join([
    layer("permute", "Permute", "data", "permute",
          "permute_param { order: 0 order: 2 order: 3 order: 1 }"),
    layer("norm", "Normalize", "data", "norm",
          "norm_param { across_spatial: false channel_shared: false }"),
    layer("norm_all", "Normalize", "data", "norm_all",
          "norm_param { across_spatial: true channel_shared: true eps: 0.001 }"),
    layer("interp", "Interp", "data", "interp", "interp_param { zoom_factor: 2 }"),
    layer("interp_hw", "Interp", "data", "interp_hw", "interp_param { height: 9 width: 4 }"),
    layer("relu6", "ReLU6", "data", "relu6"),
    layer("shuffle", "ShuffleChannel", "data", "shuffle", "shuffle_channel_param { group: 2 }"),
    layer("dw", "ConvolutionDepthwise", "data", "dw",
          "convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 2 }"),
])
FORK_BLOBS = {"norm": [(4,)], "norm_all": [(1,)], "dw": [(4, 1, 3, 3), (4,)]}
UPSAMPLE_NET = _input("1x4x5x6") + layer("up", "Upsample", "data", "up",
                                         "upsample_param { scale: 2 }")


def write_caffemodel(prototxt: str, path: str, blob_shapes: dict, seed: int = 0) -> None:
    """A caffemodel holding random blobs of the given shapes, serialized by protobuf (for
    nets real Caffe cannot build: the forks' layers)."""
    import numpy as np
    from google.protobuf import text_format

    from migrate.core.formats import caffe_pb2

    net = caffe_pb2.NetParameter()
    text_format.Parse(prototxt, net, allow_unknown_field=True)  # a plugin's fields
    rng = np.random.default_rng(seed)
    for item in net.layer:
        for shape in blob_shapes.get(item.name, []):
            blob = item.blobs.add()
            blob.shape.dim.extend(shape)
            blob.data.extend(rng.uniform(-1, 1, shape).astype(np.float32).ravel().tolist())
    with open(path, "wb") as fh:
        fh.write(net.SerializeToString())


# V1 (`layers`, enum types, blobs_lr, input_dim) and V0 (`layers { layer {...} }`, a
# padding layer folded into the next convolution): Caffe upgrades both on load
OLD_FORMATS: dict[str, str] = {
    "v1": textwrap.dedent(f"""\
        name: "v1"
        input: "data"
        input_dim: 1 input_dim: 3 input_dim: 9 input_dim: 9
        layers {{ name: "conv" type: CONVOLUTION bottom: "data" top: "conv" blobs_lr: 1
          blobs_lr: 2 convolution_param {{ num_output: 4 kernel_size: 3 {G} }} }}
        layers {{ name: "relu" type: RELU bottom: "conv" top: "conv" }}
        layers {{ name: "pool" type: POOLING bottom: "conv" top: "pool"
          pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
        layers {{ name: "lrn" type: LRN bottom: "pool" top: "lrn" lrn_param {{ local_size: 3 }} }}
        layers {{ name: "fc" type: INNER_PRODUCT bottom: "lrn" top: "fc"
          inner_product_param {{ num_output: 5 {G} }} }}
        layers {{ name: "prob" type: SOFTMAX bottom: "fc" top: "prob" }}
        """),
    "v0": textwrap.dedent("""\
        name: "v0"
        input: "data"
        input_dim: 1 input_dim: 2 input_dim: 8 input_dim: 8
        layers { layer { name: "pad1" type: "padding" pad: 1 } bottom: "data" top: "pad1" }
        layers { layer { name: "conv1" type: "conv" num_output: 3 kernelsize: 3 stride: 1
          weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" } }
          bottom: "pad1" top: "conv1" }
        layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
        layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 3 stride: 2 }
          bottom: "conv1" top: "pool1" }
        layers { layer { name: "fc" type: "innerproduct" num_output: 4
          weight_filler { type: "gaussian" std: 0.3 } } bottom: "pool1" top: "fc" }
        """),
}

ALL_NETS = {**NETS, **OLD_FORMATS}

# Runs inside the Caffe side runtime (Python 3.9): builds each net (its fillers run),
# gives blobs no filler touched seeded random values, saves the caffemodel.
_MAKE_WEIGHTS = r"""
import json, sys
import numpy as np
import caffe
caffe.set_mode_cpu()
caffe.set_random_seed(7)
rs = np.random.RandomState(7)
for job in json.load(open(sys.argv[1])):
    net = caffe.Net(job["net"], caffe.TEST)
    for name, blobs in net.params.items():
        kind = net.layer_dict[name].type
        for k, blob in enumerate(blobs):
            if kind == "BatchNorm":
                # running sums and their scale factor (Caffe divides both by the third)
                values = [rs.normal(0, 2, blob.data.shape), rs.uniform(1, 4, blob.data.shape),
                          np.full(blob.data.shape, 0.5)][k]
                blob.data[...] = values
            elif not np.any(blob.data):
                blob.data[...] = rs.normal(0, 1, blob.data.shape)
    net.save(job["weights"])
print("ok")
"""


def make_weights(python: str, folder: str, nets: dict[str, str]) -> dict[str, dict[str, str]]:
    """Write each prototxt and the caffemodel real Caffe makes for it: {name: files}."""
    files = {}
    for name, text in nets.items():
        net = os.path.join(folder, f"{name}.prototxt")
        with open(net, "w") as fh:
            fh.write(text)
        files[name] = {"net": net, "weights": os.path.join(folder, f"{name}.caffemodel")}
    job = os.path.join(folder, "make_weights.json")
    with open(job, "w") as fh:
        json.dump(list(files.values()), fh)
    script = os.path.join(folder, "make_weights.py")
    with open(script, "w") as fh:
        fh.write(_MAKE_WEIGHTS)
    result = subprocess.run([python, script, job], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"real Caffe could not build the test nets:\n{result.stderr[-3000:]}")
    return files
