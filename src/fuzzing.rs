//! Entry points for fuzzing: each feeds arbitrary bytes to one of the readers that take files
//! from users, the way a file reaches it in the app, and must come back with `Ok` or a clear
//! error — never a panic, a hang or an unbounded allocation. The cargo-fuzz targets in `fuzz/`
//! call these, and so does the stable `tests/fuzz_smoke.rs` (mutated seed files), so the same
//! code is exercised on every CI run without a nightly toolchain.
//!
//! Readers that open paths get the bytes through a temporary file with the right extension.
//! [`tiny_gguf`] makes small but complete language models, the seeds that let the GGUF target
//! reach model loading and generation.

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};

use crate::models::llm::{Architecture, Backend, CausalLm, Llm, gguf};

/// Writes `data` to a temporary file named `*.{ext}`, runs `f` on its path.
fn with_file<T>(data: &[u8], ext: &str, f: impl FnOnce(&std::path::Path) -> T) -> Option<T> {
    let mut file = tempfile::Builder::new()
        .prefix("atelier-fuzz-")
        .suffix(&format!(".{ext}"))
        .tempfile()
        .ok()?;
    file.write_all(data).ok()?;
    file.flush().ok()?;
    Some(f(file.path()))
}

/// Largest model, in tensor bytes, that the GGUF target loads and runs: loading repacks every
/// tensor, so mutants of real models would spend their time copying weights.
pub const MODEL_BUDGET: u64 = 1 << 20;

/// The GGUF reader (header, metadata, tensor table checked against the file size), then the
/// tokenizer builder and the architecture check on the metadata (vocabulary, merges, scores and
/// special tokens all come from the file). The builder also runs on metadata parsed from a
/// prefix of a file — a GGUF whose tensors were cut off — since a crafted file with valid
/// tensor offsets reaches it the same way. A whole file whose tensors fit [`MODEL_BUDGET`] is
/// then loaded as the studio loads it (hyperparameter checks, both implementations, the chat
/// template) and run for a few tokens ([`run_model`]). Returns whether a tokenizer was built.
pub fn gguf(data: &[u8]) -> bool {
    let _ = with_file(data, "gguf", run_model);
    let mut cursor = std::io::Cursor::new(data);
    let Ok((content, _)) = gguf::read_header(&mut cursor) else {
        return false;
    };
    let _ = crate::models::llm::arch::detect(Path::new("fuzz.gguf"), &content);
    crate::models::llm::GgufTokenizer::from_gguf(&content)
        .map(|tok| {
            // Round-trip a little text through what was built.
            if let Ok(ids) = tok.encode("Hello, wörld! <|im_start|> 123", true) {
                let _ = tok.decode(&ids);
            }
        })
        .is_ok()
}

/// Loads the GGUF at `path` if its tensors fit [`MODEL_BUDGET`] — through [`Llm::load`] (the
/// native decoder where this CPU has it, the tokenizer, the chat template) and through candle
/// — and runs each for three tokens, rendering a conversation with the chat template if there
/// is one. Returns whether a model loaded.
pub fn run_model(path: &Path) -> bool {
    let Ok((content, mut file, _)) = gguf::open(path) else {
        return false;
    };
    let total = content.tensor_infos.values().try_fold(0u64, |sum, t| {
        gguf::tensor_bytes(t)
            .ok()
            .and_then(|b| sum.checked_add(b as u64))
    });
    if total.is_none_or(|t| t > MODEL_BUDGET) {
        return false;
    }
    let Ok(mut llm) = Llm::load(path) else {
        return false;
    };
    if let Some(t) = &llm.chat_template {
        let _ = t.render(&[
            crate::models::llm::ChatMessage::system("Be brief."),
            crate::models::llm::ChatMessage::user("Hi"),
        ]);
    }
    let vocab = llm.tokenizer.vocab_size() as u32;
    let ids: Vec<u32> = [1, 2, 3].iter().map(|i| i % vocab).collect();
    let _ = llm.model.forward(&ids[..2], 0);
    let _ = llm.model.forward(&ids[2..], 2);
    let device = candle_core::Device::Cpu;
    if let Ok(mut m) = CausalLm::load_with(path, &content, &mut file, &device, Backend::Candle) {
        let _ = m.forward(&ids[..2], 0);
        let _ = m.forward(&ids[2..], 2);
    }
    true
}

/// A small, complete language model of `arch` (Llama or Gemma 3: two layers, 32-wide, Q8_0
/// matrices, a SentencePiece vocabulary of byte pieces, and for Llama a ChatML template), as
/// GGUF bytes: the seed from which the GGUF target reaches model loading. `edit` may change
/// the metadata before it is written (tests make hostile variants this way).
pub fn tiny_gguf(
    arch: Architecture,
    edit: impl FnOnce(&mut Vec<(String, Value)>),
) -> candle_core::Result<Vec<u8>> {
    const EMBD: usize = 32;
    const HEADS: usize = 2;
    const HEAD_DIM: usize = 16;
    const FF: usize = 64;
    const LAYERS: usize = 2;
    let p = arch.gguf_name();
    let mut pieces: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    pieces.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    pieces.extend(["▁Hi", "▁the", "▁a", "Hi", "e"].map(String::from));
    let vocab = pieces.len();
    let u = |v: usize| Value::U32(v as u32);
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(p.into())),
        (format!("{p}.context_length"), u(64)),
        (format!("{p}.embedding_length"), u(EMBD)),
        (format!("{p}.block_count"), u(LAYERS)),
        (format!("{p}.feed_forward_length"), u(FF)),
        (format!("{p}.attention.head_count"), u(HEADS)),
        (format!("{p}.attention.head_count_kv"), u(1)),
        (
            format!("{p}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-6),
        ),
        (format!("{p}.rope.freq_base"), Value::F32(10_000.0)),
        (format!("{p}.rope.dimension_count"), u(HEAD_DIM)),
        ("tokenizer.ggml.model".into(), Value::String("llama".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(pieces.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.scores".into(),
            Value::Array((0..vocab).map(|i| Value::F32(-(i as f32))).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(
                (0..vocab)
                    .map(|i| {
                        Value::I32(match i {
                            0 => 2,
                            1 | 2 => 3,
                            3..259 => 6,
                            _ => 1,
                        })
                    })
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.bos_token_id".into(), u(1)),
        ("tokenizer.ggml.eos_token_id".into(), u(2)),
    ];
    if arch == Architecture::Gemma3 {
        md.extend([
            (format!("{p}.attention.key_length"), u(HEAD_DIM)),
            (format!("{p}.attention.value_length"), u(HEAD_DIM)),
            (format!("{p}.attention.sliding_window"), u(4)),
        ]);
    } else {
        md.push((
            "tokenizer.chat_template".into(),
            Value::String(CHATML.into()),
        ));
    }
    edit(&mut md);

    // Deterministic weights: small, varied values.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut weights = |rows: usize, cols: usize, dtype: GgmlDType, offset: f32| {
        let values: Vec<f32> = (0..rows * cols)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                offset + ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
            })
            .collect();
        let shape: &[usize] = if rows == 1 { &[cols] } else { &[rows, cols] };
        let t = candle_core::Tensor::from_vec(values, shape, &candle_core::Device::Cpu)?;
        QTensor::quantize(&t, dtype)
    };
    let q8 = GgmlDType::Q8_0;
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), weights(vocab, EMBD, q8, 0.0)?),
        (
            "output_norm.weight".into(),
            weights(1, EMBD, GgmlDType::F32, 1.0)?,
        ),
    ];
    for i in 0..LAYERS {
        let mut t = |name: &str, rows: usize, cols: usize, dtype: GgmlDType, offset: f32| {
            weights(rows, cols, dtype, offset).map(|w| (format!("blk.{i}.{name}.weight"), w))
        };
        tensors.extend([
            t("attn_norm", 1, EMBD, GgmlDType::F32, 1.0)?,
            t("attn_q", HEADS * HEAD_DIM, EMBD, q8, 0.0)?,
            t("attn_k", HEAD_DIM, EMBD, q8, 0.0)?,
            t("attn_v", HEAD_DIM, EMBD, q8, 0.0)?,
            t("attn_output", EMBD, HEADS * HEAD_DIM, q8, 0.0)?,
            t("ffn_norm", 1, EMBD, GgmlDType::F32, 1.0)?,
            t("ffn_gate", FF, EMBD, q8, 0.0)?,
            t("ffn_up", FF, EMBD, q8, 0.0)?,
            t("ffn_down", EMBD, FF, q8, 0.0)?,
        ]);
        if arch == Architecture::Gemma3 {
            tensors.extend([
                t("attn_q_norm", 1, HEAD_DIM, GgmlDType::F32, 1.0)?,
                t("attn_k_norm", 1, HEAD_DIM, GgmlDType::F32, 1.0)?,
                t("post_attention_norm", 1, EMBD, GgmlDType::F32, 1.0)?,
                t("post_ffw_norm", 1, EMBD, GgmlDType::F32, 1.0)?,
            ]);
        }
    }
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    candle_core::quantized::gguf_file::write(&mut out, &md_refs, &t_refs)?;
    Ok(out.into_inner())
}

/// SmolLM2's chat template (ChatML).
pub const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A chat template from a model file: compiled and rendered on a short conversation, as Write
/// renders it (with the fuel and output bounds of [`crate::models::llm::chat`]). The input is
/// the template's source (invalid UTF-8 is replaced). Returns whether it rendered.
pub fn chat_template(data: &[u8]) -> bool {
    let source = String::from_utf8_lossy(data).into_owned();
    let Ok(t) = crate::models::llm::ChatTemplate::compile(source, "<s>".into(), "</s>".into())
    else {
        return false;
    };
    t.render(&[
        crate::models::llm::ChatMessage::system("Be brief."),
        crate::models::llm::ChatMessage::user("Name a colour."),
    ])
    .is_ok()
}

/// The restricted pickle reader (the `data.pkl` inside a PyTorch checkpoint).
pub fn pickle(data: &[u8]) -> bool {
    crate::models::pickle::unpickle(data).is_ok()
}

/// A whole PyTorch checkpoint (zip of a pickle and tensor blobs), as Faces opens it.
pub fn checkpoint(data: &[u8]) -> bool {
    with_file(data, "tar", |path| {
        crate::models::state_dict::load(path, Some("netG_state_dict")).is_ok()
    })
    .unwrap_or(false)
}

/// A safetensors file, as Faces opens it.
pub fn safetensors(data: &[u8]) -> bool {
    with_file(data, "safetensors", |path| {
        crate::models::state_dict::load(path, None).is_ok()
    })
    .unwrap_or(false)
}

/// The ONNX weight reader (protobuf), then the lookups the style ports make.
pub fn onnx(data: &[u8]) -> bool {
    let path = PathBuf::from("fuzz.onnx");
    let Ok(model) = crate::models::onnx::OnnxModel::from_bytes(data, &path) else {
        return false;
    };
    for node in &model.graph().node {
        for output in &node.output {
            let _ = model.conv(output);
            let _ = model.constant(output);
        }
    }
    true
}

/// Image decoding with the app's limits (PNG, JPEG, GIF, WebP; EXIF orientation).
pub fn image(data: &[u8]) -> bool {
    crate::models::stylenet::image::decode_with_limits(
        data,
        std::path::Path::new("fuzz-image"),
        crate::models::stylenet::image::ImageLimits::default(),
    )
    .is_ok()
}

/// A PNG whose header claims `w`×`h` but holds only a few bytes of data: a decompression
/// bomb's shape, for the tests of every reader of pictures.
pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    chunk(&mut png, b"IHDR", &ihdr);
    // A zlib stream of a few zero bytes: far less than the claimed size.
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9C, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}
