//! The headless CLI end to end: real binary, real default model, JSON out, one-line errors.

mod common;

use common::{one_line_error, stdout_json};

#[test]
fn tokenize_matches_llama_cpp() {
    let out = common::atelier(&["tokenize", "--model", "smollm2", "Hello, world!"], None);
    let ids = stdout_json(&out);
    assert_eq!(ids, serde_json::json!([19556, 28, 905, 17]));
}

#[test]
fn write_json_greedy_reproduces_llama_cpp() {
    let out = common::atelier(
        &[
            "write",
            "--model",
            "smollm2",
            "--prompt",
            "Once upon a time",
            "--temperature",
            "0",
            "--repeat-penalty",
            "1",
            "--max-tokens",
            "6",
            "--json",
            "--logprobs",
            "2",
        ],
        None,
    );
    let v = stdout_json(&out);
    // llama.cpp's greedy continuation is ", the city of Nova Haven" (28, 260, 2240, 282, 23324,
    // 27108), but its step 4 is a near-tie: 23324 at -2.219 and 1315 at -2.232 nats
    // (teacher_forced_top5 in the fixture). Summation order decides such ties (llama.cpp's own
    // batched and one-token paths differ at ties like it), so greedy must match up to that
    // step and then pick one of the two tied candidates.
    let ids: Vec<u64> = v["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(
        ids[..4],
        [28, 260, 2240, 282],
        "before the near-tie: {ids:?}"
    );
    assert!([23324, 1315].contains(&ids[4]), "at the near-tie: {ids:?}");
    assert_eq!(ids.len(), 6);
    assert!(v["text"].as_str().unwrap().starts_with(", the city of"));
    assert_eq!(v["stop"], "max_tokens");
    assert!(v["timings"]["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["logprobs"][0]["top"].as_array().unwrap().len(), 2);
}

#[test]
fn instruct_mode_uses_the_chat_template() {
    let out = common::atelier(
        &[
            "write",
            "--mode",
            "instruct",
            "--prompt",
            "Name a colour.",
            "--temperature",
            "0",
            "--max-tokens",
            "8",
            "--json",
        ],
        None,
    );
    let v = stdout_json(&out);
    assert!(!v["text"].as_str().unwrap().trim().is_empty(), "{v}");
}

#[test]
fn score_prints_per_token_logprobs() {
    let out = common::atelier(
        &[
            "score",
            "--model",
            "smollm2",
            "--prompt",
            "Once upon a time",
            "--continuation-ids",
            "[28, 260]",
            "--logprobs",
            "3",
            "--json",
        ],
        None,
    );
    let v = stdout_json(&out);
    let toks = v["tokens"].as_array().unwrap();
    assert_eq!(toks.len(), 2);
    // llama.cpp: -0.07399 for "," after "Once upon a time".
    assert!(
        (toks[0]["logprob"].as_f64().unwrap() + 0.074).abs() < 0.1,
        "{v}"
    );
    assert_eq!(toks[0]["top"].as_array().unwrap().len(), 3);
}

#[test]
fn bad_input_exits_non_zero_with_one_line() {
    let e = one_line_error(&common::atelier(
        &["write", "--model", "/nonexistent.gguf", "--prompt", "x"],
        None,
    ));
    assert!(e.contains("does not exist"), "{e}");
    let e = one_line_error(&common::atelier(&["write", "--prompt", "   "], None));
    assert!(e.contains("prompt is empty"), "{e}");
    let e = one_line_error(&common::atelier(&["write"], None));
    assert!(e.contains("--prompt"), "{e}");
    let e = one_line_error(&common::atelier(
        &[
            "score",
            "--model",
            "smollm2",
            "--prompt",
            "x",
            "--continuation-ids",
            "not json",
        ],
        None,
    ));
    assert!(e.contains("JSON array"), "{e}");
    let e = one_line_error(&common::atelier(
        &["write", "--prompt", "x", "--top-p", "2"],
        None,
    ));
    assert!(e.contains("top-p"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"definitely not a model").unwrap();
    let e = one_line_error(&common::atelier(
        &["tokenize", "--model", junk.to_str().unwrap(), "x"],
        None,
    ));
    assert!(e.contains("not a GGUF model"), "{e}");
    // Usage mistakes caught by the argument parser are one line too.
    for (args, want) in [
        (
            &["write", "--prompt", "x", "--max-tokens", "many"][..],
            "--max-tokens",
        ),
        (&["write", "--no-such-flag"][..], "--no-such-flag"),
    ] {
        let out = common::atelier(args, None);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("error: ") && err.contains(want), "{err}");
    }
}

#[test]
fn version_and_help_list_the_bundled_models() {
    for flag in ["--version", "--help"] {
        let out = common::atelier(&[flag], None);
        assert!(out.status.success(), "{flag}");
        let text = String::from_utf8_lossy(&out.stdout);
        for file in [
            atelier::paths::SMOLLM2_FILE,
            atelier::paths::GEMMA3_FILE,
            atelier::features::faces::DEFAULT_MODEL_FILE,
            atelier::models::stylenet::MULTISTYLE_FILE,
        ] {
            assert!(text.contains(file), "{flag} names {file}: {text}");
        }
        assert!(text.contains("atelier.log"), "{flag} says where the log is");
    }
}

#[test]
fn a_bad_kiosk_configuration_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("show.toml");
    std::fs::write(&config, "[timing]\nidle_seconds = 0\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(["--kiosk-config", config.to_str().unwrap()])
        .env("ATELIER_DATA", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: ")
            && err.contains("timing.idle_seconds")
            && err.contains("show.toml"),
        "{err}"
    );
    // The log file has it too.
    let log = std::fs::read_to_string(dir.path().join("logs/atelier.log")).unwrap();
    assert!(log.contains("timing.idle_seconds"), "{log}");
}
