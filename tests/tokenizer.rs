//! The GGUF tokenizer against llama.cpp, on the two default models.
//!
//! `tests/fixtures/llm/llamacpp.json` (see its README) holds llama.cpp's ids for plain text
//! (`tokenize`), for prompts with BOS where the GGUF asks for it (`continue`) and for SmolLM2's
//! chat-templated prompts with special tokens recognised (`instruct`). Beyond those: round trips
//! through decode, streaming decode of multi-byte text, a long document, and bad metadata.

use std::collections::HashMap;
use std::time::Instant;

use atelier::models::llm::LlmError;
use atelier::models::llm::gguf;
use atelier::models::llm::tokenizer::{GgufTokenizer, StreamDecoder};
use atelier::paths;
use candle_core::quantized::gguf_file::{Content, Value};
use serde_json::Value as Json;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/llm/llamacpp.json"
);

/// Texts that must survive encode → decode unchanged.
const ROUND_TRIP: &[&str] = &[
    "",
    " ",
    "Hello, world!",
    "   leading spaces and trailing   ",
    "tabs\tand\t\ttabs\n\nnewlines\r\n and  runs     of\u{a0}spaces\n\n\n",
    "café naïve résumé Ærøskøbing Œuvre ñandú",
    "日本語のテキストと中文，한국어 텍스트",
    "emoji 🎨🖌️ and 👩\u{200d}🎨 and 👨‍👩‍👧‍👦 🏳️‍🌈 flags 🇫🇷🇯🇵",
    "math ∑∫√∞ ≠ ≤ and symbols © ® ™ € £ ¥",
    "<|im_start|> <start_of_turn> <b>bold</b> [multimodal] <unused0> <0x41>",
    "code:\n    fn main() {\n\tprintln!(\"hi\");\n    }\n",
    "I'm sure they'll say it's 1,234.56 — or 7½ 😀",
];

fn load(file: &str) -> GgufTokenizer {
    let path = paths::default_model(file);
    let started = Instant::now();
    let (content, _file, _size) = gguf::open(&path).expect("open the GGUF");
    let opened = started.elapsed();
    let built = Instant::now();
    let tok = GgufTokenizer::from_gguf(&content).expect("build the tokenizer");
    println!(
        "{file}: GGUF header {:?}, tokenizer built in {:?} ({} pieces)",
        opened,
        built.elapsed(),
        tok.vocab_size()
    );
    tok
}

fn fixture(file: &str) -> Json {
    let text = std::fs::read_to_string(FIXTURE).expect("read the llama.cpp fixture");
    let all: Json = serde_json::from_str(&text).expect("parse the llama.cpp fixture");
    all["models"][file].clone()
}

fn ids(v: &Json) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn cases<'a>(model: &'a Json, key: &str) -> &'a [Json] {
    model[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Ids of plain text (no BOS, special text as text) equal llama.cpp's.
fn check_tokenize_cases(tok: &GgufTokenizer, model: &Json) {
    let cases = cases(model, "tokenize");
    assert!(!cases.is_empty());
    for case in cases {
        let text = case["text"].as_str().expect("text");
        let got = tok.encode(text, false).expect("encode");
        assert_eq!(got, ids(&case["ids"]), "tokenize {text:?}");
    }
}

/// Prompts (with BOS where the GGUF asks for it) equal llama.cpp's `prompt_ids`.
fn check_prompt_cases(tok: &GgufTokenizer, model: &Json) -> usize {
    let mut checked = 0;
    for case in cases(model, "continue") {
        let prompt = case["prompt"].as_str().expect("prompt");
        let mut got = Vec::new();
        if tok.add_bos() {
            got.push(tok.bos_id().expect("bos id"));
        }
        got.extend(tok.encode(prompt, false).expect("encode"));
        assert_eq!(got, ids(&case["prompt_ids"]), "continue {prompt:?}");
        checked += 1;
    }
    for case in cases(model, "instruct") {
        let prompt = case["templated_prompt"].as_str().expect("templated_prompt");
        let mut got = Vec::new();
        if tok.add_bos() {
            got.push(tok.bos_id().expect("bos id"));
        }
        got.extend(tok.encode(prompt, true).expect("encode"));
        assert_eq!(got, ids(&case["prompt_ids"]), "instruct {prompt:?}");
        checked += 1;
    }
    checked
}

fn check_round_trips(tok: &GgufTokenizer) {
    for text in ROUND_TRIP {
        let ids = tok.encode(text, false).expect("encode");
        assert_eq!(
            tok.decode(&ids),
            *text,
            "round trip of {text:?} via {ids:?}"
        );
    }
}

/// Streaming decode of multi-byte text yields exactly the text, never a broken character.
fn check_stream(tok: &GgufTokenizer) {
    for text in ROUND_TRIP {
        let ids = tok.encode(text, false).expect("encode");
        let mut stream = StreamDecoder::new();
        let mut out = String::new();
        for &id in &ids {
            let piece = stream.push(tok, id);
            assert!(
                !piece.contains(char::REPLACEMENT_CHARACTER),
                "broken character streaming {text:?}: {piece:?}"
            );
            out.push_str(&piece);
        }
        out.push_str(&stream.finish());
        assert_eq!(out, *text, "streamed {text:?}");
    }
}

/// A ~100,000-character document encodes in reasonable time and round-trips.
fn check_long_document(tok: &GgufTokenizer, label: &str) {
    let paragraph = "The studio was quiet except for the hum of the lamp. Colours — ochre, \
        umber, 群青 — waited on the palette 🎨; she counted 12,345 brushstrokes.\n\n\
        \t\"Again,\" she said,   and began   once more.\n";
    let mut doc = String::new();
    while doc.chars().count() < 100_000 {
        doc.push_str(paragraph);
    }
    let chars = doc.chars().count();
    let started = Instant::now();
    let ids = tok.encode(&doc, false).expect("encode the long document");
    let elapsed = started.elapsed();
    println!(
        "{label}: encoded {chars} characters into {} tokens in {elapsed:?}",
        ids.len()
    );
    assert_eq!(tok.decode(&ids), doc);

    // One unbroken run (no spaces or newlines to split on) stresses the merge loops.
    let run = "ab".repeat(50_000);
    let started = Instant::now();
    let ids = tok.encode(&run, false).expect("encode a long run");
    println!(
        "{label}: encoded a 100000-character run into {} tokens in {:?}",
        ids.len(),
        started.elapsed()
    );
    assert_eq!(tok.decode(&ids), run);
}

#[test]
fn tokenizer_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GgufTokenizer>();
    assert_send_sync::<StreamDecoder>();
}

#[test]
fn smollm2_matches_llamacpp() {
    let file = paths::SMOLLM2_FILE;
    let tok = load(file);
    let model = fixture(file);
    assert!(!tok.add_bos(), "SmolLM2 prompts start without BOS");
    assert_eq!(tok.bos_id(), model["bos_id"].as_u64().map(|x| x as u32));
    let eos = model["eos_id"].as_u64().expect("eos_id") as u32;
    let im_end = tok.token_id("<|im_end|>").expect("<|im_end|>");
    let eos_ids = tok.eos_ids();
    assert_eq!(eos_ids.first(), Some(&eos));
    assert!(eos_ids.contains(&im_end));
    // llama.cpp's end-of-generation set (checked with llama-cpp-python 0.3.16): EOS
    // "<|im_end|>", "<|endoftext|>" and the fill-in-the-middle "<reponame>".
    let mut sorted = eos_ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 2, 4]);
    assert!(tok.is_control(im_end));
    assert!(tok.token_bytes(im_end).is_empty());
    assert_eq!(tok.token_text(im_end), "<|im_end|>");
    assert_eq!(tok.vocab_size(), 49152);

    check_tokenize_cases(&tok, &model);
    assert!(check_prompt_cases(&tok, &model) >= 4);
    // With special parsing, control text becomes its token; without, it is plain text.
    let start = tok.token_id("<|im_start|>").expect("<|im_start|>");
    assert_eq!(tok.encode("<|im_start|>", true).expect("encode"), [start]);
    assert!(
        !tok.encode("<|im_start|>", false)
            .expect("encode")
            .contains(&start)
    );
    check_round_trips(&tok);
    check_stream(&tok);
    check_long_document(&tok, file);
}

#[test]
fn gemma3_matches_llamacpp() {
    let file = paths::GEMMA3_FILE;
    let tok = load(file);
    let model = fixture(file);
    assert!(tok.add_bos(), "Gemma 3 prompts start with BOS");
    assert_eq!(tok.bos_id(), model["bos_id"].as_u64().map(|x| x as u32));
    let eos = model["eos_id"].as_u64().expect("eos_id") as u32;
    let end_of_turn = tok.token_id("<end_of_turn>").expect("<end_of_turn>");
    let eos_ids = tok.eos_ids();
    assert_eq!(eos_ids.first(), Some(&eos));
    assert!(eos_ids.contains(&end_of_turn));
    assert_eq!(
        eos_ids.len(),
        2,
        "llama.cpp ends Gemma 3 at <eos> and <end_of_turn> only"
    );
    assert_eq!(tok.vocab_size(), 262_144);

    check_tokenize_cases(&tok, &model);
    assert!(check_prompt_cases(&tok, &model) >= 3);
    // Control tokens only with special parsing; user-defined ones ("<b>", "\n\n") always.
    let sot = tok.token_id("<start_of_turn>").expect("<start_of_turn>");
    let bold = tok.token_id("<b>").expect("<b>");
    assert_eq!(
        tok.encode("<start_of_turn>user\n", true).expect("encode")[0],
        sot
    );
    assert!(
        !tok.encode("<start_of_turn>", false)
            .expect("encode")
            .contains(&sot)
    );
    assert_eq!(tok.encode("<b>", false).expect("encode"), [bold]);
    // Byte fallback: a character no piece covers becomes its UTF-8 bytes.
    let ids = tok.encode("\u{10FFFD}", false).expect("encode");
    assert_eq!(ids.len(), 4);
    assert_eq!(tok.decode(&ids), "\u{10FFFD}");
    check_round_trips(&tok);
    check_stream(&tok);
    check_long_document(&tok, file);
}

/// Streaming holds back a character split across byte tokens and emits it whole.
#[test]
fn stream_decoder_waits_for_whole_characters() {
    let tok = load(paths::GEMMA3_FILE);
    let bytes: Vec<u32> = "é🎨"
        .bytes()
        .map(|b| tok.token_id(&format!("<0x{b:02X}>")).expect("byte piece"))
        .collect();
    let mut stream = StreamDecoder::default();
    let pieces: Vec<String> = bytes.iter().map(|&id| stream.push(&tok, id)).collect();
    assert_eq!(pieces, ["", "é", "", "", "", "🎨"]);
    assert_eq!(stream.finish(), "");
    // A dangling lead byte is flushed lossily.
    stream.push(&tok, bytes[2]);
    assert_eq!(stream.finish(), "\u{FFFD}");
}

/// A minimal valid SentencePiece vocabulary, so each test can break exactly one thing.
fn spm_metadata() -> HashMap<String, Value> {
    let tokens = ["<unk>", "<s>", "</s>", "▁", "a", "▁a"];
    let mut m = HashMap::new();
    m.insert(
        "tokenizer.ggml.model".to_owned(),
        Value::String("llama".into()),
    );
    m.insert(
        "tokenizer.ggml.tokens".to_owned(),
        Value::Array(tokens.iter().map(|t| Value::String((*t).into())).collect()),
    );
    m.insert(
        "tokenizer.ggml.scores".to_owned(),
        Value::Array(vec![Value::F32(0.0); tokens.len()]),
    );
    m.insert(
        "tokenizer.ggml.token_type".to_owned(),
        Value::Array([2, 3, 3, 1, 1, 1].iter().map(|&t| Value::I32(t)).collect()),
    );
    m
}

fn content(metadata: HashMap<String, Value>) -> Content {
    let (content, _file, _size) =
        gguf::open(&paths::default_model(paths::SMOLLM2_FILE)).expect("open a GGUF");
    Content {
        metadata,
        tensor_infos: HashMap::new(),
        ..content
    }
}

fn expect_tokenizer_error(metadata: HashMap<String, Value>, what: &str) {
    match GgufTokenizer::from_gguf(&content(metadata)) {
        Err(LlmError::Tokenizer(msg)) => println!("{what}: {msg}"),
        Err(other) => panic!("{what}: wrong error kind: {other}"),
        Ok(_) => panic!("{what}: built a tokenizer from bad metadata"),
    }
}

#[test]
fn bad_metadata_is_a_tokenizer_error() {
    // The baseline is valid, so each failure below is the one thing broken.
    let tok = GgufTokenizer::from_gguf(&content(spm_metadata())).expect("minimal vocabulary");
    assert_eq!(tok.encode("a a", false).expect("encode"), [5, 5]);

    expect_tokenizer_error(HashMap::new(), "no metadata");

    let mut m = spm_metadata();
    m.remove("tokenizer.ggml.model");
    expect_tokenizer_error(m, "no model");

    let mut m = spm_metadata();
    m.insert(
        "tokenizer.ggml.model".into(),
        Value::String("wordpiece?".into()),
    );
    expect_tokenizer_error(m, "unknown model");

    let mut m = spm_metadata();
    m.insert("tokenizer.ggml.model".into(), Value::U32(7));
    expect_tokenizer_error(m, "model not a string");

    let mut m = spm_metadata();
    m.remove("tokenizer.ggml.tokens");
    expect_tokenizer_error(m, "no tokens");

    let mut m = spm_metadata();
    m.insert("tokenizer.ggml.tokens".into(), Value::Array(Vec::new()));
    expect_tokenizer_error(m, "empty tokens");

    let mut m = spm_metadata();
    m.insert(
        "tokenizer.ggml.tokens".into(),
        Value::Array(vec![Value::U8(1); 6]),
    );
    expect_tokenizer_error(m, "tokens not strings");

    let mut m = spm_metadata();
    m.insert("tokenizer.ggml.tokens".into(), Value::String("a".into()));
    expect_tokenizer_error(m, "tokens not an array");

    let mut m = spm_metadata();
    m.insert(
        "tokenizer.ggml.token_type".into(),
        Value::Array(vec![Value::I32(1); 3]),
    );
    expect_tokenizer_error(m, "token_type too short");

    let mut m = spm_metadata();
    m.insert(
        "tokenizer.ggml.token_type".into(),
        Value::Array(vec![Value::String("x".into()); 6]),
    );
    expect_tokenizer_error(m, "token_type not integers");

    let mut m = spm_metadata();
    m.insert(
        "tokenizer.ggml.scores".into(),
        Value::Array(vec![Value::F32(0.0); 2]),
    );
    expect_tokenizer_error(m, "scores too short");

    let mut m = spm_metadata();
    m.insert(
        "tokenizer.ggml.bos_token_id".into(),
        Value::String("1".into()),
    );
    expect_tokenizer_error(m, "bos id not an integer");

    let mut m = spm_metadata();
    m.insert("tokenizer.ggml.add_bos_token".into(), Value::F32(1.0));
    expect_tokenizer_error(m, "add_bos not a boolean");

    let mut m = spm_metadata();
    m.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
    expect_tokenizer_error(m, "gpt2 without merges");

    let mut m = spm_metadata();
    m.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
    m.insert(
        "tokenizer.ggml.merges".into(),
        Value::Array(vec![Value::String("▁ a".into())]),
    );
    m.insert(
        "tokenizer.ggml.pre".into(),
        Value::String("no-such-pre".into()),
    );
    expect_tokenizer_error(m, "unknown pre-tokenizer");

    let mut m = spm_metadata();
    m.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
    m.insert(
        "tokenizer.ggml.merges".into(),
        Value::Array(vec![Value::I8(0)]),
    );
    expect_tokenizer_error(m, "merges not strings");

    // No byte pieces and no unknown token: nothing to fall back to.
    let mut m = spm_metadata();
    m.insert(
        "tokenizer.ggml.token_type".into(),
        Value::Array(vec![Value::I32(1); 6]),
    );
    m.insert("tokenizer.ggml.unknown_token_id".into(), Value::U32(99));
    m.insert(
        "tokenizer.ggml.tokens".into(),
        Value::Array(
            ["x", "<s>", "</s>", "▁", "a", "▁a"]
                .iter()
                .map(|t| Value::String((*t).into()))
                .collect(),
        ),
    );
    // llama.cpp's default unknown id (0) is in range here, so this one builds; each byte of
    // an uncovered character then becomes that id rather than a panic ("▁" is 3 first).
    let tok = GgufTokenizer::from_gguf(&content(m)).expect("unknown id falls back to 0");
    assert_eq!(tok.encode("é", false).expect("encode"), [3, 0, 0]);
}
