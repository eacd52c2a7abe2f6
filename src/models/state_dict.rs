//! Named weight tensors from a PyTorch zip checkpoint (through the restricted unpickler in
//! [`super::pickle`]) or a safetensors file, with every offset and size checked against the
//! file before a byte is read: a damaged or hostile file is an error, never a panic.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::pickle::{self, PickleError, StorageDType, TensorRef, Value};

/// One tensor, copied out of the file into contiguous little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    /// Element type as stored.
    pub dtype: StorageDType,
    /// Shape (row-major, contiguous).
    pub shape: Vec<usize>,
    /// `numel * dtype.size()` bytes, little-endian.
    pub data: Vec<u8>,
}

impl RawTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values as f32 for floating-point tensors (f64, f16 and bf16 are converted);
    /// `None` for integer and bool tensors.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let d = &self.data;
        Some(match self.dtype {
            StorageDType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            StorageDType::F64 => d
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    f64::from_le_bytes(a) as f32
                })
                .collect(),
            StorageDType::F16 => d
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            StorageDType::BF16 => d
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => return None,
        })
    }
}

impl RawTensor {
    /// An f32 tensor of `shape` holding `values` (row-major).
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Self {
        Self {
            dtype: StorageDType::F32,
            shape,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// An i64 tensor of `shape` holding `values` (e.g. BatchNorm's `num_batches_tracked`,
    /// shape `[]`).
    pub fn from_i64(shape: Vec<usize>, values: &[i64]) -> Self {
        Self {
            dtype: StorageDType::I64,
            shape,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// The values of an i64 tensor; `None` for other types.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        (self.dtype == StorageDType::I64).then(|| {
            self.data
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    i64::from_le_bytes(a)
                })
                .collect()
        })
    }
}

/// Tensors by name, e.g. `main.0.weight`.
pub type StateDict = BTreeMap<String, RawTensor>;

/// Why weights could not be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Neither a PyTorch zip checkpoint nor a safetensors file.
    #[error(
        "{} is not a model checkpoint ({reason}); expected a PyTorch .tar/.pt/.pth zip \
         checkpoint or a .safetensors file",
        path.display()
    )]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The checkpoint's pickle was refused (forbidden global, damaged stream).
    #[error("{}: {error}", path.display())]
    Pickle {
        /// The file.
        path: PathBuf,
        /// What the unpickler refused (in the message, not a separate cause, so that a
        /// printed error chain says it once).
        error: PickleError,
    },
    /// A zip checkpoint whose structure or storages are damaged.
    #[error("{} is damaged: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A safetensors file whose header is invalid or points outside the file.
    #[error("{} has an invalid safetensors header: {reason}", path.display())]
    BadSafetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Largest pickle accepted: a state dict's pickle is kilobytes; this bounds memory on a
/// hostile file.
const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// Bytes a checkpoint may make us read from its storages and copy into tensors, as a multiple
/// of its file size (plus [`COPY_SLACK`]): a state dict reads each storage once and copies each
/// tensor once, so a real one stays near 2x. Views that repeat elements (stride 0) or many
/// tensors over one large storage would otherwise expand a small file without bound.
const COPY_FACTOR: u64 = 4;
const COPY_SLACK: u64 = 1 << 20;

/// Reads the tensors of a checkpoint. For a PyTorch zip whose top-level object is a dict
/// holding `key` (e.g. `netG_state_dict`), that sub-dict is read; otherwise the top-level dict
/// itself. Non-tensor entries are skipped. Safetensors files are flat and ignore `key`.
pub fn load(path: &Path, key: Option<&str>) -> Result<StateDict, WeightsError> {
    let io = |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    };
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
    {
        return load_safetensors(path);
    }
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut magic = [0u8; 8];
    let got = read_up_to(&mut file, &mut magic).map_err(io)?;
    if got >= 4 && magic[..4] == *b"PK\x03\x04" {
        load_torch_zip(path, file, key)
    } else if got == 8 && looks_like_safetensors(&magic) {
        drop(file);
        load_safetensors(path)
    } else {
        Err(WeightsError::NotACheckpoint {
            path: path.to_path_buf(),
            reason: if got < 8 {
                format!("only {got} bytes long")
            } else {
                "no zip signature and no safetensors header".into()
            },
        })
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A safetensors file starts with a u64 header length (sane, under 100 MB) followed by `{`.
fn looks_like_safetensors(first8: &[u8; 8]) -> bool {
    let n = u64::from_le_bytes(*first8);
    (2..100_000_000).contains(&n)
}

fn load_torch_zip(
    path: &Path,
    file: std::fs::File,
    key: Option<&str>,
) -> Result<StateDict, WeightsError> {
    let damaged = |reason: String| WeightsError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let file_len = file
        .metadata()
        .map_err(|source| WeightsError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| damaged(format!("not a readable zip archive: {e}")))?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok())
        .map(|n| n.into_owned())
        .collect();
    // torch.save writes `<archive>/data.pkl`, `<archive>/data/<key>`, `<archive>/byteorder`.
    let Some(pkl) = names
        .iter()
        .filter(|n| n.ends_with("data.pkl"))
        .min_by_key(|n| n.len())
        .cloned()
    else {
        return Err(WeightsError::NotACheckpoint {
            path: path.to_path_buf(),
            reason: "a zip archive without data.pkl".into(),
        });
    };
    let prefix = pkl.trim_end_matches("data.pkl").to_owned();
    if let Ok(mut bo) = zip.by_name(&format!("{prefix}byteorder")) {
        let mut s = String::new();
        // A missing or unreadable byteorder means little-endian, as in torch.
        let _ = bo.by_ref().take(16).read_to_string(&mut s);
        if s.trim() == "big" {
            return Err(damaged(
                "big-endian checkpoints are not supported; re-save it on a little-endian machine"
                    .into(),
            ));
        }
    }
    let pickle_bytes = read_entry(&mut zip, &pkl, MAX_PICKLE_BYTES, file_len).map_err(damaged)?;
    let root = pickle::unpickle(&pickle_bytes).map_err(|error| WeightsError::Pickle {
        path: path.to_path_buf(),
        error,
    })?;
    let dict = match key.and_then(|k| root.get(k)) {
        Some(d) => d,
        None => &root,
    };
    let Value::Dict(items) = dict else {
        return Err(WeightsError::NotACheckpoint {
            path: path.to_path_buf(),
            reason: "its pickle holds no dict of tensors".into(),
        });
    };
    // A key set twice keeps its last value, as in Python.
    let mut views: BTreeMap<&str, &TensorRef> = BTreeMap::new();
    for (k, v) in items {
        if let (Value::Str(name), Value::Tensor(t)) = (k, v) {
            views.insert(name, t);
        }
    }
    // Storage by storage, so that each is read once and only one is held at a time.
    let mut order: Vec<(&str, &TensorRef)> = views.into_iter().collect();
    order.sort_by(|a, b| a.1.storage.key.cmp(&b.1.storage.key));
    let mut budget = file_len
        .saturating_mul(COPY_FACTOR)
        .saturating_add(COPY_SLACK);
    let mut storage: Option<(&str, Vec<u8>)> = None;
    let mut out = StateDict::new();
    for (name, t) in order {
        if storage
            .as_ref()
            .is_none_or(|(key, _)| *key != t.storage.key)
        {
            // Free the previous storage before reading the next.
            drop(storage.take());
            let bytes =
                read_storage(&mut zip, &prefix, name, t, file_len, &mut budget).map_err(damaged)?;
            storage = Some((&t.storage.key, bytes));
        }
        let Some((_, bytes)) = &storage else {
            continue;
        };
        let tensor = materialize(bytes, name, t, &mut budget).map_err(damaged)?;
        out.insert(name.to_string(), tensor);
    }
    if out.is_empty() {
        return Err(WeightsError::NotACheckpoint {
            path: path.to_path_buf(),
            reason: match key {
                Some(k) => format!("no tensors at the top level or under {k:?}"),
                None => "no tensors at the top level".into(),
            },
        });
    }
    Ok(out)
}

/// Reads a whole zip entry of at most `limit` bytes. Its declared size is only trusted after
/// checking it against `limit` and the archive's length (`file_len`): torch.save stores entries
/// uncompressed, so an entry longer than its archive is a lie.
fn read_entry<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    limit: u64,
    file_len: u64,
) -> Result<Vec<u8>, String> {
    let entry = zip
        .by_name(name)
        .map_err(|e| format!("cannot open {name} in the archive: {e}"))?;
    let size = entry.size();
    if size > limit {
        return Err(format!(
            "{name} is {size} bytes, over the {limit}-byte limit"
        ));
    }
    if size > file_len || entry.compressed_size() > file_len {
        return Err(format!(
            "{name} claims {size} bytes but the whole archive is {file_len} bytes"
        ));
    }
    // Bounded by the archive's length just above.
    let mut buf = Vec::with_capacity(size as usize);
    entry
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    Ok(buf)
}

/// Takes `bytes` from the copy budget (see [`COPY_FACTOR`]).
fn spend(budget: &mut u64, bytes: u64, name: &str) -> Result<(), String> {
    *budget = budget.checked_sub(bytes).ok_or_else(|| {
        format!(
            "tensor {name}: the checkpoint's tensors would take more than {COPY_FACTOR} times \
             the file's size (views that repeat elements, or storages read many times)"
        )
    })?;
    Ok(())
}

/// Reads the storage entry `t` views, checking its declared size first.
fn read_storage<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    prefix: &str,
    name: &str,
    t: &TensorRef,
    file_len: u64,
    budget: &mut u64,
) -> Result<Vec<u8>, String> {
    let es = t.storage.dtype.size();
    let entry = format!("{prefix}data/{}", t.storage.key);
    let storage_bytes = t
        .storage
        .numel
        .checked_mul(es)
        .ok_or_else(|| format!("tensor {name}: storage size overflows"))?;
    spend(budget, storage_bytes as u64, name)?;
    let bytes = read_entry(zip, &entry, storage_bytes as u64, file_len)?;
    if bytes.len() != storage_bytes {
        return Err(format!(
            "tensor {name}: storage {entry} holds {} bytes, the pickle says {storage_bytes}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Copies a (possibly strided) tensor view out of its storage's `bytes`, checking every bound
/// and the copy budget before allocating.
fn materialize(
    bytes: &[u8],
    name: &str,
    t: &TensorRef,
    budget: &mut u64,
) -> Result<RawTensor, String> {
    let es = t.storage.dtype.size();
    let numel = t
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("tensor {name}: shape {:?} overflows", t.shape))?;
    let out_bytes = numel
        .checked_mul(es)
        .ok_or_else(|| format!("tensor {name}: shape {:?} overflows", t.shape))?;
    if t.shape.len() != t.stride.len() {
        return Err(format!(
            "tensor {name}: shape {:?} and strides {:?} differ in length",
            t.shape, t.stride
        ));
    }
    let mut data = Vec::new();
    if numel > 0 {
        // The last element the view touches must lie inside the storage.
        let mut last = t.offset;
        for (&d, &s) in t.shape.iter().zip(&t.stride) {
            last = (d - 1)
                .checked_mul(s)
                .and_then(|x| x.checked_add(last))
                .ok_or_else(|| format!("tensor {name}: strides overflow"))?;
        }
        if last >= t.storage.numel {
            return Err(format!(
                "tensor {name}: shape {:?} with strides {:?} at offset {} reaches element {last} \
                 of a {}-element storage",
                t.shape, t.stride, t.offset, t.storage.numel
            ));
        }
        spend(budget, out_bytes as u64, name)?;
        data.reserve_exact(out_bytes);
        if is_contiguous(&t.shape, &t.stride) {
            data.extend_from_slice(&bytes[t.offset * es..(t.offset + numel) * es]);
        } else {
            let mut idx = vec![0usize; t.shape.len()];
            for _ in 0..numel {
                let off = t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
                data.extend_from_slice(&bytes[off * es..(off + 1) * es]);
                for ax in (0..idx.len()).rev() {
                    idx[ax] += 1;
                    if idx[ax] < t.shape[ax] {
                        break;
                    }
                    idx[ax] = 0;
                }
            }
        }
    }
    Ok(RawTensor {
        dtype: t.storage.dtype,
        shape: t.shape.clone(),
        data,
    })
}

fn is_contiguous(shape: &[usize], stride: &[usize]) -> bool {
    let mut expect = 1;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expect {
            return false;
        }
        expect *= d;
    }
    true
}

/// Reads a safetensors file, validating the header ourselves first: the length prefix, the
/// JSON, each dtype, and that every tensor's `data_offsets` lie inside the file and match its
/// shape — a header pointing past the end is an error here, not an out-of-bounds slice later.
pub fn load_safetensors(path: &Path) -> Result<StateDict, WeightsError> {
    load_safetensors_with_metadata(path).map(|(tensors, _)| tensors)
}

/// [`load_safetensors`], also returning the header's `__metadata__` (string values; others
/// are skipped).
pub fn load_safetensors_with_metadata(
    path: &Path,
) -> Result<(StateDict, BTreeMap<String, String>), WeightsError> {
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| WeightsError::BadSafetensors {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 8 {
        return Err(bad(format!("the file is only {} bytes", bytes.len())));
    }
    let mut n8 = [0u8; 8];
    n8.copy_from_slice(&bytes[..8]);
    let header_len = u64::from_le_bytes(n8);
    let data_start = 8u64
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len() as u64)
        .ok_or_else(|| {
            bad(format!(
                "the header claims {header_len} bytes but the file has {}",
                bytes.len()
            ))
        })? as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..data_start])
            .map_err(|e| bad(format!("the header is not a JSON object: {e}")))?;
    let data = &bytes[data_start..];
    // Overlapping entries would copy the data section once per tensor.
    let mut budget = (bytes.len() as u64)
        .saturating_mul(COPY_FACTOR)
        .saturating_add(COPY_SLACK);
    let mut out = StateDict::new();
    let mut metadata = BTreeMap::new();
    for (name, info) in &header {
        if name == "__metadata__" {
            if let Some(m) = info.as_object() {
                for (k, v) in m {
                    if let Some(v) = v.as_str() {
                        metadata.insert(k.clone(), v.to_owned());
                    }
                }
            }
            continue;
        }
        let dtype = match info.get("dtype").and_then(|d| d.as_str()) {
            Some("F32") => StorageDType::F32,
            Some("F64") => StorageDType::F64,
            Some("F16") => StorageDType::F16,
            Some("BF16") => StorageDType::BF16,
            Some("I64") => StorageDType::I64,
            Some("I32") => StorageDType::I32,
            Some("I16") => StorageDType::I16,
            Some("I8") => StorageDType::I8,
            Some("U8") => StorageDType::U8,
            Some("BOOL") => StorageDType::Bool,
            other => {
                return Err(bad(format!("tensor {name}: unsupported dtype {other:?}")));
            }
        };
        let shape: Vec<usize> = info
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
            .ok_or_else(|| bad(format!("tensor {name}: missing or invalid shape")))?;
        let offsets: Vec<u64> = info
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect())
            .ok_or_else(|| bad(format!("tensor {name}: missing or invalid data_offsets")))?;
        let [begin, end] = offsets[..] else {
            return Err(bad(format!(
                "tensor {name}: data_offsets must be [begin, end]"
            )));
        };
        if begin > end || end > data.len() as u64 {
            return Err(bad(format!(
                "tensor {name}: data_offsets [{begin}, {end}] point past the end of the \
                 {}-byte data section",
                data.len()
            )));
        }
        let want = shape
            .iter()
            .try_fold(dtype.size(), |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad(format!("tensor {name}: shape {shape:?} overflows")))?;
        if (end - begin) as usize != want {
            return Err(bad(format!(
                "tensor {name}: shape {shape:?} needs {want} bytes but data_offsets span {}",
                end - begin
            )));
        }
        spend(&mut budget, want as u64, name).map_err(bad)?;
        out.insert(
            name.clone(),
            RawTensor {
                dtype,
                shape,
                data: data[begin as usize..end as usize].to_vec(),
            },
        );
    }
    Ok((out, metadata))
}

/// Serializes f32 tensors as a safetensors file (used to convert checkpoints and by tests).
pub fn to_safetensors(tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>) -> Vec<u8> {
    let raw: StateDict = tensors
        .iter()
        .map(|(name, (shape, values))| (name.clone(), RawTensor::from_f32(shape.clone(), values)))
        .collect();
    safetensors_bytes(&raw, &BTreeMap::new())
}

/// Serializes tensors of any type as a safetensors file, with `metadata` as the header's
/// `__metadata__` (omitted when empty).
pub fn safetensors_bytes(tensors: &StateDict, metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let entries = tensors
        .iter()
        .map(|(name, t)| TensorEntry {
            name: name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            write: Box::new(move |out: &mut Vec<u8>| out.extend_from_slice(&t.data)),
        })
        .collect();
    safetensors_from_entries(entries, metadata)
}

/// One tensor to serialize: its bytes are produced when the file is assembled, straight into
/// the output, so a large file is not held twice (a checkpoint converts its layouts on the
/// fly).
pub struct TensorEntry<'a> {
    /// The tensor's name.
    pub name: String,
    /// Its type.
    pub dtype: StorageDType,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Appends exactly `numel · dtype.size()` little-endian bytes.
    pub write: WriteBytes<'a>,
}

/// Appends a tensor's bytes to the file being assembled.
pub type WriteBytes<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;

/// Serializes `entries` (written in name order) as a safetensors file with `metadata`.
/// Panics if an entry writes a different number of bytes than its shape says.
pub fn safetensors_from_entries(
    mut entries: Vec<TensorEntry<'_>>,
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::json!(metadata));
    }
    let mut offset = 0usize;
    for e in &entries {
        let len = e.shape.iter().product::<usize>() * e.dtype.size();
        header.insert(
            e.name.clone(),
            serde_json::json!({
                "dtype": safetensors_dtype(e.dtype),
                "shape": e.shape,
                "data_offsets": [offset, offset + len],
            }),
        );
        offset += len;
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    // Pad the header with spaces so the data starts 8-byte aligned, as the format recommends.
    while !(8 + h.len()).is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + offset);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    for e in &entries {
        let before = out.len();
        (e.write)(&mut out);
        let len = e.shape.iter().product::<usize>() * e.dtype.size();
        assert_eq!(
            out.len() - before,
            len,
            "tensor {} wrote the wrong size",
            e.name
        );
    }
    out
}

/// The safetensors name of a type.
fn safetensors_dtype(d: StorageDType) -> &'static str {
    match d {
        StorageDType::F32 => "F32",
        StorageDType::F64 => "F64",
        StorageDType::F16 => "F16",
        StorageDType::BF16 => "BF16",
        StorageDType::I64 => "I64",
        StorageDType::I32 => "I32",
        StorageDType::I16 => "I16",
        StorageDType::I8 => "I8",
        StorageDType::U8 => "U8",
        StorageDType::Bool => "BOOL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguity() {
        assert!(is_contiguous(&[2, 3], &[3, 1]));
        assert!(!is_contiguous(&[2, 3], &[1, 2]));
        assert!(is_contiguous(&[1, 3], &[99, 1]));
    }

    #[test]
    fn overlapping_safetensors_entries_cannot_multiply_the_file() {
        // 200 entries over the same 10 KB: 2 MB of copies from a 13 KB file.
        let entries: Vec<String> = (0..200)
            .map(|i| format!(r#""t{i}":{{"dtype":"F32","shape":[2560],"data_offsets":[0,10240]}}"#))
            .collect();
        let header = format!("{{{}}}", entries.join(","));
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(bytes.len() + 10240, 0);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.safetensors");
        std::fs::write(&p, &bytes).unwrap();
        let err = load(&p, None).unwrap_err().to_string();
        assert!(err.contains("times the file's size"), "{err}");
    }

    #[test]
    fn safetensors_round_trip_and_past_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = BTreeMap::new();
        t.insert("a".to_string(), (vec![2, 2], vec![1.0f32, 2.0, 3.0, 4.0]));
        let bytes = to_safetensors(&t);
        let p = dir.path().join("x.safetensors");
        std::fs::write(&p, &bytes).unwrap();
        let sd = load(&p, None).unwrap();
        assert_eq!(sd["a"].to_f32().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        // Cut the data section short: the offsets now point past the end.
        std::fs::write(&p, &bytes[..bytes.len() - 4]).unwrap();
        let err = load(&p, None).unwrap_err().to_string();
        assert!(err.contains("past the end"), "{err}");
    }
}
