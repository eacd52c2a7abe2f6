//! Fine-tuning a language model with LoRA (`atelier train write`).
//!
//! - One LoRA step on tiny random Llama and Gemma 3 models equals PyTorch + PEFT's (float64;
//!   `tests/fixtures/train/`, made by `scripts/fixtures/train_write_step.py`): the loss, the
//!   logits, every gradient of A and B, and A and B after one and two AdamW steps.
//! - A short real run (SmolLM2 on Milton) lowers the held-out perplexity; a run stopped midway
//!   and resumed from its checkpoint ends with exactly the adapter of an uninterrupted run.
//! - Bad input: no text, an empty file, rank 0, a sparse 2 GB file (read only up to the token
//!   budget, in bounded memory; all-zero bytes are refused as binary), a NaN loss (the run
//!   stops with a message and keeps its last good checkpoint).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use atelier::features::train::write::{
    TextSource, TrainWriteConfig, TrainWriteError, TrainWriteEvent, checkpoint, run,
};
use atelier::long_job::LongJobControl;
use atelier::models::llm::lora::{LoraAdapter, LoraPair, LoraTarget};
use atelier::models::llm::train::{AdamW, AdamWConfig, Lora, TrainModel, Workspace};
use serde_json::Value;

/// The tests that load SmolLM2 (540 MB as f32) run one at a time.
static ONE_MODEL_AT_A_TIME: Mutex<()> = Mutex::new(());

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/train");

fn go() -> Result<(), atelier::engine::Stopped> {
    Ok(())
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn target(name: &str) -> LoraTarget {
    LoraTarget::ALL
        .into_iter()
        .find(|t| t.gguf_name() == name)
        .expect("target")
}

/// max |got − want| over max(1, max |want|).
fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1f64, |a, &w| a.max(w.abs() as f64));
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w as f64).abs())
        .fold(0.0, f64::max)
        / scale
}

fn peft_step(name: &str) {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/tiny_{name}.json")).expect("fixture"),
    )
    .expect("json");
    let model = TrainModel::load(&std::path::Path::new(FIXTURES).join(format!("tiny_{name}.gguf")))
        .expect("model");
    let rank = doc["rank"].as_u64().expect("rank") as usize;
    let pairs_json = doc["pairs"].as_array().expect("pairs");
    let pairs = pairs_json
        .iter()
        .map(|p| {
            let t = target(p["target"].as_str().expect("target"));
            let (n_out, n_in) = model.target_shape(t);
            LoraPair {
                layer: p["layer"].as_u64().expect("layer") as usize,
                target: t,
                rank,
                n_in,
                n_out,
                a: floats(&p["a0"]),
                b: floats(&p["b0"]),
            }
        })
        .collect();
    let adapter = LoraAdapter {
        architecture: name.into(),
        alpha: doc["alpha"].as_f64().expect("alpha") as f32,
        pairs,
    };
    let mut lora = Lora::from_adapter(&model, adapter).expect("adapter fits");
    let tokens: Vec<Vec<u32>> = serde_json::from_value(doc["tokens"].clone()).expect("tokens");
    let seqs = tokens.len();
    let flat: Vec<u32> = tokens.concat();
    let want_loss = floats(&doc["loss"]);
    let betas = floats(&doc["betas"]);
    let mut opt = AdamW::new(
        AdamWConfig {
            lr: doc["lr"].as_f64().expect("lr") as f32,
            beta1: betas[0],
            beta2: betas[1],
            eps: doc["eps"].as_f64().expect("eps") as f32,
            weight_decay: doc["weight_decay"].as_f64().expect("wd") as f32,
        },
        &lora,
    );
    let mut ws = Workspace::default();

    // The forward pass: the first sequence's logits at the last position.
    let first = &tokens[0];
    let logits = model
        .next_logits(None, first, &mut ws, &go)
        .expect("logits");
    let logits_lora = model
        .next_logits(Some(&lora), first, &mut ws, &go)
        .expect("logits");
    let want_logits = floats(&doc["logits0"]);
    let vocab = model.vocab();
    let last = &want_logits[want_logits.len() - vocab..];
    let e = rel_err(&logits_lora, last);
    assert!(e < 1e-4, "{name}: logits differ by {e}");
    assert!(
        rel_err(&logits, last) > 1e-3,
        "{name}: the adapter changes nothing"
    );

    let mut grads = lora.zero_grads();
    let mut worst = [0f64; 5];
    for (step, &want) in want_loss.iter().take(2).enumerate() {
        grads.clear();
        let loss = model
            .loss_and_grads(&lora, &flat, seqs, &mut grads, &mut ws, &go)
            .expect("pass");
        let dl = (loss - want as f64).abs();
        assert!(dl < 1e-4, "{name} step {step}: loss {loss} vs {want}");
        worst[0] = worst[0].max(dl);
        if step == 0 {
            for (i, p) in pairs_json.iter().enumerate() {
                let ea = rel_err(&grads.a[i], &floats(&p["grad_a"]));
                let eb = rel_err(&grads.b[i], &floats(&p["grad_b"]));
                let what = format!("{name} layer {} {}", p["layer"], p["target"]);
                assert!(ea < 1e-4, "{what}: dA differs by {ea}");
                assert!(eb < 1e-4, "{what}: dB differs by {eb}");
                worst[1] = worst[1].max(ea);
                worst[2] = worst[2].max(eb);
            }
        }
        opt.update(&mut lora, &grads);
        let key = |ab: &str| format!("{ab}{}", step + 1);
        for (i, p) in pairs_json.iter().enumerate() {
            let got = &lora.adapter().pairs[i];
            let ea = rel_err(&got.a, &floats(&p[key("a")]));
            let eb = rel_err(&got.b, &floats(&p[key("b")]));
            let what = format!("{name} step {step} layer {} {}", p["layer"], p["target"]);
            assert!(ea < 1e-4 && eb < 1e-4, "{what}: A off by {ea}, B by {eb}");
            worst[3] = worst[3].max(ea);
            worst[4] = worst[4].max(eb);
        }
    }
    let (sum, n) = model
        .eval_loss(Some(&lora), &flat, seqs, &mut ws, &go)
        .expect("eval");
    let dl = (sum / n as f64 - want_loss[2] as f64).abs();
    assert!(dl < 1e-4, "{name}: loss after two steps off by {dl}");
    eprintln!(
        "{name}: max |Δ| loss {:.1e}, dA {:.1e}, dB {:.1e}, A {:.1e}, B {:.1e}",
        worst[0], worst[1], worst[2], worst[3], worst[4]
    );
}

#[test]
fn one_lora_step_equals_pytorch_peft_on_a_tiny_llama() {
    peft_step("llama");
}

#[test]
fn one_lora_step_equals_pytorch_peft_on_a_tiny_gemma3() {
    peft_step("gemma3");
}

// ---- real runs -------------------------------------------------------------------------

fn smollm2() -> PathBuf {
    let path = atelier::paths::default_model(atelier::paths::SMOLLM2_FILE);
    assert!(
        path.is_file(),
        "{} is missing; run {}",
        path.display(),
        atelier::paths::FETCH_COMMAND
    );
    path
}

fn milton() -> PathBuf {
    let path = atelier::paths::models_dir().join("texts/milton/paradiseregained.txt");
    assert!(
        path.is_file(),
        "{} is missing; run models/fetch.sh train",
        path.display()
    );
    path
}

/// A small, quick recipe: 2 chunks of 48 tokens, a few held-out chunks.
fn quick(runs: &Path, text: &Path) -> TrainWriteConfig {
    let mut c = TrainWriteConfig::new(smollm2(), vec![TextSource::File { path: text.into() }]);
    c.runs_dir = runs.to_path_buf();
    c.context = 48;
    c.batch = 2;
    c.steps = Some(8);
    c.lr = 3e-3;
    c.eval_every = 8;
    c.val_chunks = 4;
    c.sample_every = 0;
    c.checkpoint_every = 4;
    c.token_budget = 60_000;
    c
}

fn adapter_of(dir: &Path) -> LoraAdapter {
    checkpoint::load(dir).expect("checkpoint").1
}

#[test]
fn a_short_real_run_lowers_perplexity_and_a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let _one = ONE_MODEL_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let runs = tempfile::tempdir().expect("dir");
    let text = milton();
    let control = LongJobControl::standalone(2);
    let mut config = quick(runs.path(), &text);
    config.sample_every = 8;
    config.sample_tokens = 4;
    config.out = Some(runs.path().join("voice.gguf"));
    let mut events = Vec::new();
    let report = run(&config, &control, &mut |e| events.push(e)).expect("run");
    assert!(!report.stopped);
    assert_eq!(report.steps, 8);
    assert!(
        report.val_perplexity_after < report.val_perplexity_before,
        "validation perplexity {} -> {}",
        report.val_perplexity_before,
        report.val_perplexity_after
    );
    assert!(report.adapter.ends_with("voice.gguf") && report.adapter.is_file());
    let started = events.iter().find_map(|e| match e {
        TrainWriteEvent::Started {
            train_tokens,
            val_tokens,
            epoch_seconds,
            ..
        } => Some((*train_tokens, *val_tokens, *epoch_seconds)),
        _ => None,
    });
    let (train, val, epoch) = started.expect("a Started event");
    assert!(train > 9 * val / 2 && val > 0, "{train} / {val}");
    assert!(epoch.is_finite() && epoch > 0.0);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, TrainWriteEvent::Step { .. }))
            .count(),
        8
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, TrainWriteEvent::Sample { step: 8, .. }))
    );
    eprintln!(
        "8 steps: validation perplexity {:.2} -> {:.2}, {:.0} tokens/s (debug build)",
        report.val_perplexity_before, report.val_perplexity_after, report.tokens_per_second
    );

    // Stopped after step 3 (the checkpoint then holds step 3), resumed to step 8.
    let control = LongJobControl::standalone(2);
    let stopper = control.clone();
    let config = quick(runs.path(), &text);
    let stopped = run(&config, &control, &mut |e| {
        if let TrainWriteEvent::Step { step: 3, .. } = e {
            stopper.stop();
        }
    })
    .expect("stopped run");
    assert!(stopped.stopped);
    assert_eq!(stopped.steps, 3);
    let mut again =
        atelier::features::train::write::resume_config(&stopped.run_dir).expect("run.json");
    assert_eq!(again.resume.as_deref(), Some(stopped.run_dir.as_path()));
    again.runs_dir = runs.path().to_path_buf();
    let resumed = run(&again, &LongJobControl::standalone(2), &mut |_| {}).expect("resumed");
    assert_eq!((resumed.steps, resumed.stopped), (8, false));
    assert_eq!(resumed.run_dir, stopped.run_dir);
    assert_eq!(
        adapter_of(&resumed.run_dir),
        adapter_of(&report.run_dir),
        "a resumed run must end with the uninterrupted run's adapter"
    );
}

#[test]
fn a_nan_loss_stops_the_run_with_a_message_and_keeps_the_last_good_checkpoint() {
    let _one = ONE_MODEL_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let runs = tempfile::tempdir().expect("dir");
    let mut config = quick(runs.path(), &milton());
    // A hostile learning rate: the first update sends A and B to ~1e26-1e30, the next
    // forward pass overflows.
    config.lr = 1e30;
    config.checkpoint_every = 1;
    config.context = 32;
    config.batch = 1;
    let err = run(&config, &LongJobControl::standalone(2), &mut |_| {}).expect_err("diverges");
    let TrainWriteError::Diverged {
        step, checkpoint, ..
    } = &err
    else {
        panic!("expected a divergence, got {err}");
    };
    let message = err.to_string();
    assert!(message.contains("learning rate"), "{message}");
    let kept = checkpoint.as_ref().expect("a checkpoint was kept");
    let dir = kept.parent().expect("run dir");
    let (state, adapter, _) =
        atelier::features::train::write::checkpoint::load(dir).expect("checkpoint");
    assert_eq!(state.step + 1, *step);
    assert!(
        adapter
            .pairs
            .iter()
            .all(|p| p.a.iter().chain(&p.b).all(|v| v.is_finite()))
    );
    let record = std::fs::read_to_string(dir.join(atelier::features::train::write::RUN_FILE))
        .expect("run.json");
    assert!(record.contains("\"diverged\""), "{record}");
}

#[test]
fn no_text_an_empty_file_and_rank_zero_are_refused_with_a_message() {
    let runs = tempfile::tempdir().expect("dir");
    let control = LongJobControl::standalone(1);
    let mut config = quick(runs.path(), &milton());
    config.sources.clear();
    let err = run(&config, &control, &mut |_| {}).expect_err("no text");
    assert!(matches!(err, TrainWriteError::NoText), "{err}");
    let empty = runs.path().join("empty.txt");
    std::fs::write(&empty, "\n\n  \n").expect("write");
    let config = quick(runs.path(), &empty);
    let err = run(&config, &control, &mut |_| {}).expect_err("empty");
    assert!(matches!(err, TrainWriteError::NoText), "{err}");
    let mut config = quick(runs.path(), &milton());
    config.rank = 0;
    let err = run(&config, &control, &mut |_| {}).expect_err("rank 0");
    assert!(err.to_string().contains("rank"), "{err}");
}

#[test]
fn a_sparse_2gb_file_is_read_only_up_to_the_budget_and_zeros_are_refused() {
    let _one = ONE_MODEL_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("dir");
    // All zeros: refused as binary at once.
    let zeros = dir.path().join("zeros.txt");
    std::fs::File::create(&zeros)
        .and_then(|f| f.set_len(2 << 30))
        .expect("sparse file");
    let runs = dir.path().join("runs");
    let err = run(
        &quick(&runs, &zeros),
        &LongJobControl::standalone(1),
        &mut |_| {},
    )
    .expect_err("binary");
    assert!(err.to_string().contains("not a text file"), "{err}");

    // Real text, then 2 GB of holes: the budget ends the reading long before them. The CLI's
    // peak memory (the f32 model included) stays far below the file's size.
    let big = dir.path().join("big.txt");
    let mut text = std::fs::read(milton()).expect("milton");
    text.truncate(200_000);
    std::fs::write(&big, &text).expect("write");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .and_then(|f| f.set_len(2 << 30))
        .expect("grow");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(["train", "write", "--model"])
        .arg(smollm2())
        .arg("--text")
        .arg(&big)
        .args([
            "--steps",
            "1",
            "--context",
            "32",
            "--batch",
            "1",
            "--val-chunks",
            "1",
        ])
        .args([
            "--token-budget",
            "20000",
            "--threads",
            "1",
            "--json",
            "--runs-dir",
        ])
        .arg(&runs)
        .output()
        .expect("run atelier");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    let tokens = report["train_tokens"].as_u64().expect("train")
        + report["val_tokens"].as_u64().expect("val");
    assert!((20_000..25_000).contains(&tokens), "{tokens} tokens read");
    let peak = report["peak_rss_mb"].as_f64().expect("peak");
    assert!(peak < 1500.0, "peak RSS {peak} MB");
    assert_eq!(report["steps"], 1);
}

// ---- the decoder Write runs ------------------------------------------------------------

/// log-softmax.
fn log_softmax(v: &[f32]) -> Vec<f64> {
    let max = v.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let lse = max + v.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
    v.iter().map(|&x| x as f64 - lse).collect()
}

fn same_function_as_write(file: &str) {
    let _one = ONE_MODEL_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let path = atelier::paths::default_model(file);
    let llm = atelier::models::llm::Llm::load(&path).expect("Write's model");
    let mut write = llm.model;
    let tok = llm.tokenizer;
    let mut ids: Vec<u32> = tok.bos_id().filter(|_| tok.add_bos()).into_iter().collect();
    ids.extend(
        tok.encode(
            "Of Mans First Disobedience, and the Fruit Of that Forbidden Tree, whose mortal tast",
            false,
        )
        .expect("encode"),
    );
    let train = TrainModel::load(&path).expect("training model");
    let mut ws = Workspace::default();
    let mut worst = 0f64;
    for end in [ids.len() / 2, ids.len()] {
        let want = log_softmax(&write.forward(&ids[..end], 0).expect("write forward"));
        let got = log_softmax(
            &train
                .next_logits(None, &ids[..end], &mut ws, &go)
                .expect("train forward"),
        );
        let top = |v: &[f64]| {
            v.iter()
                .enumerate()
                .fold((0, f64::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b })
                .0
        };
        assert_eq!(
            top(&got),
            top(&want),
            "{file}: top-1 differs after {end} tokens"
        );
        // Compare where Write puts real probability mass.
        let (mut sum, mut n) = (0f64, 0usize);
        for (g, w) in got.iter().zip(&want) {
            if *w > -8.0 {
                sum += (g - w).abs();
                n += 1;
            }
            if *w > -3.0 {
                worst = worst.max((g - w).abs());
            }
        }
        eprintln!(
            "{file} after {end}: mean |Δ log p| {:.3} over {n} tokens",
            sum / n as f64
        );
    }
    eprintln!(
        "{file}: max |Δ log p| over probable tokens {worst:.3} (backend {})",
        write.backend_name()
    );
    assert!(worst < 0.3, "{file}: {worst}");
}

#[test]
fn the_training_decoder_computes_what_write_runs() {
    same_function_as_write(atelier::paths::SMOLLM2_FILE);
    same_function_as_write(atelier::paths::GEMMA3_FILE);
}

/// `atelier train write --json --threads 2`, with its own data folder.
fn atelier_train_write() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atelier"));
    c.env(
        "ATELIER_DATA",
        std::env::temp_dir().join("atelier-train-test-data"),
    )
    .args(["train", "write", "--json", "--threads", "2"]);
    c
}

/// `atelier train write` with the quick recipe, checkpointing every step.
fn train_write_cli(runs: &Path, text: &Path) -> Command {
    let mut c = atelier_train_write();
    c.arg("--model")
        .arg(smollm2())
        .arg("--text")
        .arg(text)
        .args([
            "--steps",
            "8",
            "--context",
            "48",
            "--batch",
            "2",
            "--lr",
            "3e-3",
            "--eval-every",
            "8",
            "--val-chunks",
            "4",
            "--sample-every",
            "0",
            "--checkpoint-every",
            "1",
            "--token-budget",
            "60000",
            "--runs-dir",
        ])
        .arg(runs);
    c
}

fn report_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "atelier failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// kill -9 while a checkpoint is being written: the previous checkpoint is whole, `--resume`
/// goes on from it, removes the torn temporary file and ends with exactly the adapter of an
/// uninterrupted run.
#[test]
fn kill_during_a_checkpoint_then_resume_ends_where_an_uninterrupted_run_does() {
    let _one = ONE_MODEL_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("dir");
    let text = milton();
    let straight = report_of(
        &train_write_cli(&tmp.path().join("straight"), &text)
            .output()
            .expect("run"),
    );
    assert_eq!(straight["steps"], 8);

    let runs = tmp.path().join("killed");
    let mut child = train_write_cli(&runs, &text)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let run_dir = || {
        std::fs::read_dir(&runs)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.is_dir())
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut killed_mid_write = false;
    while Instant::now() < deadline {
        let past_3 = run_dir()
            .and_then(|d| checkpoint::load(&d).ok())
            .is_some_and(|(state, _, _)| state.step >= 3);
        let writing = run_dir().is_some_and(|d| {
            std::fs::read_dir(d).is_ok_and(|mut entries| {
                entries.any(|e| {
                    e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(".atelier-"))
                })
            })
        });
        if past_3 && writing {
            child.kill().expect("SIGKILL");
            killed_mid_write = true;
            break;
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = child.wait();
    assert!(killed_mid_write, "never caught a checkpoint being written");
    let dir = run_dir().expect("run folder");
    let (state, _, _) = checkpoint::load(&dir).expect("the previous checkpoint is whole");
    assert!(
        (3..8).contains(&state.step),
        "last checkpoint: step {}",
        state.step
    );

    let resumed = report_of(
        &atelier_train_write()
            .arg("--resume")
            .arg(&dir)
            .output()
            .expect("resume"),
    );
    assert_eq!(resumed["steps"], 8);
    assert_eq!(
        adapter_of(&dir),
        adapter_of(Path::new(straight["run_dir"].as_str().expect("run_dir"))),
        "a resumed run must end with the uninterrupted run's adapter"
    );
    assert!(
        std::fs::read_dir(&dir).expect("run folder").all(|e| !e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")),
        "a temporary file was left behind"
    );
}
