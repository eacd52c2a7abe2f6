//! The GGUF reader, the tokenizer builder on its metadata, and (for files whose tensors fit
//! `atelier::fuzzing::MODEL_BUDGET`) model loading and a few tokens of generation. See
//! `atelier::fuzzing::gguf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = atelier::fuzzing::gguf(data);
});
