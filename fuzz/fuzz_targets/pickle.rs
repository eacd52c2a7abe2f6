//! The restricted pickle reader (a checkpoint's data.pkl). See `atelier::fuzzing::pickle`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = atelier::fuzzing::pickle(data);
});
