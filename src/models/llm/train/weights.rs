//! Loading a GGUF model for training: the native decoder's hyper-parameters and tensor
//! reader, every weight dequantised to f32 once (candle's dequantisation, a block of rows at a
//! time so no second full-size copy is ever held).

use std::path::Path;

use candle_core::quantized::GgmlDType;

use super::{LayerWeights, TrainModel, TrainModelError};
use crate::models::llm::lora::LoraTarget;
use crate::models::llm::native::{self, Family, Hparams, NativeError, Reader};
use crate::models::llm::{arch, gguf};

/// Values dequantised per call (bounds the temporary copy).
const DEQUANT_CHUNK: usize = 1 << 20;

impl TrainModel {
    /// Loads `path` (a llama or gemma3 GGUF) with every weight as f32.
    pub fn load(path: &Path) -> Result<Self, TrainModelError> {
        let (content, mut file, _) = gguf::open(path)?;
        let arch = arch::detect(path, &content)?;
        let family = native::family_of(arch).ok_or_else(|| TrainModelError::Unsupported {
            path: path.to_path_buf(),
            arch: arch.gguf_name().into(),
        })?;
        let model_err = |source| TrainModelError::Model {
            path: path.to_path_buf(),
            source,
        };
        let hp = Hparams::from_gguf(family, &content).map_err(model_err)?;
        check_memory(path, &content)?;
        let mut rd = Reader::new(&content, &mut file);
        load_weights(arch, hp, &mut rd).map_err(model_err)
    }
}

/// Refuses a model whose f32 weights would not fit in the memory available now (Linux; other
/// systems try and may fail to allocate, which is reported too).
fn check_memory(
    path: &Path,
    ct: &candle_core::quantized::gguf_file::Content,
) -> Result<(), TrainModelError> {
    let elems = ct
        .tensor_infos
        .values()
        .try_fold(0u64, |a, t| a.checked_add(t.shape.elem_count() as u64));
    let need = elems.and_then(|e| e.checked_mul(4)).unwrap_or(u64::MAX);
    let Some(available) = available_memory() else {
        return Ok(());
    };
    if need > available {
        return Err(TrainModelError::TooLarge {
            path: path.to_path_buf(),
            need_mb: need / (1 << 20),
            available_mb: available / (1 << 20),
        });
    }
    Ok(())
}

/// `MemAvailable` from /proc/meminfo, in bytes.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

fn load_weights<R: std::io::Read + std::io::Seek>(
    arch: crate::models::llm::Architecture,
    hp: Hparams,
    rd: &mut Reader<'_, R>,
) -> Result<TrainModel, NativeError> {
    let c = &hp.cfg;
    let d = c.n_embd;
    let vocab = {
        let (_, dims) = rd.read("token_embd.weight")?;
        dims.first().copied().unwrap_or(0)
    };
    let embed = matrix(rd, "token_embd.weight", vocab, d)?;
    let output = if rd.has("output.weight") {
        Some(matrix(rd, "output.weight", vocab, d)?)
    } else {
        None
    };
    let output_norm = rd.vector("output_norm.weight", d)?;
    let gemma = native::family_of(arch) == Some(Family::Gemma3);
    let mut layers = Vec::with_capacity(hp.n_layer);
    for (i, &window) in hp.windows.iter().enumerate() {
        let name = |s: &str| format!("blk.{i}.{s}.weight");
        let mut norm = |s: &str, len: usize, scale: f32| -> Result<Option<Vec<f32>>, NativeError> {
            if !gemma {
                return Ok(None);
            }
            let v = rd.vector(&name(s), len)?;
            Ok(Some(v.into_iter().map(|x| x * scale).collect()))
        };
        let q_norm = norm("attn_q_norm", c.head_dim, hp.attn_scale)?;
        let k_norm = norm("attn_k_norm", c.head_dim, 1.0)?;
        let post_attn_norm = norm("post_attention_norm", d, 1.0)?;
        let post_ffn_norm = norm("post_ffw_norm", d, 1.0)?;
        let mut proj: [Vec<f32>; 7] = Default::default();
        for (slot, target) in LoraTarget::ALL.into_iter().enumerate() {
            let (rows, cols) = shape_of(&hp, target);
            proj[slot] = matrix(rd, &name(target.gguf_name()), rows, cols)?;
        }
        layers.push(LayerWeights {
            attn_norm: rd.vector(&name("attn_norm"), d)?,
            proj,
            q_norm,
            k_norm,
            post_attn_norm,
            ffn_norm: rd.vector(&name("ffn_norm"), d)?,
            post_ffn_norm,
            window,
            rope: hp.rope_of(window),
        });
    }
    Ok(TrainModel {
        arch,
        hp,
        vocab,
        embed,
        output,
        output_norm,
        layers,
    })
}

/// `(n_out, n_in)` of a projection from the hyper-parameters.
pub(super) fn shape_of(hp: &Hparams, target: LoraTarget) -> (usize, usize) {
    let c = &hp.cfg;
    let (q, kv) = (c.n_head * c.head_dim, c.n_kv * c.head_dim);
    match target {
        LoraTarget::Q => (q, c.n_embd),
        LoraTarget::K | LoraTarget::V => (kv, c.n_embd),
        LoraTarget::O => (c.n_embd, q),
        LoraTarget::Gate | LoraTarget::Up => (hp.n_ff, c.n_embd),
        LoraTarget::Down => (c.n_embd, hp.n_ff),
    }
}

/// A `rows × cols` matrix as f32, dequantised a block of rows at a time.
fn matrix<R: std::io::Read + std::io::Seek>(
    rd: &mut Reader<'_, R>,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<Vec<f32>, NativeError> {
    let (dtype, dims) = rd.read(name)?;
    if dims != [rows, cols] {
        return Err(NativeError::Shape {
            name: name.into(),
            got: dims,
            want: vec![rows, cols],
        });
    }
    let bad = |what: &str| NativeError::Read(format!("tensor '{name}': {what}"));
    let block = dtype.block_size().max(1);
    if !cols.is_multiple_of(block) {
        return Err(bad("rows are not whole quantization blocks"));
    }
    let row_bytes = cols / block * dtype.type_size();
    let total = rows.checked_mul(cols).ok_or_else(|| bad("too large"))?;
    if row_bytes.checked_mul(rows) != Some(rd.buf.len()) {
        return Err(bad("size does not match its shape"));
    }
    let mut out = Vec::new();
    out.try_reserve_exact(total)
        .map_err(|_| bad("not enough memory for its f32 copy"))?;
    if dtype == GgmlDType::F32 {
        out.extend(
            rd.buf
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        return Ok(out);
    }
    let rows_per_chunk = (DEQUANT_CHUNK / cols.max(1)).max(1);
    for chunk in rd.buf.chunks(row_bytes * rows_per_chunk) {
        let n = chunk.len() / row_bytes;
        let v = native::dequantize(dtype, &[n, cols], chunk).map_err(|e| bad(&e.to_string()))?;
        out.extend_from_slice(&v);
    }
    Ok(out)
}
