#!/usr/bin/env python3
"""llama.cpp side of the Write benchmark (benches/write.sh runs it beside `atelier bench write`).

Measures, in this fresh process, the same things as Atelier's src/bench.rs on the same token
ids: model load time, prompt processing (one batch of the given prompt ids), greedy decode
speed over N tokens, and peak RSS. Prints one JSON object with the same field names as
Atelier's per-model result.

Timings use the same definitions as Atelier's generate():
  prompt_s  eval of the whole prompt, up to the last position's logits being readable
  ttft_ms   start of the prompt eval to the first token chosen (argmax)
  tg_tok_s  (N - 1) / time from the first token chosen to the N-th token chosen; each step is
            one single-token eval plus an argmax over the vocabulary
The end-of-sequence token is not special here (Atelier refuses a run that stops early, so the
two sides always do the same amount of work; the driver compares the greedy tokens).

Needs llama-cpp-python (benches/write.sh installs it into ~/.cache/atelier-bench/venv).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time


def memory_kib(key):
    """A /proc/self/status memory line (e.g. 'VmRSS:') in KiB, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def kib_to_mb(kib):
    return None if kib is None else round(kib * 1024 / 1e6, 1)


def load_prompt_ids(path, model):
    """Reads prompt ids from a JSON array, or from Atelier's JSON (an object with
    "prompt_ids", or {"results": [...]}, or JSON lines of either) for the given model file."""
    with open(path) as f:
        text = f.read().strip()
    docs = []
    try:
        docs.append(json.loads(text))
    except json.JSONDecodeError:
        docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    for doc in docs:
        if isinstance(doc, list):
            return [int(i) for i in doc]
        candidates = doc.get("results", [doc]) if isinstance(doc, dict) else []
        for r in candidates:
            if "prompt_ids" in r and os.path.basename(r.get("model_path", r.get("model", ""))) == os.path.basename(model):
                return [int(i) for i in r["prompt_ids"]]
    sys.exit(f"error: no prompt ids for {os.path.basename(model)} in {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="GGUF file")
    ap.add_argument("--prompt-ids", required=True,
                    help="file with the prompt token ids (JSON array or Atelier's bench JSON)")
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed generations after one load; the first is reported as the cold run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=0, help="context size (0: prompt + decode, rounded up to 256)")
    ap.add_argument("--flash-attn", action="store_true", help="enable flash attention (off by default, as in llama-cpp-python)")
    ap.add_argument("--lora", help="a GGUF LoRA adapter to apply (llama.cpp's lora_path), at scale 1")
    args = ap.parse_args()
    if args.decode_tokens < 2 or args.repeats < 1:
        sys.exit("error: --decode-tokens must be >= 2 and --repeats >= 1")

    prompt = load_prompt_ids(args.prompt_ids, args.model)
    import numpy as np
    import llama_cpp
    from llama_cpp import Llama

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    n_ctx = args.n_ctx or (((len(prompt) + args.decode_tokens) + 255) // 256) * 256

    t0 = time.perf_counter()
    llm = Llama(
        model_path=args.model,
        n_ctx=n_ctx,
        n_batch=max(512, len(prompt)),
        n_threads=args.threads,
        n_threads_batch=args.threads,
        logits_all=False,
        flash_attn=args.flash_attn,
        verbose=False,
        **({"lora_path": args.lora} if args.lora else {}),
    )
    load_s = time.perf_counter() - t0
    rss_after_load = memory_kib("VmRSS:")

    n_vocab = llm.n_vocab()
    ctx = llm._ctx.ctx  # the raw llama_context, for the last position's logits

    def argmax_last():
        ptr = llama_cpp.llama_get_logits_ith(ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(n_vocab,))))

    runs = []
    generated = None
    for i in range(args.repeats):
        llm.reset()
        ids = []
        start = time.perf_counter()
        llm.eval(prompt)
        ptr = llama_cpp.llama_get_logits_ith(ctx, -1)  # logits readable: the prompt is done
        prompt_s = time.perf_counter() - start
        tok = int(np.argmax(np.ctypeslib.as_array(ptr, shape=(n_vocab,))))
        first = time.perf_counter()
        ids.append(tok)
        for _ in range(args.decode_tokens - 1):
            llm.eval([tok])
            tok = argmax_last()
            ids.append(tok)
        end = time.perf_counter()
        decode_s = end - first
        runs.append({
            "prompt_s": prompt_s,
            "pp_tok_s": len(prompt) / prompt_s,
            "ttft_ms": (first - start) * 1e3,
            "decode_s": decode_s,
            "tg_tok_s": (len(ids) - 1) / decode_s,
            "generated": len(ids),
            "total_s": end - start,
        })
        if generated is None:
            generated = ids
        elif ids != generated:
            sys.exit(f"error: greedy run {i + 1} produced different tokens than run 1")

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    warm = runs[1:] if len(runs) > 1 else runs
    med = lambda key: statistics.median(r[key] for r in warm)  # noqa: E731
    out = {
        "engine": "llama.cpp+lora" if args.lora else "llama.cpp",
        "lora_path": args.lora,
        "engine_version": f"llama-cpp-python {llama_cpp.__version__}",
        "model": os.path.basename(args.model),
        "model_path": args.model,
        "threads": args.threads,
        "n_ctx": n_ctx,
        "flash_attn": args.flash_attn,
        "prompt_tokens": len(prompt),
        "decode_tokens": args.decode_tokens,
        "repeats": args.repeats,
        "load_s": load_s,
        "pp_tok_s": med("pp_tok_s"),
        "tg_tok_s": med("tg_tok_s"),
        "ttft_ms": med("ttft_ms"),
        "pp_tok_s_first": runs[0]["pp_tok_s"],
        "tg_tok_s_first": runs[0]["tg_tok_s"],
        "baseline_rss_mb": kib_to_mb(baseline),
        "rss_after_load_mb": kib_to_mb(rss_after_load),
        "peak_rss_mb": kib_to_mb(peak),
        "runs": runs,
        "prompt_ids": prompt,
        "generated_ids": generated,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
