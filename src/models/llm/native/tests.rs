//! The native decoder against a plain f32 forward pass written out position by position,
//! on tiny Llama and Gemma 3 models stored in real GGUF formats, in every schedule the
//! generation loop uses (whole prompt, chunks, rewinds, one token at a time past the window);
//! and the repacked formats and SIMD kernel against candle's dequantization and plain Rust.

use std::collections::HashMap;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};

use super::quant::{Kernel, QActs, QMatrix, avx2_available, fast_kernels_available, matmul};
use super::{Decoder, Family};

/// A tiny deterministic generator (no test dependency needed).
pub(crate) struct Lcg(pub(crate) u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub(crate) fn vec(&mut self, n: usize, scale: f32, offset: f32) -> Vec<f32> {
        (0..n).map(|_| offset + scale * self.next()).collect()
    }
}

// ---- repacking and kernels -------------------------------------------------------------

fn quantized(data: &[f32], rows: usize, cols: usize, f: GgmlDType) -> QTensor {
    let t = Tensor::from_slice(data, (rows, cols), &Device::Cpu).expect("tensor");
    QTensor::quantize(&t, f).expect("quantize")
}

fn repack(q: &QTensor, rows: usize, cols: usize) -> QMatrix {
    let data = q.data().expect("data");
    QMatrix::from_gguf("w", q.dtype(), rows, cols, &data, || {
        q.dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .map_err(|e| e.to_string())
    })
    .expect("repack")
}

const FORMATS: [GgmlDType; 10] = [
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q5_0,
    GgmlDType::Q5_1,
    GgmlDType::Q8_0,
    GgmlDType::Q4K,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
    GgmlDType::F16,
    GgmlDType::F32,
];

#[test]
fn every_format_repacks_exactly() {
    // 37 rows: two full groups of 16 and a partial one.
    let (rows, cols) = (37, 512);
    let w = Lcg(3).vec(rows * cols, 1.0, 0.1);
    for f in FORMATS {
        let q = quantized(&w, rows, cols, f);
        let want = q
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .expect("dequantize");
        let m = repack(&q, rows, cols);
        let mut row = vec![0f32; cols];
        for r in 0..rows {
            m.row(r, &mut row);
            let want = &want[r * cols..(r + 1) * cols];
            let exact = !matches!(f, GgmlDType::F16 | GgmlDType::F32);
            for (c, (&a, &b)) in row.iter().zip(want).enumerate() {
                // Re-quantized formats: within half a step of 8 bits per 32 values.
                let tol = if exact { 1e-6 * b.abs() } else { 1.1 / 254.0 };
                assert!((a - b).abs() <= tol, "{f:?} row {r} col {c}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn kernels_agree_and_match_float() {
    let (rows, cols) = (40, 512);
    let w = Lcg(5).vec(rows * cols, 1.0, 0.05);
    for f in FORMATS {
        let m = repack(&quantized(&w, rows, cols, f), rows, cols);
        assert!(m.has_simd_kernel(), "{f:?} has no SIMD kernel");
        let mut deq = vec![0f32; rows * cols];
        for r in 0..rows {
            m.row(r, &mut deq[r * cols..(r + 1) * cols]);
        }
        // Every tile size and remainder: 1, 2, 3 (2+1), 7 (4+2+1), 8, 13 (8+4+1), 23.
        for n in [1, 2, 3, 7, 8, 13, 23] {
            let x = Lcg(n as u64).vec(n * cols, 2.0, 0.0);
            let mut acts = QActs::new();
            acts.quantize(&x, n, cols, m.block());
            let mut portable = vec![0f32; n * rows];
            matmul(Kernel::Portable, &acts, &m, &mut portable);
            for (kernel, available) in [
                (Kernel::Vnni, fast_kernels_available()),
                (Kernel::Avx2, avx2_available()),
            ] {
                if !available {
                    continue;
                }
                let mut fast = vec![0f32; n * rows];
                matmul(kernel, &acts, &m, &mut fast);
                for (a, b) in fast.iter().zip(&portable) {
                    let close = (a - b).abs() <= 1e-5 * b.abs().max(1.0);
                    assert!(close, "{kernel:?} {f:?} n={n}: {a} vs {b}");
                }
            }
            // Against f32 with the dequantized weights: only the activations' 8-bit rounding
            // differs (relative error ~ 1/254 per value, averaging out over 512 products).
            for i in 0..n {
                for r in 0..rows {
                    let want: f32 = (0..cols).map(|c| x[i * cols + c] * deq[r * cols + c]).sum();
                    let got = portable[i * rows + r];
                    assert!(
                        (got - want).abs() < 0.05 * (cols as f32).sqrt(),
                        "{f:?}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

// ---- tiny models -----------------------------------------------------------------------

const VOCAB: usize = 45;
const EMBD: usize = 64;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 16;
const FFN: usize = 96;
const LAYERS: usize = 3;
/// Gemma: every third layer is global.
const PATTERN: usize = 3;
const WINDOW: usize = 5;
const EPS: f32 = 1e-6;
const BASE: f32 = 1000.0;

/// The shape of a tiny model, for [`reference`].
#[derive(Clone, Copy)]
pub(crate) struct Dims {
    pub embd: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub layers: usize,
    /// Gemma: every `pattern`-th layer is global, the others slide over `window` keys.
    pub pattern: usize,
    pub window: usize,
    pub eps: f32,
    /// RoPE base of global layers (sliding ones use 10,000).
    pub base: f64,
    /// Round every product's input to 8 bits per 32 values, as the native decoder does.
    pub round_activations: bool,
}

const DIMS: Dims = Dims {
    embd: EMBD,
    heads: HEADS,
    kv_heads: KV_HEADS,
    head_dim: HEAD_DIM,
    layers: LAYERS,
    pattern: PATTERN,
    window: WINDOW,
    eps: EPS,
    base: BASE as f64,
    round_activations: true,
};

/// f32 weights by GGUF name (quantized then dequantized by [`tiny_model`]).
fn tiny_weights(family: Family) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut rng = Lcg(11);
    let mut w = vec![
        (
            "token_embd.weight".into(),
            vec![VOCAB, EMBD],
            rng.vec(VOCAB * EMBD, 1.0, 0.0),
        ),
        (
            "output_norm.weight".into(),
            vec![EMBD],
            rng.vec(EMBD, 0.3, 1.0),
        ),
    ];
    if family == Family::Llama {
        w.push((
            "output.weight".into(),
            vec![VOCAB, EMBD],
            rng.vec(VOCAB * EMBD, 0.5, 0.0),
        ));
    }
    for i in 0..LAYERS {
        let mut t = |s: &str, shape: Vec<usize>, scale: f32, offset: f32| {
            let n = shape.iter().product();
            w.push((
                format!("blk.{i}.{s}.weight"),
                shape,
                rng.vec(n, scale, offset),
            ));
        };
        t("attn_q", vec![HEADS * HEAD_DIM, EMBD], 0.4, 0.0);
        t("attn_k", vec![KV_HEADS * HEAD_DIM, EMBD], 0.4, 0.0);
        t("attn_v", vec![KV_HEADS * HEAD_DIM, EMBD], 0.4, 0.0);
        t("attn_output", vec![EMBD, HEADS * HEAD_DIM], 0.2, 0.0);
        t("ffn_gate", vec![FFN, EMBD], 0.4, 0.0);
        t("ffn_up", vec![FFN, EMBD], 0.4, 0.0);
        t("ffn_down", vec![EMBD, FFN], 0.2, 0.0);
        t("attn_norm", vec![EMBD], 0.3, 1.0);
        t("ffn_norm", vec![EMBD], 0.3, 1.0);
        if family == Family::Gemma3 {
            t("attn_q_norm", vec![HEAD_DIM], 0.3, 1.0);
            t("attn_k_norm", vec![HEAD_DIM], 0.3, 1.0);
            t("post_attention_norm", vec![EMBD], 0.3, 1.0);
            t("post_ffw_norm", vec![EMBD], 0.3, 1.0);
        }
    }
    w
}

/// The tiny model as a GGUF file (matrices alternate between formats), loaded natively, plus
/// the dequantized weights the reference uses.
fn tiny_model(family: Family) -> (Decoder, HashMap<String, Vec<f32>>) {
    let formats = [
        GgmlDType::Q8_0,
        GgmlDType::Q4_1,
        GgmlDType::Q5_0,
        GgmlDType::Q4_0,
    ];
    let mut qtensors = Vec::new();
    let mut deq = HashMap::new();
    for (i, (name, shape, data)) in tiny_weights(family).into_iter().enumerate() {
        let t = Tensor::from_slice(&data, shape.as_slice(), &Device::Cpu).expect("tensor");
        let f = if shape.len() == 2 {
            formats[i % formats.len()]
        } else {
            GgmlDType::F32
        };
        let q = QTensor::quantize(&t, f).expect("quantize");
        let d = q
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .expect("dequantize");
        deq.insert(name.clone(), d);
        qtensors.push((name, q));
    }
    let u = |v: usize| gguf_file::Value::U32(v as u32);
    let p = match family {
        Family::Llama => "llama",
        Family::Gemma3 => "gemma3",
    };
    let mut metadata = vec![
        (format!("{p}.attention.head_count"), u(HEADS)),
        (format!("{p}.attention.head_count_kv"), u(KV_HEADS)),
        (format!("{p}.block_count"), u(LAYERS)),
        (format!("{p}.embedding_length"), u(EMBD)),
        (format!("{p}.feed_forward_length"), u(FFN)),
        (
            format!("{p}.attention.layer_norm_rms_epsilon"),
            gguf_file::Value::F32(EPS),
        ),
        (format!("{p}.rope.freq_base"), gguf_file::Value::F32(BASE)),
    ];
    if family == Family::Llama {
        metadata.push(("llama.rope.dimension_count".into(), u(HEAD_DIM)));
    }
    if family == Family::Gemma3 {
        metadata.extend([
            ("gemma3.attention.key_length".into(), u(HEAD_DIM)),
            ("gemma3.attention.value_length".into(), u(HEAD_DIM)),
            ("gemma3.attention.sliding_window".into(), u(WINDOW)),
            ("gemma3.attention.sliding_window_pattern".into(), u(PATTERN)),
        ]);
    }
    let md: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = qtensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let mut file = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut file, &md, &ts).expect("write gguf");
    file.set_position(0);
    let content = gguf_file::Content::read(&mut file).expect("read gguf");
    let model = Decoder::load(family, &content, &mut file).expect("load");
    (model, deq)
}

/// The forward pass in plain f32, position by position: logits after the last token.
pub(crate) fn reference(
    family: Family,
    dims: &Dims,
    w: &HashMap<String, Vec<f32>>,
    tokens: &[u32],
) -> Vec<f32> {
    let Dims {
        embd,
        heads,
        kv_heads,
        head_dim,
        layers,
        pattern,
        window,
        eps,
        base,
        round_activations,
    } = *dims;
    let gemma = family == Family::Gemma3;
    let get = |n: &str| &w[n];
    // Inputs of every product rounded to 8 bits per 32 values, as the decoder (and
    // llama.cpp) does: what remains is summation order.
    let matvec = |m: &[f32], x: &[f32]| -> Vec<f32> {
        if !round_activations {
            return m
                .chunks(x.len())
                .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
                .collect();
        }
        let xq: Vec<f32> = x
            .chunks(32)
            .flat_map(|b| {
                let d = b.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
                let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                b.iter().map(move |v| (v * id).round_ties_even() * d)
            })
            .collect();
        m.chunks(x.len())
            .map(|row| row.iter().zip(&xq).map(|(a, b)| a * b).sum())
            .collect()
    };
    let rms = |x: &[f32], g: &[f32]| -> Vec<f32> {
        let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
        let r = 1.0 / (ms + eps).sqrt();
        x.iter().zip(g).map(|(v, g)| v * r * g).collect()
    };
    let rope = |x: &mut [f32], pos: usize, base: f64| {
        let half = x.len() / 2;
        for i in 0..half {
            let a = pos as f64 * base.powf(-2.0 * i as f64 / x.len() as f64);
            let (s, c) = (a.sin() as f32, a.cos() as f32);
            let (ia, ib) = if gemma {
                (i, i + half)
            } else {
                (2 * i, 2 * i + 1)
            };
            let (x0, x1) = (x[ia], x[ib]);
            x[ia] = x0 * c - x1 * s;
            x[ib] = x1 * c + x0 * s;
        }
    };
    let act = |g: f32| {
        if gemma {
            0.5 * g * (1.0 + (0.797_884_6 * (g + 0.044715 * g * g * g)).tanh())
        } else {
            g / (1.0 + (-g).exp())
        }
    };
    let table = get("token_embd.weight");
    let scale = if gemma { (embd as f32).sqrt() } else { 1.0 };
    let mut h: Vec<Vec<f32>> = tokens
        .iter()
        .map(|&t| {
            table[t as usize * embd..(t as usize + 1) * embd]
                .iter()
                .map(|v| v * scale)
                .collect()
        })
        .collect();
    for l in 0..layers {
        let p = |s: &str| get(&format!("blk.{l}.{s}.weight"));
        let sliding = gemma && (l + 1) % pattern != 0;
        let base = if sliding { 10_000.0 } else { base };
        let (mut qs, mut ks, mut vs) = (Vec::new(), Vec::new(), Vec::new());
        for (pos, x) in h.iter().enumerate() {
            let x = rms(x, p("attn_norm"));
            let mut q = matvec(p("attn_q"), &x);
            let mut k = matvec(p("attn_k"), &x);
            for head in q.chunks_mut(head_dim) {
                if gemma {
                    let n = rms(head, p("attn_q_norm"));
                    head.copy_from_slice(&n);
                }
                rope(head, pos, base);
            }
            for head in k.chunks_mut(head_dim) {
                if gemma {
                    let n = rms(head, p("attn_k_norm"));
                    head.copy_from_slice(&n);
                }
                rope(head, pos, base);
            }
            qs.push(q);
            ks.push(k);
            vs.push(matvec(p("attn_v"), &x));
        }
        for (t, ht) in h.iter_mut().enumerate() {
            let mut out = vec![0f32; heads * head_dim];
            for head in 0..heads {
                let kvh = head / (heads / kv_heads);
                let q = &qs[t][head * head_dim..(head + 1) * head_dim];
                let keys: Vec<usize> = (0..=t).filter(|&s| !sliding || t - s < window).collect();
                let scores: Vec<f32> = keys
                    .iter()
                    .map(|&s| {
                        let k = &ks[s][kvh * head_dim..(kvh + 1) * head_dim];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() / (head_dim as f32).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f32 = e.iter().sum();
                for (&s, e) in keys.iter().zip(&e) {
                    let v = &vs[s][kvh * head_dim..(kvh + 1) * head_dim];
                    for (o, v) in out[head * head_dim..].iter_mut().zip(v) {
                        *o += e / sum * v;
                    }
                }
            }
            let mut a = matvec(p("attn_output"), &out);
            if gemma {
                a = rms(&a, p("post_attention_norm"));
            }
            let h1: Vec<f32> = a.iter().zip(ht.iter()).map(|(a, b)| a + b).collect();
            let x = rms(&h1, p("ffn_norm"));
            let g = matvec(p("ffn_gate"), &x);
            let u = matvec(p("ffn_up"), &x);
            let gu: Vec<f32> = g.iter().zip(&u).map(|(g, u)| act(*g) * u).collect();
            let mut d = matvec(p("ffn_down"), &gu);
            if gemma {
                d = rms(&d, p("post_ffw_norm"));
            }
            *ht = d.iter().zip(&h1).map(|(a, b)| a + b).collect();
        }
    }
    let last = rms(&h[h.len() - 1], get("output_norm.weight"));
    let out = if gemma { table } else { get("output.weight") };
    matvec(out, &last)
}

/// The reference rounds activations as the decoder does, so only summation order (and the
/// rare value that lands on the other side of a rounding boundary) differs; a wrong mask,
/// rope, norm or cache position moves logits by a large part of their spread.
fn assert_close(ours: &[f32], want: &[f32], what: &str) {
    assert_eq!(ours.len(), want.len());
    let diff = ours
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let spread = want.iter().fold(0f32, |a, &b| a.max(b.abs()));
    assert!(
        diff < 0.01 * spread.max(1.0),
        "{what}: max |Δlogit| {diff} (spread {spread})"
    );
}

fn every_schedule(family: Family, kernel: Kernel) {
    let (mut model, w) = tiny_model(family);
    model.set_kernel(kernel);
    let tokens: Vec<u32> = (0..23).map(|i| (i * 17 + 3) % VOCAB as u32).collect();
    let n = tokens.len();
    let want = reference(family, &DIMS, &w, &tokens);
    assert_close(&model.forward(&tokens, 0).expect("batch"), &want, "batch");
    // Rewinding into the cache: re-run the last two positions.
    assert_close(
        &model.forward(&tokens[n - 2..], n - 2).expect("rewind"),
        &want,
        "rewind",
    );
    // A short prompt, then one token at a time well past the window.
    model.forward(&tokens[..3], 0).expect("prompt");
    for p in 3..n {
        let logits = model.forward(&tokens[p..=p], p).expect("decode");
        assert_close(
            &logits,
            &reference(family, &DIMS, &w, &tokens[..=p]),
            "decode",
        );
    }
    // Through forward's own chunking, and chunks after a cached prefix.
    model.chunk = 4;
    assert_close(
        &model.forward(&tokens, 0).expect("chunked"),
        &want,
        "chunked prompt",
    );
    model.forward(&tokens[..7], 0).expect("prefix");
    let mid = model.forward(&tokens[7..16], 7).expect("chunk");
    assert_close(
        &mid,
        &reference(family, &DIMS, &w, &tokens[..16]),
        "chunk after prefix",
    );
    // Out-of-vocabulary ids are an error, not a panic.
    assert!(model.forward(&[VOCAB as u32], 0).is_err());
}

#[test]
fn llama_matches_the_reference_in_every_schedule() {
    every_schedule(Family::Llama, Kernel::Portable);
    if fast_kernels_available() {
        every_schedule(Family::Llama, Kernel::Vnni);
    }
    if avx2_available() {
        every_schedule(Family::Llama, Kernel::Avx2);
    }
}

#[test]
fn gemma3_matches_the_reference_in_every_schedule() {
    every_schedule(Family::Gemma3, Kernel::Portable);
    if fast_kernels_available() {
        every_schedule(Family::Gemma3, Kernel::Vnni);
    }
    if avx2_available() {
        every_schedule(Family::Gemma3, Kernel::Avx2);
    }
}

#[test]
fn sizes_that_wrap_are_refused() {
    // 2^62 + 16 rows of 128 Q4_1 values: 1,280 bytes in wrapping arithmetic.
    let rows = (1usize << 62) + 16;
    let err = QMatrix::from_gguf("w", GgmlDType::Q4_1, rows, 128, &[0u8; 1280], || {
        Err("unused".into())
    })
    .err()
    .expect("refused");
    assert!(err.to_string().contains("too large"), "{err}");
}

#[test]
fn large_matrices_repack_in_several_reads() {
    // Q4_0 rows of 32 values are 18 bytes: a task reads 910 groups (14,560 rows) at once, so
    // 20,001 rows take two reads and end in a partial group.
    let (rows, cols) = (20_001, 32);
    let w = Lcg(7).vec(rows * cols, 1.0, 0.0);
    for f in [GgmlDType::Q4_0, GgmlDType::Q8_0] {
        let q = quantized(&w, rows, cols, f);
        let want = q
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .expect("dequantize");
        let data = q.data().expect("data").to_vec();
        // The tensor at an offset inside a larger file.
        let mut file = vec![0xAB; 100];
        file.extend_from_slice(&data);
        let source = std::io::Cursor::new(file);
        let m = QMatrix::from_source("w", f, rows, cols, &source, 100, data.len(), || {
            Err("unused".into())
        })
        .expect("repack");
        let mut row = vec![0f32; cols];
        for r in [0, 15, 16, 14_559, 14_560, 14_561, 19_999, 20_000] {
            m.row(r, &mut row);
            assert_eq!(row, want[r * cols..(r + 1) * cols], "{f:?} row {r}");
        }
        // A file that ends inside the tensor: an error naming it, not a panic.
        let short = std::io::Cursor::new(&data[..data.len() - 1]);
        let err = QMatrix::from_source("short", f, rows, cols, &short, 0, data.len(), || {
            Err("unused".into())
        })
        .err()
        .expect("refused");
        assert!(err.to_string().contains("'short'"), "{err}");
    }
}

#[test]
fn avx2_is_exact_at_extreme_quants() {
    // Several `vpmaddubsw` results are summed in i16 before widening (avx2.rs); weights at the
    // top of their range against activations of +-127 are the case that would overflow if the
    // bounds in its module docs were wrong. One zero per block keeps the scale (and so the
    // quants) at the format's maximum for the other values.
    if !avx2_available() {
        return;
    }
    let (rows, cols) = (32, 256);
    for f in FORMATS.into_iter().filter(|&f| f != GgmlDType::F32) {
        for sign in [1.0f32, -1.0] {
            let w: Vec<f32> = (0..rows * cols)
                .map(|i| if i % 32 == 0 { 0.0 } else { sign })
                .collect();
            let m = repack(&quantized(&w, rows, cols, f), rows, cols);
            for xs in [1.0f32, -1.0] {
                let n = 9; // a tile of 8 and one of 1
                let mut acts = QActs::new();
                acts.quantize(&vec![xs; n * cols], n, cols, m.block());
                let mut portable = vec![0f32; n * rows];
                matmul(Kernel::Portable, &acts, &m, &mut portable);
                let mut fast = vec![0f32; n * rows];
                matmul(Kernel::Avx2, &acts, &m, &mut fast);
                assert_eq!(fast, portable, "{f:?} weights {sign} activations {xs}");
            }
        }
    }
}
