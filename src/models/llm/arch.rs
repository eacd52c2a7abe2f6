//! The architectures Atelier runs, behind one small interface: feed tokens at a position, get
//! the next-token logits. Llama, Qwen 2 and Qwen 3 use candle's quantized models as shipped;
//! Gemma 3 uses the project's own port ([`super::gemma3`]), which fixes candle's.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Content};
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_qwen2, quantized_qwen3};

use super::lora::{LoraAdapter, LoraError};
use super::{LlmError, gemma3, gguf, hparams, lora, native};

/// A language-model architecture Atelier can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Llama and its descendants (SmolLM2, Mistral-style GGUFs tagged `llama`).
    Llama,
    /// Qwen 2 / 2.5.
    Qwen2,
    /// Qwen 3 (dense).
    Qwen3,
    /// Gemma 3 (text).
    Gemma3,
}

impl Architecture {
    /// The list shown when a file's architecture is not supported.
    pub const SUPPORTED: &'static str = "llama, qwen2, qwen3 and gemma3";

    /// Maps GGUF's `general.architecture` to an architecture.
    pub fn from_gguf_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Self::Llama),
            "qwen2" => Some(Self::Qwen2),
            "qwen3" => Some(Self::Qwen3),
            "gemma3" => Some(Self::Gemma3),
            _ => None,
        }
    }

    /// The GGUF metadata prefix of this architecture.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Gemma3 => "gemma3",
        }
    }
}

/// Reads `general.architecture` and checks that Atelier runs it — before anything else is
/// loaded, so an unsupported model fails with that message rather than a missing-tensor one.
pub fn detect(path: &Path, content: &Content) -> Result<Architecture, LlmError> {
    let found = gguf::metadata_string(content, "general.architecture").ok_or_else(|| {
        LlmError::Metadata {
            path: path.to_path_buf(),
            key: "general.architecture".into(),
        }
    })?;
    Architecture::from_gguf_name(&found).ok_or(LlmError::UnsupportedArchitecture {
        path: path.to_path_buf(),
        found,
    })
}

/// Which implementation runs a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Atelier's native decoder where supported, else candle.
    Auto,
    /// candle's quantized models (and Atelier's candle port of Gemma 3).
    Candle,
}

enum Weights {
    /// Atelier's own decoder (Llama and Gemma 3 on CPUs with AVX-512 VNNI).
    Native(Box<native::Decoder>),
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    Qwen3(quantized_qwen3::ModelWeights),
    Gemma3(gemma3::ModelWeights),
}

/// A causal language model with its key/value cache.
pub struct CausalLm {
    weights: Weights,
    arch: Architecture,
    context_length: usize,
    device: Device,
}

impl CausalLm {
    /// Loads the network described by `content` from `file`: on Atelier's own decoder where
    /// this CPU and architecture allow it, else on candle.
    pub fn load(
        path: &Path,
        content: &Content,
        file: &mut File,
        device: &Device,
    ) -> Result<Self, LlmError> {
        Self::load_with(path, content, file, device, Backend::Auto)
    }

    /// [`CausalLm::load`] with the implementation chosen explicitly (tests run both).
    pub fn load_with(
        path: &Path,
        content: &Content,
        file: &mut File,
        device: &Device,
        backend: Backend,
    ) -> Result<Self, LlmError> {
        Self::load_adapted(path, content, file, device, backend, None)
    }

    /// [`CausalLm::load_with`] with an adapter applied at `strength` (already checked against
    /// this model's shapes): a low-rank side path on the native decoder, merged into the
    /// weights on candle ([`crate::models::llm::lora::merge`]).
    pub fn load_adapted<R: Read + Seek + native::read_at::ReadAt + Sync>(
        path: &Path,
        content: &Content,
        file: &mut R,
        device: &Device,
        backend: Backend,
        adapter: Option<(&LoraAdapter, f32)>,
    ) -> Result<Self, LlmError> {
        let arch = detect(path, content)?;
        hparams::check(path, content, arch)?;
        let ctx_key = format!("{}.context_length", arch.gguf_name());
        // At most hparams::MAX_CONTEXT, checked just above.
        let trained_ctx = gguf::metadata_u64(content, &ctx_key).unwrap_or(2048) as usize;
        // Only the Qwen models need a header other than the file's: a copy, without the
        // vocabulary (which copying a 262k-token header would spend tens of milliseconds on).
        let capped;
        let ct = if matches!(arch, Architecture::Qwen2 | Architecture::Qwen3) {
            // candle's Qwen models precompute rotary tables for every position of the
            // declared context: run them at most as long as Gemma 3 (128K) so that a header
            // cannot make those tables large.
            let ctx = trained_ctx.min(gemma3::MAX_SEQ_LEN);
            let mut c = weights_header(content);
            c.metadata
                .insert(ctx_key, gguf_file::Value::U32(ctx as u32));
            capped = c;
            &capped
        } else {
            content
        };
        let native_ok = backend == Backend::Auto && native::supported() && device.is_cpu();
        if let Some(family) = native::family_of(arch).filter(|_| native_ok) {
            let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                native::Decoder::load(family, ct, file)
            }));
            match loaded {
                Ok(Ok(mut decoder)) => {
                    if let Some((a, strength)) = adapter {
                        decoder
                            .set_adapter(Some(a), strength)
                            .map_err(|e| LlmError::Adapter(LoraError::Invalid(e.to_string())))?;
                    }
                    let context_length = match arch {
                        Architecture::Gemma3 => trained_ctx.min(gemma3::MAX_SEQ_LEN),
                        _ => trained_ctx,
                    };
                    return Ok(Self {
                        weights: Weights::Native(Box::new(decoder)),
                        arch,
                        context_length,
                        device: device.clone(),
                    });
                }
                // Shapes or formats the native decoder does not take (dimensions that are
                // not multiples of 32, mixtures of experts) still run on candle; a corrupt
                // file fails there with candle's own message.
                Ok(Err(e)) => tracing::info!(
                    "{}: native decoder unavailable ({e}); using candle",
                    path.display()
                ),
                Err(_) => tracing::info!(
                    "{}: native decoder failed to load; using candle",
                    path.display()
                ),
            }
        }
        let (weights, context_length) = match adapter {
            None => load_candle(path, arch, ct, file, device)?,
            Some((a, strength)) => {
                let (merged, mut reader) = lora::merge::merge(ct, &mut *file, a, strength)
                    .map_err(|e| LlmError::Adapter(LoraError::Invalid(first_line(&e))))?;
                load_candle(path, arch, &merged, &mut reader, device)?
            }
        };
        let context_length = context_length.min(trained_ctx);
        Ok(Self {
            weights,
            arch,
            context_length,
            device: device.clone(),
        })
    }

    /// Applies `adapter` at `strength` in place (replacing any other; `None` removes it) where
    /// the model allows that without a reload: returns false when it does not (candle's
    /// merged weights), so the caller reloads with [`CausalLm::load_adapted`].
    pub fn set_adapter(
        &mut self,
        adapter: Option<&LoraAdapter>,
        strength: f32,
    ) -> Result<bool, LlmError> {
        match &mut self.weights {
            Weights::Native(m) => {
                m.set_adapter(adapter, strength)
                    .map_err(|e| LlmError::Adapter(LoraError::Invalid(e.to_string())))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Changes the applied adapter's strength in place: true on the native decoder (instant),
    /// false where the weights hold the merged adapter (the caller reloads).
    pub fn set_adapter_strength(&mut self, strength: f32) -> bool {
        match &mut self.weights {
            Weights::Native(m) => {
                m.set_adapter_strength(strength);
                true
            }
            _ => false,
        }
    }

    /// Which implementation runs this model.
    pub fn backend_name(&self) -> &'static str {
        match self.weights {
            Weights::Native(_) => "native",
            _ => "candle",
        }
    }

    /// The architecture this model runs as.
    pub fn architecture(&self) -> Architecture {
        self.arch
    }

    /// How many tokens (prompt + generated) fit in one sequence.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Runs `tokens` at positions `pos..pos + tokens.len()` and returns the logits that
    /// predict the token after the last one. `pos == 0` starts a new sequence (the cache of
    /// the previous one is dropped).
    pub fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, LlmError> {
        if tokens.is_empty() {
            return Err(LlmError::EmptyPrompt);
        }
        if pos + tokens.len() > self.context_length {
            return Err(LlmError::PromptTooLong {
                needed: pos + tokens.len(),
                available: self.context_length,
            });
        }
        if pos == 0 {
            self.clear_cache();
        }
        if let Weights::Native(m) = &mut self.weights {
            return m
                .forward(tokens, pos)
                .map_err(|e| LlmError::Inference(e.to_string()));
        }
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let logits = match &mut self.weights {
            // Returned above; an empty result would fail the caller's vocabulary check.
            Weights::Native(_) => return Ok(Vec::new()),
            Weights::Llama(m) => m.forward(&input, pos)?,
            Weights::Qwen2(m) => m.forward(&input, pos)?,
            Weights::Qwen3(m) => m.forward(&input, pos)?,
            Weights::Gemma3(m) => m.forward(&input, pos)?,
        };
        // Some models return [1, vocab], others [1, seq, vocab] for the last position.
        let logits = logits.flatten_all()?;
        let v = logits.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
        Ok(v)
    }

    fn clear_cache(&mut self) {
        match &mut self.weights {
            Weights::Native(m) => m.clear_cache(),
            Weights::Llama(m) => m.clear_kv_cache(),
            Weights::Qwen2(m) => m.clear_kv_cache(),
            Weights::Qwen3(m) => m.clear_kv_cache(),
            Weights::Gemma3(m) => m.clear_kv_cache(),
        }
    }
}

/// Loads the network on candle from a header and a reader (the file, or an adapter overlay);
/// returns it with the context length candle's implementation allows.
fn load_candle<R: Read + Seek>(
    path: &Path,
    arch: Architecture,
    ct: &Content,
    file: &mut R,
    device: &Device,
) -> Result<(Weights, usize), LlmError> {
    let corrupt = |e: candle_core::Error| LlmError::Corrupt {
        path: path.to_path_buf(),
        detail: first_line(&e),
    };
    let guarded = |f: &mut dyn FnMut() -> candle_core::Result<Weights>| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .map_err(|_| LlmError::Corrupt {
                path: path.to_path_buf(),
                detail: "the tensors do not match the architecture's layout".into(),
            })?
            .map_err(corrupt)
    };
    Ok(match arch {
        Architecture::Llama => (
            guarded(&mut || {
                quantized_llama::ModelWeights::from_gguf(weights_header(ct), file, device)
                    .map(Weights::Llama)
            })?,
            // candle's llama precomputes rotary tables for MAX_SEQ_LEN positions.
            quantized_llama::MAX_SEQ_LEN,
        ),
        Architecture::Qwen2 => (
            guarded(&mut || {
                quantized_qwen2::ModelWeights::from_gguf(weights_header(ct), file, device)
                    .map(Weights::Qwen2)
            })?,
            // Capped in the header copy (see load_adapted).
            gemma3::MAX_SEQ_LEN,
        ),
        Architecture::Qwen3 => (
            guarded(&mut || {
                quantized_qwen3::ModelWeights::from_gguf(weights_header(ct), file, device)
                    .map(Weights::Qwen3)
            })?,
            gemma3::MAX_SEQ_LEN,
        ),
        Architecture::Gemma3 => (
            guarded(&mut || {
                gemma3::ModelWeights::from_gguf(weights_header(ct), file, device)
                    .map(Weights::Gemma3)
            })?,
            gemma3::MAX_SEQ_LEN,
        ),
    })
}

fn first_line(e: &candle_core::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// A copy of a GGUF header for the weight loaders, which take it by value (candle's `Content`
/// is not `Clone`): everything but the tokenizer's metadata, which none of them reads and
/// which holds nearly all of a header's values (a vocabulary, its scores and merges).
pub(crate) fn weights_header(c: &Content) -> Content {
    use candle_core::quantized::gguf_file::TensorInfo;
    Content {
        magic: c.magic,
        metadata: c
            .metadata
            .iter()
            .filter(|(k, _)| !k.starts_with(gguf::TOKENIZER_KEYS))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        tensor_infos: c
            .tensor_infos
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    TensorInfo {
                        ggml_dtype: t.ggml_dtype,
                        shape: t.shape.clone(),
                        offset: t.offset,
                    },
                )
            })
            .collect(),
        tensor_data_offset: c.tensor_data_offset,
    }
}
