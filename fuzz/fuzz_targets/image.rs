//! Image decoding with the app's size limits. See `atelier::fuzzing::image`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = atelier::fuzzing::image(data);
});
