//! llama.cpp's GGUF LoRA adapter format, written and read the way llama.cpp's
//! `convert_lora_to_gguf.py` writes it and `llama-adapter.cpp` loads it, so `llama-cli --lora`,
//! `llama-server` and llama-cpp-python's `lora_path` take Atelier's adapters unchanged and
//! Atelier takes theirs.
//!
//! The file: GGUF v3, metadata `general.architecture` (the base model's), `general.type` =
//! `adapter`, `adapter.type` = `lora`, `adapter.lora.alpha` (f32); per adapted projection two
//! tensors, `blk.N.<name>.weight.lora_a` with ggml dims `[n_in, rank]` and `….lora_b` with
//! `[rank, n_out]` (A is `rank × n_in` and B is `n_out × rank` row-major), in the base GGUF's
//! row order. Atelier writes F32; it reads F32, F16, BF16 and Q8_0 (the converter's
//! `--outtype` choices). `*_norm.weight` tensors (which mergekit adds) are skipped as llama.cpp
//! skips them.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, Value};

use super::base::{BaseShapes, parse_base_name};
use super::{LoraAdapter, LoraError, LoraPair, MAX_RANK};
use crate::models::llm::{LlmError, gguf as model_gguf};

/// GGUF version written.
const VERSION: u32 = 3;
/// Data alignment (GGUF's default; the writer pads every tensor to it).
const ALIGNMENT: usize = 32;

// GGUF metadata value types (gguf.h).
const TYPE_FLOAT32: u32 = 6;
const TYPE_STRING: u32 = 8;
/// How tensors are stored in a written adapter: the choices of llama.cpp's converter
/// (`--outtype`). Atelier writes F32 (exact); the others make smaller files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// 32-bit floats.
    F32,
    /// 16-bit floats.
    F16,
    /// bfloat16.
    Bf16,
    /// 8-bit blocks of 32 with an f16 scale; tensors whose rows are not a multiple of 32
    /// long are stored as F16 (as the converter does).
    Q8_0,
}

impl Storage {
    /// The ggml type id and bytes of `values` stored this way (rows of `row` values).
    fn encode(self, values: &[f32], row: usize) -> (u32, Vec<u8>) {
        match self {
            Self::F32 => (0, values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            Self::F16 => (
                1,
                values
                    .iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect(),
            ),
            Self::Bf16 => (
                30,
                values
                    .iter()
                    .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                    .collect(),
            ),
            Self::Q8_0 if row.is_multiple_of(32) => {
                let mut out = Vec::with_capacity(values.len() / 32 * 34);
                for blk in values.chunks_exact(32) {
                    let amax = blk.iter().fold(0f32, |a, &v| a.max(v.abs()));
                    let d = amax / 127.0;
                    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                    out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
                    out.extend(blk.iter().map(|&v| (v * id).round() as i8 as u8));
                }
                (8, out)
            }
            Self::Q8_0 => Self::F16.encode(values, row),
        }
    }
}

/// Writes `adapter` to `path` in llama.cpp's GGUF LoRA format (F32 tensors), atomically.
pub fn write(path: &Path, adapter: &LoraAdapter) -> Result<(), LoraError> {
    write_as(path, adapter, Storage::F32)
}

/// [`write`] with the tensors stored as `storage`.
pub fn write_as(path: &Path, adapter: &LoraAdapter, storage: Storage) -> Result<(), LoraError> {
    let bytes = to_bytes(adapter, storage)?;
    crate::fsutil::atomic_write(path, &bytes).map_err(|error| LoraError::Io {
        path: path.to_path_buf(),
        error,
    })
}

/// The file's bytes for `adapter`.
pub fn to_bytes(adapter: &LoraAdapter, storage: Storage) -> Result<Vec<u8>, LoraError> {
    adapter.validate()?;
    let mut pairs: Vec<&LoraPair> = adapter.pairs.iter().collect();
    pairs.sort_by_key(|p| (p.layer, p.target));
    // (name, ggml dims innermost first, ggml type, data)
    let mut tensors: Vec<(String, [usize; 2], u32, Vec<u8>)> = Vec::with_capacity(pairs.len() * 2);
    for p in pairs {
        let base = p.base_name();
        let (ta, a) = storage.encode(&p.a, p.n_in);
        tensors.push((format!("{base}.lora_a"), [p.n_in, p.rank], ta, a));
        let (tb, b) = storage.encode(&p.b, p.rank);
        tensors.push((format!("{base}.lora_b"), [p.rank, p.n_out], tb, b));
    }
    let data_len: usize = tensors
        .iter()
        .map(|t| t.3.len().next_multiple_of(ALIGNMENT))
        .sum();
    let mut out = Vec::with_capacity(data_len + 4096);
    out.extend_from_slice(b"GGUF");
    put_u32(&mut out, VERSION);
    put_u64(&mut out, tensors.len() as u64);
    put_u64(&mut out, 4); // metadata entries below
    put_kv_str(&mut out, "general.architecture", &adapter.architecture);
    put_kv_str(&mut out, "general.type", "adapter");
    put_kv_str(&mut out, "adapter.type", "lora");
    put_str(&mut out, "adapter.lora.alpha");
    put_u32(&mut out, TYPE_FLOAT32);
    out.extend_from_slice(&adapter.alpha.to_le_bytes());
    let mut offset = 0usize;
    for (name, dims, ggml_type, data) in &tensors {
        put_str(&mut out, name);
        put_u32(&mut out, 2);
        for &d in dims {
            put_u64(&mut out, d as u64);
        }
        put_u32(&mut out, *ggml_type);
        put_u64(&mut out, offset as u64);
        offset += data.len().next_multiple_of(ALIGNMENT);
    }
    out.resize(out.len().next_multiple_of(ALIGNMENT), 0);
    for (_, _, _, data) in &tensors {
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(ALIGNMENT), 0);
    }
    Ok(out)
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_kv_str(out: &mut Vec<u8>, key: &str, value: &str) {
    put_str(out, key);
    put_u32(out, TYPE_STRING);
    put_str(out, value);
}

/// Reads an adapter, checking the file's own consistency (pairs complete, ranks agreeing,
/// sizes within the file, finite values) but not a base model; see [`read_for`].
pub fn read(path: &Path) -> Result<LoraAdapter, LoraError> {
    read_impl(path, None)
}

/// Reads an adapter for `base`: everything [`read`] checks, and, before any tensor data is
/// read, that the architecture, the layers and every shape match the base model.
pub fn read_for(path: &Path, base: &BaseShapes) -> Result<LoraAdapter, LoraError> {
    read_impl(path, Some(base))
}

/// The adapter's header facts, without its tensor data (for listing adapters quickly).
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterHeader {
    /// The base model's `general.architecture`.
    pub architecture: String,
    /// `adapter.lora.alpha` (0 when absent).
    pub alpha: f32,
    /// One entry per pair.
    pub pairs: Vec<PairHeader>,
}

/// One pair's place and shape as the header declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct PairHeader {
    /// Block index.
    pub layer: usize,
    /// Projection.
    pub target: super::LoraTarget,
    /// Rank.
    pub rank: usize,
    /// Inputs.
    pub n_in: usize,
    /// Outputs.
    pub n_out: usize,
    a: TensorRef,
    b: TensorRef,
}

#[derive(Clone, Debug, PartialEq)]
struct TensorRef {
    name: String,
    dtype: GgmlDType,
    /// Absolute file offset of the data.
    start: u64,
}

/// Reads and checks the header only (metadata, tensor names and shapes), against `base` when
/// given. Cheap: no tensor data is read.
pub fn read_header(path: &Path, base: Option<&BaseShapes>) -> Result<AdapterHeader, LoraError> {
    open(path, base).map(|(h, _)| h)
}

fn open(path: &Path, base: Option<&BaseShapes>) -> Result<(AdapterHeader, File), LoraError> {
    let (content, file, _) = model_gguf::open(path).map_err(|e| match e {
        LlmError::Io { path, source } => LoraError::Io {
            path,
            error: source,
        },
        LlmError::NotGguf { path } => LoraError::NotGguf { path },
        LlmError::Corrupt { path, detail } => LoraError::Corrupt { path, detail },
        other => LoraError::Corrupt {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    })?;
    let not_adapter = |detail: String| LoraError::NotAdapter {
        path: path.to_path_buf(),
        detail,
    };
    match model_gguf::metadata_string(&content, "general.type").as_deref() {
        Some("adapter") => {}
        Some(other) => {
            return Err(not_adapter(format!(
                "its general.type is '{other}' (a model opens in the model picker, not as an adapter)"
            )));
        }
        None => {
            return Err(not_adapter(
                "it has no general.type = 'adapter' (it looks like a model)".into(),
            ));
        }
    }
    match model_gguf::metadata_string(&content, "adapter.type").as_deref() {
        Some("lora") => {}
        other => {
            return Err(not_adapter(format!(
                "its adapter.type is '{}', not 'lora'",
                other.unwrap_or("missing")
            )));
        }
    }
    let architecture = model_gguf::metadata_string(&content, "general.architecture")
        .ok_or_else(|| not_adapter("general.architecture is missing".into()))?;
    let alpha = match content.metadata.get("adapter.lora.alpha") {
        None => 0.0,
        Some(Value::F32(v)) => *v,
        Some(Value::F64(v)) => *v as f32,
        Some(_) => return Err(not_adapter("adapter.lora.alpha is not a number".into())),
    };
    if !alpha.is_finite() {
        return Err(not_adapter(format!("adapter.lora.alpha is {alpha}")));
    }
    if let Some(base) = base {
        base.check_architecture(path, &architecture)?;
    }
    let pairs = pair_up(path, &content, base)?;
    if pairs.is_empty() {
        return Err(not_adapter("it holds no lora_a/lora_b tensors".into()));
    }
    Ok((
        AdapterHeader {
            architecture,
            alpha,
            pairs,
        },
        file,
    ))
}

/// Groups the `.lora_a`/`.lora_b` tensors into pairs and checks their shapes.
fn pair_up(
    path: &Path,
    content: &Content,
    base: Option<&BaseShapes>,
) -> Result<Vec<PairHeader>, LoraError> {
    let err = |tensor: &str, detail: String| LoraError::Tensor {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        detail,
    };
    let mut halves: std::collections::BTreeMap<(usize, super::LoraTarget), [Option<&str>; 2]> =
        Default::default();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let (base_name, half) = if let Some(b) = name.strip_suffix(".lora_a") {
            (b, 0)
        } else if let Some(b) = name.strip_suffix(".lora_b") {
            (b, 1)
        } else if name.ends_with("_norm.weight") {
            tracing::warn!(
                "{}: skipping '{name}' (norm weights in adapters are ignored, as llama.cpp does)",
                path.display()
            );
            continue;
        } else {
            return Err(err(
                name,
                "is neither a .lora_a nor a .lora_b tensor; this is not a LoRA adapter Atelier can apply".into(),
            ));
        };
        let Some(key) = parse_base_name(base_name) else {
            return Err(err(
                name,
                format!(
                    "adapts '{base_name}'; Atelier applies adapters to the attention and MLP projections (blk.N.attn_q/attn_k/attn_v/attn_output/ffn_gate/ffn_up/ffn_down.weight) only"
                ),
            ));
        };
        halves.entry(key).or_default()[half] = Some(name);
    }
    let mut pairs = Vec::with_capacity(halves.len());
    for ((layer, target), [a, b]) in halves {
        let base_name = format!("blk.{layer}.{}.weight", target.gguf_name());
        let (Some(a), Some(b)) = (a, b) else {
            let missing = if a.is_none() { "lora_a" } else { "lora_b" };
            return Err(err(
                &format!("{base_name}.{missing}"),
                "is missing (each adapted projection needs both lora_a and lora_b)".into(),
            ));
        };
        let (ia, ib) = (&content.tensor_infos[a], &content.tensor_infos[b]);
        // candle lists dims outermost first: A is (rank, n_in), B is (n_out, rank).
        let (&[rank, n_in], &[n_out, rank_b]) = (ia.shape.dims(), ib.shape.dims()) else {
            return Err(err(a, "and its lora_b must both be 2-D".into()));
        };
        if rank != rank_b {
            return Err(err(
                b,
                format!(
                    "has rank {rank_b} but its lora_a has rank {rank} (the ggml dims of lora_a are [n_in, rank], of lora_b [rank, n_out])"
                ),
            ));
        }
        if rank == 0 || rank > MAX_RANK {
            return Err(err(a, format!("has rank {rank}, outside 1..={MAX_RANK}")));
        }
        if let Some(base) = base {
            base.check_pair(path, layer, target, n_out, n_in)?;
        }
        let tensor_ref = |name: &str, info: &candle_core::quantized::gguf_file::TensorInfo| {
            if !matches!(
                info.ggml_dtype,
                GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 | GgmlDType::Q8_0
            ) {
                return Err(err(
                    name,
                    format!(
                        "is stored as {:?}; adapters are read in F32, F16, BF16 or Q8_0 (convert_lora_to_gguf.py --outtype)",
                        info.ggml_dtype
                    ),
                ));
            }
            let start = content
                .tensor_data_offset
                .checked_add(info.offset)
                .ok_or_else(|| err(name, "has an impossible offset".into()))?;
            Ok(TensorRef {
                name: name.to_string(),
                dtype: info.ggml_dtype,
                start,
            })
        };
        pairs.push(PairHeader {
            layer,
            target,
            rank,
            n_in,
            n_out,
            a: tensor_ref(a, ia)?,
            b: tensor_ref(b, ib)?,
        });
    }
    Ok(pairs)
}

fn read_impl(path: &Path, base: Option<&BaseShapes>) -> Result<LoraAdapter, LoraError> {
    let (header, mut file) = open(path, base)?;
    let mut pairs = Vec::with_capacity(header.pairs.len());
    for p in &header.pairs {
        // Shapes were bounded by the file size in `open` (every tensor lies inside the file).
        let a = read_values(path, &mut file, &p.a, p.rank * p.n_in)?;
        let b = read_values(path, &mut file, &p.b, p.n_out * p.rank)?;
        pairs.push(LoraPair {
            layer: p.layer,
            target: p.target,
            rank: p.rank,
            n_in: p.n_in,
            n_out: p.n_out,
            a,
            b,
        });
    }
    Ok(LoraAdapter {
        architecture: header.architecture,
        alpha: header.alpha,
        pairs,
    })
}

/// Reads `count` values of a tensor as f32 and checks they are finite.
fn read_values(
    path: &Path,
    file: &mut File,
    t: &TensorRef,
    count: usize,
) -> Result<Vec<f32>, LoraError> {
    let err = |detail: String| LoraError::Tensor {
        path: path.to_path_buf(),
        tensor: t.name.clone(),
        detail,
    };
    let block = t.dtype.block_size();
    if block == 0 || !count.is_multiple_of(block) {
        return Err(err(format!(
            "has {count} values, not a whole number of {:?} blocks",
            t.dtype
        )));
    }
    let bytes = (count / block)
        .checked_mul(t.dtype.type_size())
        .ok_or_else(|| err("is impossibly large".into()))?;
    let mut raw = vec![0u8; bytes];
    file.seek(SeekFrom::Start(t.start))
        .and_then(|_| file.read_exact(&mut raw))
        .map_err(|e| err(format!("cannot be read ({e}); the file is truncated")))?;
    let values = decode(t.dtype, &raw);
    if !values.iter().all(|v| v.is_finite()) {
        return Err(err("holds a NaN or infinite value".into()));
    }
    Ok(values)
}

/// Little-endian F32/F16/BF16/Q8_0 bytes to f32 (the caller checked the dtype and length).
fn decode(dtype: GgmlDType, raw: &[u8]) -> Vec<f32> {
    match dtype {
        GgmlDType::F16 => raw
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        GgmlDType::BF16 => raw
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        GgmlDType::Q8_0 => raw
            .chunks_exact(34)
            .flat_map(|blk| {
                let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                blk[2..].iter().map(move |&q| d * q as i8 as f32)
            })
            .collect(),
        _ => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::llm::lora::LoraTarget;

    fn pair(layer: usize, target: LoraTarget, rank: usize, n_in: usize, n_out: usize) -> LoraPair {
        LoraPair {
            layer,
            target,
            rank,
            n_in,
            n_out,
            a: (0..rank * n_in).map(|i| (i as f32 * 0.37).sin()).collect(),
            b: (0..n_out * rank).map(|i| (i as f32 * 0.11).cos()).collect(),
        }
    }

    #[test]
    fn bytes_round_trip_through_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.gguf");
        let adapter = LoraAdapter {
            architecture: "llama".into(),
            alpha: 16.0,
            pairs: vec![
                pair(1, LoraTarget::V, 4, 64, 32),
                pair(0, LoraTarget::Q, 4, 64, 64),
            ],
        };
        write(&path, &adapter).unwrap();
        let back = read(&path).unwrap();
        let mut want = adapter.clone();
        want.pairs.sort_by_key(|p| (p.layer, p.target));
        assert_eq!(back, want);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], b"GGUF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3);
        assert_eq!(bytes.len() % ALIGNMENT, 0);
    }

    #[test]
    fn every_storage_reads_back_close() {
        let dir = tempfile::tempdir().unwrap();
        let adapter = LoraAdapter {
            architecture: "llama".into(),
            alpha: 8.0,
            pairs: vec![
                pair(0, LoraTarget::Q, 4, 64, 64),
                pair(0, LoraTarget::V, 32, 64, 32),
            ],
        };
        for (storage, tol) in [
            (Storage::F32, 0.0),
            (Storage::F16, 1e-3),
            (Storage::Bf16, 8e-3),
            (Storage::Q8_0, 8e-3),
        ] {
            let path = dir.path().join(format!("{storage:?}.gguf"));
            write_as(&path, &adapter, storage).unwrap();
            let back = read(&path).unwrap();
            for (p, q) in adapter.pairs.iter().zip(&back.pairs) {
                let err =
                    p.a.iter()
                        .chain(&p.b)
                        .zip(q.a.iter().chain(&q.b))
                        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(err <= tol, "{storage:?}: {err}");
            }
        }
    }

    #[test]
    fn other_storage_formats_decode() {
        let one = half::f16::from_f32(1.5).to_le_bytes();
        assert_eq!(decode(GgmlDType::F16, &one), vec![1.5]);
        let one = half::bf16::from_f32(-2.0).to_le_bytes();
        assert_eq!(decode(GgmlDType::BF16, &one), vec![-2.0]);
        let mut q8 = half::f16::from_f32(0.5).to_le_bytes().to_vec();
        q8.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let v = decode(GgmlDType::Q8_0, &q8);
        assert_eq!(v.len(), 32);
        assert_eq!(v[0], -8.0);
        assert_eq!(v[31], 7.5);
    }

    #[test]
    fn an_invalid_adapter_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = pair(0, LoraTarget::Q, 2, 8, 8);
        p.a[3] = f32::NAN;
        let adapter = LoraAdapter {
            architecture: "llama".into(),
            alpha: 4.0,
            pairs: vec![p],
        };
        assert!(matches!(
            write(&dir.path().join("x.gguf"), &adapter),
            Err(LoraError::Invalid(_))
        ));
        assert!(!dir.path().join("x.gguf").exists());
    }
}
