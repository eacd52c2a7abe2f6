//! The ONNX weight reader and the lookups the style ports make. See `atelier::fuzzing::onnx`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = atelier::fuzzing::onnx(data);
});
