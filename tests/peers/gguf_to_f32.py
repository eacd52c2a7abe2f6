#!/usr/bin/env python3
"""Dequantizes a GGUF model to F32 (same metadata, every tensor as f32), for an exact-arithmetic
reference: llama.cpp on the F32 file computes with the quantized model's weights but without
4-bit products or 8-bit activations. Used to check adapters (README, Adapters):

    python gguf_to_f32.py MODEL.gguf OUT.gguf
    python tests/peers/llamacpp_logprobs.py OUT.gguf '[ids]' --lora ADAPTER.gguf

Needs the `gguf` and `numpy` packages (the training peer's venv, scripts/train-peer-venv.sh).
"""

import sys

import gguf
import numpy as np
from gguf import GGUFReader, GGUFWriter, dequantize


def main():
    src, out = sys.argv[1:3]
    r = GGUFReader(src)
    arch = str(bytes(r.fields["general.architecture"].parts[-1]), "utf8")
    w = GGUFWriter(out, arch=arch)
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name in ("general.architecture", "general.alignment"):
            continue
        vt = f.types[0]
        if vt == gguf.GGUFValueType.ARRAY:
            sub = f.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                val = [str(bytes(f.parts[i]), "utf8") for i in f.data]
            else:
                val = [f.parts[i][0].item() for i in f.data]
            w.add_key_value(f.name, val, vt, sub_type=sub)
        elif vt == gguf.GGUFValueType.STRING:
            w.add_key_value(f.name, str(bytes(f.parts[-1]), "utf8"), vt)
        else:
            w.add_key_value(f.name, f.parts[-1][0].item(), vt)
    for t in r.tensors:
        x = dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, x.reshape([int(d) for d in reversed(t.shape)]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
