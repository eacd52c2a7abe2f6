#!/usr/bin/env python3
"""onnxruntime side of the Faces benchmark (benches/faces.sh runs it beside `atelier bench faces`).

Builds an ONNX graph of the DCGAN generator with the `onnx` package from the same checkpoint
Atelier loads (ConvTranspose -> BatchNormalization -> Relu, ..., Tanh; opset 17; the batch
dimension is dynamic), checks it against the float64 reference fixture, then times in this
process, with the same definitions as Atelier's src/bench/faces.rs:

  single_ms            median wall time of one session.run on a [1,100,1,1] latent
                       (after 10 warm-up runs)
  batch_ms             median wall time of one session.run on [B,100,1,1] (after 3 warm-ups)
  batch_samples_per_s  B / batch_ms

onnxruntime applies its own graph optimisations (ORT_ENABLE_ALL), e.g. folding the
BatchNormalization into the ConvTranspose weights, as Atelier does at load.

The checkpoint is read without torch: a restricted pickle.Unpickler that, like Atelier's,
only resolves torch storages, _rebuild_tensor_v2 and OrderedDict.

Needs numpy, onnx and onnxruntime (benches/faces.sh installs them into
~/.cache/atelier-bench/venv-faces).
"""

import argparse
import collections
import io
import json
import os
import pickle
import statistics
import sys
import time
import zipfile

import numpy as np

STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}

# (conv index, bn index or None, c_in, c_out, stride, padding)
ARCH = [(0, 1, 100, 512, 1, 0), (3, 4, 512, 256, 2, 1), (6, 7, 256, 128, 2, 1),
        (9, 10, 128, 64, 2, 1), (12, None, 64, 3, 2, 1)]


def rebuild_tensor_v2(storage, offset, size, stride, *_):
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride))
    return np.array(view)


class StorageType:
    def __init__(self, name):
        self.dtype = STORAGE_DTYPES[name]


def load_state_dict(path, key="netG_state_dict"):
    zf = zipfile.ZipFile(path)
    pkl = min((n for n in zf.namelist() if n.endswith("data.pkl")), key=len)
    prefix = pkl[: -len("data.pkl")]

    class Restricted(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return rebuild_tensor_v2
            if module == "torch" and name in STORAGE_DTYPES:
                return StorageType(name)
            raise pickle.UnpicklingError(f"refused global {module}.{name}")

        def persistent_load(self, pid):
            _, stype, key, _location, _numel = pid
            return np.frombuffer(zf.read(f"{prefix}data/{key}"), dtype=stype.dtype)

    obj = Restricted(io.BytesIO(zf.read(pkl))).load()
    return obj.get(key, obj) if isinstance(obj, dict) else obj


def build_model(sd):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    x = "z"
    for conv, bn, c_in, c_out, stride, pad in ARCH:
        w = f"main.{conv}.weight"
        inits.append(numpy_helper.from_array(sd[w].astype(np.float32), w))
        y = f"convT{conv}"
        nodes.append(helper.make_node("ConvTranspose", [x, w], [y], kernel_shape=[4, 4],
                                      strides=[stride, stride], pads=[pad] * 4))
        if bn is not None:
            names = [f"main.{bn}.{p}" for p in ("weight", "bias", "running_mean", "running_var")]
            for n in names:
                inits.append(numpy_helper.from_array(sd[n].astype(np.float32), n))
            nodes.append(helper.make_node("BatchNormalization", [y] + names, [f"bn{bn}"], epsilon=1e-5))
            nodes.append(helper.make_node("Relu", [f"bn{bn}"], [f"relu{bn}"]))
            x = f"relu{bn}"
        else:
            nodes.append(helper.make_node("Tanh", [y], ["image"]))
    graph = helper.make_graph(
        nodes, "dcgan_generator",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 100, 1, 1])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 64, 64])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the PyTorch zip checkpoint (weights.tar)")
    ap.add_argument("--fixtures", default="tests/fixtures/dcgan", help="z_1.f32 / out_1.f32 to check the graph")
    ap.add_argument("--single", type=int, default=200)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--save-onnx", help="also write the graph to this file")
    args = ap.parse_args()

    import onnxruntime as ort

    t0 = time.perf_counter()
    sd = load_state_dict(args.model)
    onnx_bytes = build_model(sd)
    if args.save_onnx:
        with open(args.save_onnx, "wb") as f:
            f.write(onnx_bytes)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0

    max_diff = None
    zf, of = os.path.join(args.fixtures, "z_1.f32"), os.path.join(args.fixtures, "out_1.f32")
    if os.path.exists(zf) and os.path.exists(of):
        z = np.fromfile(zf, dtype="<f4").reshape(1, 100, 1, 1)
        ref = np.fromfile(of, dtype="<f4").reshape(1, 3, 64, 64)
        max_diff = float(np.abs(sess.run(None, {"z": z})[0] - ref).max())
        if max_diff > 1e-4:
            sys.exit(f"error: the ONNX graph differs from the reference by {max_diff}")

    rng = np.random.default_rng(0)
    z1 = rng.standard_normal((1, 100, 1, 1)).astype(np.float32)
    zb = rng.standard_normal((args.batch, 100, 1, 1)).astype(np.float32)

    def timed(z, warm, runs):
        for _ in range(warm):
            sess.run(None, {"z": z})
        ms = []
        for _ in range(runs):
            t = time.perf_counter()
            sess.run(None, {"z": z})
            ms.append((time.perf_counter() - t) * 1000)
        return ms

    single = timed(z1, 10, args.single)
    batch = timed(zb, 3, args.batches)
    q = statistics.quantiles(single, n=10)
    print(json.dumps({
        "bench": "faces",
        "engine": "onnxruntime",
        "version": ort.__version__,
        "threads": args.threads,
        "load_s": load_s,
        "single_ms": statistics.median(single),
        "single_ms_p10": q[0],
        "single_ms_p90": q[-1],
        "batch": args.batch,
        "batch_ms": statistics.median(batch),
        "batch_samples_per_s": args.batch / (statistics.median(batch) / 1000),
        "reference_max_abs_diff": max_diff,
    }))


if __name__ == "__main__":
    main()
