//! The hyperparameters a GGUF's metadata declares (layers, heads, head and embedding widths,
//! context length, experts, sliding window, vocabulary) checked against the file's own tensor
//! table before any loader allocates from them — Atelier's native decoder, candle's models and
//! the Gemma 3 port all size buffers, layer lists and rotary tables from these numbers.
//!
//! Metadata is only a claim; the tensor table is not: [`super::gguf::open`] has checked that
//! every tensor lies inside the file, so a count that agrees with the tensors is bounded by the
//! file's size. The few numbers no tensor shows (context length, sliding window) have fixed
//! upper bounds instead.

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};

use super::{Architecture, LlmError, gguf};

/// Longest context a model may declare: 2^20 tokens (the longest supported models declare
/// about a million; most 8K to 128K).
pub const MAX_CONTEXT: u64 = 1 << 20;
/// Widest attention head a model may have (real models use 64 to 256): rotary tables are
/// `context x head width`, so this bounds them together with [`MAX_CONTEXT`].
pub const MAX_HEAD_DIM: u64 = 512;

/// Checks every count `arch`'s loaders read from `content`'s metadata against its tensors.
pub fn check(path: &Path, content: &Content, arch: Architecture) -> Result<(), LlmError> {
    Checker {
        path,
        content,
        prefix: arch.gguf_name(),
    }
    .run(arch)
}

struct Checker<'a> {
    path: &'a Path,
    content: &'a Content,
    prefix: &'static str,
}

impl Checker<'_> {
    fn corrupt(&self, detail: String) -> LlmError {
        LlmError::Corrupt {
            path: self.path.to_path_buf(),
            detail,
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    /// An optional integer under the architecture's prefix.
    fn md(&self, name: &str) -> Option<u64> {
        gguf::metadata_u64(self.content, &self.key(name))
    }

    /// A required integer under the architecture's prefix.
    fn required(&self, name: &str) -> Result<u64, LlmError> {
        self.md(name).ok_or_else(|| LlmError::Metadata {
            path: self.path.to_path_buf(),
            key: self.key(name),
        })
    }

    /// A 2-D tensor's `(rows, cols)` (GGUF `[cols, rows]`), if present.
    fn matrix(&self, name: &str) -> Result<Option<(u64, u64)>, LlmError> {
        let Some(info) = self.content.tensor_infos.get(name) else {
            return Ok(None);
        };
        match info.shape.dims() {
            &[rows, cols] => Ok(Some((rows as u64, cols as u64))),
            dims => Err(self.corrupt(format!("tensor '{name}' has shape {dims:?}, not a matrix"))),
        }
    }

    fn required_matrix(&self, name: &str) -> Result<(u64, u64), LlmError> {
        self.matrix(name)?
            .ok_or_else(|| self.corrupt(format!("tensor '{name}' is missing")))
    }

    /// `value` (metadata `name`) must equal `want`, what the tensor `tensor` shows.
    fn agree(&self, name: &str, value: u64, want: u64, tensor: &str) -> Result<(), LlmError> {
        if value == want {
            Ok(())
        } else {
            Err(self.corrupt(format!(
                "metadata {} is {value} but tensor '{tensor}' says {want}",
                self.key(name)
            )))
        }
    }

    /// `value` (metadata `name`) must lie in `range`.
    fn within(
        &self,
        name: &str,
        value: u64,
        range: std::ops::RangeInclusive<u64>,
        why: &str,
    ) -> Result<(), LlmError> {
        if range.contains(&value) {
            Ok(())
        } else {
            Err(self.corrupt(format!(
                "metadata {} is {value}, outside {}..={} ({why})",
                self.key(name),
                range.start(),
                range.end()
            )))
        }
    }

    fn run(&self, arch: Architecture) -> Result<(), LlmError> {
        let tensors = self.content.tensor_infos.len() as u64;

        let (vocab_rows, embd_cols) = self.required_matrix("token_embd.weight")?;
        let n_embd = self.required("embedding_length")?;
        self.agree("embedding_length", n_embd, embd_cols, "token_embd.weight")?;

        let n_layer = self.required("block_count")?;
        self.within(
            "block_count",
            n_layer,
            1..=tensors,
            "more layers than tensors",
        )?;
        // Every declared layer has its tensors (the count is now at most the tensor count).
        for i in 0..n_layer {
            let name = format!("blk.{i}.attn_q.weight");
            if !self.content.tensor_infos.contains_key(&name) {
                return Err(self.corrupt(format!(
                    "metadata {} is {n_layer} but tensor '{name}' is missing",
                    self.key("block_count")
                )));
            }
        }

        let q = "blk.0.attn_q.weight";
        let (q_rows, q_cols) = self.required_matrix(q)?;
        self.agree("embedding_length", n_embd, q_cols, q)?;
        let n_head = self.required("attention.head_count")?;
        self.within(
            "attention.head_count",
            n_head,
            1..=q_rows,
            "more heads than query rows",
        )?;
        if !q_rows.is_multiple_of(n_head) {
            return Err(self.corrupt(format!(
                "metadata {} is {n_head}, which does not divide the {q_rows} rows of '{q}'",
                self.key("attention.head_count")
            )));
        }
        let head_dim = q_rows / n_head;
        if head_dim > MAX_HEAD_DIM {
            return Err(self.corrupt(format!(
                "heads of {head_dim} values (at most {MAX_HEAD_DIM} are supported)"
            )));
        }
        if let Some(key_length) = self.md("attention.key_length") {
            self.agree("attention.key_length", key_length, head_dim, q)?;
        }
        let n_kv = self.md("attention.head_count_kv").unwrap_or(n_head);
        self.within(
            "attention.head_count_kv",
            n_kv,
            1..=n_head,
            "key/value heads are shared by query heads",
        )?;
        if !n_head.is_multiple_of(n_kv) {
            return Err(self.corrupt(format!(
                "{n_head} query heads cannot share {n_kv} key/value heads"
            )));
        }
        let k = "blk.0.attn_k.weight";
        if let Some((k_rows, _)) = self.matrix(k)? {
            self.agree("attention.head_count_kv", n_kv * head_dim, k_rows, k)?;
        }
        if let (Some(value_length), Some((v_rows, _))) = (
            self.md("attention.value_length"),
            self.matrix("blk.0.attn_v.weight")?,
        ) {
            self.agree(
                "attention.value_length",
                n_kv.saturating_mul(value_length),
                v_rows,
                "blk.0.attn_v.weight",
            )?;
        }
        if let Some(rope) = self.md("rope.dimension_count") {
            self.within(
                "rope.dimension_count",
                rope,
                0..=head_dim,
                "rotates part of a head",
            )?;
        }
        if let (Some(n_ff), Some((ff_rows, _))) = (
            self.md("feed_forward_length"),
            self.matrix("blk.0.ffn_up.weight")?,
        ) {
            self.agree("feed_forward_length", n_ff, ff_rows, "blk.0.ffn_up.weight")?;
        }
        if let Some(ctx) = self.md("context_length") {
            self.within(
                "context_length",
                ctx,
                1..=MAX_CONTEXT,
                "the longest context supported",
            )?;
        }
        if arch == Architecture::Gemma3
            && let Some(window) = self.md("attention.sliding_window")
        {
            self.within(
                "attention.sliding_window",
                window,
                1..=MAX_CONTEXT,
                "the longest context supported",
            )?;
        }
        if let Some(experts) = self.md("expert_count").filter(|&n| n > 1) {
            self.within(
                "expert_count",
                experts,
                2..=tensors,
                "more experts than tensors",
            )?;
            let last = format!("blk.0.ffn_gate.{}.weight", experts - 1);
            if !self.content.tensor_infos.contains_key(&last) {
                return Err(self.corrupt(format!(
                    "metadata {} is {experts} but tensor '{last}' is missing",
                    self.key("expert_count")
                )));
            }
            if let Some(used) = self.md("expert_used_count") {
                self.within("expert_used_count", used, 1..=experts, "experts it has")?;
            }
        }

        // Token ids the tokenizer can produce must have embedding rows and logits.
        let vocab = match self.content.metadata.get("tokenizer.ggml.tokens") {
            Some(Value::Array(tokens)) => Some(tokens.len() as u64),
            _ => None,
        };
        let mut out_rows = vocab_rows;
        if let Some((rows, cols)) = self.matrix("output.weight")? {
            self.agree("embedding_length", n_embd, cols, "output.weight")?;
            out_rows = rows;
        }
        let vocab_key = self.key("vocab_size");
        for (what, n) in [
            ("tokenizer.ggml.tokens", vocab),
            (vocab_key.as_str(), self.md("vocab_size")),
        ] {
            if let Some(n) = n
                && n > vocab_rows.min(out_rows)
            {
                return Err(self.corrupt(format!(
                    "{what} declares {n} tokens but the embedding and output tables have {} rows",
                    vocab_rows.min(out_rows)
                )));
            }
        }

        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::gguf_file::Value;

    use crate::models::llm::{Architecture, Llm, LlmError};

    /// Loads a tiny model of `arch` with metadata `key` set to `value`.
    fn load_with(arch: Architecture, key: &str, value: Value) -> Result<Llm, LlmError> {
        let bytes = crate::fuzzing::tiny_gguf(arch, |md| {
            md.retain(|(k, _)| k != key);
            md.push((key.to_string(), value));
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, bytes).unwrap();
        Llm::load(&path)
    }

    #[test]
    fn counts_that_disagree_with_the_tensors_are_corrupt() {
        let huge = Value::U32(u32::MAX);
        for (arch, key) in [
            (Architecture::Llama, "llama.block_count"),
            (Architecture::Llama, "llama.attention.head_count"),
            (Architecture::Llama, "llama.attention.head_count_kv"),
            (Architecture::Llama, "llama.embedding_length"),
            (Architecture::Llama, "llama.context_length"),
            (Architecture::Llama, "llama.vocab_size"),
            (Architecture::Llama, "llama.expert_count"),
            (Architecture::Gemma3, "gemma3.attention.key_length"),
            (Architecture::Gemma3, "gemma3.attention.value_length"),
            (Architecture::Gemma3, "gemma3.attention.sliding_window"),
        ] {
            match load_with(arch, key, huge.clone()) {
                Err(LlmError::Corrupt { detail, .. }) => {
                    let name = key.split_once('.').map_or(key, |(_, n)| n);
                    assert!(detail.contains(name), "{key}: {detail}");
                }
                Err(e) => panic!("{key}: expected Corrupt, got {e}"),
                Ok(_) => panic!("{key}: a hostile count was accepted"),
            }
        }
        // A missing required count is named.
        let bytes = crate::fuzzing::tiny_gguf(Architecture::Llama, |md| {
            md.retain(|(k, _)| k != "llama.block_count");
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            Llm::load(&path),
            Err(LlmError::Metadata { key, .. }) if key == "llama.block_count"
        ));
    }

    #[test]
    fn the_tiny_models_pass_and_run() {
        for arch in [Architecture::Llama, Architecture::Gemma3] {
            let mut llm = load_with(arch, "general.name", Value::String("tiny".into())).unwrap();
            let logits = llm.model.forward(&[1, 5, 7], 0).unwrap();
            assert_eq!(logits.len(), llm.tokenizer.vocab_size(), "{arch:?}");
        }
    }
}
