//! Saving a trained adapter as a llama.cpp GGUF LoRA file: `general.type = adapter`,
//! `adapter.type = lora`, `adapter.lora.alpha`, and per adapted projection the tensors
//! `blk.N.<proj>.weight.lora_a` (ne = [n_in, rank]) and `.lora_b` (ne = [rank, n_out]) in f32,
//! written with candle's GGUF writer and replaced atomically.
//!
//! A stand-in until `crate::models::llm::lora::gguf::write` (the adapter file format's own
//! module, with the reader Write uses) is merged; then [`save`] becomes a call to it.

use std::path::Path;

use candle_core::quantized::{QTensor, gguf_file};
use candle_core::{Device, Tensor};

use crate::models::llm::lora::LoraAdapter;

/// Writes `adapter` to `path` atomically.
pub fn save(path: &Path, adapter: &LoraAdapter) -> Result<(), std::io::Error> {
    let bytes = encode(adapter).map_err(|e| std::io::Error::other(e.to_string()))?;
    crate::fsutil::atomic_write(path, &bytes)
}

fn encode(adapter: &LoraAdapter) -> candle_core::Result<Vec<u8>> {
    let dev = Device::Cpu;
    let mut tensors = Vec::with_capacity(adapter.pairs.len() * 2);
    for p in &adapter.pairs {
        let base = format!("blk.{}.{}.weight", p.layer, p.target.gguf_name());
        // candle's shapes are row-major (rows, cols); GGUF lists them reversed, as ne.
        let a = Tensor::from_slice(&p.a, (p.rank, p.n_in), &dev)?;
        let b = Tensor::from_slice(&p.b, (p.n_out, p.rank), &dev)?;
        tensors.push((
            format!("{base}.lora_a"),
            QTensor::quantize(&a, candle_core::quantized::GgmlDType::F32)?,
        ));
        tensors.push((
            format!("{base}.lora_b"),
            QTensor::quantize(&b, candle_core::quantized::GgmlDType::F32)?,
        ));
    }
    let metadata = [
        (
            "general.architecture",
            gguf_file::Value::String(adapter.architecture.clone()),
        ),
        ("general.type", gguf_file::Value::String("adapter".into())),
        ("adapter.type", gguf_file::Value::String("lora".into())),
        ("adapter.lora.alpha", gguf_file::Value::F32(adapter.alpha)),
    ];
    let md: Vec<(&str, &gguf_file::Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &md, &ts)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::llm::lora::{LoraPair, LoraTarget};

    #[test]
    fn the_file_reads_back_with_llama_cpp_names_and_shapes() {
        let adapter = LoraAdapter {
            architecture: "llama".into(),
            alpha: 16.0,
            pairs: vec![LoraPair {
                layer: 3,
                target: LoraTarget::K,
                rank: 2,
                n_in: 4,
                n_out: 6,
                a: (0..8).map(|i| i as f32).collect(),
                b: (0..12).map(|i| -(i as f32)).collect(),
            }],
        };
        let bytes = encode(&adapter).expect("encode");
        let mut r = std::io::Cursor::new(bytes);
        let ct = gguf_file::Content::read(&mut r).expect("read");
        assert_eq!(
            ct.metadata
                .get("adapter.lora.alpha")
                .and_then(|v| v.to_f32().ok()),
            Some(16.0)
        );
        let a = ct
            .tensor(&mut r, "blk.3.attn_k.weight.lora_a", &Device::Cpu)
            .expect("a");
        assert_eq!(a.shape().dims(), &[2, 4]);
        let b = ct
            .tensor(&mut r, "blk.3.attn_k.weight.lora_b", &Device::Cpu)
            .expect("b");
        assert_eq!(b.shape().dims(), &[6, 2]);
        let b = b
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>());
        assert_eq!(b.expect("values"), adapter.pairs[0].b);
    }
}
