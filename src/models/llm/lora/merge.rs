//! Applying an adapter to the models that run on candle (Qwen, and Llama/Gemma 3 on CPUs
//! without the native decoder): `W + s · (alpha / r) · B·A` merged into each adapted weight at
//! load, behind a reader that serves the merged tensors in place of the file's.
//!
//! candle's models read their weights from a GGUF header and a reader, and keep them private;
//! so instead of patching each model, the header is rewritten to point the adapted tensors past
//! the end of the file, where [`Overlay`] serves their merged bytes. The merged weights are
//! stored as Q8_0, not in the base's 4-bit format: an adapter's change per weight is far below
//! a 4-bit step, and re-quantizing to 4 bits would round most of it away. A strength change
//! reloads (fast for the small models this path serves); the native decoder applies adapters
//! as a side path instead ([`crate::models::llm::native::lora`]).

use std::io::{Read, Seek, SeekFrom};

use candle_core::quantized::gguf_file::{Content, TensorInfo};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use super::LoraAdapter;

/// A reader over the base file followed by the merged tensors' bytes.
pub struct Overlay<R> {
    base: R,
    base_len: u64,
    extra: Vec<u8>,
    pos: u64,
}

impl<R: Read + Seek> Read for Overlay<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos < self.base_len {
            let n = (buf.len() as u64).min(self.base_len - self.pos) as usize;
            self.base.seek(SeekFrom::Start(self.pos))?;
            let got = self.base.read(&mut buf[..n])?;
            self.pos += got as u64;
            return Ok(got);
        }
        let start = usize::try_from(self.pos - self.base_len).unwrap_or(usize::MAX);
        let rest = self.extra.get(start..).unwrap_or(&[]);
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for Overlay<R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let len = self.base_len + self.extra.len() as u64;
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

/// Merges `adapter` at `strength` into the weights of the model in `content`/`base`: returns
/// the rewritten header and the reader to load the model from.
pub fn merge<R: Read + Seek>(
    content: &Content,
    mut base: R,
    adapter: &LoraAdapter,
    strength: f32,
) -> candle_core::Result<(Content, Overlay<R>)> {
    let device = Device::Cpu;
    let base_len = base.seek(SeekFrom::End(0))?;
    let mut merged_content = crate::models::llm::arch::weights_header(content);
    let mut extra = Vec::new();
    for p in &adapter.pairs {
        let name = p.base_name();
        let w = content
            .tensor(&mut base, &name, &device)?
            .dequantize(&device)?;
        if w.dims() != [p.n_out, p.n_in] {
            candle_core::bail!("{name}: the adapter's {}x{} does not fit", p.n_out, p.n_in);
        }
        let a = Tensor::from_slice(&p.a, (p.rank, p.n_in), &device)?;
        let b = Tensor::from_slice(&p.b, (p.n_out, p.rank), &device)?;
        let delta = (b.matmul(&a)? * f64::from(strength * adapter.factor(p)))?;
        let merged = (w + delta)?;
        let dtype = if p.n_in.is_multiple_of(32) {
            GgmlDType::Q8_0
        } else {
            GgmlDType::F32
        };
        let q = QTensor::quantize(&merged, dtype)?;
        let offset = (base_len + extra.len() as u64)
            .checked_sub(content.tensor_data_offset)
            .ok_or_else(|| candle_core::Error::Msg("the data offset lies past the file".into()))?;
        extra.extend_from_slice(&q.data()?);
        merged_content.tensor_infos.insert(
            name,
            TensorInfo {
                ggml_dtype: dtype,
                shape: merged.shape().clone(),
                offset,
            },
        );
    }
    Ok((
        merged_content,
        Overlay {
            base,
            base_len,
            extra,
            pos: 0,
        },
    ))
}
