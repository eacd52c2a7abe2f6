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
    /// Seconds it took to load.
    pub load_seconds: f64,
}

/// A loaded language model: weights, tokenizer and chat template from one GGUF file.
pub struct Llm {
    /// The network.
    pub model: CausalLm,
    /// The tokenizer built from the GGUF metadata.
    pub tokenizer: GgufTokenizer,
    /// The chat template from the GGUF metadata, if any.
    pub chat_template: Option<ChatTemplate>,
    /// What the UI shows.
    pub info: ModelInfo,
}

impl Llm {
    /// Loads and validates a GGUF model on the CPU.
    pub fn load(path: &Path) -> Result<Self, LlmError> {
        let started = std::time::Instant::now();
        let device = candle_core::Device::Cpu;
        let (content, mut file, file_size) = gguf::open(path)?;
        arch::detect(path, &content)?;
        let tokenizer = GgufTokenizer::from_gguf(&content)?;
        let chat_template = ChatTemplate::from_gguf(&content, &tokenizer)?;
        let model = CausalLm::load(path, &content, &mut file, &device)?;
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
        };
        Ok(Self {
            model,
            tokenizer,
            chat_template,
            info,
        })
    }
}
