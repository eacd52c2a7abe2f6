//! Atelier's own decoder for Llama- and Gemma 3-style GGUF models on the CPU: f32
//! activations, integer dot products on weights repacked at load ([`quant`]), AVX-512 VNNI
//! kernels (`avx512`) with an AVX2 fallback (`avx2`), and its own thread pool. candle's quantized models remain the
//! path for other CPUs (see [`supported`]) and for the other architectures.
//!
//! Why not candle here: its Q4_1 dot product (SmolLM2's format) is scalar, its CPU ops
//! allocate a tensor per step and run single-threaded on small shapes, and llama.cpp ran the
//! default models 1.5-4x faster on the same two cores (BENCHMARKS.md).
//!
//! The layer follows llama.cpp's `llm_build_llama` and `llm_build_gemma3` (pre-norm
//! attention with RoPE and grouped-query heads, then a gated MLP; Gemma adds q/k norms,
//! post-norms, sliding-window layers and the scaled embedding); `gemma3.rs` documents the
//! Gemma details and is the candle-based reference this is tested against.

mod attention;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod blocks;
pub mod lora;
#[cfg(target_arch = "x86_64")]
mod lora_simd;
pub mod ops;
pub mod quant;
pub mod read_at;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QStorage, QTensor};

use crate::models::llm::lora::{LoraAdapter, LoraTarget};
use attention::KvCache;
use lora::LayerLora;
use quant::{Kernel, QActs, QMatrix};
use read_at::ReadAt;

/// Tokens pushed through the layers at once; longer prompts go in chunks (bounds scratch
/// memory and attention work per call).
const CHUNK: usize = 256;

/// Whether this CPU runs the native decoder (AVX-512 VNNI or AVX2; else candle's models run).
/// `ATELIER_LLM_BACKEND=candle` forces candle (to compare the two).
pub fn supported() -> bool {
    Kernel::best() != Kernel::Portable
        && std::env::var("ATELIER_LLM_BACKEND").map_or(true, |v| v != "candle")
}

/// The fastest kernel, or the one `ATELIER_LLM_KERNEL=avx2|portable` asks for (to measure
/// the fallbacks on a CPU that has the faster one).
fn kernel_choice() -> Kernel {
    let best = Kernel::best();
    match std::env::var("ATELIER_LLM_KERNEL").as_deref() {
        Ok("avx2") if quant::avx2_available() => Kernel::Avx2,
        Ok("portable") => Kernel::Portable,
        _ => best,
    }
}

/// What failed while building the decoder from a GGUF file.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// A metadata key is missing or has the wrong type.
    #[error("metadata '{0}' is missing or invalid")]
    Metadata(String),
    /// A tensor is missing.
    #[error("tensor '{0}' is missing")]
    Missing(String),
    /// A tensor has an unexpected shape.
    #[error("tensor '{name}' has shape {got:?}, expected {want:?}")]
    Shape {
        /// Tensor name.
        name: String,
        /// Its shape.
        got: Vec<usize>,
        /// What the metadata implies.
        want: Vec<usize>,
    },
    /// The model uses something this decoder does not implement.
    #[error("{0}")]
    Unsupported(String),
    /// Reading or repacking a tensor failed.
    #[error(transparent)]
    Quant(#[from] quant::QuantError),
    /// candle could not read a tensor.
    #[error("{0}")]
    Read(String),
    /// The thread pool could not start.
    #[error("cannot start the inference threads: {0}")]
    Threads(String),
}

/// The two families this decoder runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Llama (SmolLM2, Mistral-style).
    Llama,
    /// Gemma 3.
    Gemma3,
}

/// The MLP's gate activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Activation {
    /// SiLU (SwiGLU): Llama.
    Silu,
    /// GELU, tanh approximation (GeGLU): Gemma.
    GeluTanh,
}

/// Rotary embedding parameters of one kind of layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RopeCfg {
    pub(crate) base: f32,
    pub(crate) pos_scale: f64,
}

/// What every layer shares (read from the GGUF metadata by [`Hparams::from_gguf`]).
pub(crate) struct Config {
    pub(crate) n_embd: usize,
    pub(crate) n_head: usize,
    pub(crate) n_kv: usize,
    pub(crate) head_dim: usize,
    pub(crate) rope_dims: usize,
    pub(crate) neox: bool,
    pub(crate) eps: f32,
    /// Gemma multiplies the embeddings by sqrt(n_embd).
    pub(crate) embed_scale: f32,
    /// Multiplies attention scores (1 where the scale is folded into the q-norm weight).
    pub(crate) score_scale: f32,
    pub(crate) activation: Activation,
    pub(crate) ropes: Vec<RopeCfg>,
}

/// A model's hyper-parameters as this decoder runs them; the training decoder
/// (`models::llm::train`) reads the same, so both compute the same function.
pub(crate) struct Hparams {
    pub(crate) cfg: Config,
    pub(crate) n_layer: usize,
    pub(crate) n_ff: usize,
    /// Each layer's sliding window (None: global attention).
    pub(crate) windows: Vec<Option<usize>>,
    /// Gemma's attention scale, folded into the q-norm weights.
    pub(crate) attn_scale: f32,
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    wo: QMatrix,
    /// Per-head norms (Gemma), the q one carrying the attention scale.
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    gate: QMatrix,
    up: QMatrix,
    down: QMatrix,
    post_ffn_norm: Option<Vec<f32>>,
    window: Option<usize>,
    rope: usize,
}

/// Reused buffers for one chunk.
#[derive(Default)]
struct Scratch {
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    o: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    acts: QActs,
}

/// A decoder model with its key/value cache.
pub struct Decoder {
    cfg: Config,
    family: Family,
    /// Token embeddings, also the output projection when the model ties them.
    embed: QMatrix,
    output: Option<QMatrix>,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    cache: Vec<KvCache>,
    kernel: Kernel,
    pool: Arc<rayon::ThreadPool>,
    scratch: Scratch,
    /// Tokens per pass through the layers ([`CHUNK`]; smaller in tests).
    chunk: usize,
    /// The applied adapter's side paths, one per layer (empty: none).
    lora: Vec<LayerLora>,
    /// The adapter's strength (the user's scale).
    lora_strength: f32,
}

/// Reads tensors by name from a GGUF file, one at a time (so loading holds at most one
/// tensor's file bytes besides the repacked weights).
pub(crate) struct Reader<'a, R> {
    ct: &'a Content,
    file: &'a mut R,
    /// The bytes of the tensor [`Reader::read`] read last.
    pub(crate) buf: Vec<u8>,
}

impl<'a, R: std::io::Read + std::io::Seek> Reader<'a, R> {
    /// A reader of the tensors `ct` describes in `file`.
    pub(crate) fn new(ct: &'a Content, file: &'a mut R) -> Self {
        Self {
            ct,
            file,
            buf: Vec::new(),
        }
    }

    /// Whether the file has this tensor.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.ct.tensor_infos.contains_key(name)
    }

    /// A tensor's format, candle-order shape, byte size and file offset.
    fn locate(&self, name: &str) -> Result<(GgmlDType, Vec<usize>, usize, u64), NativeError> {
        let info = self
            .ct
            .tensor_infos
            .get(name)
            .ok_or_else(|| NativeError::Missing(name.into()))?;
        let bytes = crate::models::llm::gguf::tensor_bytes(info)
            .map_err(|e| NativeError::Read(format!("tensor '{name}' {e}")))?;
        let offset = self.ct.tensor_data_offset.saturating_add(info.offset);
        Ok((info.ggml_dtype, info.shape.dims().to_vec(), bytes, offset))
    }

    /// Reads the tensor's bytes into `self.buf`; returns its format and candle-order shape.
    pub(crate) fn read(&mut self, name: &str) -> Result<(GgmlDType, Vec<usize>), NativeError> {
        let (dtype, dims, size, start) = self.locate(name)?;
        let io = |e: std::io::Error| NativeError::Read(format!("tensor '{name}': {e}"));
        self.file
            .seek(std::io::SeekFrom::Start(start))
            .map_err(io)?;
        // A fresh buffer per tensor: keeping the largest (the embedding table) alive through
        // the rest of the load would raise peak memory by its size.
        self.buf = vec![0; size];
        self.file.read_exact(&mut self.buf).map_err(io)?;
        Ok((dtype, dims))
    }

    /// A 1-D f32 vector of `len` values.
    pub(crate) fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>, NativeError> {
        let (dtype, dims) = self.read(name)?;
        vector_of(name, len, dtype, dims, &self.buf)
    }
}

/// A tensor's bytes as a 1-D f32 vector of `len` values.
fn vector_of(
    name: &str,
    len: usize,
    dtype: GgmlDType,
    dims: Vec<usize>,
    bytes: &[u8],
) -> Result<Vec<f32>, NativeError> {
    if dims != [len] {
        return Err(NativeError::Shape {
            name: name.into(),
            got: dims,
            want: vec![len],
        });
    }
    if dtype == GgmlDType::F32 {
        return Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect());
    }
    dequantize(dtype, &dims, bytes).map_err(|e| NativeError::Read(format!("tensor '{name}': {e}")))
}

impl<R: std::io::Read + std::io::Seek + ReadAt + Sync> Reader<'_, R> {
    /// A tensor's bytes, read at its offset (so that threads can read at once).
    fn bytes_at(&self, name: &str) -> Result<(GgmlDType, Vec<usize>, Vec<u8>), NativeError> {
        let (dtype, dims, size, offset) = self.locate(name)?;
        let mut bytes = vec![0; size];
        self.file
            .read_exact_at(&mut bytes, offset)
            .map_err(|e| NativeError::Read(format!("tensor '{name}': {e}")))?;
        Ok((dtype, dims, bytes))
    }

    /// [`Reader::vector`] through a shared reference.
    fn vector_at(&self, name: &str, len: usize) -> Result<Vec<f32>, NativeError> {
        let (dtype, dims, bytes) = self.bytes_at(name)?;
        vector_of(name, len, dtype, dims, &bytes)
    }

    /// A matrix of `rows` outputs by `cols` inputs (GGUF shape `[cols, rows]`, candle's
    /// `(rows, cols)`). Formats kept exactly are read by the threads that repack them, a few
    /// rows at a time; the others are read whole and dequantized.
    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<QMatrix, NativeError> {
        let (dtype, dims, bytes, offset) = self.locate(name)?;
        if dims != [rows, cols] {
            return Err(NativeError::Shape {
                name: name.into(),
                got: dims,
                want: vec![rows, cols],
            });
        }
        if !QMatrix::keeps_exactly(dtype) {
            let (_, _, data) = self.bytes_at(name)?;
            return Ok(QMatrix::from_gguf(name, dtype, rows, cols, &data, || {
                dequantize(dtype, &dims, &data).map_err(|e| e.to_string())
            })?);
        }
        Ok(QMatrix::from_source(
            name,
            dtype,
            rows,
            cols,
            &*self.file,
            offset,
            bytes,
            || Err("an exact format is never dequantized".into()),
        )?)
    }
}

/// Any GGUF format to f32, through candle (for the formats without an integer form here).
pub(crate) fn dequantize(
    dtype: GgmlDType,
    dims: &[usize],
    data: &[u8],
) -> candle_core::Result<Vec<f32>> {
    let device = candle_core::Device::Cpu;
    let storage = QStorage::from_data(std::borrow::Cow::Borrowed(data), &device, dtype)?;
    QTensor::new(storage, dims)?
        .dequantize(&device)?
        .flatten_all()?
        .to_vec1::<f32>()
}

fn md_u(ct: &Content, key: &str) -> Result<usize, NativeError> {
    ct.metadata
        .get(key)
        .and_then(|v| v.to_u64().ok().or_else(|| v.to_u32().ok().map(u64::from)))
        .map(|v| v as usize)
        .ok_or_else(|| NativeError::Metadata(key.into()))
}

fn md_f(ct: &Content, key: &str) -> Option<f32> {
    ct.metadata.get(key).and_then(|v| v.to_f32().ok())
}

impl Hparams {
    /// Reads the hyper-parameters of a `family` model from its GGUF metadata.
    pub(crate) fn from_gguf(family: Family, ct: &Content) -> Result<Self, NativeError> {
        let p = match family {
            Family::Llama => "llama",
            Family::Gemma3 => "gemma3",
        };
        let n_embd = md_u(ct, &format!("{p}.embedding_length"))?;
        let n_head = md_u(ct, &format!("{p}.attention.head_count"))?;
        let n_kv = md_u(ct, &format!("{p}.attention.head_count_kv"))?;
        let n_layer = md_u(ct, &format!("{p}.block_count"))?;
        let n_ff = md_u(ct, &format!("{p}.feed_forward_length"))?;
        if n_head == 0 || n_kv == 0 || !n_head.is_multiple_of(n_kv) || n_embd == 0 {
            return Err(NativeError::Unsupported(format!(
                "{n_head} attention heads cannot share {n_kv} key/value heads"
            )));
        }
        if md_u(ct, "llama.expert_count").unwrap_or(0) > 1 {
            return Err(NativeError::Unsupported(
                "mixture-of-experts models run on candle".into(),
            ));
        }
        let head_dim = match family {
            Family::Llama => n_embd / n_head,
            Family::Gemma3 => md_u(ct, "gemma3.attention.key_length")?,
        };
        let rope_dims = md_u(ct, &format!("{p}.rope.dimension_count")).unwrap_or(head_dim);
        if head_dim == 0 || rope_dims > head_dim || !rope_dims.is_multiple_of(2) {
            return Err(NativeError::Unsupported(format!(
                "rotary dimensions {rope_dims} for heads of {head_dim}"
            )));
        }
        let eps = md_f(ct, &format!("{p}.attention.layer_norm_rms_epsilon")).ok_or_else(|| {
            NativeError::Metadata(format!("{p}.attention.layer_norm_rms_epsilon"))
        })?;
        let (cfg, windows, attn_scale) = match family {
            Family::Llama => {
                let base = md_f(ct, "llama.rope.freq_base").unwrap_or(10_000.0);
                let cfg = Config {
                    n_embd,
                    n_head,
                    n_kv,
                    head_dim,
                    rope_dims,
                    neox: false,
                    eps,
                    embed_scale: 1.0,
                    score_scale: 1.0 / (head_dim as f32).sqrt(),
                    activation: Activation::Silu,
                    ropes: vec![RopeCfg {
                        base,
                        pos_scale: 1.0,
                    }],
                };
                (cfg, vec![None; n_layer], 1.0)
            }
            Family::Gemma3 => {
                let g = gemma3::Gemma3Params::from_content(ct, n_layer, n_embd, n_head, head_dim)?;
                let cfg = Config {
                    n_embd,
                    n_head,
                    n_kv,
                    head_dim,
                    rope_dims: head_dim,
                    neox: true,
                    eps,
                    embed_scale: (n_embd as f32).sqrt(),
                    score_scale: 1.0,
                    activation: Activation::GeluTanh,
                    ropes: vec![
                        RopeCfg {
                            base: g.freq_base,
                            pos_scale: g.pos_scale,
                        },
                        RopeCfg {
                            base: g.freq_base_local,
                            pos_scale: 1.0,
                        },
                    ],
                };
                (cfg, g.windows, g.attn_scale)
            }
        };
        Ok(Self {
            cfg,
            n_layer,
            n_ff,
            windows,
            attn_scale,
        })
    }

    /// Which of [`Config::ropes`] a layer with this window uses: sliding layers take the
    /// local table where the model has one.
    pub(crate) fn rope_of(&self, window: Option<usize>) -> usize {
        usize::from(window.is_some() && self.cfg.ropes.len() > 1)
    }
}

impl Decoder {
    /// Builds the decoder for `family` from a GGUF header and its file.
    pub fn load<R: std::io::Read + std::io::Seek + ReadAt + Sync>(
        family: Family,
        ct: &Content,
        file: &mut R,
    ) -> Result<Self, NativeError> {
        let hp = Hparams::from_gguf(family, ct)?;
        let (n_embd, n_head, n_kv, head_dim) =
            (hp.cfg.n_embd, hp.cfg.n_head, hp.cfg.n_kv, hp.cfg.head_dim);
        let (n_layer, n_ff, attn_scale) = (hp.n_layer, hp.n_ff, hp.attn_scale);
        let rd = Reader::new(ct, file);
        let embed_info = ct
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| NativeError::Missing("token_embd.weight".into()))?;
        let vocab = embed_info.shape.dims().first().copied().unwrap_or(0);
        let embed = rd.matrix("token_embd.weight", vocab, n_embd)?;
        let output = if rd.has("output.weight") {
            Some(rd.matrix("output.weight", vocab, n_embd)?)
        } else {
            None
        };
        let output_norm = rd.vector_at("output_norm.weight", n_embd)?;

        let q_out = n_head * head_dim;
        let kv_out = n_kv * head_dim;
        let gemma = family == Family::Gemma3;
        // Layers load in parallel too (each matrix is split across the threads as well):
        // one layer's matrices are too small to keep both threads busy on their own.
        let load_layer = |(i, &window): (usize, &Option<usize>)| {
            let name = |s: &str| format!("blk.{i}.{s}.weight");
            let opt_norm = |s: &str, len: usize, scale: f32| {
                if gemma {
                    rd.vector_at(&name(s), len)
                        .map(|v| Some(v.into_iter().map(|x| x * scale).collect()))
                } else {
                    Ok(None)
                }
            };
            Ok::<_, NativeError>(Layer {
                attn_norm: rd.vector_at(&name("attn_norm"), n_embd)?,
                wq: rd.matrix(&name("attn_q"), q_out, n_embd)?,
                wk: rd.matrix(&name("attn_k"), kv_out, n_embd)?,
                wv: rd.matrix(&name("attn_v"), kv_out, n_embd)?,
                wo: rd.matrix(&name("attn_output"), n_embd, q_out)?,
                q_norm: opt_norm("attn_q_norm", head_dim, attn_scale)?,
                k_norm: opt_norm("attn_k_norm", head_dim, 1.0)?,
                post_attn_norm: opt_norm("post_attention_norm", n_embd, 1.0)?,
                ffn_norm: rd.vector_at(&name("ffn_norm"), n_embd)?,
                gate: rd.matrix(&name("ffn_gate"), n_ff, n_embd)?,
                up: rd.matrix(&name("ffn_up"), n_ff, n_embd)?,
                down: rd.matrix(&name("ffn_down"), n_embd, n_ff)?,
                post_ffn_norm: opt_norm("post_ffw_norm", n_embd, 1.0)?,
                window,
                rope: hp.rope_of(window),
            })
        };
        use rayon::prelude::*;
        let layers = hp
            .windows
            .par_iter()
            .enumerate()
            .map(load_layer)
            .collect::<Result<Vec<_>, _>>()?;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("atelier-llm-{i}"))
            .build()
            .map_err(|e| NativeError::Threads(e.to_string()))?;
        let cache = (0..n_layer).map(|_| KvCache::new(kv_out)).collect();
        Ok(Self {
            cfg: hp.cfg,
            family,
            embed,
            output,
            output_norm,
            layers,
            cache,
            kernel: kernel_choice(),
            pool: Arc::new(pool),
            scratch: Scratch::default(),
            chunk: CHUNK,
            lora: Vec::new(),
            lora_strength: 1.0,
        })
    }

    /// Applies `adapter` as low-rank side paths ([`lora`]) at `strength`, replacing any
    /// applied before; `None` removes it. The base weights are untouched.
    pub fn set_adapter(
        &mut self,
        adapter: Option<&LoraAdapter>,
        strength: f32,
    ) -> Result<(), NativeError> {
        let Some(adapter) = adapter else {
            self.lora.clear();
            return Ok(());
        };
        let layers = &self.layers;
        let built = lora::build(adapter, layers.len(), |l, t| {
            let w = match t {
                LoraTarget::Q => &layers[l].wq,
                LoraTarget::K => &layers[l].wk,
                LoraTarget::V => &layers[l].wv,
                LoraTarget::O => &layers[l].wo,
                LoraTarget::Gate => &layers[l].gate,
                LoraTarget::Up => &layers[l].up,
                LoraTarget::Down => &layers[l].down,
            };
            (w.rows(), w.cols())
        })
        .map_err(NativeError::Unsupported)?;
        self.lora = built;
        self.lora_strength = strength;
        Ok(())
    }

    /// Changes the applied adapter's strength (instant: a factor of the side paths).
    pub fn set_adapter_strength(&mut self, strength: f32) {
        self.lora_strength = strength;
    }

    /// The family this decoder runs.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Drops the cached keys and values.
    pub fn clear_cache(&mut self) {
        for c in &mut self.cache {
            c.truncate(0);
        }
    }

    /// Uses the portable kernel instead of the SIMD one (tests compare the two).
    pub fn set_kernel(&mut self, kernel: Kernel) {
        self.kernel = kernel;
    }

    /// Runs `tokens` at positions `pos..` (rewinding the cache to `pos` first) and returns
    /// the logits predicting the token after the last one.
    pub fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, NativeError> {
        let vocab = self.embed.rows();
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(NativeError::Unsupported(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        for c in &mut self.cache {
            c.truncate(pos);
        }
        // The whole step runs on the pool, so this thread's wait is one hand-off per call
        // and every parallel loop inside starts on a worker.
        let pool = self.pool.clone();
        let logits = pool.install(|| {
            let mut last = Vec::new();
            let size = self.chunk.max(1);
            for (i, chunk) in tokens.chunks(size).enumerate() {
                last = self.chunk_forward(chunk, pos + i * size);
            }
            self.logits(&last)
        });
        Ok(logits)
    }

    /// The hidden state of the chunk's last token after all layers.
    fn chunk_forward(&mut self, tokens: &[u32], pos: usize) -> Vec<f32> {
        let cfg = &self.cfg;
        let m = tokens.len();
        let d = cfg.n_embd;
        let mut x = vec![0f32; m * d];
        for (row, &t) in x.chunks_exact_mut(d).zip(tokens) {
            self.embed.row(t as usize, row);
            if cfg.embed_scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= cfg.embed_scale);
            }
        }
        let tables: Vec<(Vec<f32>, Vec<f32>)> = cfg
            .ropes
            .iter()
            .map(|r| ops::rope_tables(r.base, cfg.rope_dims, r.pos_scale, pos, m))
            .collect();
        let s = &mut self.scratch;
        let kernel = self.kernel;
        let strength = self.lora_strength;
        for (i, (layer, cache)) in self.layers.iter().zip(&mut self.cache).enumerate() {
            let lora = self.lora.get(i);
            let (hd, nh, nkv) = (cfg.head_dim, cfg.n_head, cfg.n_kv);
            s.h.clear();
            s.h.extend_from_slice(&x);
            ops::rms_norm(&mut s.h, d, &layer.attn_norm, cfg.eps);
            project(
                kernel,
                &mut s.acts,
                &s.h,
                m,
                &mut [
                    (&layer.wq, &mut s.q),
                    (&layer.wk, &mut s.k),
                    (&layer.wv, &mut s.v),
                ],
            );
            if let Some(l) = lora {
                l.apply(kernel, LoraTarget::Q, &s.h, m, strength, &mut s.q);
                l.apply(kernel, LoraTarget::K, &s.h, m, strength, &mut s.k);
                l.apply(kernel, LoraTarget::V, &s.h, m, strength, &mut s.v);
            }
            if let Some(w) = &layer.q_norm {
                ops::rms_norm(&mut s.q, hd, w, cfg.eps);
            }
            if let Some(w) = &layer.k_norm {
                ops::rms_norm(&mut s.k, hd, w, cfg.eps);
            }
            let (cos, sin) = &tables[layer.rope];
            ops::rope(&mut s.q, nh, hd, cfg.rope_dims, cfg.neox, cos, sin);
            ops::rope(&mut s.k, nkv, hd, cfg.rope_dims, cfg.neox, cos, sin);
            cache.append(&s.k, &s.v);
            s.att.resize(m * nh * hd, 0.0);
            attention::attend(
                &s.q,
                cache,
                pos,
                attention::Shape {
                    heads: nh,
                    kv_heads: nkv,
                    head_dim: hd,
                    scale: cfg.score_scale,
                    window: layer.window,
                },
                &mut s.att,
            );
            project(kernel, &mut s.acts, &s.att, m, &mut [(&layer.wo, &mut s.o)]);
            if let Some(l) = lora {
                l.apply(kernel, LoraTarget::O, &s.att, m, strength, &mut s.o);
            }
            if let Some(w) = &layer.post_attn_norm {
                ops::rms_norm(&mut s.o, d, w, cfg.eps);
            }
            x.iter_mut().zip(&s.o).for_each(|(a, b)| *a += b);

            s.h.clear();
            s.h.extend_from_slice(&x);
            ops::rms_norm(&mut s.h, d, &layer.ffn_norm, cfg.eps);
            project(
                kernel,
                &mut s.acts,
                &s.h,
                m,
                &mut [(&layer.gate, &mut s.gate), (&layer.up, &mut s.up)],
            );
            if let Some(l) = lora {
                l.apply(kernel, LoraTarget::Gate, &s.h, m, strength, &mut s.gate);
                l.apply(kernel, LoraTarget::Up, &s.h, m, strength, &mut s.up);
            }
            match cfg.activation {
                Activation::Silu => ops::silu_mul(&mut s.gate, &s.up),
                Activation::GeluTanh => ops::gelu_mul(&mut s.gate, &s.up),
            }
            project(
                kernel,
                &mut s.acts,
                &s.gate,
                m,
                &mut [(&layer.down, &mut s.o)],
            );
            if let Some(l) = lora {
                l.apply(kernel, LoraTarget::Down, &s.gate, m, strength, &mut s.o);
            }
            if let Some(w) = &layer.post_ffn_norm {
                ops::rms_norm(&mut s.o, d, w, cfg.eps);
            }
            x.iter_mut().zip(&s.o).for_each(|(a, b)| *a += b);
        }
        x.split_off((m - 1) * d)
    }

    fn logits(&mut self, last: &[f32]) -> Vec<f32> {
        let mut h = last.to_vec();
        ops::rms_norm(&mut h, self.cfg.n_embd, &self.output_norm, self.cfg.eps);
        let w = self.output.as_ref().unwrap_or(&self.embed);
        let mut out = Vec::new();
        project(
            self.kernel,
            &mut self.scratch.acts,
            &h,
            1,
            &mut [(w, &mut out)],
        );
        out
    }
}

/// `out = x W^T` for `m` rows of `x` and each `(W, out)`; `x` is quantized once per block
/// size among the matrices.
fn project(
    kernel: Kernel,
    acts: &mut QActs,
    x: &[f32],
    m: usize,
    jobs: &mut [(&QMatrix, &mut Vec<f32>)],
) {
    let mut prepared = None;
    for (w, out) in jobs.iter_mut() {
        if prepared != Some(w.block()) {
            acts.quantize(x, m, w.cols(), w.block());
            prepared = Some(w.block());
        }
        out.resize(m * w.rows(), 0.0);
        quant::matmul(kernel, acts, w, out);
    }
}

/// Gemma 3's metadata: which layers slide, RoPE frequencies, the attention scale.
mod gemma3 {
    use super::{Content, NativeError, md_f, md_u};
    use crate::models::llm::gemma3 as reference;

    pub struct Gemma3Params {
        pub windows: Vec<Option<usize>>,
        pub freq_base: f32,
        pub freq_base_local: f32,
        pub pos_scale: f64,
        pub attn_scale: f32,
    }

    impl Gemma3Params {
        pub fn from_content(
            ct: &Content,
            n_layer: usize,
            n_embd: usize,
            n_head: usize,
            head_dim: usize,
        ) -> Result<Self, NativeError> {
            let window = md_u(ct, "gemma3.attention.sliding_window")?;
            if window == 0 {
                return Err(NativeError::Metadata(
                    "gemma3.attention.sliding_window".into(),
                ));
            }
            let sliding = reference::sliding_layers(ct, n_layer);
            let scaling = ct
                .metadata
                .get("gemma3.rope.scaling.type")
                .and_then(|v| v.to_string().ok().cloned());
            let factor = md_f(ct, "gemma3.rope.scaling.factor").unwrap_or(1.0);
            let pos_scale = match scaling.as_deref() {
                None | Some("linear") if factor > 0.0 => 1.0 / factor as f64,
                _ => 1.0,
            };
            let pre_attn = reference::query_pre_attn_scalar(n_layer, n_embd, n_head, head_dim);
            Ok(Self {
                windows: sliding.into_iter().map(|s| s.then_some(window)).collect(),
                freq_base: md_f(ct, "gemma3.rope.freq_base")
                    .unwrap_or(reference::DEFAULT_ROPE_FREQ_BASE),
                freq_base_local: md_f(ct, "gemma3.rope.local_freq_base")
                    .unwrap_or(reference::DEFAULT_ROPE_FREQ_BASE_SLIDING),
                pos_scale,
                attn_scale: (1.0 / (pre_attn as f64).sqrt()) as f32,
            })
        }
    }
}

/// The native family of an architecture, if this decoder runs it.
pub fn family_of(arch: crate::models::llm::Architecture) -> Option<Family> {
    match arch {
        crate::models::llm::Architecture::Llama => Some(Family::Llama),
        crate::models::llm::Architecture::Gemma3 => Some(Family::Gemma3),
        _ => None,
    }
}
