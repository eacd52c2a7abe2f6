//! A bounded first pass over a GGUF header, before candle's parser sees it: every count and
//! length the header declares (metadata entries, strings, arrays, tensors, dimensions) is
//! checked against the bytes left in the file and against fixed budgets, and every tensor's
//! size is computed with checked arithmetic, so that parsing allocates at most a small multiple
//! of the file's header and never wraps a size. The pass reads lengths and skips payloads; it
//! allocates nothing sized by the file.
//!
//! candle 0.11's `Content::read` already refuses strings and arrays longer than the rest of the
//! file, but still turns each byte of a `u8` array into a 32-byte value, divides by an
//! alignment of 0, and multiplies tensor dimensions unchecked; this pass closes those gaps
//! without depending on what a future candle checks. Format: the GGUF specification
//! (ggml-org/ggml `docs/gguf.md`).

use std::io::{Read, Seek};

use candle_core::quantized::GgmlDType;

/// Most metadata values a header may hold, counting every array element: a model's
/// vocabulary, scores, token types and merges are under two million together (Gemma 3:
/// 262,144 tokens; Llama 3: 128,256 tokens and 280,147 merges).
pub const MAX_METADATA_VALUES: u64 = 1 << 24;
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
struct Scanner<'a, R> {
    reader: &'a mut R,
    /// Bytes from the reader's start position to the end of the file.
    len: u64,
    /// Position relative to the start.
    pos: u64,
    /// Whether lengths are u32 (GGUF v1) rather than u64.
    v1: bool,
    values: u64,
    text: u64,
}

impl<R: Read + Seek> Scanner<'_, R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        self.reader
            .read_exact(&mut b)
            .map_err(|_| format!("the header ends early (at byte {})", self.pos))?;
        self.pos += N as u64;
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

    /// Skips `n` bytes that must lie inside the file.
    fn skip(&mut self, n: u64, what: &str) -> Result<(), String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                format!(
                    "{what} of {n} bytes at byte {} runs past the end of the file",
                    self.pos
                )
            })?;
        let step = i64::try_from(n).map_err(|_| format!("{what} of {n} bytes"))?;
        self.reader
            .seek_relative(step)
            .map_err(|e| format!("cannot read the header: {e}"))?;
        self.pos = end;
        Ok(())
    }

    fn count_values(&mut self, n: u64) -> Result<(), String> {
        add_within(&mut self.values, n, MAX_METADATA_VALUES, "values")
    }

    fn count_text(&mut self, n: u64) -> Result<(), String> {
        add_within(&mut self.text, n, MAX_METADATA_TEXT, "bytes of text")
    }

    /// Skips a string value.
    fn skip_string(&mut self) -> Result<(), String> {
        let n = self.length()?;
        self.skip(n, "a string")?;
        self.count_text(n)
    }

    /// Reads a key or tensor name (short by construction).
    fn name(&mut self, what: &str) -> Result<String, String> {
        let n = self.length()?;
        if n > MAX_NAME {
            return Err(format!("a {what} of {n} bytes (at most {MAX_NAME})"));
        }
        if n > self.len.saturating_sub(self.pos) {
            return Err(format!(
                "a {what} of {n} bytes runs past the end of the file"
            ));
        }
        self.count_text(n)?;
        // Bounded by MAX_NAME and the file just above.
        let mut b = vec![0u8; n as usize];
        self.reader
            .read_exact(&mut b)
            .map_err(|_| format!("the header ends early (at byte {})", self.pos))?;
        self.pos += n;
        String::from_utf8(b).map_err(|_| format!("a {what} is not UTF-8"))
    }

    /// Skips one value of type `ty` (the caller has counted it); returns it when it is a
    /// small non-negative integer (for `general.alignment`).
    fn value(&mut self, ty: u32, depth: usize) -> Result<Option<u64>, String> {
        match scalar_size(ty)? {
            Some(size) => {
                let mut b = [0u8; 8];
                let n = size as usize;
                self.reader
                    .read_exact(&mut b[..n])
                    .map_err(|_| format!("the header ends early (at byte {})", self.pos))?;
                self.pos += size;
                let v = u64::from_le_bytes(b);
                Ok(match ty {
                    0 | 2 | 4 => Some(v),
                    // Signed: candle takes non-negative i8/i16/i32 alignments too.
                    1 => Some(v as u8 as i8 as i64).and_then(|v| u64::try_from(v).ok()),
                    3 => Some(v as u16 as i16 as i64).and_then(|v| u64::try_from(v).ok()),
                    5 => Some(v as u32 as i32 as i64).and_then(|v| u64::try_from(v).ok()),
                    _ => None,
                })
            }
            None if ty == STRING => self.skip_string().map(|_| None),
            None => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(format!("arrays nested more than {MAX_ARRAY_DEPTH} deep"));
                }
                let elem = self.u32()?;
                let n = self.length()?;
                match scalar_size(elem)? {
                    Some(size) => {
                        let bytes = n
                            .checked_mul(size)
                            .ok_or_else(|| format!("an array of {n} values overflows"))?;
                        self.skip(bytes, "an array")?;
                        self.count_values(n)?;
                    }
                    None => {
                        // Each element takes at least a length prefix: refuse counts the
                        // file cannot hold before looping over them.
                        let min = if self.v1 { 4 } else { 8 };
                        if n.saturating_mul(min) > self.len.saturating_sub(self.pos) {
                            return Err(format!(
                                "an array of {n} values runs past the end of the file"
                            ));
                        }
                        self.count_values(n)?;
                        for _ in 0..n {
                            if elem == STRING {
                                self.skip_string()?;
                            } else {
                                self.value(ARRAY, depth + 1)?;
                            }
                        }
                    }
                }
                Ok(None)
            }
        }
    }
}

/// Scans the header that starts at `reader`'s position. On success the reader is left at an
/// unspecified position; rewind it before parsing.
pub fn scan<R: Read + Seek>(reader: &mut R) -> Result<HeaderScan, String> {
    let io = |e: std::io::Error| format!("cannot read the header: {e}");
    let start = reader.stream_position().map_err(io)?;
    let end = reader.seek(std::io::SeekFrom::End(0)).map_err(io)?;
    reader.seek(std::io::SeekFrom::Start(start)).map_err(io)?;
    let mut s = Scanner {
        reader,
        len: end.saturating_sub(start),
        pos: 0,
        v1: false,
        values: 0,
        text: 0,
    };
    let magic = s.bytes::<4>()?;
    if &magic != b"GGUF" {
        return Err("it does not start with the GGUF magic bytes".into());
    }
    let version = s.u32()?;
    s.v1 = match version {
        1 => true,
        2 | 3 => false,
        v => return Err(format!("GGUF version {v} is not supported (1 to 3 are)")),
    };
    let tensor_count = s.length()?;
    let kv_count = s.length()?;
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
    let mut alignment = 32u64;
    for _ in 0..kv_count {
        let key = s.name("metadata key")?;
        let ty = s.u32()?;
        s.count_values(1)?;
        let small = s.value(ty, 0)?;
        // candle reads the alignment from these types only, and divides by it.
        if key == "general.alignment"
            && let Some(a) = small
        {
            if a == 0 || !a.is_power_of_two() {
                return Err(format!("general.alignment is {a}, not a power of two"));
            }
            alignment = a;
        }
    }
    let mut tensors = Vec::new();
    for _ in 0..tensor_count {
        let name = s.name("tensor name")?;
        let n_dims = s.u32()?;
        if n_dims > MAX_DIMS {
            return Err(format!(
                "tensor '{name}' has {n_dims} dimensions (at most {MAX_DIMS})"
            ));
        }
        let mut dims = [0u64; MAX_DIMS as usize];
        for d in dims.iter_mut().take(n_dims as usize) {
            *d = s.length()?;
        }
        let code = s.u32()?;
        let dtype =
            dtype_of(code).ok_or_else(|| format!("tensor '{name}' has unknown type {code}"))?;
        let offset = s.u64()?;
        let bytes = tensor_bytes(dtype, &dims[..n_dims as usize])
            .map_err(|e| format!("tensor '{name}' {e}"))?;
        tensors.push(TensorExtent {
            name,
            offset,
            bytes,
        });
    }
    let data_offset = start
        .checked_add(s.pos.div_ceil(alignment) * alignment)
        .ok_or("the header's end overflows")?;
    Ok(HeaderScan {
        data_offset,
        tensors,
    })
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
        scan(&mut std::io::Cursor::new(b))
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
