"""Old Caffe definitions brought to the current format, the way Caffe's own
upgrade_proto.cpp does it (V0 `layers { layer {...} }`, V1 `layers` with enum types,
data-transformation fields, `input`/`input_dim` fields), then the TEST-phase filter of
Net::FilterNet. Only what inference needs is carried over; the training-only fields
(learning rates, fillers, solver settings) are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from migrate.core.errors import CorruptFileError, UnsupportedError, UsageError
from migrate.core.formats import caffe_pb2

V1 = caffe_pb2.V1LayerParameter

# V0 type names -> V1 enum (UpgradeV0LayerType)
_V0_TYPES = {
    "accuracy": V1.ACCURACY, "bnll": V1.BNLL, "concat": V1.CONCAT, "conv": V1.CONVOLUTION,
    "data": V1.DATA, "dropout": V1.DROPOUT, "euclidean_loss": V1.EUCLIDEAN_LOSS,
    "flatten": V1.FLATTEN, "hdf5_data": V1.HDF5_DATA, "hdf5_output": V1.HDF5_OUTPUT,
    "im2col": V1.IM2COL, "images": V1.IMAGE_DATA, "infogain_loss": V1.INFOGAIN_LOSS,
    "innerproduct": V1.INNER_PRODUCT, "lrn": V1.LRN,
    "multinomial_logistic_loss": V1.MULTINOMIAL_LOGISTIC_LOSS, "pool": V1.POOLING,
    "relu": V1.RELU, "sigmoid": V1.SIGMOID, "softmax": V1.SOFTMAX,
    "softmax_loss": V1.SOFTMAX_LOSS, "split": V1.SPLIT, "tanh": V1.TANH,
    "window_data": V1.WINDOW_DATA,
}

# V1 enum -> current type string (UpgradeV1LayerType)
_V1_TYPES = {
    V1.NONE: "", V1.ABSVAL: "AbsVal", V1.ACCURACY: "Accuracy", V1.ARGMAX: "ArgMax",
    V1.BNLL: "BNLL", V1.CONCAT: "Concat", V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    V1.CONVOLUTION: "Convolution", V1.DECONVOLUTION: "Deconvolution", V1.DATA: "Data",
    V1.DROPOUT: "Dropout", V1.DUMMY_DATA: "DummyData", V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    V1.ELTWISE: "Eltwise", V1.EXP: "Exp", V1.FLATTEN: "Flatten", V1.HDF5_DATA: "HDF5Data",
    V1.HDF5_OUTPUT: "HDF5Output", V1.HINGE_LOSS: "HingeLoss", V1.IM2COL: "Im2col",
    V1.IMAGE_DATA: "ImageData", V1.INFOGAIN_LOSS: "InfogainLoss",
    V1.INNER_PRODUCT: "InnerProduct", V1.LRN: "LRN", V1.MEMORY_DATA: "MemoryData",
    V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss", V1.MVN: "MVN",
    V1.POOLING: "Pooling", V1.POWER: "Power", V1.RELU: "ReLU", V1.SIGMOID: "Sigmoid",
    V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss", V1.SILENCE: "Silence",
    V1.SOFTMAX: "Softmax", V1.SOFTMAX_LOSS: "SoftmaxWithLoss", V1.SPLIT: "Split",
    V1.SLICE: "Slice", V1.TANH: "TanH", V1.WINDOW_DATA: "WindowData",
    V1.THRESHOLD: "Threshold",
}

# parameter messages a V1 layer may carry, copied as they are (same message types)
_V1_PARAMS = (
    "accuracy_param", "argmax_param", "concat_param", "contrastive_loss_param",
    "convolution_param", "data_param", "dropout_param", "dummy_data_param", "eltwise_param",
    "exp_param", "hdf5_data_param", "hdf5_output_param", "hinge_loss_param",
    "image_data_param", "infogain_loss_param", "inner_product_param", "lrn_param",
    "memory_data_param", "mvn_param", "pooling_param", "power_param", "relu_param",
    "sigmoid_param", "softmax_param", "slice_param", "tanh_param", "threshold_param",
    "window_data_param", "transform_param", "loss_param",
)


def upgrade(net: caffe_pb2.NetParameter) -> tuple[list[str], list[int]]:
    """Upgrade `net` in place to the current format. Returns notes, and for each
    resulting layer the index of the layer it came from in the file (-1: made here)."""
    notes: list[str] = []
    origin = list(range(len(net.layers) if net.layers else len(net.layer)))
    if net.layer and net.layers:
        raise CorruptFileError("the definition has both `layer` and `layers` fields: Caffe "
                               "refuses such a file")
    if any(v1.HasField("layer") for v1 in net.layers):
        origin = _v0_to_v1(net, origin)
        notes.append("V0 layer format upgraded")
    if net.layers:
        _data_transformation(net)
        _v1_to_v2(net)
        notes.append("V1 layer format (`layers`, enum types) upgraded")
    return notes, origin


def _v0_to_v1(net: caffe_pb2.NetParameter, origin: list[int]) -> list[int]:
    """V0 nets: padding layers folded into the convolution/pooling after them
    (UpgradeV0PaddingLayers), then each V0 layer's fields moved to V1 parameters."""
    last_top: dict[str, int] = {name: -1 for name in net.input}
    kept: list[tuple[int, caffe_pb2.V1LayerParameter]] = []
    originals = list(net.layers)
    for i, connection in enumerate(originals):
        v0 = connection.layer
        current = None
        if v0.type != "padding":
            current = caffe_pb2.V1LayerParameter()
            current.CopyFrom(connection)
            kept.append((origin[i], current))
        for j, blob in enumerate(connection.bottom):
            if blob not in last_top:
                raise CorruptFileError(f"V0 layer '{v0.name}' takes blob '{blob}', which no "
                                       "earlier layer produces")
            source = last_top[blob]
            if source < 0 or originals[source].layer.type != "padding":
                continue
            pad_layer = originals[source]
            if v0.type not in ("conv", "pool") or len(connection.bottom) != 1 or \
                    len(pad_layer.bottom) != 1 or len(pad_layer.top) != 1:
                raise CorruptFileError(f"V0 padding layer '{pad_layer.layer.name}' feeds "
                                       f"'{v0.name}' ({v0.type}): Caffe only folds padding "
                                       "into a single-input convolution or pooling")
            if current is not None:
                current.layer.pad = pad_layer.layer.pad
                current.bottom[j] = pad_layer.bottom[0]
        for blob in connection.top:
            last_top[blob] = i
    del net.layers[:]
    new_origin = []
    for index, connection in kept:
        net.layers.add().CopyFrom(_v0_layer(connection))
        new_origin.append(index)
    return new_origin


def _v0_layer(connection: caffe_pb2.V1LayerParameter) -> caffe_pb2.V1LayerParameter:
    """UpgradeV0LayerParameter, for the fields inference uses."""
    v0 = connection.layer
    out = caffe_pb2.V1LayerParameter()
    out.bottom.extend(connection.bottom)
    out.top.extend(connection.top)
    if v0.HasField("name"):
        out.name = v0.name
    kind = v0.type
    if v0.HasField("type"):
        if kind not in _V0_TYPES:
            raise UnsupportedError(f"V0 layer '{v0.name}' has the unknown type '{kind}' "
                                   "(Caffe's upgrade refuses it too)")
        out.type = _V0_TYPES[kind]
    out.blobs.extend(v0.blobs)

    def needs(types: tuple[str, ...], what: str) -> None:
        if kind not in types:
            raise CorruptFileError(f"V0 layer '{v0.name}' ({kind}) has the field {what}, "
                                   "which that type does not take")

    if v0.HasField("num_output"):
        needs(("conv", "innerproduct"), "num_output")
        target = out.convolution_param if kind == "conv" else out.inner_product_param
        target.num_output = v0.num_output
    if v0.HasField("biasterm"):
        needs(("conv", "innerproduct"), "biasterm")
        target = out.convolution_param if kind == "conv" else out.inner_product_param
        target.bias_term = v0.biasterm
    if v0.HasField("pad"):
        needs(("conv", "pool"), "pad")
        if kind == "conv":
            out.convolution_param.pad.append(v0.pad)
        else:
            out.pooling_param.pad = v0.pad
    if v0.HasField("kernelsize"):
        needs(("conv", "pool"), "kernelsize")
        if kind == "conv":
            out.convolution_param.kernel_size.append(v0.kernelsize)
        else:
            out.pooling_param.kernel_size = v0.kernelsize
    if v0.HasField("group"):
        needs(("conv",), "group")
        out.convolution_param.group = v0.group
    if v0.HasField("stride"):
        needs(("conv", "pool"), "stride")
        if kind == "conv":
            out.convolution_param.stride.append(v0.stride)
        else:
            out.pooling_param.stride = v0.stride
    if v0.HasField("pool"):
        needs(("pool",), "pool")
        out.pooling_param.pool = int(v0.pool)  # the same numbering (MAX, AVE, STOCHASTIC)
    if v0.HasField("dropout_ratio"):
        needs(("dropout",), "dropout_ratio")
        out.dropout_param.dropout_ratio = v0.dropout_ratio
    for name in ("local_size", "alpha", "beta", "k"):
        if v0.HasField(name):
            needs(("lrn",), name)
            setattr(out.lrn_param, name, getattr(v0, name))
    if v0.HasField("concat_dim"):
        needs(("concat",), "concat_dim")
        out.concat_param.concat_dim = v0.concat_dim
    # data layers: what the input description needs
    if v0.HasField("scale"):
        out.transform_param.scale = v0.scale
    if v0.HasField("meanfile"):
        out.transform_param.mean_file = v0.meanfile
    if v0.HasField("cropsize"):
        out.transform_param.crop_size = v0.cropsize
    if v0.HasField("mirror"):
        out.transform_param.mirror = v0.mirror
    if v0.HasField("batchsize") and kind == "data":
        out.data_param.batch_size = v0.batchsize
    return out


def _data_transformation(net: caffe_pb2.NetParameter) -> None:
    """UpgradeNetDataTransformation: the data layers' scale/mean_file/crop_size/mirror
    move into transform_param."""
    for layer in net.layers:
        source = {V1.DATA: "data_param", V1.IMAGE_DATA: "image_data_param",
                  V1.WINDOW_DATA: "window_data_param"}.get(layer.type)
        if source is None or not layer.HasField(source):
            continue
        param = getattr(layer, source)
        for name in ("scale", "mean_file", "crop_size", "mirror"):
            if param.HasField(name):
                setattr(layer.transform_param, name, getattr(param, name))
                param.ClearField(name)


def _v1_to_v2(net: caffe_pb2.NetParameter) -> None:
    """UpgradeV1Net / UpgradeV1LayerParameter."""
    for v1 in net.layers:
        layer = net.layer.add()
        layer.bottom.extend(v1.bottom)
        layer.top.extend(v1.top)
        if v1.HasField("name"):
            layer.name = v1.name
        layer.include.extend(v1.include)
        layer.exclude.extend(v1.exclude)
        if v1.HasField("type"):
            if v1.type not in _V1_TYPES:
                raise UnsupportedError(f"V1 layer '{v1.name}' has the unknown type "
                                       f"{int(v1.type)}")
            layer.type = _V1_TYPES[v1.type]
        layer.blobs.extend(v1.blobs)
        layer.loss_weight.extend(v1.loss_weight)
        for name in _V1_PARAMS:
            if v1.HasField(name):
                getattr(layer, name).CopyFrom(getattr(v1, name))
        if v1.HasField("layer"):
            raise CorruptFileError(f"V1 layer '{v1.name}' also holds a V0 layer")
    del net.layers[:]


# -- inputs and phase ---------------------------------------------------------------------

def input_layer(net: caffe_pb2.NetParameter,
                shapes: Sequence[Sequence[int]] | None) -> caffe_pb2.LayerParameter | None:
    """UpgradeNetInput: the net's `input` fields as an Input layer named "input" (Caffe
    puts it first); None when the net has no input fields."""
    if not net.input:
        return None
    names = list(net.input)
    layer = caffe_pb2.LayerParameter(name="input", type="Input")
    layer.top.extend(names)
    if net.input_shape:
        if len(net.input_shape) != len(names):
            raise CorruptFileError(f"{len(names)} input(s) but {len(net.input_shape)} "
                                   "input_shape(s)")
        for shape in net.input_shape:
            layer.input_param.shape.add().CopyFrom(shape)
    elif net.input_dim:
        if len(net.input_dim) != 4 * len(names):
            raise CorruptFileError(f"{len(names)} input(s) need {4 * len(names)} input_dim "
                                   f"values (4 each); the net has {len(net.input_dim)}")
        for k in range(len(names)):
            layer.input_param.shape.add().dim.extend(net.input_dim[4 * k:4 * k + 4])
    elif shapes is None:
        raise UsageError(f"the net's input(s) {', '.join(names)} declare no shape "
                         "(input_shape or input_dim): pass --input-shape")
    return layer


def _meets(state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule) -> bool:
    """Net::StateMeetsRule."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(stage not in state.stage for stage in rule.stage):
        return False
    return not any(stage in state.stage for stage in rule.not_stage)


def test_phase_layers(net: caffe_pb2.NetParameter) -> list[int]:
    """Net::FilterNet in the TEST phase at level 0 (what pycaffe's Net(file, TEST) runs),
    with the stages the definition's own `state` names: the indices of kept layers."""
    state = caffe_pb2.NetState()
    state.CopyFrom(net.state)
    state.phase = caffe_pb2.TEST
    state.level = 0
    kept = []
    for i, layer in enumerate(net.layer):
        if layer.include and layer.exclude:
            raise CorruptFileError(f"layer '{layer.name}' has both include and exclude rules "
                                   "(Caffe refuses that)")
        included = not layer.include
        if included and any(_meets(state, rule) for rule in layer.exclude):
            included = False
        if not included and any(_meets(state, rule) for rule in layer.include):
            included = True
        if included:
            kept.append(i)
    return kept
