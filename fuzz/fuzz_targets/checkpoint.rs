//! A whole PyTorch zip checkpoint, as Faces opens it. See `atelier::fuzzing::checkpoint`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = atelier::fuzzing::checkpoint(data);
});
