//! The GGUF header parser: one bounded pass that builds candle's `Content` (its fields are
//! public) and, alongside, where every tensor lies. Every count and length the header declares
//! (metadata entries, strings, arrays, tensors, dimensions) is checked against the bytes left in
//! the file and against fixed budgets before anything sized by it is allocated, and every
//! tensor's size is computed with checked arithmetic, so that parsing allocates at most a small
//! multiple of the file's header and never wraps a size.
//!
//! candle 0.11's `Content::read` refuses strings and arrays longer than the rest of the file,
//! but still turns each byte of a `u8` array into a 32-byte value without a total budget,
//! multiplies tensor dimensions unchecked, and asks the reader for its position (a system call
//! on a file) before every string, which made a 262k-token vocabulary slow to read. This parser
//! yields the same `Content` for every header both accept (tested against candle on real models
//! and mutated ones) without depending on what a future candle checks. Format: the GGUF
//! specification (ggml-org/ggml `docs/gguf.md`).

use std::collections::HashMap;
use std::io::{Read, Seek};

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{
    Content, DEFAULT_ALIGNMENT, TensorInfo, Value, VersionedMagic,
};

/// Most metadata values a header may hold, counting every array element: a model's
/// vocabulary, scores, token types and merges are under two million together (Gemma 3:
/// 262,144 tokens; Llama 3: 128,256 tokens and 280,147 merges).
pub const MAX_METADATA_VALUES: u64 = 1 << 24;
/// Most entries allocated ahead for a table or array the header declares (more grow as they
/// are read): a header's counts are claims, and the largest real array (a vocabulary or merge
/// list) is a few hundred thousand entries.
const MAX_PREALLOCATED: u64 = 1 << 20;
/// Most bytes of metadata text (keys and string values) a header may hold; real vocabularies
/// and chat templates take a few megabytes.
pub const MAX_METADATA_TEXT: u64 = 256 << 20;
/// Most tensors a model may have (large mixtures of experts have a few thousand).
pub const MAX_TENSORS: u64 = 1 << 16;
/// Deepest nesting of arrays inside arrays (real files use flat arrays).
const MAX_ARRAY_DEPTH: usize = 8;
/// Most dimensions of a tensor (GGML_MAX_DIMS).
const MAX_DIMS: u32 = 4;
/// Longest metadata key or tensor name (GGUF keys are ASCII paths of a few dozen bytes).
const MAX_NAME: u64 = 1 << 16;

/// Where one tensor's bytes lie, relative to the start of the tensor data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorExtent {
    /// The tensor's name.
    pub name: String,
    /// Offset from the start of the tensor data.
    pub offset: u64,
    /// Size in bytes (computed with checked arithmetic).
    pub bytes: u64,
}

/// What the pass learnt: where the tensor data starts and where each tensor lies.
#[derive(Debug)]
pub struct HeaderScan {
    /// First byte of the tensor data (the header's end, aligned).
    pub data_offset: u64,
    /// Every tensor's extent, in file order.
    pub tensors: Vec<TensorExtent>,
}

impl HeaderScan {
    /// Checks that every tensor lies inside a file of `file_size` bytes.
    pub fn check_extents(&self, file_size: u64) -> Result<(), String> {
        for t in &self.tensors {
            let end = self
                .data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.bytes));
            if !matches!(end, Some(end) if end <= file_size) {
                return Err(format!(
                    "tensor '{}' ends past the end of the file ({file_size} bytes): the file is truncated",
                    t.name
                ));
            }
        }
        Ok(())
    }
}

/// GGUF's tensor types that candle reads, by their number in the file.
pub fn dtype_of(code: u32) -> Option<GgmlDType> {
    Some(match code {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

/// Bytes a tensor of `dtype` with GGUF dimensions `dims` (innermost first) takes, or why it
/// cannot exist: an empty dimension, a row that is not whole blocks, or a size past `u64`.
pub fn tensor_bytes(dtype: GgmlDType, dims: &[u64]) -> Result<u64, String> {
    if dims.contains(&0) {
        return Err(format!("has an empty dimension ({dims:?})"));
    }
    let block = dtype.block_size() as u64;
    // GGML stores whole blocks per row: the innermost dimension is a multiple of the block.
    if let Some(&row) = dims.first()
        && row % block != 0
    {
        return Err(format!(
            "has rows of {row} values, not a multiple of its {dtype:?} blocks of {block}"
        ));
    }
    dims.iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| usize::try_from(n).is_ok())
        .and_then(|n| (n / block).checked_mul(dtype.type_size() as u64))
        .ok_or_else(|| format!("has dimensions {dims:?} whose size overflows"))
}

/// The number and on-disk size of GGUF value types (`None` for strings and arrays).
fn scalar_size(ty: u32) -> Result<Option<u64>, String> {
    Ok(Some(match ty {
        0 | 1 | 7 => 1, // u8, i8, bool
        2 | 3 => 2,     // u16, i16
        4..=6 => 4,     // u32, i32, f32
        10..=12 => 8,   // u64, i64, f64
        8 | 9 => return Ok(None),
        other => return Err(format!("unknown metadata value type {other}")),
    }))
}

/// Adds `n` to the running `total`, which may not pass `max` (the metadata's `what`).
fn add_within(total: &mut u64, n: u64, max: u64, what: &str) -> Result<(), String> {
    *total = total
        .checked_add(n)
        .filter(|&t| t <= max)
        .ok_or_else(|| format!("the metadata holds more than {max} {what}"))?;
    Ok(())
}

const STRING: u32 = 8;
const ARRAY: u32 = 9;

/// The reader and what the pass has counted so far.
struct Parser<'a, R> {
    reader: &'a mut R,
    /// Bytes from the reader's start position to the end of the file.
    len: u64,
    /// Position relative to the start (tracked here: asking the reader costs a system call).
    pos: u64,
    /// Whether lengths are u32 (GGUF v1) rather than u64.
    v1: bool,
    values: u64,
    text: u64,
}

impl<R: Read> Parser<'_, R> {
    fn fill(&mut self, b: &mut [u8]) -> Result<(), String> {
        self.reader
            .read_exact(b)
            .map_err(|_| format!("the header ends early (at byte {})", self.pos))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        self.fill(&mut b)?;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.bytes::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.bytes::<8>().map(u64::from_le_bytes)
    }

    fn length(&mut self) -> Result<u64, String> {
        if self.v1 {
            self.u32().map(u64::from)
        } else {
            self.u64()
        }
    }

    /// Bytes left in the file after the current position.
    fn left(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Checks that `n` more bytes lie inside the file, before they are allocated.
    fn check_left(&self, n: u64, what: &str) -> Result<(), String> {
        if n > self.left() {
            return Err(format!(
                "{what} of {n} bytes at byte {} runs past the end of the file",
                self.pos
            ));
        }
        Ok(())
    }

    fn count_values(&mut self, n: u64) -> Result<(), String> {
        add_within(&mut self.values, n, MAX_METADATA_VALUES, "values")
    }

    fn count_text(&mut self, n: u64) -> Result<(), String> {
        add_within(&mut self.text, n, MAX_METADATA_TEXT, "bytes of text")
    }

    /// Reads `n` bytes the caller has checked against the file and the budgets.
    fn checked_bytes(&mut self, n: u64) -> Result<Vec<u8>, String> {
        let n = usize::try_from(n).map_err(|_| format!("{n} bytes do not fit in memory"))?;
        let mut b = vec![0u8; n];
        self.fill(&mut b)?;
        Ok(b)
    }

    /// Reads the text of a string whose length the caller has checked; trailing NULs are
    /// dropped, as candle does (GGUF strings are not NUL-terminated, but some writers add one).
    fn checked_text(&mut self, n: u64) -> Result<Vec<u8>, String> {
        let mut b = self.checked_bytes(n)?;
        while b.last() == Some(&0) {
            b.pop();
        }
        Ok(b)
    }

    /// Reads a string value (invalid UTF-8 replaced, as candle does).
    fn string(&mut self) -> Result<String, String> {
        let n = self.length()?;
        self.check_left(n, "a string")?;
        self.count_text(n)?;
        let b = self.checked_text(n)?;
        Ok(String::from_utf8(b)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// Reads a key or tensor name (short by construction, and UTF-8).
    fn name(&mut self, what: &str) -> Result<String, String> {
        let n = self.length()?;
        if n > MAX_NAME {
            return Err(format!("a {what} of {n} bytes (at most {MAX_NAME})"));
        }
        if n > self.left() {
            return Err(format!(
                "a {what} of {n} bytes runs past the end of the file"
            ));
        }
        self.count_text(n)?;
        let b = self.checked_text(n)?;
        String::from_utf8(b).map_err(|_| format!("a {what} is not UTF-8"))
    }

    /// Reads one value of a fixed-size type.
    fn scalar(&mut self, ty: u32) -> Result<Value, String> {
        let size = scalar_size(ty)?.ok_or_else(|| format!("type {ty} is not a scalar"))?;
        let mut b = [0u8; 8];
        // At most 8 bytes (scalar_size).
        let b = &mut b[..size as usize];
        self.fill(b)?;
        scalar_value(ty, b)
    }

    /// Reads one value of type `ty` (the caller has counted it).
    fn value(&mut self, ty: u32, depth: usize) -> Result<Value, String> {
        match ty {
            STRING => return self.string().map(Value::String),
            ARRAY => {}
            _ => return self.scalar(ty),
        }
        if depth >= MAX_ARRAY_DEPTH {
            return Err(format!("arrays nested more than {MAX_ARRAY_DEPTH} deep"));
        }
        let elem = self.u32()?;
        let n = self.length()?;
        let items = match scalar_size(elem)? {
            Some(size) => {
                let bytes = n
                    .checked_mul(size)
                    .ok_or_else(|| format!("an array of {n} values overflows"))?;
                self.check_left(bytes, "an array")?;
                self.count_values(n)?;
                // Read whole: a vocabulary's scores and types are hundreds of thousands.
                let raw = self.checked_bytes(bytes)?;
                // One value per `size` bytes just read.
                let mut items = Vec::with_capacity(raw.len() / size as usize);
                for b in raw.chunks_exact(size as usize) {
                    items.push(scalar_value(elem, b)?);
                }
                items
            }
            None => {
                // Each element takes at least a length prefix: refuse counts the file cannot
                // hold before allocating or looping over them.
                let min = if self.v1 { 4 } else { 8 };
                if n.saturating_mul(min) > self.left() {
                    return Err(format!(
                        "an array of {n} values runs past the end of the file"
                    ));
                }
                self.count_values(n)?;
                let mut items = Vec::with_capacity(n.min(MAX_PREALLOCATED) as usize);
                for _ in 0..n {
                    items.push(self.value(elem, depth + 1)?);
                }
                items
            }
        };
        Ok(Value::Array(items))
    }

    /// Reads one tensor's entry in the tensor table.
    fn tensor(&mut self) -> Result<(TensorInfo, TensorExtent), String> {
        let name = self.name("tensor name")?;
        let n_dims = self.u32()?;
        if n_dims > MAX_DIMS {
            return Err(format!(
                "tensor '{name}' has {n_dims} dimensions (at most {MAX_DIMS})"
            ));
        }
        let mut dims = [0u64; MAX_DIMS as usize];
        let dims = &mut dims[..n_dims as usize];
        for d in dims.iter_mut() {
            *d = self.length()?;
        }
        let code = self.u32()?;
        let dtype =
            dtype_of(code).ok_or_else(|| format!("tensor '{name}' has unknown type {code}"))?;
        let offset = self.u64()?;
        let bytes = tensor_bytes(dtype, dims).map_err(|e| format!("tensor '{name}' {e}"))?;
        // candle holds the dimensions outermost first; GGUF, innermost first. Each fits a
        // usize: tensor_bytes checked their product.
        let shape: Vec<usize> = dims.iter().rev().map(|&d| d as usize).collect();
        let info = TensorInfo {
            ggml_dtype: dtype,
            shape: shape.into(),
            offset,
        };
        Ok((
            info,
            TensorExtent {
                name,
                offset,
                bytes,
            },
        ))
    }
}

/// The value of scalar type `ty` in `b` (its little-endian bytes, as many as the type takes).
fn scalar_value(ty: u32, b: &[u8]) -> Result<Value, String> {
    fn le<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
        b.try_into()
            .map_err(|_| format!("a value of {} bytes, not {N}", b.len()))
    }
    Ok(match ty {
        0 => Value::U8(u8::from_le_bytes(le(b)?)),
        1 => Value::I8(i8::from_le_bytes(le(b)?)),
        2 => Value::U16(u16::from_le_bytes(le(b)?)),
        3 => Value::I16(i16::from_le_bytes(le(b)?)),
        4 => Value::U32(u32::from_le_bytes(le(b)?)),
        5 => Value::I32(i32::from_le_bytes(le(b)?)),
        6 => Value::F32(f32::from_le_bytes(le(b)?)),
        7 => match le::<1>(b)? {
            [0] => Value::Bool(false),
            [1] => Value::Bool(true),
            [v] => return Err(format!("a boolean holds {v} (0 or 1 expected)")),
        },
        10 => Value::U64(u64::from_le_bytes(le(b)?)),
        11 => Value::I64(i64::from_le_bytes(le(b)?)),
        12 => Value::F64(f64::from_le_bytes(le(b)?)),
        other => return Err(format!("unknown metadata value type {other}")),
    })
}

/// `general.alignment` as candle reads it: from these integer types only.
fn alignment_of(v: &Value) -> Option<u64> {
    match *v {
        Value::U8(a) => Some(u64::from(a)),
        Value::U16(a) => Some(u64::from(a)),
        Value::U32(a) => Some(u64::from(a)),
        Value::I8(a) => u64::try_from(a).ok(),
        Value::I16(a) => u64::try_from(a).ok(),
        Value::I32(a) => u64::try_from(a).ok(),
        _ => None,
    }
}

/// Parses the header that starts at `reader`'s position into candle's `Content` (its tensor
/// data offset counted from the reader's start, as candle counts it) and the tensors' extents.
/// On success the reader is left at the header's end. Tensor extents are not checked against
/// the file here ([`HeaderScan::check_extents`]).
pub fn parse<R: Read + Seek>(reader: &mut R) -> Result<(Content, HeaderScan), String> {
    let io = |e: std::io::Error| format!("cannot read the header: {e}");
    let start = reader.stream_position().map_err(io)?;
    let end = reader.seek(std::io::SeekFrom::End(0)).map_err(io)?;
    reader.seek(std::io::SeekFrom::Start(start)).map_err(io)?;
    let mut p = Parser {
        reader,
        len: end.saturating_sub(start),
        pos: 0,
        v1: false,
        values: 0,
        text: 0,
    };
    let magic = p.bytes::<4>()?;
    if &magic != b"GGUF" {
        return Err("it does not start with the GGUF magic bytes".into());
    }
    let version = p.u32()?;
    let (magic, v1) = match version {
        1 => (VersionedMagic::GgufV1, true),
        2 => (VersionedMagic::GgufV2, false),
        3 => (VersionedMagic::GgufV3, false),
        v => return Err(format!("GGUF version {v} is not supported (1 to 3 are)")),
    };
    p.v1 = v1;
    let tensor_count = p.length()?;
    let kv_count = p.length()?;
    if tensor_count > MAX_TENSORS {
        return Err(format!(
            "the header declares {tensor_count} tensors (at most {MAX_TENSORS})"
        ));
    }
    if kv_count > MAX_METADATA_VALUES {
        return Err(format!(
            "the header declares {kv_count} metadata entries (at most {MAX_METADATA_VALUES})"
        ));
    }
    // Every entry takes at least a length prefix and a type or shape: refuse counts the file
    // cannot hold before looping over them.
    let prefix = if v1 { 4 } else { 8 };
    let needed = kv_count
        .saturating_mul(prefix + 4 + 1)
        .saturating_add(tensor_count.saturating_mul(prefix + 4 + 4 + 8));
    if needed > p.left() {
        return Err(format!(
            "the header declares {tensor_count} tensors and {kv_count} metadata entries, more than the file holds"
        ));
    }
    // Real headers hold a few dozen entries; a larger claim grows the table as it is read.
    let mut metadata = HashMap::with_capacity(kv_count.min(1 << 8) as usize);
    for _ in 0..kv_count {
        let key = p.name("metadata key")?;
        let ty = p.u32()?;
        p.count_values(1)?;
        let value = p.value(ty, 0)?;
        // candle divides by the alignment: refuse any that is not a power of two.
        if key == "general.alignment"
            && let Some(a) = alignment_of(&value)
            && !a.is_power_of_two()
        {
            return Err(format!("general.alignment is {a}, not a power of two"));
        }
        // Later duplicates win, as in candle.
        metadata.insert(key, value);
    }
    // At most MAX_TENSORS (checked above).
    let mut tensor_infos = HashMap::with_capacity(tensor_count as usize);
    let mut tensors = Vec::with_capacity(tensor_count as usize);
    for _ in 0..tensor_count {
        let (info, extent) = p.tensor()?;
        // Every extent is checked against the file, duplicates included; the table keeps the
        // last, as candle's does.
        tensor_infos.insert(extent.name.clone(), info);
        tensors.push(extent);
    }
    // The alignment of the entry that was kept (each was checked above).
    let alignment = metadata
        .get("general.alignment")
        .and_then(alignment_of)
        .unwrap_or(DEFAULT_ALIGNMENT);
    let data_offset = start
        .checked_add(p.pos)
        .and_then(|end| end.checked_next_multiple_of(alignment))
        .ok_or("the header's end overflows")?;
    let content = Content {
        magic,
        metadata,
        tensor_infos,
        tensor_data_offset: data_offset,
    };
    Ok((
        content,
        HeaderScan {
            data_offset,
            tensors,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GGUF v3 header with no tensors and `kvs` (key, type, value bytes) as metadata.
    fn header(kvs: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
        for (k, ty, v) in kvs {
            b.extend_from_slice(&(k.len() as u64).to_le_bytes());
            b.extend_from_slice(k.as_bytes());
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(v);
        }
        b
    }

    /// An array value: element type, count, then `body`.
    fn array(elem: u32, n: u64, body: &[u8]) -> Vec<u8> {
        let mut v = elem.to_le_bytes().to_vec();
        v.extend_from_slice(&n.to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    fn scan_bytes(b: &[u8]) -> Result<HeaderScan, String> {
        parse(&mut std::io::Cursor::new(b)).map(|(_, scan)| scan)
    }

    #[test]
    fn metadata_is_bounded_by_value_count_not_only_by_file_size() {
        // 2^24 + 1 one-byte values fit the file but would be 32 bytes each once parsed.
        let n = MAX_METADATA_VALUES + 1;
        let b = header(&[("big", ARRAY, array(0, n, &vec![0u8; n as usize]))]);
        let err = scan_bytes(&b).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        let n = 1000;
        let b = header(&[("ok", ARRAY, array(0, n, &vec![0u8; n as usize]))]);
        assert!(scan_bytes(&b).is_ok());
    }

    #[test]
    fn counts_past_the_file_are_refused_before_looping() {
        // A billion strings declared, none present.
        let b = header(&[("s", ARRAY, array(STRING, 1 << 30, &[]))]);
        assert!(scan_bytes(&b).unwrap_err().contains("past the end"));
        // One string longer than the file.
        let b = header(&[("s", STRING, (1u64 << 40).to_le_bytes().to_vec())]);
        assert!(scan_bytes(&b).unwrap_err().contains("past the end"));
        // More entries than bytes.
        let mut b = header(&[]);
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(scan_bytes(&b).is_err());
    }

    #[test]
    fn nesting_and_alignment_are_checked() {
        let mut v = array(4, 0, &[]);
        for _ in 0..MAX_ARRAY_DEPTH {
            v = array(ARRAY, 1, &v);
        }
        let err = scan_bytes(&header(&[("deep", ARRAY, v)])).unwrap_err();
        assert!(err.contains("nested"), "{err}");
        for a in [0u32, 3] {
            let b = header(&[("general.alignment", 4, a.to_le_bytes().to_vec())]);
            assert!(scan_bytes(&b).unwrap_err().contains("power of two"));
        }
        let b = header(&[("general.alignment", 4, 64u32.to_le_bytes().to_vec())]);
        assert_eq!(scan_bytes(&b).unwrap().data_offset % 64, 0);
    }

    #[test]
    fn wrapping_dimensions_are_refused() {
        // 128 x (2^62 + 16) in Q4_1 is 1,280 bytes in wrapping arithmetic.
        let err = tensor_bytes(GgmlDType::Q4_1, &[128, (1 << 62) + 16]).unwrap_err();
        assert!(err.contains("overflows"), "{err}");
        assert!(tensor_bytes(GgmlDType::Q4_1, &[0, 5]).is_err());
        assert!(tensor_bytes(GgmlDType::Q4_1, &[48, 2]).is_err());
        assert_eq!(tensor_bytes(GgmlDType::Q4_1, &[64, 3]), Ok(2 * 3 * 20));
        assert_eq!(tensor_bytes(GgmlDType::F32, &[]), Ok(4));
    }
}
