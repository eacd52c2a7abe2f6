//! Low-rank adapters (LoRA, Hu et al. 2021, <https://arxiv.org/abs/2106.09685>) for the
//! language models: the in-memory adapter that training produces and Write applies.
//!
//! Layout: an adapter is stored and held in the GGUF model's own layout (llama.cpp's), so an
//! adapter trained here on the GGUF weights needs no permutation of q/k rows for llama.cpp;
//! one from PEFT (Hugging Face layout) does. The effective weight of a target projection is
//! `W + scale · (alpha / rank) · B·A`, as in llama.cpp (`scale` is the user's strength).

/// A projection an adapter can target, named as in the GGUF tensor names
/// (`blk.N.<name>.weight`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum LoraTarget {
    /// Attention query projection (`attn_q`).
    Q,
    /// Attention key projection (`attn_k`).
    K,
    /// Attention value projection (`attn_v`).
    V,
    /// Attention output projection (`attn_output`).
    O,
    /// MLP gate projection (`ffn_gate`).
    Gate,
    /// MLP up projection (`ffn_up`).
    Up,
    /// MLP down projection (`ffn_down`).
    Down,
}

impl LoraTarget {
    /// Every target, in the order the CLI lists them.
    pub const ALL: [LoraTarget; 7] = [
        LoraTarget::Q,
        LoraTarget::K,
        LoraTarget::V,
        LoraTarget::O,
        LoraTarget::Gate,
        LoraTarget::Up,
        LoraTarget::Down,
    ];

    /// The GGUF tensor name part (`blk.N.<this>.weight`).
    pub fn gguf_name(self) -> &'static str {
        match self {
            LoraTarget::Q => "attn_q",
            LoraTarget::K => "attn_k",
            LoraTarget::V => "attn_v",
            LoraTarget::O => "attn_output",
            LoraTarget::Gate => "ffn_gate",
            LoraTarget::Up => "ffn_up",
            LoraTarget::Down => "ffn_down",
        }
    }

    /// The short name the CLI and the UI use (`q`, `k`, `v`, `o`, `gate`, `up`, `down`).
    pub fn short_name(self) -> &'static str {
        match self {
            LoraTarget::Q => "q",
            LoraTarget::K => "k",
            LoraTarget::V => "v",
            LoraTarget::O => "o",
            LoraTarget::Gate => "gate",
            LoraTarget::Up => "up",
            LoraTarget::Down => "down",
        }
    }
}

/// One adapted projection: `delta W = (alpha / rank) · B · A`.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraPair {
    /// Which block (layer) of the model.
    pub layer: usize,
    /// Which projection in it.
    pub target: LoraTarget,
    /// The rank r.
    pub rank: usize,
    /// Input features of the projection (columns of W).
    pub n_in: usize,
    /// Output features of the projection (rows of W, in the GGUF's row order).
    pub n_out: usize,
    /// A: `rank × n_in`, row-major (GGUF `lora_a` with ne = [n_in, rank]).
    pub a: Vec<f32>,
    /// B: `n_out × rank`, row-major (GGUF `lora_b` with ne = [rank, n_out]).
    pub b: Vec<f32>,
}

/// A LoRA adapter for one base model.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraAdapter {
    /// The base model's `general.architecture` (llama, gemma3, qwen2, qwen3).
    pub architecture: String,
    /// `adapter.lora.alpha`.
    pub alpha: f32,
    /// The adapted projections, in (layer, target) order.
    pub pairs: Vec<LoraPair>,
}
