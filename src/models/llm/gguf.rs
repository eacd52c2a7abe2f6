//! Opening GGUF files safely: every problem becomes a typed [`LlmError`] naming the file,
//! checked before any tensor is read (truncation, bad offsets, absurd sizes; the header's
//! counts and sizes by the bounded parser in [`super::gguf_header`]).

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};

use super::LlmError;
use super::gguf_header::{self, HeaderScan};

/// Opens `path`, parses its header with the bounded parser in [`super::gguf_header`] and
/// checks that every tensor lies inside the file. Returns the parsed content, the open
/// file (for reading tensors) and the file size.
pub fn open(path: &Path) -> Result<(Content, File, u64), LlmError> {
    let io_err = |source| LlmError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let file_size = file.metadata().map_err(io_err)?.len();
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
        return Err(LlmError::NotGguf {
            path: path.to_path_buf(),
        });
    }
    file.rewind().map_err(io_err)?;
    let corrupt = |detail: String| LlmError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    // A large buffer: a vocabulary is megabytes of short strings.
    let mut reader = BufReader::with_capacity(1 << 20, &mut file);
    let (content, scan) = read_header(&mut reader).map_err(corrupt)?;
    scan.check_extents(file_size).map_err(corrupt)?;
    Ok((content, file, file_size))
}

/// Parses the GGUF header at the reader's start with the bounded parser (behind a
/// `catch_unwind`, a last line of defence so that a header can never take the app down).
/// Tensor extents are not checked against the file here (see [`open`]).
pub fn read_header<R: Read + Seek>(reader: &mut R) -> Result<(Content, HeaderScan), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| gguf_header::parse(reader)))
        .map_err(|_| "the header could not be parsed".to_string())?
}

/// The prefix of the tokenizer's metadata keys (vocabulary, scores, merges, special ids, chat
/// template), which the weight loaders do not read.
pub const TOKENIZER_KEYS: &str = "tokenizer.";

/// Moves the tokenizer's metadata ([`TOKENIZER_KEYS`]) out of `content` into a header of its
/// own (no tensors), so that the tokenizer can be built from it, and the vocabulary freed,
/// apart from the weights. [`super::hparams::check`] needs the vocabulary: run it before.
pub fn split_tokenizer(content: &mut Content) -> Content {
    let (tokenizer, rest) = std::mem::take(&mut content.metadata)
        .into_iter()
        .partition(|(k, _)| k.starts_with(TOKENIZER_KEYS));
    content.metadata = rest;
    Content {
        magic: content.magic,
        metadata: tokenizer,
        tensor_infos: Default::default(),
        tensor_data_offset: content.tensor_data_offset,
    }
}

/// Bytes a parsed tensor takes in the file, with checked arithmetic (`Err` says why it
/// cannot exist). [`open`] has checked every tensor of its file this way already.
pub fn tensor_bytes(info: &TensorInfo) -> Result<usize, String> {
    // candle holds the dimensions outermost first; GGUF, innermost first.
    let dims: Vec<u64> = info.shape.dims().iter().rev().map(|&d| d as u64).collect();
    let bytes = gguf_header::tensor_bytes(info.ggml_dtype, &dims)?;
    usize::try_from(bytes).map_err(|_| format!("takes {bytes} bytes"))
}

/// A string metadata value, if present.
pub fn metadata_string(content: &Content, key: &str) -> Option<String> {
    match content.metadata.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// An integer metadata value of any integer type, if present.
pub fn metadata_u64(content: &Content, key: &str) -> Option<u64> {
    match content.metadata.get(key)? {
        Value::U8(v) => Some(*v as u64),
        Value::U16(v) => Some(*v as u64),
        Value::U32(v) => Some(*v as u64),
        Value::U64(v) => Some(*v),
        Value::I8(v) => u64::try_from(*v).ok(),
        Value::I16(v) => u64::try_from(*v).ok(),
        Value::I32(v) => u64::try_from(*v).ok(),
        Value::I64(v) => u64::try_from(*v).ok(),
        _ => None,
    }
}

/// A boolean metadata value, if present.
pub fn metadata_bool(content: &Content, key: &str) -> Option<bool> {
    match content.metadata.get(key)? {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// candle's own parser, which the bounded one replaces.
    fn candle_read(bytes: &[u8]) -> candle_core::Result<Content> {
        Content::read(&mut std::io::Cursor::new(bytes))
    }

    fn assert_same(ours: &Content, theirs: &Content) {
        assert_eq!(ours.magic, theirs.magic);
        assert_eq!(ours.tensor_data_offset, theirs.tensor_data_offset);
        assert_eq!(ours.metadata.len(), theirs.metadata.len());
        for (k, v) in &theirs.metadata {
            // Value has no PartialEq; its Debug form spells out every field and element.
            assert_eq!(
                format!("{:?}", ours.metadata.get(k)),
                format!("{:?}", Some(v)),
                "{k}"
            );
        }
        assert_eq!(ours.tensor_infos.len(), theirs.tensor_infos.len());
        for (name, t) in &theirs.tensor_infos {
            let o = &ours.tensor_infos[name];
            assert_eq!(
                (o.ggml_dtype, o.shape.dims(), o.offset),
                (t.ggml_dtype, t.shape.dims(), t.offset),
                "{name}"
            );
        }
    }

    #[test]
    fn the_bounded_parser_agrees_with_candle_on_real_models() {
        for file in [crate::paths::SMOLLM2_FILE, crate::paths::GEMMA3_FILE] {
            let path = crate::paths::models_dir().join(file);
            let (content, _, _) = open(&path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let (_, scan) = read_header(&mut std::io::Cursor::new(&bytes)).unwrap();
            assert_same(&content, &candle_read(&bytes).unwrap());
            assert_eq!(scan.data_offset, content.tensor_data_offset);
            assert_eq!(scan.tensors.len(), content.tensor_infos.len());
            for t in &scan.tensors {
                let info = &content.tensor_infos[&t.name];
                assert_eq!(t.offset, info.offset);
                assert_eq!(Ok(t.bytes as usize), tensor_bytes(info), "{}", t.name);
            }
        }
    }

    #[test]
    fn the_bounded_parser_accepts_only_what_candle_reads_the_same() {
        // Mutated tiny models: whatever the bounded parser accepts, candle reads identically
        // (the reverse need not hold: the bounded parser is the stricter).
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(19);
        let mut accepted = 0;
        for arch in [
            crate::models::llm::Architecture::Llama,
            crate::models::llm::Architecture::Gemma3,
        ] {
            let seed = crate::fuzzing::tiny_gguf(arch, |_| {}).unwrap();
            let (_, scan) = read_header(&mut std::io::Cursor::new(&seed)).unwrap();
            let header = scan.data_offset as usize;
            for _ in 0..3000 {
                let mut b = seed.clone();
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..header);
                    b[at] = match rng.random_range(0..3) {
                        0 => rng.random(),
                        1 => b[at] ^ (1 << rng.random_range(0..8)),
                        _ => 0xff,
                    };
                }
                if rng.random_bool(0.1) {
                    b.truncate(rng.random_range(0..b.len()));
                }
                if let Ok((ours, _)) = read_header(&mut std::io::Cursor::new(&b)) {
                    let theirs = candle_read(&b).expect("candle reads what the parser accepts");
                    assert_same(&ours, &theirs);
                    accepted += 1;
                }
            }
        }
        assert!(accepted > 100, "only {accepted} mutants parsed");
    }
}
