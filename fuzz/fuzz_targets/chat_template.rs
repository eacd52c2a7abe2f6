//! A model's chat template compiled and rendered with the fuel and output bounds. See
//! `atelier::fuzzing::chat_template`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = atelier::fuzzing::chat_template(data);
});
