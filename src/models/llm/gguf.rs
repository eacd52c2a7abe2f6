//! Opening GGUF files safely: every problem becomes a typed [`LlmError`] naming the file,
//! checked before any tensor is read (truncation, bad offsets, absurd sizes; the header's
//! counts and sizes by [`super::gguf_header`]).

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};

use super::LlmError;
use super::gguf_header::{self, HeaderScan};

/// Opens `path`, checks its header with the bounded pass in [`super::gguf_header`], parses it
/// and checks that every tensor lies inside the file. Returns the parsed content, the open
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
    let (content, scan) = read_header(&mut BufReader::new(&mut file)).map_err(corrupt)?;
    scan.check_extents(file_size).map_err(corrupt)?;
    Ok((content, file, file_size))
}

/// Parses the GGUF header at the reader's start: the bounded pass first, then candle's parser
/// (behind a `catch_unwind`, a last line of defence so that a header can never take the app
/// down). Tensor extents are not checked against the file here (see [`open`]).
pub fn read_header<R: Read + Seek>(reader: &mut R) -> Result<(Content, HeaderScan), String> {
    let scan = gguf_header::scan(reader)?;
    reader
        .rewind()
        .map_err(|e| format!("cannot read the header: {e}"))?;
    let content = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Content::read(reader)))
        .map_err(|_| "the header could not be parsed".to_string())?
        .map_err(|e| first_line(&e.to_string()))?;
    Ok((content, scan))
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

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounded_pass_agrees_with_candle_on_real_models() {
        for file in [crate::paths::SMOLLM2_FILE, crate::paths::GEMMA3_FILE] {
            let path = crate::paths::models_dir().join(file);
            let (content, mut file, _) = open(&path).unwrap();
            file.rewind().unwrap();
            let scan = gguf_header::scan(&mut BufReader::new(&mut file)).unwrap();
            assert_eq!(scan.data_offset, content.tensor_data_offset);
            assert_eq!(scan.tensors.len(), content.tensor_infos.len());
            for t in &scan.tensors {
                let info = &content.tensor_infos[&t.name];
                assert_eq!(t.offset, info.offset);
                assert_eq!(Ok(t.bytes as usize), tensor_bytes(info), "{}", t.name);
            }
        }
    }
}
