//! Local language models from GGUF files: loading and validation, the tokenizer and chat
//! template from the GGUF metadata, sampling, and the generation loop that the GUI, the CLI,
//! the tests and the benchmarks all share.

pub mod arch;
pub mod chat;
pub mod context;
pub mod discover;
pub mod gemma3;
pub mod generate;
pub mod gguf;
pub mod gguf_header;
pub mod hparams;
pub mod lora;
pub mod native;
pub mod sampling;
pub mod tokenizer;
pub mod train;

use std::path::{Path, PathBuf};

pub use arch::{Architecture, Backend, CausalLm};
pub use chat::{ChatMessage, ChatTemplate};
pub use generate::{
    GenerateParams, GeneratedToken, GenerationResult, GenerationStats, Prompt, StopReason,
    TokenAlternative, TokenScore, generate,
};
pub use sampling::SamplingParams;
pub use tokenizer::GgufTokenizer;

/// Everything that can go wrong with a language model, phrased for the person who chose it.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a GGUF file at all.
    #[error("{} is not a GGUF model (it does not start with the GGUF magic bytes); the Write panel opens GGUF language models", path.display())]
    NotGguf { path: PathBuf },
    /// The file is a GGUF file but damaged or cut short.
    #[error("{} is damaged or truncated: {detail}; download it again ({})", path.display(), crate::paths::FETCH_COMMAND)]
    Corrupt { path: PathBuf, detail: String },
    /// The model's architecture is one Atelier does not run.
    #[error("{}: the architecture '{found}' is not supported; Atelier runs {}", path.display(), Architecture::SUPPORTED)]
    UnsupportedArchitecture { path: PathBuf, found: String },
    /// A metadata key the architecture needs is absent or has the wrong type.
    #[error("{}: metadata '{key}' is missing or invalid", path.display())]
    Metadata { path: PathBuf, key: String },
    /// The tokenizer described in the GGUF metadata could not be built or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template could not be rendered.
    #[error("chat template: {0}")]
    Template(String),
    /// The prompt has no text to work from.
    #[error("the prompt is empty: write something in the document or the instruction first")]
    EmptyPrompt,
    /// A token id outside the vocabulary (e.g. in `--continuation-ids`).
    #[error("token id {id} is outside the model's vocabulary of {vocab} tokens")]
    BadTokenId { id: u32, vocab: usize },
    /// The instruction alone does not fit the model's context window.
    #[error(
        "the instruction alone needs {needed} tokens but the model's context holds {available}; shorten it"
    )]
    PromptTooLong { needed: usize, available: usize },
    /// Inference failed in Atelier's own decoder.
    #[error("inference failed: {0}")]
    Inference(String),
    /// Inference failed inside candle.
    #[error("inference failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// An adapter could not be read or does not fit the model (the model itself is fine).
    #[error(transparent)]
    Adapter(#[from] lora::LoraError),
}

/// What the UI and the CLI show about a loaded model.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ModelInfo {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// A short display name (general.name, else the file stem).
    pub name: String,
    /// The architecture it runs as.
    pub architecture: Architecture,
    /// Which implementation runs it: "native" (AVX-512 VNNI) or "candle".
    pub backend: &'static str,
    /// Tokens the model can attend to at once (as Atelier runs it).
    pub context_length: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Whether the GGUF carries a chat template (Instruct mode needs one).
    pub has_chat_template: bool,
    /// File size in bytes.
    pub file_size: u64,
    /// Seconds it took to load (the adapter included).
    pub load_seconds: f64,
    /// The LoRA adapter applied, if any.
    pub adapter: Option<lora::AppliedAdapter>,
}

/// A loaded language model: weights, tokenizer and chat template from one GGUF file, and
/// optionally a LoRA adapter.
pub struct Llm {
    /// The network.
    pub model: CausalLm,
    /// The tokenizer built from the GGUF metadata.
    pub tokenizer: GgufTokenizer,
    /// The chat template from the GGUF metadata, if any.
    pub chat_template: Option<ChatTemplate>,
    /// What the UI shows.
    pub info: ModelInfo,
    /// What adapters are checked against.
    base: lora::BaseShapes,
    /// The applied adapter (kept to re-apply at another strength).
    adapter: Option<Applied>,
}

impl Llm {
    /// Loads and validates a GGUF model on the CPU.
    pub fn load(path: &Path) -> Result<Self, LlmError> {
        Self::load_with_adapter(path, None)
    }

    /// Loads a model with a LoRA adapter applied (checked against the model first: a
    /// mismatched adapter fails with [`LlmError::Adapter`] naming the tensor).
    pub fn load_with_adapter(
        path: &Path,
        adapter: Option<&lora::AdapterSpec>,
    ) -> Result<Self, LlmError> {
        let started = std::time::Instant::now();
        let device = candle_core::Device::Cpu;
        let (mut content, mut file, file_size) = gguf::open(path)?;
        let architecture = arch::detect(path, &content)?;
        // Counts first, the vocabulary's size included: the tokenizer, the loaders and
        // adapters trust them.
        hparams::check(path, &content, architecture)?;
        let base = lora::BaseShapes::from_content(&content);
        let loaded = match adapter {
            Some(spec) => Some(read_adapter(spec, &base)?),
            None => None,
        };
        // The tokenizer and chat template are built on their own thread while the weights
        // load (the repack runs on the rayon pool, the tokenizer on one core), from their own
        // part of the header, which that thread then frees: a vocabulary's strings do not stay
        // in memory beside the tokenizer's copy while the weights are repacked.
        let tokenizer_header = gguf::split_tokenizer(&mut content);
        let (built, model) = std::thread::scope(|scope| {
            let building = std::thread::Builder::new()
                .name("atelier-tokenizer".into())
                .spawn_scoped(scope, move || {
                    let tokenizer = GgufTokenizer::from_gguf(&tokenizer_header)?;
                    let template = ChatTemplate::from_gguf(&tokenizer_header, &tokenizer)?;
                    Ok((tokenizer, template))
                })
                .map_err(|e| LlmError::Tokenizer(format!("no thread to build it on: {e}")))?;
            let model = CausalLm::load_adapted(
                path,
                &content,
                &mut file,
                &device,
                Backend::Auto,
                loaded.as_ref().map(|a| (a.adapter.as_ref(), a.spec.scale)),
            );
            let built = building.join().unwrap_or_else(|_| {
                Err(LlmError::Tokenizer(
                    "building it failed unexpectedly".into(),
                ))
            });
            Ok::<_, LlmError>((built, model))
        })?;
        // The tokenizer's and template's errors first, as when they were built before the
        // weights.
        let (tokenizer, chat_template) = built?;
        let model = model?;
        let name = gguf::metadata_string(&content, "general.name").unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let info = ModelInfo {
            path: path.to_path_buf(),
            name,
            architecture: model.architecture(),
            backend: model.backend_name(),
            context_length: model.context_length(),
            vocab_size: tokenizer.vocab_size(),
            has_chat_template: chat_template.is_some(),
            file_size,
            load_seconds: started.elapsed().as_secs_f64(),
            adapter: loaded
                .as_ref()
                .map(|a| lora::AppliedAdapter::new(&a.spec, &a.adapter, adapter_method(&model))),
        };
        Ok(Self {
            model,
            tokenizer,
            chat_template,
            info,
            base,
            adapter: loaded,
        })
    }

    /// The adapter applied now, if any.
    pub fn adapter_spec(&self) -> Option<&lora::AdapterSpec> {
        self.adapter.as_ref().map(|a| &a.spec)
    }

    /// Applies `spec` (another adapter, the same at another strength, or none), replacing the
    /// current one; nothing happens when it is applied already and its file has not changed
    /// since (a retrained adapter saved over the same file is read again). A strength change
    /// is instant on the native decoder; a new adapter is read and checked against this model
    /// first, so a bad one leaves the model as it was. Where the weights hold a merged adapter
    /// (candle), the model reloads.
    pub fn set_adapter(&mut self, spec: Option<&lora::AdapterSpec>) -> Result<(), LlmError> {
        let unchanged_file = |a: &Applied, s: &lora::AdapterSpec| {
            a.spec.path == s.path && a.stamp.is_some() && a.stamp == file_stamp(&s.path)
        };
        let same_file = matches!((&self.adapter, spec), (Some(a), Some(s)) if unchanged_file(a, s));
        if self.adapter_spec() == spec && (spec.is_none() || same_file) {
            return Ok(());
        }
        let next = match (spec, &self.adapter) {
            (None, _) => None,
            (Some(s), Some(a)) if same_file => {
                s.check_scale()
                    .map_err(|e| LlmError::Adapter(lora::LoraError::Invalid(e)))?;
                Some(Applied {
                    spec: s.clone(),
                    ..a.clone()
                })
            }
            (Some(s), _) => Some(read_adapter(s, &self.base)?),
        };
        let started = std::time::Instant::now();
        let in_place = match &next {
            Some(a) if same_file => self.model.set_adapter_strength(a.spec.scale),
            next => self.model.set_adapter(
                next.as_ref().map(|a| a.adapter.as_ref()),
                next.as_ref().map_or(1.0, |a| a.spec.scale),
            )?,
        };
        if !in_place {
            let path = self.info.path.clone();
            let (content, mut file, _) = gguf::open(&path)?;
            self.model = CausalLm::load_adapted(
                &path,
                &content,
                &mut file,
                &candle_core::Device::Cpu,
                Backend::Auto,
                next.as_ref().map(|a| (a.adapter.as_ref(), a.spec.scale)),
            )?;
            self.info.load_seconds = started.elapsed().as_secs_f64();
        }
        self.info.adapter = next
            .as_ref()
            .map(|a| lora::AppliedAdapter::new(&a.spec, &a.adapter, adapter_method(&self.model)));
        self.adapter = next;
        Ok(())
    }
}

/// An adapter as applied: what was asked for, what was read, and the file's size and time
/// when it was read.
#[derive(Clone)]
struct Applied {
    spec: lora::AdapterSpec,
    adapter: std::sync::Arc<lora::LoraAdapter>,
    stamp: Option<(u64, std::time::SystemTime)>,
}

fn file_stamp(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// How adapters are applied on this model's implementation.
fn adapter_method(model: &CausalLm) -> &'static str {
    if model.backend_name() == "native" {
        "side path"
    } else {
        "merged"
    }
}

/// Reads the adapter of `spec`, checked against `base`.
fn read_adapter(spec: &lora::AdapterSpec, base: &lora::BaseShapes) -> Result<Applied, LlmError> {
    spec.check_scale()
        .map_err(|e| LlmError::Adapter(lora::LoraError::Invalid(e)))?;
    let stamp = file_stamp(&spec.path);
    let adapter = lora::gguf::read_for(&spec.path, base)?;
    Ok(Applied {
        spec: spec.clone(),
        adapter: std::sync::Arc::new(adapter),
        stamp,
    })
}
