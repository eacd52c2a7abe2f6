//! A safetensors file, as Faces opens it. See `atelier::fuzzing::safetensors`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = atelier::fuzzing::safetensors(data);
});
