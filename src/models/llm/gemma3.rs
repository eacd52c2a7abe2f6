//! Gemma 3 (text) from GGUF: the project's own port of candle-transformers 0.11's
//! `quantized_gemma3`, which on Gemma 3 270M disagrees with llama.cpp by 0.70-0.78 nats per
//! token on average (up to 3 nats at single positions). The architecture follows the Gemma 3
//! Technical Report (Gemma Team, 2025, arXiv:2503.19786) and the GGUF conventions llama.cpp
//! uses (norm weights stored as `1 + w`, NeoX-style RoPE, tied output); `tests/llm_numerics.rs`
//! checks it against llama.cpp (now 0.04-0.07 nats, the quantization noise floor).
//!
//! Fixed relative to candle's file:
//! - The MLP is GeGLU with tanh-approximated GELU, as in every Gemma; candle used SiLU. This
//!   was the whole 0.75-nat error.
//! - Sliding-window layers hide keys with `pos_q - pos_k >= window` (candle: `> window`), and
//!   they do so during single-token decode too (candle applied no mask when `seq_len == 1`,
//!   so decoding past the window attended to the whole cache).
//! - A multi-token chunk after a cached prefix (`index_pos > 0`, `seq_len > 1`) works: candle
//!   concatenated an f32 block to a u32 mask (an error) whose zeros hid the prefix.
//! - RoPE: one cos/sin table per frequency for the positions of the current call, shared by
//!   all layers (candle precomputed 131,072 positions for every layer: ~2.4 GB and seconds at
//!   load). Global layers apply the GGUF's linear `rope.scaling.factor` (Gemma 3 4B and up),
//!   local layers never do, as llama.cpp.
//! - The attention scale is `query_pre_attn_scalar^-1/2`: `n_embd / n_head` for the 27B,
//!   `head_dim` otherwise (candle always used `head_dim`).
//!
//! Faster and leaner (Gemma 3 270M on 2 cores: about 2x the decode speed, 6x the prompt
//! speed, a fraction of the memory and load time): Q5_0 weights are rewritten exactly as Q8_0,
//! which candle has SIMD kernels for; embeddings are looked up in the quantized table (no
//! 670 MB f32 copy) that the tied output projection shares; the KV cache grows by doubling
//! and is written in place, and sliding layers keep only their window; grouped-query attention runs
//! without copying K/V per head; the attention scale is folded into the q-norm weights; masks
//! and RoPE tables are built once per call, not once per layer; long prompts go through in
//! chunks so attention memory stays bounded.

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor, gguf_file};
use candle_core::{DType, Device, Module, Result, Tensor};

/// Longest sequence (prompt + generated tokens) this implementation accepts: Gemma 3's 128K
/// context. Nothing is allocated for it up front; the model's own `context_length` is usually
/// smaller and is what the caller enforces.
pub const MAX_SEQ_LEN: usize = 131_072;

/// llama.cpp hard-codes Gemma 3's pattern: five sliding-window layers, then one global.
const DEFAULT_SLIDING_WINDOW_PATTERN: usize = 6;
pub(crate) const DEFAULT_ROPE_FREQ_BASE: f32 = 1_000_000.;
pub(crate) const DEFAULT_ROPE_FREQ_BASE_SLIDING: f32 = 10_000.;
/// Gemma 3 27B (62 layers) is the one size whose `query_pre_attn_scalar` is not `head_dim`;
/// llama.cpp recognises it by its layer count too.
const GEMMA3_27B_BLOCK_COUNT: usize = 62;
/// Tokens per chunk when a long prompt goes through the layers (bounds attention memory to
/// about `4 heads x 512 x context` floats).
const PREFILL_CHUNK: usize = 512;
/// Minimum capacity (positions) of a layer's KV cache; it doubles when full (a sliding layer's
/// up to two windows).
const MIN_CACHE: usize = 256;

/// Bytes of one Q5_0 block: f16 scale, 32 high bits, 16 bytes of low nibbles.
const Q5_0_BLOCK: usize = 22;
/// Bytes of one Q8_0 block: f16 scale, 32 signed bytes.
const Q8_0_BLOCK: usize = 34;

/// Rewrites a Q5_0 tensor as Q8_0, exactly: candle has no SIMD kernel for Q5_0 (its matmuls
/// run 10-50x slower than Q8_0 on x86), and every Q5_0 weight is an integer in -16..=15 times
/// its block's scale, which Q8_0 holds as is. Both multiply against q8_0-quantized
/// activations, so the dot products are the same integers; the cost is 8.5 instead of 5.5
/// bits per weight (about 24 MB more for Gemma 3 270M Q4_K_M, whose q/k/gate/up are Q5_0).
fn q5_0_as_q8_0(t: QTensor, device: &Device) -> Result<QTensor> {
    if t.dtype() != GgmlDType::Q5_0 || !device.is_cpu() {
        return Ok(t);
    }
    let src = t.data()?;
    if src.len() % Q5_0_BLOCK != 0 {
        candle_core::bail!("gemma3: a Q5_0 tensor of {} bytes", src.len())
    }
    let blocks = src.len() / Q5_0_BLOCK;
    // One spare byte so the blocks can start 2-aligned (their f16 scale) wherever the
    // allocation lands.
    let mut buf = vec![0u8; blocks * Q8_0_BLOCK + 1];
    let start = buf.as_ptr() as usize % 2;
    let out = &mut buf[start..start + blocks * Q8_0_BLOCK];
    for (q5, q8) in src
        .chunks_exact(Q5_0_BLOCK)
        .zip(out.chunks_exact_mut(Q8_0_BLOCK))
    {
        q8[..2].copy_from_slice(&q5[..2]);
        // ggml's dequantize_row_q5_0: bit j of qh is the fifth bit of weight j.
        let qh = u32::from_le_bytes([q5[2], q5[3], q5[4], q5[5]]);
        for (j, &nibbles) in q5[6..].iter().enumerate() {
            let lo = (nibbles & 0x0F) | ((((qh >> j) << 4) & 0x10) as u8);
            let hi = (nibbles >> 4) | (((qh >> (j + 12)) & 0x10) as u8);
            q8[2 + j] = (lo as i8 - 16) as u8;
            q8[2 + j + 16] = (hi as i8 - 16) as u8;
        }
    }
    let storage = QStorage::from_data(Cow::Borrowed(out), device, GgmlDType::Q8_0)?;
    QTensor::new(storage, t.shape().clone())
}

/// A matmul over a GGUF weight, in the fastest exact format candle has for it.
fn qmatmul(t: QTensor, device: &Device) -> Result<QMatMul> {
    QMatMul::from_qtensor(q5_0_as_q8_0(t, device)?)
}

/// RMS normalisation with the weight as stored in the GGUF (already `1 + w`).
struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    /// Loads `name`, multiplying the weight by `scale` (used to fold the attention scale in).
    fn load<R: std::io::Seek + std::io::Read>(
        ct: &gguf_file::Content,
        reader: &mut R,
        name: &str,
        eps: f32,
        scale: f64,
        device: &Device,
    ) -> Result<Self> {
        let weight = ct.tensor(reader, name, device)?.dequantize(device)?;
        let weight = if scale == 1.0 {
            weight
        } else {
            (weight * scale)?
        };
        Ok(Self { weight, eps })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        candle_nn::ops::rms_norm(xs, &self.weight, self.eps)
    }
}

/// Rotary position embedding (NeoX layout: the two halves of each head rotate together).
struct Rope {
    inv_freq: Vec<f64>,
    /// Position multiplier: `1 / rope.scaling.factor` for linear scaling, else 1.
    pos_scale: f64,
}

impl Rope {
    fn new(head_dim: usize, base: f32, pos_scale: f64) -> Self {
        let inv_freq = (0..head_dim / 2)
            .map(|i| (base as f64).powf(-2.0 * i as f64 / head_dim as f64))
            .collect();
        Self {
            inv_freq,
            pos_scale,
        }
    }

    /// cos and sin, each `(len, head_dim / 2)`, for positions `start..start + len`. Computed
    /// per call (a few hundred values when decoding) instead of kept for every position.
    fn cos_sin(&self, start: usize, len: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for pos in start..start + len {
            let p = pos as f64 * self.pos_scale;
            for f in &self.inv_freq {
                let (s, c) = (p * f).sin_cos();
                cos.push(c as f32);
                sin.push(s as f32);
            }
        }
        Ok((
            Tensor::from_vec(cos, (len, half), device)?,
            Tensor::from_vec(sin, (len, half), device)?,
        ))
    }
}

/// Whether the query at absolute position `q` attends to the key at `k`: causal, and within
/// the window on sliding layers (llama.cpp's LLAMA_SWA_TYPE_STANDARD hides `q - k >= window`,
/// like the reference implementation).
fn visible(q: usize, k: usize, window: Option<usize>) -> bool {
    k <= q && window.is_none_or(|w| q - k < w)
}

/// Additive mask `(q_len, k_len)`: 0 where visible, -inf elsewhere.
fn attention_mask(
    q_start: usize,
    q_len: usize,
    k_start: usize,
    k_len: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Tensor> {
    let mask: Vec<f32> = (q_start..q_start + q_len)
        .flat_map(|q| {
            (k_start..k_start + k_len).map(move |k| {
                if visible(q, k, window) {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (q_len, k_len), device)
}

/// One layer's keys and values, `(batch, n_kv_head, capacity, head_dim)`, written in place.
struct KvCache {
    k: Tensor,
    v: Tensor,
    /// Absolute position of slot 0.
    start: usize,
    /// Slots filled.
    len: usize,
}

/// Appends `k`, `v` (`(batch, n_kv_head, seq_len, head_dim)`, contiguous) at `index_pos` and
/// returns views of the keys and values the new queries may see, with the absolute position
/// of the first. Sliding layers drop keys no later query can see. `index_pos` may rewind into
/// the cached sequence as long as the keys it needs are still held.
fn append_kv(
    cache: &mut Option<KvCache>,
    k: &Tensor,
    v: &Tensor,
    index_pos: usize,
    window: Option<usize>,
) -> Result<(Tensor, Tensor, usize)> {
    let (b, n_kv, seq_len, head_dim) = k.dims4()?;
    // The oldest key any query from `index_pos` on can see.
    let need_from = window.map_or(0, |w| (index_pos + 1).saturating_sub(w));
    let held = match cache.take() {
        Some(c) if c.start <= need_from && index_pos <= c.start + c.len => Some(KvCache {
            len: index_pos - c.start,
            ..c
        }),
        _ if need_from == index_pos => None,
        _ => candle_core::bail!(
            "gemma3: the cache does not hold positions {need_from}..{index_pos}; restart the sequence at position 0"
        ),
    };
    let (start, len, cap) = match &held {
        Some(c) => (c.start, c.len, c.k.dim(2)?),
        None => (index_pos, 0, 0),
    };
    *cache = held;
    if len + seq_len > cap {
        // Grow, or (sliding layers) slide: keep only what is still visible.
        let keep_from = need_from.max(start);
        let keep = start + len - keep_from;
        // Both grow geometrically with the positions actually run; a sliding layer stops at
        // two windows (then slides), so a header's window size is never allocated up front.
        let new_cap = match window {
            Some(w) => (keep + seq_len).max((2 * cap).max(MIN_CACHE).min(2 * w)),
            None => (keep + seq_len).max(2 * cap).max(MIN_CACHE),
        };
        let new_k = Tensor::zeros((b, n_kv, new_cap, head_dim), k.dtype(), k.device())?;
        let new_v = Tensor::zeros((b, n_kv, new_cap, head_dim), v.dtype(), v.device())?;
        if let Some(c) = cache.as_ref()
            && keep > 0
        {
            let from = keep_from - c.start;
            new_k.slice_set(&c.k.narrow(2, from, keep)?.contiguous()?, 2, 0)?;
            new_v.slice_set(&c.v.narrow(2, from, keep)?.contiguous()?, 2, 0)?;
        }
        *cache = Some(KvCache {
            k: new_k,
            v: new_v,
            start: keep_from,
            len: keep,
        });
    }
    let Some(c) = cache.as_mut() else {
        candle_core::bail!("gemma3: KV cache missing after allocation")
    };
    c.k.slice_set(k, 2, c.len)?;
    c.v.slice_set(v, 2, c.len)?;
    c.len += seq_len;
    let from = need_from.max(c.start);
    let count = c.start + c.len - from;
    let offset = from - c.start;
    Ok((
        c.k.narrow(2, offset, count)?,
        c.v.narrow(2, offset, count)?,
        from,
    ))
}

/// What distinguishes the masks of one forward call: first key position, key count, window.
type MaskKey = (usize, usize, Option<usize>);

/// Masks built for one forward call, shared by the layers that need the same one.
#[derive(Default)]
struct Masks(Vec<(MaskKey, Tensor)>);

impl Masks {
    fn get(
        &mut self,
        q_start: usize,
        q_len: usize,
        k_start: usize,
        k_len: usize,
        window: Option<usize>,
        device: &Device,
    ) -> Result<Tensor> {
        let key = (k_start, k_len, window);
        if let Some((_, m)) = self.0.iter().find(|(k, _)| *k == key) {
            return Ok(m.clone());
        }
        let m = attention_mask(q_start, q_len, k_start, k_len, window, device)?;
        self.0.push((key, m.clone()));
        Ok(m)
    }
}

/// Which layers use the sliding window: a per-layer bool array if the GGUF has one, else
/// every `pattern`-th layer is global (llama.cpp's default for Gemma 3: 6).
pub(crate) fn sliding_layers(ct: &gguf_file::Content, block_count: usize) -> Vec<bool> {
    let md = |s: &str| ct.metadata.get(&format!("gemma3.{s}"));
    if let Some(gguf_file::Value::Array(flags)) = md("attention.sliding_window_pattern")
        && flags.len() == block_count
        && let Ok(flags) = flags
            .iter()
            .map(|f| f.to_bool())
            .collect::<Result<Vec<_>>>()
    {
        return flags;
    }
    let pattern = md("attention.sliding_window_pattern")
        .or_else(|| md("attention.sliding_window_type"))
        .and_then(|v| v.to_u32().ok())
        .map_or(DEFAULT_SLIDING_WINDOW_PATTERN, |v| v as usize)
        .max(1);
    (0..block_count).map(|i| (i + 1) % pattern != 0).collect()
}

/// Gemma 3's `query_pre_attn_scalar`: `n_embd / n_head` for the 27B, `head_dim` otherwise.
pub(crate) fn query_pre_attn_scalar(
    block_count: usize,
    n_embd: usize,
    n_head: usize,
    head_dim: usize,
) -> usize {
    if block_count == GEMMA3_27B_BLOCK_COUNT {
        n_embd / n_head
    } else {
        head_dim
    }
}

struct Layer {
    wq: QMatMul,
    wk: QMatMul,
    wv: QMatMul,
    wo: QMatMul,
    /// Carries the attention scale in its weight.
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    attn_norm: RmsNorm,
    post_attn_norm: RmsNorm,
    ffn_norm: RmsNorm,
    post_ffn_norm: RmsNorm,
    ffn_gate: QMatMul,
    ffn_up: QMatMul,
    ffn_down: QMatMul,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    /// `Some(window)` on sliding-window layers.
    window: Option<usize>,
    /// Index into the model's RoPE tables (global or local frequency).
    rope: usize,
    kv_cache: Option<KvCache>,
}

impl Layer {
    fn attention(
        &mut self,
        x: &Tensor,
        index_pos: usize,
        (cos, sin): &(Tensor, Tensor),
        masks: &mut Masks,
    ) -> Result<Tensor> {
        let (b, seq_len, _) = x.dims3()?;
        let (n_head, n_kv, hd) = (self.n_head, self.n_kv_head, self.head_dim);
        // (b, seq, heads, head_dim) throughout: the layout the projections produce, which
        // q/k norm and rope_thd take as is.
        let q = self.wq.forward(x)?.reshape((b, seq_len, n_head, hd))?;
        let k = self.wk.forward(x)?.reshape((b, seq_len, n_kv, hd))?;
        let v = self.wv.forward(x)?.reshape((b, seq_len, n_kv, hd))?;
        let q = candle_nn::rotary_emb::rope_thd(&self.q_norm.forward(&q)?, cos, sin)?;
        let k = candle_nn::rotary_emb::rope_thd(&self.k_norm.forward(&k)?, cos, sin)?;
        // For one token these transposes are free (contiguous() copies nothing).
        let k = k.transpose(1, 2)?.contiguous()?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let (k, v, k_start) = append_kv(&mut self.kv_cache, &k, &v, index_pos, self.window)?;
        let k_len = k.dim(2)?;

        // Grouped-query attention without repeating K/V: the query heads sharing a KV head
        // are adjacent, so (b, n_head, seq, hd) regroups as (b, n_kv, n_rep * seq, hd).
        let n_rep = n_head / n_kv;
        let q = q
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, n_kv, n_rep * seq_len, hd))?;
        let scores = q.matmul(&k.t()?)?;
        // A single query sees exactly the keys `append_kv` returned; chunks need a mask.
        let scores = if seq_len > 1 {
            let mask = masks.get(index_pos, seq_len, k_start, k_len, self.window, x.device())?;
            scores
                .reshape((b, n_head, seq_len, k_len))?
                .broadcast_add(&mask)?
                .reshape((b, n_kv, n_rep * seq_len, k_len))?
        } else {
            scores
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs
            .matmul(&v)?
            .reshape((b, n_head, seq_len, hd))?
            .transpose(1, 2)?
            .reshape((b, seq_len, n_head * hd))?;
        self.wo.forward(&out)
    }

    fn mlp(&self, x: &Tensor) -> Result<Tensor> {
        // GeGLU with the tanh approximation of GELU (Gemma's gelu_pytorch_tanh, llama.cpp's
        // ggml_gelu); candle's port used SiLU here.
        let gate = self.ffn_gate.forward(x)?.gelu()?;
        let up = self.ffn_up.forward(x)?;
        self.ffn_down.forward(&(gate * up)?)
    }
}

/// Gemma 3 weights loaded from a GGUF file, with the key/value cache of the current sequence.
pub struct ModelWeights {
    /// Quantized embedding table, shared with the tied output projection.
    tok_embeddings: Arc<QTensor>,
    embed_scale: f64,
    layers: Vec<Layer>,
    ropes: Vec<Rope>,
    norm: RmsNorm,
    output: QMatMul,
    /// Longest run of tokens pushed through the layers at once; longer prompts go in chunks.
    prefill_chunk: usize,
}

impl ModelWeights {
    /// Loads the model described by `ct` (a `gemma3` GGUF header) from `reader`.
    pub fn from_gguf<R: std::io::Seek + std::io::Read>(
        ct: gguf_file::Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Self> {
        let md = |s: &str| {
            let key = format!("gemma3.{s}");
            ct.metadata
                .get(&key)
                .ok_or_else(|| candle_core::Error::Msg(format!("cannot find {key} in metadata")))
        };
        let n_head = md("attention.head_count")?.to_u32()? as usize;
        let n_kv_head = md("attention.head_count_kv")?.to_u32()? as usize;
        let block_count = md("block_count")?.to_u32()? as usize;
        let n_embd = md("embedding_length")?.to_u32()? as usize;
        let head_dim = md("attention.key_length")?.to_u32()? as usize;
        let value_length = md("attention.value_length")?.to_u32()? as usize;
        let eps = md("attention.layer_norm_rms_epsilon")?.to_f32()?;
        // A window as long as the longest sequence hides nothing; clamping it bounds the
        // sliding layers' cache (two windows long) whatever the header says.
        let window = (md("attention.sliding_window")?.to_u32()? as usize).min(MAX_SEQ_LEN);
        if n_head == 0 || n_kv_head == 0 || !n_head.is_multiple_of(n_kv_head) {
            candle_core::bail!("gemma3: {n_head} heads cannot share {n_kv_head} KV heads")
        }
        if value_length != head_dim || !head_dim.is_multiple_of(2) || window == 0 {
            candle_core::bail!(
                "gemma3: unsupported shapes (key {head_dim}, value {value_length}, window {window})"
            )
        }
        let sliding_layers = sliding_layers(&ct, block_count);
        let freq_base = md("rope.freq_base")
            .and_then(|v| v.to_f32())
            .unwrap_or(DEFAULT_ROPE_FREQ_BASE);
        let freq_base_local = md("rope.local_freq_base")
            .and_then(|v| v.to_f32())
            .unwrap_or(DEFAULT_ROPE_FREQ_BASE_SLIDING);
        // Linear RoPE scaling (Gemma 3 4B and up: factor 8) stretches the global layers'
        // positions; llama.cpp applies it there and never to the local layers.
        let scaling_type = md("rope.scaling.type")
            .ok()
            .and_then(|v| v.to_string().ok());
        let factor = md("rope.scaling.factor")
            .and_then(|v| v.to_f32())
            .unwrap_or(1.0);
        let pos_scale = match scaling_type.map(String::as_str) {
            None | Some("linear") if factor > 0.0 => 1.0 / factor as f64,
            _ => 1.0,
        };
        let query_pre_attn_scalar = query_pre_attn_scalar(block_count, n_embd, n_head, head_dim);
        let attn_scale = 1.0 / (query_pre_attn_scalar as f64).sqrt();

        let tok_embeddings = Arc::new(ct.tensor(reader, "token_embd.weight", device)?);
        let norm = RmsNorm::load(&ct, reader, "output_norm.weight", eps, 1.0, device)?;
        let output = if ct.tensor_infos.contains_key("output.weight") {
            qmatmul(ct.tensor(reader, "output.weight", device)?, device)?
        } else {
            // Tied weights: share the embedding table instead of reading it twice.
            QMatMul::from_arc(tok_embeddings.clone())?
        };

        let mut layers = Vec::with_capacity(block_count);
        for (i, &sliding) in sliding_layers.iter().enumerate() {
            let name = |s: &str| format!("blk.{i}.{s}.weight");
            let mut qmm = |s: &str| qmatmul(ct.tensor(reader, &name(s), device)?, device);
            let (wq, wk, wv, wo) = (
                qmm("attn_q")?,
                qmm("attn_k")?,
                qmm("attn_v")?,
                qmm("attn_output")?,
            );
            let (ffn_gate, ffn_up, ffn_down) = (qmm("ffn_gate")?, qmm("ffn_up")?, qmm("ffn_down")?);
            let mut norm =
                |s: &str, scale: f64| RmsNorm::load(&ct, reader, &name(s), eps, scale, device);
            layers.push(Layer {
                wq,
                wk,
                wv,
                wo,
                q_norm: norm("attn_q_norm", attn_scale)?,
                k_norm: norm("attn_k_norm", 1.0)?,
                attn_norm: norm("attn_norm", 1.0)?,
                post_attn_norm: norm("post_attention_norm", 1.0)?,
                ffn_norm: norm("ffn_norm", 1.0)?,
                post_ffn_norm: norm("post_ffw_norm", 1.0)?,
                ffn_gate,
                ffn_up,
                ffn_down,
                n_head,
                n_kv_head,
                head_dim,
                window: sliding.then_some(window),
                rope: usize::from(sliding),
                kv_cache: None,
            });
        }

        Ok(Self {
            tok_embeddings,
            embed_scale: (n_embd as f64).sqrt(),
            layers,
            ropes: vec![
                Rope::new(head_dim, freq_base, pos_scale),
                Rope::new(head_dim, freq_base_local, 1.0),
            ],
            norm,
            output,
            prefill_chunk: PREFILL_CHUNK,
        })
    }

    /// Runs the tokens `x` (u32, `(batch, seq_len)`) at positions `index_pos..` and returns
    /// the logits `(batch, vocab)` of the last position. `index_pos` must continue the cached
    /// sequence (or rewind into it); 0 starts a new one.
    pub fn forward(&mut self, x: &Tensor, index_pos: usize) -> Result<Tensor> {
        let (_, seq_len) = x.dims2()?;
        if seq_len == 0 {
            candle_core::bail!("gemma3: empty input")
        }
        // Long prompts in chunks: attention scores grow with chunk x context, so one 32K-token
        // batch would need tens of GB; chunks continue the cache exactly.
        let mut h = None;
        let mut start = 0;
        while start < seq_len {
            let len = self.prefill_chunk.min(seq_len - start);
            h = Some(self.layers_forward(&x.narrow(1, start, len)?, index_pos + start)?);
            start += len;
        }
        let Some(h) = h else {
            candle_core::bail!("gemma3: empty input")
        };
        let last = h.narrow(1, h.dim(1)? - 1, 1)?.squeeze(1)?;
        let logits = self.output.forward(&self.norm.forward(&last)?)?;
        if logits.dtype() == DType::F32 {
            Ok(logits)
        } else {
            logits.to_dtype(DType::F32)
        }
    }

    /// The hidden states `(batch, seq_len, n_embd)` after the last layer.
    fn layers_forward(&mut self, x: &Tensor, index_pos: usize) -> Result<Tensor> {
        let (_, seq_len) = x.dims2()?;
        let device = x.device();
        let mut h = (self.tok_embeddings.embedding(x)? * self.embed_scale)?;
        let tables = self
            .ropes
            .iter()
            .map(|r| r.cos_sin(index_pos, seq_len, device))
            .collect::<Result<Vec<_>>>()?;
        let mut masks = Masks::default();
        for layer in &mut self.layers {
            let a = layer.attn_norm.forward(&h)?;
            let a = layer.attention(&a, index_pos, &tables[layer.rope], &mut masks)?;
            let h_attn = (layer.post_attn_norm.forward(&a)? + &h)?;
            let m = layer.mlp(&layer.ffn_norm.forward(&h_attn)?)?;
            h = (layer.post_ffn_norm.forward(&m)? + h_attn)?;
        }
        Ok(h)
    }

    /// Drops the key/value cache so the next forward starts a new sequence.
    pub fn clear_kv_cache(&mut self) {
        for layer in &mut self.layers {
            layer.kv_cache = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::Value;

    #[test]
    fn q5_0_converts_to_q8_0_exactly() -> Result<()> {
        let mut rng = Lcg(3);
        let x = Tensor::from_vec(rng.vec(64 * 96, 2.0, 0.0), (64, 96), &Device::Cpu)?;
        let q5 = QTensor::quantize(&x, GgmlDType::Q5_0)?;
        let want = q5
            .dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let q8 = q5_0_as_q8_0(q5, &Device::Cpu)?;
        assert_eq!(q8.dtype(), GgmlDType::Q8_0);
        let got = q8
            .dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(got, want);
        Ok(())
    }

    #[test]
    fn window_hides_keys_at_window_distance() {
        // llama.cpp: masked when pos_q - pos_k >= window.
        assert!(visible(10, 10, Some(4)));
        assert!(visible(10, 7, Some(4)));
        assert!(!visible(10, 6, Some(4)));
        assert!(!visible(10, 11, Some(4)));
        assert!(visible(10, 0, None));
        assert!(!visible(10, 11, None));
    }

    #[test]
    fn mask_for_a_chunk_after_a_prefix() -> Result<()> {
        // Queries at 5..7, keys at 3..7, window 3.
        let m = attention_mask(5, 2, 3, 4, Some(3), &Device::Cpu)?.to_vec2::<f32>()?;
        let inf = f32::NEG_INFINITY;
        assert_eq!(m, vec![vec![0.0, 0.0, 0.0, inf], vec![inf, 0.0, 0.0, 0.0]]);
        Ok(())
    }

    #[test]
    fn sliding_cache_keeps_the_window() -> Result<()> {
        let dev = Device::Cpu;
        let mut cache = None;
        let w = 4;
        let t = Tensor::arange(0f32, 6., &dev)?.reshape((1, 1, 6, 1))?;
        let (k, v, start) = append_kv(&mut cache, &t, &t, 0, Some(w))?;
        assert_eq!((start, k.dim(2)?, v.dim(2)?), (0, 6, 6));
        for pos in 6..20 {
            let t = Tensor::new(&[pos as f32], &dev)?.reshape((1, 1, 1, 1))?;
            let (k, _, start) = append_kv(&mut cache, &t, &t, pos, Some(w))?;
            let got = k.flatten_all()?.to_vec1::<f32>()?;
            let want: Vec<f32> = (pos + 1 - w..=pos).map(|p| p as f32).collect();
            assert_eq!((start, got), (pos + 1 - w, want));
        }
        // Keys dropped from the window cannot be brought back.
        let t = Tensor::new(&[0f32], &dev)?.reshape((1, 1, 1, 1))?;
        assert!(append_kv(&mut cache, &t, &t, 3, Some(w)).is_err());
        Ok(())
    }

    #[test]
    fn a_huge_window_is_not_allocated_up_front() -> Result<()> {
        // A header's sliding window of 128K positions: the cache grows with the tokens run.
        let t = Tensor::new(&[1f32], &Device::Cpu)?.reshape((1, 1, 1, 1))?;
        let mut cache = None;
        append_kv(&mut cache, &t, &t, 0, Some(MAX_SEQ_LEN))?;
        let cap = cache.as_ref().map(|c| c.k.dim(2)).transpose()?;
        assert_eq!(cap, Some(MIN_CACHE));
        Ok(())
    }

    use crate::models::llm::native::Family;
    use crate::models::llm::native::tests::{Dims, Lcg, reference};

    const VOCAB: usize = 50;
    const EMBD: usize = 16;
    const HEADS: usize = 4;
    const KV_HEADS: usize = 2;
    const HEAD_DIM: usize = 8;
    const FFN: usize = 24;
    const LAYERS: usize = 3;
    const PATTERN: u32 = 3;
    const WINDOW: usize = 5;
    const EPS: f32 = 1e-6;

    /// f32 weights of a tiny Gemma 3 with grouped-query attention, by GGUF tensor name.
    fn tiny_weights() -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut rng = Lcg(7);
        let mut w = vec![
            (
                "token_embd.weight".to_string(),
                vec![VOCAB, EMBD],
                rng.vec(VOCAB * EMBD, 1.0, 0.0),
            ),
            (
                "output_norm.weight".to_string(),
                vec![EMBD],
                rng.vec(EMBD, 0.3, 1.0),
            ),
        ];
        for i in 0..LAYERS {
            let mut t = |s: &str, shape: Vec<usize>, scale: f32, offset: f32| {
                let n = shape.iter().product();
                w.push((
                    format!("blk.{i}.{s}.weight"),
                    shape,
                    rng.vec(n, scale, offset),
                ));
            };
            t("attn_q", vec![HEADS * HEAD_DIM, EMBD], 0.5, 0.0);
            t("attn_k", vec![KV_HEADS * HEAD_DIM, EMBD], 0.5, 0.0);
            t("attn_v", vec![KV_HEADS * HEAD_DIM, EMBD], 0.5, 0.0);
            t("attn_output", vec![EMBD, HEADS * HEAD_DIM], 0.3, 0.0);
            t("ffn_gate", vec![FFN, EMBD], 0.5, 0.0);
            t("ffn_up", vec![FFN, EMBD], 0.5, 0.0);
            t("ffn_down", vec![EMBD, FFN], 0.3, 0.0);
            for n in ["attn_q_norm", "attn_k_norm"] {
                t(n, vec![HEAD_DIM], 0.3, 1.0);
            }
            for n in [
                "attn_norm",
                "post_attention_norm",
                "ffn_norm",
                "post_ffw_norm",
            ] {
                t(n, vec![EMBD], 0.3, 1.0);
            }
        }
        w
    }

    fn tiny_model() -> Result<ModelWeights> {
        let weights = tiny_weights();
        let qtensors = weights
            .iter()
            .map(|(name, shape, data)| {
                let t = Tensor::from_slice(data, shape.as_slice(), &Device::Cpu)?;
                Ok((
                    name.as_str(),
                    QTensor::quantize(&t, candle_core::quantized::GgmlDType::F32)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let u = |v: usize| Value::U32(v as u32);
        let metadata = [
            ("gemma3.attention.head_count", u(HEADS)),
            ("gemma3.attention.head_count_kv", u(KV_HEADS)),
            ("gemma3.block_count", u(LAYERS)),
            ("gemma3.embedding_length", u(EMBD)),
            ("gemma3.attention.key_length", u(HEAD_DIM)),
            ("gemma3.attention.value_length", u(HEAD_DIM)),
            ("gemma3.attention.layer_norm_rms_epsilon", Value::F32(EPS)),
            ("gemma3.attention.sliding_window", u(WINDOW)),
            (
                "gemma3.attention.sliding_window_pattern",
                Value::U32(PATTERN),
            ),
            ("gemma3.rope.freq_base", Value::F32(1000.0)),
        ];
        let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
        let ts: Vec<(&str, &QTensor)> = qtensors.iter().map(|(k, t)| (*k, t)).collect();
        let mut file = std::io::Cursor::new(Vec::new());
        gguf_file::write(&mut file, &md, &ts)?;
        file.set_position(0);
        let content = gguf_file::Content::read(&mut file)?;
        ModelWeights::from_gguf(content, &mut file, &Device::Cpu)
    }

    /// The Gemma 3 forward pass written out position by position, head by head, in plain f32
    /// (shared with the native decoder's tests): the logits after the last of `tokens`.
    fn reference_logits(tokens: &[u32]) -> Vec<f32> {
        let w: std::collections::HashMap<String, Vec<f32>> =
            tiny_weights().into_iter().map(|(n, _, d)| (n, d)).collect();
        let dims = Dims {
            embd: EMBD,
            heads: HEADS,
            kv_heads: KV_HEADS,
            head_dim: HEAD_DIM,
            layers: LAYERS,
            pattern: PATTERN as usize,
            window: WINDOW,
            eps: EPS,
            base: 1000.0,
            round_activations: false,
        };
        reference(Family::Gemma3, &dims, &w, tokens)
    }

    fn assert_close(ours: &Tensor, want: &[f32], what: &str) -> Result<()> {
        let ours = ours.flatten_all()?.to_vec1::<f32>()?;
        let diff = ours
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-3, "{what}: max |Δlogit| {diff}");
        Ok(())
    }

    #[test]
    fn tiny_model_matches_the_reference_in_every_schedule() -> Result<()> {
        let mut model = tiny_model()?;
        let tokens: Vec<u32> = (0..23).map(|i| (i * 17 + 3) % VOCAB as u32).collect();
        let ids = |r: std::ops::Range<usize>| Tensor::new(&tokens[r], &Device::Cpu)?.unsqueeze(0);
        let n = tokens.len();

        // The whole sequence at once (window masks in one batch).
        assert_close(
            &model.forward(&ids(0..n)?, 0)?,
            &reference_logits(&tokens),
            "batch",
        )?;
        // Rewinding into the cache: re-run the last two positions.
        let rerun = model.forward(&ids(n - 2..n)?, n - 2)?;
        assert_close(&rerun, &reference_logits(&tokens), "rewind")?;

        // A short prompt, then one token at a time well past the window (from an empty cache,
        // so the sliding layers' small buffers slide several times).
        model.clear_kv_cache();
        model.forward(&ids(0..3)?, 0)?;
        for p in 3..n {
            let logits = model.forward(&ids(p..p + 1)?, p)?;
            assert_close(&logits, &reference_logits(&tokens[..=p]), "decode")?;
        }
        // The window's oldest keys are gone: rewinding that far must fail, not mislead.
        assert!(model.forward(&ids(2..3)?, 2).is_err());

        // The same through forward's own prompt chunking.
        model.prefill_chunk = 4;
        assert_close(
            &model.forward(&ids(0..n)?, 0)?,
            &reference_logits(&tokens),
            "chunked prompt",
        )?;
        model.prefill_chunk = PREFILL_CHUNK;

        // Multi-token chunks after a cached prefix.
        model.forward(&ids(0..7)?, 0)?;
        let mid = model.forward(&ids(7..16)?, 7)?;
        assert_close(&mid, &reference_logits(&tokens[..16]), "chunk")?;
        let end = model.forward(&ids(16..n)?, 16)?;
        assert_close(&end, &reference_logits(&tokens), "chunk")?;
        Ok(())
    }
}
