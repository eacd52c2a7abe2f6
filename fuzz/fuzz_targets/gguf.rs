//! The GGUF reader and the tokenizer builder on its metadata. See `atelier::fuzzing::gguf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = atelier::fuzzing::gguf(data);
});
