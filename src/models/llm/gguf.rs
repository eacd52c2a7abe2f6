//! Opening GGUF files safely: every problem becomes a typed [`LlmError`] naming the file,
//! checked before any tensor is read (truncation, bad offsets, absurd sizes).

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};

use super::LlmError;

/// Opens `path`, parses its GGUF header and checks that every tensor lies inside the file.
/// Returns the parsed content, the open file (for reading tensors) and the file size.
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
    let content = {
        let mut reader = BufReader::new(&mut file);
        // candle's reader validates lengths against the file size; the catch_unwind is a
        // last line of defence so a hostile header can never take the app down.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Content::read(&mut reader)))
            .map_err(|_| corrupt("the header could not be parsed".into()))?
            .map_err(|e| corrupt(first_line(&e.to_string())))?
    };
    for (name, info) in &content.tensor_infos {
        // Checked: hostile dimensions must not overflow (a wrapped product would pass).
        let elems = info
            .shape
            .dims()
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d));
        let block = info.ggml_dtype.block_size();
        let Some(elems) = elems.filter(|e| block != 0 && e % block == 0) else {
            return Err(corrupt(format!("tensor '{name}' has an impossible shape")));
        };
        let bytes = ((elems / block) as u64).checked_mul(info.ggml_dtype.type_size() as u64);
        let end = bytes.and_then(|bytes| {
            content
                .tensor_data_offset
                .checked_add(info.offset)
                .and_then(|s| s.checked_add(bytes))
        });
        match end {
            Some(end) if end <= file_size => {}
            _ => {
                return Err(corrupt(format!(
                    "tensor '{name}' ends past the end of the file ({file_size} bytes): the file is truncated"
                )));
            }
        }
    }
    Ok((content, file, file_size))
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

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}
