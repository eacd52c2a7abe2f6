//! Entry points for fuzzing: each feeds arbitrary bytes to one of the readers that take files
//! from users, the way a file reaches it in the app, and must come back with `Ok` or a clear
//! error — never a panic, a hang or an unbounded allocation. The cargo-fuzz targets in `fuzz/`
//! call these, and so does the stable `tests/fuzz_smoke.rs` (mutated seed files), so the same
//! code is exercised on every CI run without a nightly toolchain.
//!
//! Readers that open paths get the bytes through a temporary file with the right extension.

use std::io::Write;
use std::path::PathBuf;

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

/// The GGUF reader (header, metadata, tensor table checked against the file size), then the
/// tokenizer builder and the architecture check on the metadata (vocabulary, merges, scores and
/// special tokens all come from the file). The builder also runs on metadata parsed from a
/// prefix of a file — a GGUF whose tensors were cut off — since a crafted file with valid
/// tensor offsets reaches it the same way. Returns whether a tokenizer was built.
pub fn gguf(data: &[u8]) -> bool {
    let _ = with_file(data, "gguf", |path| {
        crate::models::llm::gguf::open(path).map(|(content, _, _)| {
            let _ = crate::models::llm::arch::detect(path, &content);
        })
    });
    // As `gguf::open` does: candle's header parser sits behind a catch_unwind.
    let mut cursor = std::io::Cursor::new(data);
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        candle_core::quantized::gguf_file::Content::read(&mut cursor)
    }));
    let Ok(Ok(content)) = parsed else {
        return false;
    };
    let _ = crate::models::llm::arch::detect(std::path::Path::new("fuzz.gguf"), &content);
    crate::models::llm::GgufTokenizer::from_gguf(&content)
        .map(|tok| {
            // Round-trip a little text through what was built.
            if let Ok(ids) = tok.encode("Hello, wörld! <|im_start|> 123", true) {
                let _ = tok.decode(&ids);
            }
        })
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
