//! The tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata, matching llama.cpp
//! token for token.
//!
//! This module owns: reading the vocabulary (pieces, types, scores, merges, special ids) from
//! the metadata; llama.cpp's special-token partition (control tokens only when asked, user-defined
//! tokens always); byte-level BPE for `gpt2` vocabularies (the `tokenizers` crate's
//! pre-tokenizer with the regexes llama.cpp uses for `tokenizer.ggml.pre`, then [`bpe`]'s
//! merges); the SentencePiece score-merge loop for `llama` vocabularies (hand-written: it is
//! llama.cpp's own algorithm, which merges any adjacent pair whose concatenation is a piece,
//! something a merges-list BPE cannot express); detokenization, and [`StreamDecoder`] for
//! streaming generated text.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer, PreTokenizerWrapper,
    SplitDelimiterBehavior,
};

use super::LlmError;

mod bpe;
mod pieces;
use bpe::Merges;
use pieces::Pieces;

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_TYPES: &str = "tokenizer.ggml.token_type";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_MERGES: &str = "tokenizer.ggml.merges";
const KEY_BOS: &str = "tokenizer.ggml.bos_token_id";
const KEY_EOS: &str = "tokenizer.ggml.eos_token_id";
const KEY_EOT: &str = "tokenizer.ggml.eot_token_id";
const KEY_EOM: &str = "tokenizer.ggml.eom_token_id";
const KEY_UNK: &str = "tokenizer.ggml.unknown_token_id";
const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const KEY_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";

/// Pieces llama.cpp treats as end-of-generation by their text (and forces to CONTROL), because
/// converters do not always record them in the metadata.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<｜end▁of▁sentence｜>",
];

/// Fill-in-the-middle pad / repository / file-separator pieces, which llama.cpp also treats as
/// end-of-generation (one per list, unless the metadata names it).
const FIM_TEXTS: &[(&str, &[&str])] = &[
    (
        "tokenizer.ggml.fim_pad_token_id",
        &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
    ),
    (
        "tokenizer.ggml.fim_rep_token_id",
        &[
            "<|fim_repo|>",
            "<|repo_name|>",
            "<fim-repo>",
            "<REPO>",
            "<reponame>",
        ],
    ),
    ("tokenizer.ggml.fim_sep_token_id", &["<|file_sep|>"]),
];

/// SentencePiece's visible space.
const SPM_SPACE: &str = "\u{2581}";

/// GPT-2 pre-tokenizer: llama.cpp runs a hand-written matcher for this expression that also
/// implements the `|\s+` fallback, so it is spelled out here.
const RE_GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const RE_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// llama.cpp's token types (`LLAMA_TOKEN_TYPE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenType {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_gguf(v: i64) -> Self {
        match v {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Undefined,
        }
    }
}

/// How raw text between special tokens becomes ids.
enum Model {
    /// Byte-level BPE (`tokenizer.ggml.model` = "gpt2").
    Bpe {
        /// llama.cpp's pre-tokenizer regexes for `tokenizer.ggml.pre`, then the byte-level
        /// character mapping (the `tokenizers` crate's).
        pre: Sequence,
        /// The merges.
        merges: Merges,
    },
    /// SentencePiece merged by piece score (`tokenizer.ggml.model` = "llama").
    Spm {
        /// The token for each byte value (`<0xNN>`), for characters no piece covers.
        byte_tokens: Box<[Option<u32>; 256]>,
    },
}

/// Special tokens found in text by exact match, in llama.cpp's order (longest text first).
#[derive(Default)]
struct SpecialMatcher {
    /// Text → index into `tokens`.
    by_text: HashMap<Vec<u8>, u32>,
    /// `(id, text length)` in processing order.
    tokens: Vec<(u32, usize)>,
    /// For each first byte, the distinct lengths of special texts starting with it.
    lengths: Vec<Vec<usize>>,
}

impl SpecialMatcher {
    fn new(pieces: &Pieces, ids: impl Iterator<Item = u32>) -> Self {
        let mut order: Vec<u32> = ids.collect();
        // llama.cpp sorts by text length, longest first (ties: id order here; its sort is
        // unstable, which only matters for overlapping equal-length specials).
        let text = |id: u32| pieces.get(id).unwrap_or_default();
        order.sort_by_key(|&id| (std::cmp::Reverse(text(id).len()), id));
        let mut m = Self {
            lengths: vec![Vec::new(); 256],
            ..Self::default()
        };
        for id in order {
            let text = text(id).as_bytes();
            let Some(&first) = text.first() else {
                continue;
            };
            let idx = m.tokens.len() as u32;
            if m.by_text.contains_key(text) {
                continue;
            }
            m.by_text.insert(text.to_vec(), idx);
            m.tokens.push((id, text.len()));
            let lens = &mut m.lengths[first as usize];
            if !lens.contains(&text.len()) {
                lens.push(text.len());
            }
        }
        m
    }

    /// Splits `text` into raw text and special tokens exactly as llama.cpp's
    /// `tokenizer_st_partition` does: each special token in turn (longest first) claims its
    /// leftmost non-overlapping occurrences in the text no earlier token claimed. Linear in the
    /// text (one hash probe per candidate length at each position where a special could start).
    fn partition<'t>(&self, text: &'t str) -> Result<Vec<Fragment<'t>>, LlmError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        if self.tokens.is_empty() {
            return Ok(vec![Fragment::Text(text)]);
        }
        let bytes = text.as_bytes();
        // Every occurrence of every special text: (processing index, position).
        let mut found: Vec<(u32, usize)> = Vec::new();
        for (pos, &b) in bytes.iter().enumerate() {
            for &len in &self.lengths[b as usize] {
                if let Some(&idx) = bytes.get(pos..pos + len).and_then(|s| self.by_text.get(s)) {
                    found.push((idx, pos));
                }
            }
        }
        if found.is_empty() {
            return Ok(vec![Fragment::Text(text)]);
        }
        found.sort_unstable();
        let mut taken = vec![false; bytes.len()];
        let mut claimed: Vec<(usize, usize, u32)> = Vec::new();
        for (idx, pos) in found {
            let (id, len) = self.tokens[idx as usize];
            // Earlier claims are at least as long, so one overlaps this occurrence exactly when
            // it covers its first or last byte.
            if taken[pos] || taken[pos + len - 1] {
                continue;
            }
            taken[pos..pos + len].fill(true);
            claimed.push((pos, len, id));
        }
        claimed.sort_unstable();
        let mut out = Vec::with_capacity(claimed.len() * 2 + 1);
        let mut at = 0;
        let slice = |a: usize, b: usize| {
            text.get(a..b)
                .ok_or_else(|| LlmError::Tokenizer("special token split inside a character".into()))
        };
        for (pos, len, id) in claimed {
            if pos > at {
                out.push(Fragment::Text(slice(at, pos)?));
            }
            out.push(Fragment::Token(id));
            at = pos + len;
        }
        if at < bytes.len() {
            out.push(Fragment::Text(slice(at, bytes.len())?));
        }
        Ok(out)
    }
}

/// A piece of the input after the special-token partition.
enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

/// A tokenizer built from GGUF metadata, encoding and decoding as llama.cpp does.
pub struct GgufTokenizer {
    model: Model,
    pieces: Pieces,
    types: Vec<TokenType>,
    /// SentencePiece scores (empty when the GGUF has none: llama.cpp then uses 0).
    scores: Vec<f32>,
    /// Control, unknown and user-defined tokens (parse_special = true).
    specials_all: SpecialMatcher,
    /// User-defined tokens only (parse_special = false).
    specials_user: SpecialMatcher,
    bos: Option<u32>,
    eos: Option<u32>,
    eog: Vec<u32>,
    add_bos: bool,
    add_space_prefix: bool,
}

impl fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field(
                "model",
                &match self.model {
                    Model::Bpe { .. } => "bpe",
                    Model::Spm { .. } => "spm",
                },
            )
            .field("vocab_size", &self.pieces.len())
            .field("bos", &self.bos)
            .field("eos_ids", &self.eog)
            .field("add_bos", &self.add_bos)
            .finish()
    }
}

fn err(msg: impl Into<String>) -> LlmError {
    LlmError::Tokenizer(msg.into())
}

fn value_int(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => i64::from(*x),
        Value::I8(x) => i64::from(*x),
        Value::U16(x) => i64::from(*x),
        Value::I16(x) => i64::from(*x),
        Value::U32(x) => i64::from(*x),
        Value::I32(x) => i64::from(*x),
        Value::U64(x) => i64::try_from(*x).ok()?,
        Value::I64(x) => *x,
        _ => return None,
    })
}

fn meta_str<'c>(content: &'c Content, key: &str) -> Result<Option<&'c str>, LlmError> {
    match content.metadata.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(err(format!("metadata '{key}' is not a string"))),
    }
}

fn meta_array<'c>(content: &'c Content, key: &str) -> Result<Option<&'c [Value]>, LlmError> {
    match content.metadata.get(key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(err(format!("metadata '{key}' is not an array"))),
    }
}

fn meta_bool(content: &Content, key: &str) -> Result<Option<bool>, LlmError> {
    match content.metadata.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => match value_int(v) {
            Some(i) => Ok(Some(i != 0)),
            None => Err(err(format!("metadata '{key}' is not a boolean"))),
        },
    }
}

/// A token id from the metadata; ids outside the vocabulary are ignored (llama.cpp warns and
/// keeps its default).
fn meta_id(content: &Content, key: &str, n: usize) -> Result<Option<u32>, LlmError> {
    match content.metadata.get(key) {
        None => Ok(None),
        Some(v) => match value_int(v) {
            Some(i) if i >= 0 && (i as u64) < n as u64 => Ok(Some(i as u32)),
            Some(_) => Ok(None),
            None => Err(err(format!("metadata '{key}' is not an integer"))),
        },
    }
}

/// The byte a GPT-2 byte-level character stands for: printable Latin-1 bytes are themselves,
/// the other 68 bytes (0-32, 127-160, 173) are U+0100.. in byte order.
fn byte_level_byte(c: char) -> Option<u8> {
    let code = c as u32;
    if (33..=126).contains(&code) || (161..=172).contains(&code) || (174..=255).contains(&code) {
        return Some(code as u8);
    }
    match code.checked_sub(256)? {
        n @ 0..=32 => Some(n as u8),
        n @ 33..=66 => Some((127 + n - 33) as u8),
        67 => Some(173),
        _ => None,
    }
}

/// llama.cpp's pre-tokenizer regexes for `tokenizer.ggml.pre`, plus whether the pre-type sets
/// `ignore_merges` and its default for `add_bos`.
fn pre_tokenizer_regexes(pre: &str) -> Result<(Vec<&'static str>, bool, bool), LlmError> {
    Ok(match pre {
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            (vec![r"\p{N}", RE_GPT2], false, false)
        }
        "gpt-2" | "phi-2" | "roberta-bpe" | "mpt" | "olmo" | "jais" | "jina-es" | "jina-de"
        | "jina-v1-en" | "jina-v2-es" | "jina-v2-de" | "jina-v2-code" | "gigachat" => {
            (vec![RE_GPT2], false, false)
        }
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" => (vec![RE_LLAMA3], true, true),
        "dbrx" | "smaug-bpe" => (vec![RE_LLAMA3], false, false),
        "qwen2" | "stablelm2" | "megrez" => (vec![RE_QWEN2], false, false),
        "default" | "" => (
            vec![
                r"[\p{P}\$\+<=>\^~\|]+",
                RE_GPT2,
                r"\p{N}+",
                r"[0-9][0-9][0-9]",
            ],
            false,
            false,
        ),
        other => {
            return Err(err(format!(
                "the pre-tokenizer '{other}' (tokenizer.ggml.pre) is not supported"
            )));
        }
    })
}

/// The byte-level BPE model: the pre-tokenizer for `regexes` and the merge table.
fn build_bpe(
    content: &Content,
    pieces: &Pieces,
    regexes: &[&str],
    ignore_merges: bool,
) -> Result<Model, LlmError> {
    let merges = meta_array(content, KEY_MERGES)?
        .ok_or_else(|| err("a gpt2 tokenizer needs tokenizer.ggml.merges, which is missing"))?;
    let merges = Merges::new(merges, pieces, ignore_merges).map_err(err)?;
    let mut steps: Vec<PreTokenizerWrapper> = Vec::with_capacity(regexes.len() + 1);
    for re in regexes {
        let split = Split::new(
            SplitPattern::Regex((*re).to_owned()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| err(format!("bad pre-tokenizer regex: {e}")))?;
        steps.push(split.into());
    }
    steps.push(ByteLevel::new(false, false, false).into());
    Ok(Model::Bpe {
        pre: Sequence::new(steps),
        merges,
    })
}

/// Byte-level BPE on text without special tokens: pre-tokenize, then merge each pre-token.
fn bpe_encode(
    pre: &Sequence,
    merges: &Merges,
    pieces: &Pieces,
    raw: &str,
    out: &mut Vec<u32>,
) -> Result<(), LlmError> {
    let mut words = PreTokenizedString::from(raw);
    pre.pre_tokenize(&mut words)
        .map_err(|e| err(format!("encoding failed: {e}")))?;
    for (word, _, _) in words.get_splits(OffsetReferential::Original, OffsetType::Byte) {
        merges.tokenize(pieces, word, out);
    }
    Ok(())
}

impl GgufTokenizer {
    /// Builds the tokenizer from the GGUF metadata. Missing or malformed metadata, or a
    /// tokenizer kind llama.cpp would not load, gives [`LlmError::Tokenizer`].
    pub fn from_gguf(content: &Content) -> Result<Self, LlmError> {
        let kind = meta_str(content, KEY_MODEL)?
            .ok_or_else(|| err("the GGUF has no tokenizer (tokenizer.ggml.model is missing)"))?;
        let is_spm = match kind {
            "llama" => true,
            "gpt2" => false,
            other => {
                return Err(err(format!(
                    "the tokenizer kind '{other}' is not supported (Atelier reads 'llama' and 'gpt2')"
                )));
            }
        };

        let tokens = meta_array(content, KEY_TOKENS)?
            .ok_or_else(|| err("the GGUF has no vocabulary (tokenizer.ggml.tokens)"))?;
        let n = tokens.len();
        if n == 0 || n > i32::MAX as usize {
            return Err(err(format!("the vocabulary has an impossible size ({n})")));
        }
        let pieces = Pieces::new(tokens).map_err(err)?;
        let mut types = match meta_array(content, KEY_TYPES)? {
            None => vec![TokenType::Normal; n],
            Some(a) if a.len() != n => {
                return Err(err(format!(
                    "tokenizer.ggml.token_type has {} entries for {n} tokens",
                    a.len()
                )));
            }
            Some(a) => a
                .iter()
                .map(|v| value_int(v).map(TokenType::from_gguf))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| err("tokenizer.ggml.token_type holds a non-integer"))?,
        };

        let scores = match meta_array(content, KEY_SCORES)? {
            None => Vec::new(),
            Some(a) if a.len() != n => {
                return Err(err(format!(
                    "tokenizer.ggml.scores has {} entries for {n} tokens",
                    a.len()
                )));
            }
            Some(a) => a
                .iter()
                .map(|v| match v {
                    Value::F32(x) => Some(*x),
                    Value::F64(x) => Some(*x as f32),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| err("tokenizer.ggml.scores holds a non-number"))?,
        };

        let in_vocab = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        let (model, default_bos, default_eos, default_add_bos) = if is_spm {
            // llama.cpp's SPM default unknown id is 0; it stands in for missing byte pieces
            // (where llama.cpp would abort).
            let unk = meta_id(content, KEY_UNK, n)?.or(in_vocab(Some(0)));
            let mut byte_tokens: Box<[Option<u32>; 256]> = Box::new([None; 256]);
            for (b, slot) in byte_tokens.iter_mut().enumerate() {
                *slot = pieces
                    .id(&format!("<0x{b:02X}>"))
                    .or_else(|| {
                        // llama.cpp's fallback: the byte itself as a piece.
                        u8::try_from(b)
                            .ok()
                            .filter(u8::is_ascii)
                            .and_then(|b| pieces.id((b as char).encode_utf8(&mut [0; 4])))
                    })
                    .or(unk);
            }
            if byte_tokens.iter().any(Option::is_none) {
                return Err(err(
                    "the SentencePiece vocabulary lacks byte pieces <0xNN> and an unknown token",
                ));
            }
            (Model::Spm { byte_tokens }, Some(1), Some(2), true)
        } else {
            let pre = meta_str(content, KEY_PRE)?.unwrap_or("default");
            let (regexes, ignore_merges, add_bos) = pre_tokenizer_regexes(pre)?;
            let model = build_bpe(content, &pieces, &regexes, ignore_merges)?;
            (model, Some(11), Some(11), add_bos)
        };
        let bos = meta_id(content, KEY_BOS, n)?.or(in_vocab(default_bos));
        let eos = meta_id(content, KEY_EOS, n)?.or(in_vocab(default_eos));
        let eot = meta_id(content, KEY_EOT, n)?;
        let eom = meta_id(content, KEY_EOM, n)?;
        let add_bos = meta_bool(content, KEY_ADD_BOS)?.unwrap_or(default_add_bos);
        let add_space_prefix = meta_bool(content, KEY_ADD_SPACE_PREFIX)?.unwrap_or(is_spm);

        // End of generation: EOS first, then end-of-turn (and fill-in-the-middle) pieces; those
        // are forced to CONTROL like llama.cpp does, so they never match as plain text.
        let mut eog: Vec<u32> = Vec::new();
        for text in EOG_TEXTS {
            if let Some(id) = pieces.id(text) {
                types[id as usize] = TokenType::Control;
                eog.push(id);
            }
        }
        for (key, texts) in FIM_TEXTS {
            if let Some(id) = meta_id(content, key, n)? {
                eog.push(id);
            } else if let Some(id) = texts.iter().find_map(|t| pieces.id(t)) {
                types[id as usize] = TokenType::Control;
                eog.push(id);
            }
        }
        eog.extend(eot);
        eog.extend(eom);
        eog.sort_unstable();
        eog.dedup();
        if let Some(e) = eos {
            eog.retain(|&x| x != e);
            eog.insert(0, e);
        }

        let specials_all = SpecialMatcher::new(
            &pieces,
            (0..n as u32).filter(|&i| {
                matches!(
                    types[i as usize],
                    TokenType::Control | TokenType::UserDefined | TokenType::Unknown
                )
            }),
        );
        let specials_user = SpecialMatcher::new(
            &pieces,
            (0..n as u32).filter(|&i| types[i as usize] == TokenType::UserDefined),
        );

        Ok(Self {
            model,
            pieces,
            types,
            scores,
            specials_all,
            specials_user,
            bos,
            eos,
            eog,
            add_bos,
            add_space_prefix,
        })
    }

    /// Encodes text WITHOUT adding BOS. `parse_special`: when true, the text of control tokens
    /// (e.g. "<|im_start|>", "<start_of_turn>") becomes that token; when false it is plain text.
    /// User-defined tokens are matched either way (llama.cpp's
    /// `tokenize(text, add_special=false, parse_special)`).
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, LlmError> {
        let matcher = if parse_special {
            &self.specials_all
        } else {
            &self.specials_user
        };
        let fragments = matcher.partition(text)?;
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        // llama.cpp prefixes a space to SentencePiece text at the start and after specials.
        let mut prev_special = true;
        for fragment in fragments {
            match fragment {
                Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(raw) => {
                    match &self.model {
                        Model::Bpe { pre, merges } => {
                            bpe_encode(pre, merges, &self.pieces, raw, &mut out)?;
                        }
                        Model::Spm { byte_tokens } => {
                            let mut s = String::with_capacity(raw.len() + 4);
                            if self.add_space_prefix && prev_special {
                                s.push(' ');
                            }
                            s.push_str(raw);
                            let s = s.replace(' ', SPM_SPACE);
                            self.spm_tokenize(&s, byte_tokens, &mut out)?;
                        }
                    }
                    prev_special = false;
                }
            }
        }
        Ok(out)
    }

    /// llama.cpp's `llm_tokenizer_spm_session::tokenize`: start from characters, repeatedly
    /// merge the adjacent pair whose concatenation is the highest-scoring piece (leftmost on
    /// ties), then emit pieces, and bytes for characters no piece covers. O(n log n).
    fn spm_tokenize(
        &self,
        text: &str,
        byte_tokens: &[Option<u32>; 256],
        out: &mut Vec<u32>,
    ) -> Result<(), LlmError> {
        const NONE: usize = usize::MAX;
        struct Sym {
            start: usize,
            len: usize,
            prev: usize,
            next: usize,
        }
        struct Bigram {
            score: f32,
            left: usize,
            right: usize,
            size: usize,
        }
        impl PartialEq for Bigram {
            fn eq(&self, other: &Self) -> bool {
                self.cmp(other) == Ordering::Equal
            }
        }
        impl Eq for Bigram {}
        impl PartialOrd for Bigram {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for Bigram {
            // Max-heap: highest score first, then the leftmost pair.
            fn cmp(&self, other: &Self) -> Ordering {
                self.score
                    .partial_cmp(&other.score)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| other.left.cmp(&self.left))
            }
        }

        let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
        let count = text.chars().count();
        for (i, (start, c)) in text.char_indices().enumerate() {
            syms.push(Sym {
                start,
                len: c.len_utf8(),
                prev: if i == 0 { NONE } else { i - 1 },
                next: if i + 1 == count { NONE } else { i + 1 },
            });
        }
        if syms.is_empty() {
            return Ok(());
        }

        let mut heap = BinaryHeap::with_capacity(syms.len());
        let try_add = |heap: &mut BinaryHeap<Bigram>, syms: &[Sym], left: usize, right: usize| {
            if left == NONE || right == NONE {
                return;
            }
            let start = syms[left].start;
            let size = syms[left].len + syms[right].len;
            let Some(piece) = text.get(start..start + size) else {
                return;
            };
            if let Some(id) = self.pieces.id(piece) {
                heap.push(Bigram {
                    score: self.scores.get(id as usize).copied().unwrap_or(0.0),
                    left,
                    right,
                    size,
                });
            }
        };
        for i in 1..syms.len() {
            try_add(&mut heap, &syms, i - 1, i);
        }
        while let Some(bg) = heap.pop() {
            let (l, r) = (bg.left, bg.right);
            // Skip pairs invalidated by an earlier merge.
            if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != bg.size {
                continue;
            }
            syms[l].len += syms[r].len;
            syms[r].len = 0;
            let next = syms[r].next;
            syms[l].next = next;
            if next != NONE {
                syms[next].prev = l;
            }
            let prev = syms[l].prev;
            try_add(&mut heap, &syms, prev, l);
            try_add(&mut heap, &syms, l, next);
        }

        let mut i = 0;
        while i != NONE {
            let sym = &syms[i];
            let piece = text.get(sym.start..sym.start + sym.len).unwrap_or_default();
            match self.pieces.id(piece) {
                Some(id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        let id = byte_tokens[b as usize].ok_or_else(|| {
                            err(format!("no token for byte 0x{b:02X} and no unknown token"))
                        })?;
                        out.push(id);
                    }
                }
            }
            i = sym.next;
        }
        Ok(())
    }

    /// BOS id, if the vocabulary has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// EOS id, if the vocabulary has one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// Whether prompts should start with BOS (`tokenizer.ggml.add_bos_token`, else llama.cpp's
    /// default for the tokenizer kind: SentencePiece yes, most BPE pre-tokenizers no).
    pub fn add_bos(&self) -> bool {
        self.add_bos && self.bos.is_some()
    }

    /// Token ids that end generation, as llama.cpp's end-of-generation set: EOS first, then
    /// end-of-turn tokens ("<|im_end|>", "<end_of_turn>", `tokenizer.ggml.eot_token_id`, ...)
    /// and fill-in-the-middle repository/separator/pad tokens, deduplicated.
    pub fn eos_ids(&self) -> Vec<u32> {
        self.eog.clone()
    }

    /// Whether `id` ends generation (see [`Self::eos_ids`]).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// Exact lookup of a vocabulary piece, e.g. `token_id("<|im_end|>")`.
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.pieces.id(piece)
    }

    /// The piece as stored in the vocabulary (e.g. "Ġthe", "▁the", "<0x0A>"), if `id` exists.
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id)
    }

    /// Whether the id is a control token, never shown as text in generated output. Unknown,
    /// unused and untyped tokens count too: llama.cpp renders them as nothing as well.
    pub fn is_control(&self, id: u32) -> bool {
        matches!(
            self.types.get(id as usize),
            Some(
                TokenType::Control | TokenType::Unknown | TokenType::Unused | TokenType::Undefined
            )
        )
    }

    /// The raw bytes this token stands for when detokenized (byte-level BPE bytes;
    /// SentencePiece "▁" → space, "<0xNN>" → the byte; user-defined pieces verbatim). Control
    /// tokens and ids outside the vocabulary: empty.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let (Some(piece), Some(&ty)) = (self.pieces.get(id), self.types.get(id as usize)) else {
            return Vec::new();
        };
        match ty {
            TokenType::UserDefined => piece.as_bytes().to_vec(),
            TokenType::Normal => match self.model {
                Model::Spm { .. } => piece.replace(SPM_SPACE, " ").into_bytes(),
                Model::Bpe { .. } => {
                    let mut out = Vec::with_capacity(piece.len());
                    for c in piece.chars() {
                        match byte_level_byte(c) {
                            Some(b) => out.push(b),
                            // Not a byte-level character: keep it as text rather than
                            // llama.cpp's "[UNK_BYTE_…]" marker.
                            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                        }
                    }
                    out
                }
            },
            TokenType::Byte => piece
                .strip_prefix("<0x")
                .and_then(|h| h.strip_suffix('>'))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .map(|b| vec![b])
                .unwrap_or_default(),
            TokenType::Control | TokenType::Unknown | TokenType::Unused | TokenType::Undefined => {
                Vec::new()
            }
        }
    }

    /// A human-readable form of the token for UI lists: lossy UTF-8 of [`Self::token_bytes`],
    /// control tokens as their piece text.
    pub fn token_text(&self, id: u32) -> String {
        if self.is_control(id) {
            return self.piece(id).unwrap_or_default().to_owned();
        }
        String::from_utf8_lossy(&self.token_bytes(id)).into_owned()
    }

    /// Decodes ids to text: control tokens skipped, invalid UTF-8 replaced. Like llama.cpp's
    /// detokenizer, a SentencePiece vocabulary with `add_space_prefix` drops the leading space
    /// of the first token (the one encoding added).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut strip_space = self.add_space_prefix && matches!(self.model, Model::Spm { .. });
        for &id in ids {
            let b = self.token_bytes(id);
            let b = match (strip_space, b.first()) {
                (true, Some(b' ')) => &b[1..],
                _ => &b[..],
            };
            bytes.extend_from_slice(b);
            strip_space = false;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }
}

/// Incremental detokenizer for streaming: returns only complete UTF-8 text, holding back the
/// bytes of a character split across tokens until it is complete.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one token; returns the text it completes ("" while a multi-byte character is
    /// pending). Invalid byte sequences become U+FFFD.
    pub fn push(&mut self, tok: &GgufTokenizer, id: u32) -> String {
        self.pending.extend_from_slice(&tok.token_bytes(id));
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                        // An incomplete character at the end: wait for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                    }
                }
            }
        }
    }

    /// Flushes leftover bytes (lossy) and resets the decoder.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The `tokenizers` crate's BPE pipeline as this module built it before [`bpe`]: the same
    /// pre-tokenizer, its own BPE model over the same vocabulary and kept merges.
    fn crate_bpe(content: &Content, pieces: &Pieces, pre: &str) -> tokenizers::Tokenizer {
        use tokenizers::models::bpe::{BPE, Vocab};
        let (regexes, ignore_merges, _) = pre_tokenizer_regexes(pre).unwrap();
        let mut seen = hashbrown::HashSet::new();
        let mut merges = Vec::new();
        for v in meta_array(content, KEY_MERGES).unwrap().unwrap() {
            let Value::String(line) = v else { panic!() };
            let Some(split) = line.bytes().skip(1).position(|c| c == b' ').map(|i| i + 1) else {
                continue;
            };
            let (a, b) = (&line[..split], &line[split + 1..]);
            let (Some(ia), Some(ib)) = (pieces.id(a), pieces.id(b)) else {
                continue;
            };
            if pieces.id(&format!("{a}{b}")).is_none() || !seen.insert((ia, ib)) {
                continue;
            }
            merges.push((a.to_owned(), b.to_owned()));
        }
        let vocab: Vocab = pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (p.to_owned(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(ignore_merges)
            .build()
            .unwrap();
        let Model::Bpe { pre, .. } = build_bpe(content, pieces, &regexes, ignore_merges).unwrap()
        else {
            unreachable!()
        };
        let mut tk = tokenizers::Tokenizer::new(bpe);
        tk.with_pre_tokenizer(Some(pre));
        tk
    }

    /// Text of every kind: the repository's documents, and random strings drawn from ASCII,
    /// whitespace runs, digits, punctuation, accents, CJK, emoji and joiners.
    fn corpus() -> Vec<String> {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut texts: Vec<String> = [
            "README.md",
            "ARCHITECTURE.md",
            "src/models/llm/tokenizer.rs",
        ]
        .iter()
        .filter_map(|f| std::fs::read_to_string(format!("{root}/{f}")).ok())
        .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
        let alphabet: Vec<char> =
            "aeiou tnrsl TNRS  \t\n\r\n0123456789 '.,;:!?-—()[]{}<>\"\\/@#$%^&*_+=~`|\
            éèêàçñüöÆøœßЖжΩπ日本語中文한국어🎨🖌\u{200d}\u{fe0f}😀🇫🇷\u{a0}\u{2581}"
                .chars()
                .collect();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..3000 {
            let mut s = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            for _ in 0..(state % 40) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            texts.push(s);
        }
        texts
    }

    #[test]
    fn merges_match_the_tokenizers_crate_on_smollm2() {
        let path = crate::paths::default_model("SmolLM2-135M-Instruct.Q4_1.gguf");
        let (content, _file, _size) = crate::models::llm::gguf::open(&path).expect("the GGUF");
        let pieces = Pieces::new(meta_array(&content, KEY_TOKENS).unwrap().unwrap()).unwrap();
        let pre = meta_str(&content, KEY_PRE)
            .unwrap()
            .unwrap_or("default")
            .to_owned();
        // Every pre-tokenizer kind on the same vocabulary, llama 3's ignore_merges included.
        for pre in [pre.as_str(), "gpt-2", "llama3", "qwen2", "default"] {
            let old = crate_bpe(&content, &pieces, pre);
            let (regexes, ignore_merges, _) = pre_tokenizer_regexes(pre).unwrap();
            let Model::Bpe { pre: p, merges } =
                build_bpe(&content, &pieces, &regexes, ignore_merges).unwrap()
            else {
                unreachable!()
            };
            let (mut tokens, mut t_old, mut t_new) = (0, Duration::ZERO, Duration::ZERO);
            for text in corpus() {
                let started = Instant::now();
                let want = old
                    .encode_fast(text.as_str(), false)
                    .unwrap()
                    .get_ids()
                    .to_vec();
                t_old += started.elapsed();
                let started = Instant::now();
                let mut got = Vec::new();
                bpe_encode(&p, &merges, &pieces, &text, &mut got).unwrap();
                t_new += started.elapsed();
                assert_eq!(got, want, "{pre}: {text:?}");
                tokens += got.len();
            }
            eprintln!("{pre}: {tokens} tokens, the crate's BPE {t_old:?}, this one {t_new:?}");
            assert!(tokens > 20_000, "{tokens}");
        }
    }
}
