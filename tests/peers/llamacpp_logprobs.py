#!/usr/bin/env python3
"""llama.cpp's teacher-forced log-probabilities, for tests/lora.rs.

Loads a GGUF model (optionally with a GGUF LoRA adapter through llama-cpp-python's
`lora_path`, i.e. llama.cpp's own adapter loader), evaluates the given token ids as one batch
and prints, as one JSON object, the log-probability of every token after the first given all
the tokens before it:

    {"logprobs": [lp(ids[1] | ids[:1]), ..., lp(ids[n-1] | ids[:n-1])], "lora": bool}

Usage: llamacpp_logprobs.py MODEL.gguf '[ids...]' [--lora ADAPTER.gguf] [--scale S]
Needs llama-cpp-python and numpy (scripts/peer-venv.sh installs both).
"""

import argparse
import json
import sys

import numpy as np
from llama_cpp import Llama


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("ids")
    ap.add_argument("--lora")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    ids = json.loads(a.ids)
    kwargs = {}
    if a.lora:
        kwargs = {"lora_path": a.lora, "lora_scale": a.scale}
    llm = Llama(
        model_path=a.model,
        n_ctx=max(64, len(ids) + 8),
        n_batch=max(64, len(ids) + 8),
        n_threads=a.threads,
        logits_all=True,
        verbose=False,
        **kwargs,
    )
    llm.eval(ids)
    scores = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
    m = scores.max(axis=1, keepdims=True)
    logsm = scores - m - np.log(np.exp(scores - m).sum(axis=1, keepdims=True))
    out = [float(logsm[i, ids[i + 1]]) for i in range(len(ids) - 1)]
    json.dump({"logprobs": out, "lora": bool(a.lora)}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
