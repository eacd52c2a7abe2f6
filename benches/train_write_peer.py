#!/usr/bin/env python3
"""The PyTorch + PEFT side of benches/train_write.sh: replays an Atelier training run's plan.

`atelier train write --dump-plan plan.json` writes the run's tokens, held-out chunks, the
initial A of every adapter pair and each step's chunk offsets; this script loads the same GGUF
with transformers (`gguf_file=`, dequantised to float32), wraps it with PEFT LoRA on the same
projections (rank, alpha, dropout 0, B = 0, A from the plan), and trains with
torch.optim.AdamW (lr from the plan, betas 0.9/0.999, weight decay 0.01) on exactly the same
batches. It prints one JSON object: median step seconds, tokens/s, validation perplexity
before and after, peak RSS.

Run with the training peer's Python (scripts/train-peer-venv.sh):
    python benches/train_write_peer.py --model M.gguf --plan plan.json --threads 2
"""

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

HF = {
    "attn_q": "q_proj",
    "attn_k": "k_proj",
    "attn_v": "v_proj",
    "attn_output": "o_proj",
    "ffn_gate": "gate_proj",
    "ffn_up": "up_proj",
    "ffn_down": "down_proj",
}


def module(model, layer, target):
    block = model.base_model.model.model.layers[layer]
    name = HF[target]
    parent = block.self_attn if name in ("q_proj", "k_proj", "v_proj", "o_proj") else block.mlp
    return getattr(parent, name)


def val_loss(model, chunks, val_len, batch):
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(chunks), val_len * batch):
            x = torch.tensor(chunks[i : i + val_len * batch]).view(-1, val_len)
            out = model(input_ids=x, labels=x)
            n = x.shape[0] * (val_len - 1)
            total += out.loss.item() * n
            count += n
    model.train()
    return total / count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--plan", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.plan) as f:
        plan = json.load(f)
    path = os.path.abspath(args.model)
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32
    )
    load_s = time.perf_counter() - t0
    targets = sorted({HF[t] for t in plan["targets"]})
    cfg = LoraConfig(
        r=plan["rank"], lora_alpha=plan["alpha"], lora_dropout=0.0, target_modules=targets, bias="none"
    )
    model = get_peft_model(model, cfg)
    # A as Atelier drew it (A's columns are input features: the same in both layouts); B = 0.
    with torch.no_grad():
        for p in plan["init_a"]:
            m = module(model, p["layer"], p["target"])
            a = m.lora_A["default"].weight
            a.copy_(torch.tensor(p["a"], dtype=torch.float32).view_as(a))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=plan["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    train = torch.tensor(plan["train"])
    ctx = plan["context"]
    before = val_loss(model, plan["val_chunks"], plan["val_len"], plan["batch"])
    model.train()
    times, losses = [], []
    # Chunks start with BOS where the model wants one (Gemma), as Atelier's do.
    bos = plan.get("bos")
    head = torch.tensor([bos] if bos is not None else [], dtype=train.dtype)
    body = ctx - len(head)
    for offsets in plan["batches"]:
        x = torch.stack([torch.cat([head, train[s : s + body]]) for s in offsets])
        t = time.perf_counter()
        out = model(input_ids=x, labels=x)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
        losses.append(out.loss.item())
        if not math.isfinite(losses[-1]):
            break
    after = val_loss(model, plan["val_chunks"], plan["val_len"], plan["batch"])
    median = statistics.median(times)
    print(
        json.dumps(
            dict(
                steps=len(times),
                median_step_seconds=median,
                tokens_per_second=len(offsets) * ctx / median,
                val_perplexity_before=math.exp(before),
                val_perplexity_after=math.exp(after),
                final_train_loss=losses[-1],
                load_seconds=load_s,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
                torch=torch.__version__,
            )
        )
    )


if __name__ == "__main__":
    sys.exit(main())
