# ruff: noqa: UP031  (runs in the Python 3.9 Caffe2 runtime, in its own style)
"""Make Caffe2 NetDef pairs with real Caffe2's own tools, and record what real Caffe2
computes on them. Runs INSIDE the Caffe2 side runtime (Python 3.9):

    caffe2-python tests/caffe2_pairs.py OUT_DIR SHARED_DIR [CAFFE_PB2_DIR]

For each pair it writes NAME_init_net.pb, NAME_predict_net.pb, NAME_io.npz (the input
and Caffe2's outputs) and prints one JSON line {"name", "ok", "error"}:
- caffe_translator pairs of the real Caffe models (when CAFFE_PB2_DIR holds a
  `caffe/proto/caffe_pb2.py`, as the translator imports it), made as its command line
  makes them (TranslateModel + ConvertTensorProtosToInitNet);
- brew-built nets exported with mobile_exporter, NCHW and NHWC;
- the two real SqueezeNet predict nets of ../shared/fixtures/real/caffe2 (their init nets
  were never published: one is made here with seeded GivenTensorFill values, shapes from
  SqueezeNet 1.1's published layer sizes).
"""

import json
import os
import sys

os.environ.setdefault("GLOG_minloglevel", "2")

import numpy as np  # noqa: E402
from caffe2.proto import caffe2_pb2  # noqa: E402
from caffe2.python import brew, model_helper, workspace  # noqa: E402
from caffe2.python.predictor import mobile_exporter  # noqa: E402

OUT, SHARED = sys.argv[1], sys.argv[2]
CAFFE_PB2 = sys.argv[3] if len(sys.argv) > 3 else None


def save(name, init_net, predict_net, inputs):
    for net, role in ((init_net, "init_net"), (predict_net, "predict_net")):
        with open(os.path.join(OUT, "%s_%s.pb" % (name, role)), "wb") as fh:
            fh.write(net.SerializeToString())
    predictor = workspace.Predictor(init_net.SerializeToString(),
                                    predict_net.SerializeToString())
    outputs = predictor.run(inputs)
    np.savez(os.path.join(OUT, name + "_io.npz"),
             **dict([("in%d" % i, a) for i, a in enumerate(inputs)]
                    + [("out%d" % i, np.asarray(a)) for i, a in enumerate(outputs)]))


def report(name, fn):
    try:
        fn()
        line = {"name": name, "ok": True}
    except Exception as exc:  # reported, the next pair goes on
        first = (str(exc).strip().splitlines() or [""])[0]
        line = {"name": name, "ok": False, "error": "%s: %s" % (type(exc).__name__, first)}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def translated(name, prototxt, caffemodel, input_dims):
    def make():
        from caffe.proto import caffe_pb2
        from caffe2.python import caffe_translator
        from google.protobuf import text_format

        net = caffe_pb2.NetParameter()
        text_format.Merge(open(prototxt).read(), net)
        weights = caffe_pb2.NetParameter()
        weights.ParseFromString(open(caffemodel, "rb").read())
        predict, params = caffe_translator.TranslateModel(net, weights, is_test=True,
                                                          input_dims=input_dims)
        data = predict.op[0].input[0]  # as the translator's command line does
        predict.external_input.extend([data] + [p.name for p in params.protos])
        predict.external_output.extend([predict.op[-1].output[0]])
        init = caffe_translator.ConvertTensorProtosToInitNet(params, data)
        x = np.random.RandomState(0).standard_normal([1] + input_dims).astype(np.float32)
        save(name, init, predict, [x])
    report(name, make)


def brew_net(name, order):
    def make():
        workspace.ResetWorkspace()
        m = model_helper.ModelHelper(name=name, arg_scope={"order": order})
        brew.conv(m, "data", "conv1", dim_in=3, dim_out=8, kernel=3, pad=1)
        brew.spatial_bn(m, "conv1", "bn1", 8, epsilon=1e-3, is_test=True)
        brew.relu(m, "bn1", "bn1")
        brew.max_pool(m, "bn1", "pool1", kernel=2, stride=2)
        brew.conv(m, "pool1", "conv2", dim_in=8, dim_out=8, kernel=3, pad=1, group=2)
        brew.average_pool(m, "conv2", "pool2", kernel=2, stride=2)
        brew.fc(m, "pool2", "fc1", dim_in=8 * 4 * 4, dim_out=10)
        brew.softmax(m, "fc1", "prob")
        workspace.RunNetOnce(m.param_init_net)
        rng = np.random.RandomState(1)
        for blob in ("bn1_rm", "bn1_riv", "bn1_s", "bn1_b"):
            value = workspace.FetchBlob(blob)
            workspace.FeedBlob(blob, (rng.rand(*value.shape) + 0.5).astype(np.float32))
        # SpatialBN's running statistics are computed params, not trained ones
        init, predict = mobile_exporter.Export(workspace, m.net,
                                               m.GetParams() + m.GetComputedParams())
        # brew puts the CUDNN engine on Conv/ReLU/pooling: not for a CPU net
        for op in predict.op:
            op.engine = ""
        shape = [1, 3, 16, 16] if order == "NCHW" else [1, 16, 16, 3]
        x = np.random.RandomState(2).standard_normal(shape).astype(np.float32)
        save(name, init, predict, [x])
    report(name, make)


SQUEEZENET_11 = {"conv1": (64, 3, 3), "conv10": (1000, 512, 1)}
for _k, (_s, _e) in enumerate([(16, 64), (16, 64), (32, 128), (32, 128), (48, 192),
                               (48, 192), (64, 256), (64, 256)], start=2):
    _in = {2: 64, 3: 128, 4: 128, 5: 256, 6: 256, 7: 384, 8: 384, 9: 512}[_k]
    SQUEEZENET_11["fire%d/squeeze1x1" % _k] = (_s, _in, 1)
    SQUEEZENET_11["fire%d/expand1x1" % _k] = (_e, _s, 1)
    SQUEEZENET_11["fire%d/expand3x3" % _k] = (_e, _s, 3)


def squeezenet(name, path):
    def make():
        predict = caffe2_pb2.NetDef()
        predict.ParseFromString(open(path, "rb").read())
        init = caffe2_pb2.NetDef()
        rng = np.random.RandomState(3)
        for blob in predict.external_input:
            if blob == "data":
                continue
            layer, kind = blob.rsplit("_", 1)
            out_c, in_c, k = SQUEEZENET_11[layer]
            shape = [out_c, in_c, k, k] if kind == "w" else [out_c]
            values = (rng.standard_normal(shape) * (0.5 / np.sqrt(in_c * k * k))).astype(
                np.float32)
            op = init.op.add(type="GivenTensorFill", output=[blob])
            op.arg.add(name="shape").ints.extend(shape)
            op.arg.add(name="values").floats.extend(values.reshape(-1).tolist())
        x = np.random.RandomState(4).standard_normal([1, 3, 224, 224]).astype(np.float32)
        save(name, init, predict, [x])
    report(name, make)


def main():
    caffe = os.path.join(SHARED, "fixtures", "real", "caffe")
    if CAFFE_PB2:
        sys.path.insert(0, CAFFE_PB2)
        for name, net, weights, dims in (
                ("lenet", "lenet/lenet.prototxt", "lenet/lenet_iter_10000.caffemodel", [1, 28, 28]),
                ("cifar10", "cifar10/cifar10_quick.prototxt",
                 "cifar10/cifar10_quick_iter_5000.caffemodel", [3, 32, 32]),
                ("det1", "mtcnn/det1.prototxt", "mtcnn/det1.caffemodel", [3, 12, 12]),
                ("det2", "mtcnn/det2.prototxt", "mtcnn/det2.caffemodel", [3, 24, 24]),
                ("det3", "mtcnn/det3.prototxt", "mtcnn/det3.caffemodel", [3, 48, 48])):
            translated("translated_" + name, os.path.join(caffe, net), os.path.join(caffe, weights),
                       dims)
    brew_net("brew_nchw", "NCHW")
    brew_net("brew_nhwc", "NHWC")
    real = os.path.join(SHARED, "fixtures", "real", "caffe2")
    squeezenet("squeeze_predict_net", os.path.join(real, "squeeze_predict_net.pb"))
    squeezenet("squeezenet_predict", os.path.join(real, "squeezenet_predict.pb"))


if __name__ == "__main__":
    main()
