//! "Continue in this style" (the default quick action of Instruct mode) must continue the
//! document, never restate it: with the real SmolLM2-135M-Instruct, greedy, on several
//! openings (the welcome paragraph first), the suggestion says something new and shares no
//! run of words with the document.

use std::sync::atomic::AtomicBool;

use atelier::models::llm::context::{WriteTask, build_prompt};
use atelier::models::llm::{GenerateParams, Llm, SamplingParams, generate};

/// Openings a writer might start from: the welcome document, prose, a letter, dialogue.
const OPENINGS: [&str; 4] = [
    atelier::store::WELCOME_TEXT,
    "The train left the city an hour before dawn. Mara had a window seat, a cold coffee and a \
     letter she had promised herself she would not open until the border.",
    "Dear Tom, the garden has gone wild since you left. The roses climb over the shed now, \
     and the apple tree dropped its fruit before any of us thought to pick it.",
    "\"You're late,\" said the old woman, without looking up from her knitting. \"The soup has \
     gone cold and the dog has eaten your bread.\"",
];

/// The longest run of words the suggestion may share with the document. Five-word runs
/// ("and the dog has eaten") are plausible by chance; a restatement shares whole sentences.
const MAX_SHARED_RUN: usize = 5;

fn words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The longest run of consecutive words of `a` that also appears in `b`.
fn longest_shared_run(a: &[String], b: &[String]) -> usize {
    let mut best = 0;
    for i in 0..a.len() {
        for j in 0..b.len() {
            let mut n = 0;
            while i + n < a.len() && j + n < b.len() && a[i + n] == b[j + n] {
                n += 1;
            }
            best = best.max(n);
        }
    }
    best
}

#[test]
fn continue_in_style_continues_and_never_echoes_the_document() {
    let model = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(model.is_file(), "run models/fetch.sh");
    let mut llm = Llm::load(&model).expect("load SmolLM2");
    let cancel = AtomicBool::new(false);
    // Greedy (deterministic), and the Write panel's default sampling (what a new user gets).
    let runs = [SamplingParams::greedy(), SamplingParams::default()]
        .into_iter()
        .flat_map(|s| OPENINGS.map(|o| (s.clone(), o)));
    for (sampling, opening) in runs {
        let params = GenerateParams {
            sampling,
            max_new_tokens: 48,
            logprobs: 0,
        };
        let task = WriteTask::ContinueInStyle {
            document: opening.to_string(),
        };
        let prompt = build_prompt(&llm, &task, params.max_new_tokens).expect("prompt");
        let result =
            generate(&mut llm, &prompt.ids, &params, &cancel, &mut |_| {}).expect("generate");
        let text = result.text.trim();
        println!("--- {opening}\n+++ {text}\n");
        let new = words(text);
        assert!(
            new.len() >= 8,
            "the suggestion is too short to be a continuation: {text:?}"
        );
        let shared = longest_shared_run(&new, &words(opening));
        assert!(
            shared <= MAX_SHARED_RUN,
            "the suggestion repeats {shared} words of the document in a row: {text:?}"
        );
    }
}
