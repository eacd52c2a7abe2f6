//! The engine with the real default model: streaming, cancellation within one token, queueing,
//! seeded determinism, and bad input that must come back as clear errors (never a panic).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use atelier::engine::{Engine, Event, JobId, WriteRequest};
use atelier::models::llm::context::WriteTask;
use atelier::models::llm::{GenerateParams, SamplingParams};
use atelier::paths;

fn smollm2() -> PathBuf {
    let p = paths::default_model(paths::SMOLLM2_FILE);
    assert!(p.exists(), "{} missing: run models/fetch.sh", p.display());
    p
}

fn request(model: PathBuf, text: &str, max_new_tokens: usize, seed: u64) -> WriteRequest {
    WriteRequest {
        model,
        adapter: None,
        task: WriteTask::Continue { text: text.into() },
        params: GenerateParams {
            sampling: SamplingParams {
                seed,
                ..SamplingParams::default()
            },
            max_new_tokens,
            logprobs: 3,
        },
        candidates: 1,
        forced: Vec::new(),
        remote: None,
    }
}

fn failure(events: &[Event]) -> String {
    match events.last() {
        Some(Event::Failed { error, .. }) => error.to_string(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn tokens(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Token { token, .. } => Some(token.id),
            _ => None,
        })
        .collect()
}

#[test]
fn streams_tokens_and_repeats_with_the_same_seed() {
    let engine = Engine::spawn(None, None).unwrap();
    let run = |seed| {
        let job = engine.write(request(smollm2(), "The old lighthouse keeper", 16, seed));
        let evs = common::events_of(&engine, job.id());
        assert!(
            matches!(evs.last(), Some(Event::Finished { .. })),
            "{evs:?}"
        );
        let done = evs.iter().find_map(|e| match e {
            Event::CandidateDone { result, .. } => Some(result.clone()),
            _ => None,
        });
        let result = done.expect("a CandidateDone event");
        assert_eq!(result.tokens.len(), tokens(&evs).len());
        assert!(result.stats.time_to_first_token_ms > 0.0);
        assert!(result.tokens.iter().all(|t| t.top.len() == 3));
        tokens(&evs)
    };
    let a = run(7);
    assert_eq!(a.len(), 16);
    assert_eq!(
        a,
        run(7),
        "same seed, settings and model must give the same tokens"
    );
    assert_ne!(a, run(8), "a different seed should give different tokens");
}

#[test]
fn cancel_takes_effect_within_one_token() {
    let engine = Engine::spawn(None, None).unwrap();
    let job = engine.write(request(smollm2(), "Write a long story about", 400, 1));
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut after_cancel = 0;
    let mut cancelled = false;
    let mut terminal = None;
    while Instant::now() < deadline {
        let Some(ev) = engine.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        match ev {
            Event::Token { .. } if cancelled => after_cancel += 1,
            Event::Token { .. } => {
                // Cancel after the first token has streamed.
                job.cancel();
                cancelled = true;
            }
            e if e.is_terminal() => {
                terminal = Some(e);
                break;
            }
            _ => {}
        }
    }
    assert!(cancelled, "no token arrived");
    assert!(
        after_cancel <= 1,
        "{after_cancel} tokens arrived after cancel"
    );
    assert!(
        matches!(terminal, Some(Event::Cancelled { .. })),
        "{terminal:?}"
    );
}

#[test]
fn a_second_request_queues_behind_the_running_one() {
    let engine = Engine::spawn(None, None).unwrap();
    let first = engine.write(request(smollm2(), "Once upon a time", 24, 1));
    let second = engine.write(request(smollm2(), "In a quiet village", 4, 1));
    let mut queued = Vec::new();
    let mut started = Vec::new();
    let mut finished = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while finished.len() < 2 && Instant::now() < deadline {
        match engine.recv_timeout(Duration::from_secs(1)) {
            Some(Event::Queued { job, ahead }) => queued.push((job, ahead)),
            Some(Event::Started { job }) => started.push(job),
            Some(e) if e.is_terminal() => finished.push(e.job()),
            _ => {}
        }
    }
    assert_eq!(queued, vec![(first.id(), 0), (second.id(), 1)]);
    assert_eq!(started, vec![first.id(), second.id()]);
    assert_eq!(finished, vec![first.id(), second.id()]);
    assert_eq!(engine.pending(), 0);
}

#[test]
fn a_job_cancelled_while_queued_never_runs() {
    let engine = Engine::spawn(None, None).unwrap();
    let first = engine.write(request(smollm2(), "Once upon a time", 8, 1));
    let second = engine.write(request(smollm2(), "Never run", 8, 1));
    second.cancel();
    let mut evs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while evs.iter().filter(|e: &&Event| e.is_terminal()).count() < 2 && Instant::now() < deadline {
        if let Some(e) = engine.recv_timeout(Duration::from_secs(1)) {
            evs.push(e);
        }
    }
    let of = |id: JobId| {
        evs.iter()
            .filter(move |e| e.job() == id)
            .collect::<Vec<_>>()
    };
    assert!(
        !of(second.id())
            .iter()
            .any(|e| matches!(e, Event::Started { .. })),
        "{evs:?}"
    );
    assert!(
        matches!(of(second.id()).last(), Some(Event::Cancelled { .. })),
        "{evs:?}"
    );
    assert!(
        matches!(of(first.id()).last(), Some(Event::Finished { .. })),
        "{evs:?}"
    );
}

#[test]
fn bad_models_fail_as_events_and_the_engine_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::spawn(None, None).unwrap();
    let run = |path: PathBuf| {
        let job = engine.write(request(path, "hello", 4, 1));
        failure(&common::events_of(&engine, job.id()))
    };

    // Random bytes named .gguf
    let random = dir.path().join("random.gguf");
    let bytes: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&random, bytes).unwrap();
    let msg = run(random);
    assert!(msg.contains("is not a GGUF model"), "{msg}");

    // A real model cut short.
    let truncated = dir.path().join("truncated.gguf");
    let full = std::fs::read(smollm2()).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 3]).unwrap();
    let msg = run(truncated);
    assert!(msg.contains("truncated"), "{msg}");

    // Header cut inside the metadata.
    let header_only = dir.path().join("header.gguf");
    std::fs::write(&header_only, &full[..5000]).unwrap();
    let msg = run(header_only);
    assert!(msg.contains("damaged or truncated"), "{msg}");

    // A well-formed GGUF of an architecture Atelier does not run.
    let mamba = dir.path().join("mamba.gguf");
    common::write_gguf_with_arch(&mamba, "mamba");
    let msg = run(mamba);
    assert!(msg.contains("'mamba' is not supported"), "{msg}");
    assert!(msg.contains("llama, qwen2, qwen3 and gemma3"), "{msg}");

    // Missing file.
    let msg = run(dir.path().join("nope.gguf"));
    assert!(msg.contains("cannot read"), "{msg}");

    // The engine still generates afterwards.
    let job = engine.write(request(smollm2(), "Still alive", 3, 1));
    let evs = common::events_of(&engine, job.id());
    assert!(
        matches!(evs.last(), Some(Event::Finished { .. })),
        "{evs:?}"
    );
}

#[test]
fn empty_prompt_and_bad_settings_are_clear_errors() {
    let engine = Engine::spawn(None, None).unwrap();
    let job = engine.write(request(smollm2(), "   \n ", 4, 1));
    let msg = failure(&common::events_of(&engine, job.id()));
    assert!(msg.contains("prompt is empty"), "{msg}");

    let mut r = request(smollm2(), "hi", 4, 1);
    r.params.sampling.top_p = 0.0;
    let job = engine.write(r);
    let msg = failure(&common::events_of(&engine, job.id()));
    assert!(msg.contains("top-p"), "{msg}");

    let mut r = request(smollm2(), "hi", 4, 1);
    r.candidates = 9;
    let job = engine.write(r);
    let msg = failure(&common::events_of(&engine, job.id()));
    assert!(msg.contains("between 1 and 4"), "{msg}");
}

#[test]
fn a_huge_document_is_trimmed_visibly_from_the_start() {
    use atelier::models::llm::Llm;
    use atelier::models::llm::context::build_prompt;
    let llm = Llm::load(&smollm2()).unwrap();
    // 100,000 characters, with a recognisable ending near the cursor.
    let mut doc = String::new();
    while doc.len() < 99_950 {
        doc.push_str("The tide came in over the grey stones, and the gulls cried. ");
    }
    doc.truncate(99_950);
    doc.push_str(" And at last the keeper lit the lamp.");
    let original = doc.clone();
    let ctx = llm.model.context_length();
    for task in [
        WriteTask::Continue { text: doc.clone() },
        WriteTask::Instruct {
            instruction: "Summarise this in one sentence.".into(),
            document: doc.clone(),
        },
    ] {
        let built = build_prompt(&llm, &task, 200).unwrap();
        let t = built.trimmed.expect("a trim report");
        assert!(t.dropped_chars > 50_000, "{t:?}");
        assert_eq!(t.dropped_chars + t.kept_chars, original.chars().count());
        assert_eq!(t.context_tokens, ctx);
        assert!(built.ids.len() <= ctx - 200, "{} tokens", built.ids.len());
        assert!(
            built.ids.len() > ctx / 2,
            "the kept part should fill the window"
        );
        let text = llm.tokenizer.decode(&built.ids);
        // The end near the cursor and the instruction are kept.
        assert!(
            text.contains("the keeper lit the lamp."),
            "{}",
            &text[text.len() - 200..]
        );
        if matches!(task, WriteTask::Instruct { .. }) {
            assert!(text.contains("Summarise this in one sentence."));
        }
    }
    assert_eq!(doc, original, "the document is never modified");

    // An instruction that alone exceeds the window is a clear error, not a silent cut.
    let err = build_prompt(
        &llm,
        &WriteTask::Instruct {
            instruction: doc.clone(),
            document: String::new(),
        },
        200,
    )
    .unwrap_err();
    assert!(err.to_string().contains("instruction alone needs"), "{err}");
}

#[test]
fn score_reports_logprobs_and_rejects_bad_ids() {
    use atelier::engine::{ScorePrompt, ScoreRequest};
    let engine = Engine::spawn(None, None).unwrap();
    let job = engine.score(ScoreRequest {
        model: smollm2(),
        adapter: None,
        prompt: ScorePrompt::Ids(vec![6403, 1980, 253, 655]),
        continuation: vec![28, 260, 2240],
        top_k: 5,
    });
    let evs = common::events_of(&engine, job.id());
    let scores = evs
        .iter()
        .find_map(|e| match e {
            Event::Scored { scores, .. } => Some(scores.clone()),
            _ => None,
        })
        .expect("scores");
    assert_eq!(scores.len(), 3);
    // llama.cpp: ", " after "Once upon a time" has logprob -0.074.
    assert!((scores[0].logprob - -0.074).abs() < 0.1, "{scores:?}");
    assert_eq!(scores[0].top[0].id, 28);

    let job = engine.score(ScoreRequest {
        model: smollm2(),
        adapter: None,
        prompt: ScorePrompt::Ids(vec![1, 2]),
        continuation: vec![9_999_999],
        top_k: 5,
    });
    let msg = failure(&common::events_of(&engine, job.id()));
    assert!(msg.contains("outside the model's vocabulary"), "{msg}");
}

#[test]
fn alternating_two_models_loads_each_once_and_a_rewritten_file_reloads() {
    let gemma = paths::default_model(paths::GEMMA3_FILE);
    assert!(
        gemma.exists(),
        "{} missing: run models/fetch.sh",
        gemma.display()
    );
    let engine = Engine::spawn(None, None).unwrap();
    let mut loads = 0;
    let mut active = Vec::new();
    for i in 0..10 {
        let model = if i % 2 == 0 { smollm2() } else { gemma.clone() };
        let events = common::events_of(
            &engine,
            engine.write(request(model.clone(), "Once", 1, 1)).id(),
        );
        assert!(
            matches!(events.last(), Some(Event::Finished { .. })),
            "{events:?}"
        );
        loads += events
            .iter()
            .filter(|e| matches!(e, Event::ModelLoading { .. }))
            .count();
        // Every switch says which model is active now, loaded or kept.
        let info = events.iter().find_map(|e| match e {
            Event::ModelLoaded { info, .. } => Some(info.path.clone()),
            _ => None,
        });
        active.push(info);
        assert_eq!(active[i].as_deref(), Some(model.as_path()), "job {i}");
    }
    assert_eq!(loads, 2, "each model is read from disk once");

    // A model rewritten at the same path (a new version) is loaded again.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("model.gguf");
    std::fs::copy(smollm2(), &copy).unwrap();
    let first = common::events_of(
        &engine,
        engine.write(request(copy.clone(), "Once", 1, 1)).id(),
    );
    assert!(
        first
            .iter()
            .any(|e| matches!(e, Event::ModelLoading { .. }))
    );
    let again = common::events_of(
        &engine,
        engine.write(request(copy.clone(), "Once", 1, 1)).id(),
    );
    assert!(
        !again
            .iter()
            .any(|e| matches!(e, Event::ModelLoading { .. }))
    );
    // Same size, new modification time: a rewrite.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::copy(smollm2(), &copy).unwrap();
    let rewritten = common::events_of(&engine, engine.write(request(copy, "Once", 1, 1)).id());
    assert!(
        rewritten
            .iter()
            .any(|e| matches!(e, Event::ModelLoading { .. })),
        "{rewritten:?}"
    );
}
