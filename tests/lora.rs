//! LoRA adapters in llama.cpp's GGUF format: written and read back unchanged, applied the way
//! llama.cpp applies them (teacher-forced log-probabilities against llama-cpp-python loading
//! the same file with `lora_path`, on SmolLM2 and Gemma 3), and refused with a message naming
//! the tensor when they do not fit, are cut short or are hostile.
//!
//! The llama.cpp side runs live (`tests/peers/llamacpp_logprobs.py` under
//! `ATELIER_PEER_PYTHON`, which scripts/test.sh installs), because the point is that llama.cpp
//! loads the file Atelier just wrote.

mod common;
use common::peer_python;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use atelier::models::llm::lora::{
    AdapterSpec, BaseShapes, LoraAdapter, LoraError, LoraTarget, discover, gguf as lora_gguf,
    random::random_adapter,
};
use atelier::models::llm::{Backend, CausalLm, GgufTokenizer, Llm, LlmError, generate, gguf};

/// Mean |Δ log-prob| allowed against llama.cpp with the same adapter (nats), as the issue asks
/// (and as tests/llm_numerics.rs allows without one).
const MAX_MEAN_DELTA: f64 = 0.1;
/// |Δ log-prob| allowed at any single position (nats).
const MAX_DELTA: f64 = 0.5;
/// The test adapter must move the predictions by at least this much on average (nats), well
/// above the tolerance, or the comparison would not show that it is applied.
const MIN_EFFECT: f64 = 0.3;
/// B's magnitude of the test adapters (rank 8 on all seven projections, alpha 16): chosen so
/// that the adapter moves the log-probabilities of the text by 0.4-0.5 nats on average (as a
/// style adapter might), not so far that the model stops making sense. Gemma 3's activations
/// are larger, so its B is smaller.
const SMOLLM2_B: f32 = 0.15;
const GEMMA3_B: f32 = 0.03;

/// The text scored: the first three sentences of the benchmark passage (about 100 tokens).
fn text() -> &'static str {
    let t = atelier::bench::write::PROMPT_TEXT;
    let end = t.find(" The wind came from the west").unwrap_or(t.len());
    &t[..end.min(t.len())]
}

fn model_path(file: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(file);
    assert!(
        p.is_file(),
        "{} is missing: run models/fetch.sh",
        p.display()
    );
    p
}

fn smollm2() -> PathBuf {
    model_path("SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn gemma3() -> PathBuf {
    model_path("gemma-3-270m-q4_k_m.gguf")
}

fn base_shapes(model: &Path) -> BaseShapes {
    let (content, _, _) = gguf::open(model).expect("open model");
    BaseShapes::from_content(&content)
}

/// llama.cpp's log-probabilities of `ids[1..]`, teacher-forced, with the adapter if given.
fn llamacpp_logprobs(model: &Path, ids: &[u32], lora: Option<&AdapterSpec>) -> Vec<f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/llamacpp_logprobs.py");
    let mut cmd = Command::new(peer_python());
    cmd.arg(script)
        .arg(model)
        .arg(serde_json::to_string(ids).unwrap());
    if let Some(spec) = lora {
        cmd.arg("--lora")
            .arg(&spec.path)
            .arg("--scale")
            .arg(spec.scale.to_string());
    }
    let out = cmd.output().expect("run the llama.cpp peer");
    assert!(
        out.status.success(),
        "llama.cpp peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("peer JSON");
    v["logprobs"]
        .as_array()
        .expect("logprobs")
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Token ids of [`TEXT`], BOS first where the model wants it.
fn text_ids(tok: &GgufTokenizer) -> Vec<u32> {
    let mut ids = match (tok.add_bos(), tok.bos_id()) {
        (true, Some(b)) => vec![b],
        _ => Vec::new(),
    };
    ids.extend(tok.encode(text(), false).unwrap());
    ids
}

/// Atelier's log-probabilities of `ids[1..]`: positions 1..=8 one token at a time (the decode
/// path), the rest after a 9-token prompt run as one batch (the prompt path).
fn atelier_logprobs(llm: &mut Llm, ids: &[u32]) -> Vec<f64> {
    let split = 8.min(ids.len() - 1);
    let cancel = AtomicBool::new(false);
    let head = generate::score(llm, &ids[..1], &ids[1..=split], 0, &cancel).unwrap();
    let tail = generate::score(llm, &ids[..=split], &ids[split + 1..], 0, &cancel).unwrap();
    head.iter().chain(&tail).map(|s| s.logprob as f64).collect()
}

fn deltas(a: &[f64], b: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let max = d.iter().cloned().fold(0.0, f64::max);
    (mean, max)
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Writes a random adapter for `model` and checks Atelier against llama.cpp with it: within
/// the tolerance, far from the base model, and moved the same way as llama.cpp.
fn round_trip(model: &Path, b_scale: f32) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("voice.gguf");
    let adapter = random_adapter(&base_shapes(model), 8, &LoraTarget::ALL, b_scale, 42);
    lora_gguf::write(&file, &adapter).expect("write adapter");
    let spec = AdapterSpec {
        path: file.clone(),
        scale: 1.0,
    };

    let mut llm = Llm::load_with_adapter(model, Some(&spec)).expect("load with adapter");
    let applied = llm.info.adapter.clone().expect("adapter in ModelInfo");
    assert_eq!((applied.rank, applied.pairs), (8, adapter.pairs.len()));
    let ids = text_ids(&llm.tokenizer);
    let ours = atelier_logprobs(&mut llm, &ids);
    llm.set_adapter(None).unwrap();
    assert!(llm.info.adapter.is_none());
    let ours_base = atelier_logprobs(&mut llm, &ids);

    let theirs = llamacpp_logprobs(model, &ids, Some(&spec));
    let theirs_base = llamacpp_logprobs(model, &ids, None);

    let (mean, max) = deltas(&ours, &theirs);
    let (base_mean, base_max) = deltas(&ours_base, &theirs_base);
    let (effect, _) = deltas(&theirs, &theirs_base);
    let ours_change: Vec<f64> = ours.iter().zip(&ours_base).map(|(a, b)| a - b).collect();
    let their_change: Vec<f64> = theirs
        .iter()
        .zip(&theirs_base)
        .map(|(a, b)| a - b)
        .collect();
    let r = correlation(&ours_change, &their_change);
    let worst = (0..ours.len())
        .max_by(|&i, &j| {
            (ours[i] - theirs[i])
                .abs()
                .total_cmp(&(ours[j] - theirs[j]).abs())
        })
        .unwrap_or(0);
    println!(
        "  base model alone vs llama.cpp: mean {base_mean:.4} max {base_max:.4}; worst position \
         with the adapter: {worst} (ours {:.3}, llama.cpp {:.3}, base ours {:.3} llama.cpp {:.3})",
        ours[worst], theirs[worst], ours_base[worst], theirs_base[worst]
    );
    println!(
        "{}: {} positions, vs llama.cpp with the adapter: mean {mean:.4} max {max:.4} nats; \
         adapter effect (llama.cpp) mean {effect:.3} nats; correlation of the changes {r:.3}",
        model.display(),
        ours.len()
    );
    assert!(mean <= MAX_MEAN_DELTA, "mean |Δ| {mean} > {MAX_MEAN_DELTA}");
    assert!(max <= MAX_DELTA, "max |Δ| {max} > {MAX_DELTA}");
    assert!(
        effect >= MIN_EFFECT,
        "the test adapter barely changes llama.cpp's predictions ({effect} nats)"
    );
    assert!(
        r > 0.9,
        "the adapter moves Atelier's log-probabilities unlike llama.cpp's (r = {r})"
    );

    // Half strength: instant on the native decoder, the same numbers as loading at 0.5, and
    // llama.cpp's lora_scale semantics (nearer llama.cpp at 0.5 than at 1 or without, and
    // within the mean tolerance). Single positions are not held to MAX_DELTA here: at one
    // position of Gemma's text llama.cpp's own 4-bit path is 0.5 nats from the exact result
    // (llama.cpp on the dequantized f32 weights) while Atelier is within 0.1 of it; see the
    // README, Adapters.
    let half = AdapterSpec {
        path: file,
        scale: 0.5,
    };
    llm.set_adapter(Some(&half)).unwrap();
    assert_eq!(llm.info.adapter.as_ref().unwrap().scale, 0.5);
    let ours_half = atelier_logprobs(&mut llm, &ids);
    let mut fresh = Llm::load_with_adapter(model, Some(&half)).unwrap();
    assert_eq!(atelier_logprobs(&mut fresh, &ids[..16]), ours_half[..15]);
    let theirs_half = llamacpp_logprobs(model, &ids, Some(&half));
    let (mean, max) = deltas(&ours_half, &theirs_half);
    let (to_full, _) = deltas(&ours_half, &theirs);
    let (to_base, _) = deltas(&ours_half, &theirs_base);
    println!(
        "  at strength 0.5: mean {mean:.4} max {max:.4} nats (to llama.cpp at 1: {to_full:.3}, without: {to_base:.3})"
    );
    assert!(mean <= MAX_MEAN_DELTA, "strength 0.5: mean |Δ| {mean}");
    assert!(
        mean < to_full && mean < to_base,
        "strength 0.5 is nearer llama.cpp at another strength"
    );
}

#[test]
fn smollm2_adapter_matches_llamacpp() {
    round_trip(&smollm2(), SMOLLM2_B);
}

#[test]
fn gemma3_adapter_matches_llamacpp() {
    round_trip(&gemma3(), GEMMA3_B);
}

/// The candle path merges the adapter into the weights (as Q8_0); it must agree with
/// llama.cpp's side path too.
#[test]
fn smollm2_merged_on_candle_matches_llamacpp() {
    let model = smollm2();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("voice.gguf");
    let adapter = random_adapter(&base_shapes(&model), 8, &LoraTarget::ALL, SMOLLM2_B, 42);
    lora_gguf::write(&file, &adapter).unwrap();
    let read = lora_gguf::read_for(&file, &base_shapes(&model)).unwrap();
    let (content, mut f, _) = gguf::open(&model).unwrap();
    let mut lm = CausalLm::load_adapted(
        &model,
        &content,
        &mut f,
        &candle_core::Device::Cpu,
        Backend::Candle,
        Some((&read, 1.0)),
    )
    .unwrap();
    assert_eq!(lm.backend_name(), "candle");
    let ids = text_ids(&GgufTokenizer::from_gguf(&content).unwrap());
    let mut ours = Vec::new();
    let logits = lm.forward(&ids[..1], 0).unwrap();
    let mut last = logits;
    for (i, &id) in ids[1..].iter().enumerate() {
        ours.push(log_softmax_at(&last, id));
        if i + 2 < ids.len() {
            last = lm.forward(&[id], i + 1).unwrap();
        }
    }
    let spec = AdapterSpec {
        path: file,
        scale: 1.0,
    };
    let theirs = llamacpp_logprobs(&model, &ids, Some(&spec));
    let (mean, max) = deltas(&ours, &theirs);
    println!("candle, merged: mean {mean:.4} max {max:.4} nats");
    assert!(mean <= MAX_MEAN_DELTA && max <= MAX_DELTA, "{mean} {max}");
}

fn log_softmax_at(logits: &[f32], id: u32) -> f64 {
    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|&v| ((v as f64) - m).exp()).sum();
    logits[id as usize] as f64 - m - z.ln()
}

// ---- the file format ----------------------------------------------------------------------

#[test]
fn written_adapter_reads_back_equal_and_fits_its_model() {
    let model = smollm2();
    let base = base_shapes(&model);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.gguf");
    let adapter = random_adapter(&base, 4, &[LoraTarget::Q, LoraTarget::V], 0.01, 7);
    lora_gguf::write(&file, &adapter).unwrap();
    assert_eq!(lora_gguf::read(&file).unwrap(), adapter);
    assert_eq!(lora_gguf::read_for(&file, &base).unwrap(), adapter);
    // Another write over it is atomic and leaves no temporary file.
    lora_gguf::write(&file, &adapter).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

fn err_text(r: Result<LoraAdapter, LoraError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_adapter_for_another_model_is_refused_naming_the_tensor() {
    let smol = base_shapes(&smollm2());
    let gemma = base_shapes(&gemma3());
    let dir = tempfile::tempdir().unwrap();

    // Another architecture.
    let for_gemma = dir.path().join("gemma.gguf");
    lora_gguf::write(
        &for_gemma,
        &random_adapter(&gemma, 2, &[LoraTarget::Q], 0.01, 1),
    )
    .unwrap();
    let msg = err_text(lora_gguf::read_for(&for_gemma, &smol));
    assert!(msg.contains("'gemma3'") && msg.contains("'llama'"), "{msg}");

    // Same architecture, other shapes: a "llama" adapter whose q projection is 64 wide.
    let mut wrong = random_adapter(&smol, 2, &[LoraTarget::Q], 0.01, 1);
    wrong.pairs.truncate(1);
    let p = &mut wrong.pairs[0];
    p.n_in = 64;
    p.a = vec![0.01; p.rank * 64];
    let file = dir.path().join("shape.gguf");
    lora_gguf::write(&file, &wrong).unwrap();
    let msg = err_text(lora_gguf::read_for(&file, &smol));
    assert!(msg.contains("'blk.0.attn_q.weight.lora_a'"), "{msg}");
    assert!(msg.contains("576"), "{msg}");

    // A layer the base model does not have.
    let mut deep = random_adapter(&smol, 2, &[LoraTarget::V], 0.01, 1);
    deep.pairs.truncate(1);
    deep.pairs[0].layer = 99;
    let file = dir.path().join("deep.gguf");
    lora_gguf::write(&file, &deep).unwrap();
    let msg = err_text(lora_gguf::read_for(&file, &smol));
    assert!(msg.contains("'blk.99.attn_v.weight.lora_a'"), "{msg}");
    assert!(msg.contains("30 layers"), "{msg}");

    // Loading the model with it fails with that message; a model file is not an adapter.
    let spec = AdapterSpec {
        path: file,
        scale: 1.0,
    };
    let e = Llm::load_with_adapter(&smollm2(), Some(&spec))
        .err()
        .expect("refused");
    assert!(matches!(e, LlmError::Adapter(_)), "{e}");
    let msg = err_text(lora_gguf::read(&smollm2()));
    assert!(msg.contains("not a LoRA adapter"), "{msg}");
}

#[test]
fn a_truncated_adapter_is_refused() {
    let smol = base_shapes(&smollm2());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cut.gguf");
    lora_gguf::write(&file, &random_adapter(&smol, 4, &[LoraTarget::Q], 0.01, 3)).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    for keep in [bytes.len() - 100, bytes.len() / 2, 200, 10] {
        std::fs::write(&file, &bytes[..keep]).unwrap();
        let msg = err_text(lora_gguf::read(&file));
        assert!(
            msg.contains("truncated") || msg.contains("damaged"),
            "{keep}: {msg}"
        );
    }
}

/// A GGUF adapter header with one pair whose dims are given, and `data` bytes after it.
fn hostile_file(dims_a: [u64; 2], dims_b: [u64; 2], data: usize) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(2u64.to_le_bytes());
    out.extend(3u64.to_le_bytes());
    let s = |out: &mut Vec<u8>, v: &str| {
        out.extend((v.len() as u64).to_le_bytes());
        out.extend(v.as_bytes());
    };
    for (k, v) in [
        ("general.architecture", "llama"),
        ("general.type", "adapter"),
        ("adapter.type", "lora"),
    ] {
        s(&mut out, k);
        out.extend(8u32.to_le_bytes());
        s(&mut out, v);
    }
    for (name, dims) in [
        ("blk.0.attn_q.weight.lora_a", dims_a),
        ("blk.0.attn_q.weight.lora_b", dims_b),
    ] {
        s(&mut out, name);
        out.extend(2u32.to_le_bytes());
        for d in dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(0u32.to_le_bytes());
        out.extend(0u64.to_le_bytes());
    }
    out.resize(out.len().next_multiple_of(32) + data, 0);
    out
}

#[test]
fn hostile_sizes_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("h.gguf");
    // Dimensions whose product overflows, or that would need terabytes.
    for (a, b) in [
        ([1 << 40, 1 << 40], [1 << 40, 576]),
        ([576, 1 << 31], [1 << 31, 576]),
        ([u64::MAX, 2], [2, 576]),
    ] {
        std::fs::write(&file, hostile_file(a, b, 64)).unwrap();
        let msg = err_text(lora_gguf::read(&file));
        assert!(
            msg.contains("truncated") || msg.contains("impossible") || msg.contains("damaged"),
            "{a:?}: {msg}"
        );
    }
    // A rank far above anything real, in a file that would hold it.
    std::fs::write(&file, hostile_file([4, 5000], [5000, 4], 4 * 5000 * 4 * 2)).unwrap();
    let msg = err_text(lora_gguf::read(&file));
    assert!(msg.contains("rank 5000"), "{msg}");
    // Ranks that disagree.
    std::fs::write(&file, hostile_file([4, 2], [3, 4], 64)).unwrap();
    let msg = err_text(lora_gguf::read(&file));
    assert!(
        msg.contains("'blk.0.attn_q.weight.lora_b'") && msg.contains("rank"),
        "{msg}"
    );
    // A huge tensor count in a small file.
    let mut bytes = hostile_file([4, 2], [2, 4], 64);
    bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&file, bytes).unwrap();
    let msg = err_text(lora_gguf::read(&file));
    assert!(msg.contains("damaged"), "{msg}");
}

#[test]
fn non_finite_values_and_missing_halves_are_refused() {
    let smol = base_shapes(&smollm2());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nan.gguf");
    let mut adapter = random_adapter(&smol, 2, &[LoraTarget::K], 0.01, 5);
    adapter.pairs.truncate(1);
    lora_gguf::write(&file, &adapter).unwrap();
    // Poke a NaN into lora_b's data (the last tensor, ending at the file's last 32-byte pad).
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    let b_len = adapter.pairs[0].b.len() * 4;
    let b_start = n - b_len.next_multiple_of(32);
    bytes[b_start..b_start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&file, &bytes).unwrap();
    let msg = err_text(lora_gguf::read(&file));
    assert!(
        msg.contains("'blk.0.attn_k.weight.lora_b'") && msg.contains("NaN"),
        "{msg}"
    );

    // lora_b renamed to another layer's: layer 0's pair lacks its lora_b.
    let pos = bytes
        .windows(26)
        .position(|w| w == b"blk.0.attn_k.weight.lora_b")
        .unwrap();
    bytes[pos + 4] = b'1';
    std::fs::write(&file, &bytes).unwrap();
    let msg = err_text(lora_gguf::read(&file));
    assert!(
        msg.contains("'blk.0.attn_k.weight.lora_b'") && msg.contains("missing"),
        "{msg}"
    );
    // A tensor that is not part of a pair at all.
    bytes[pos + 25] = b'x';
    std::fs::write(&file, &bytes).unwrap();
    let msg = err_text(lora_gguf::read(&file));
    assert!(msg.contains("'blk.1.attn_k.weight.lora_x'"), "{msg}");
}

#[test]
fn discovery_lists_only_the_adapters_that_fit() {
    let smol = base_shapes(&smollm2());
    let gemma = base_shapes(&gemma3());
    let dir = tempfile::tempdir().unwrap();
    lora_gguf::write(
        &dir.path().join("smol-voice.gguf"),
        &random_adapter(&smol, 4, &[LoraTarget::Q, LoraTarget::V], 0.01, 1),
    )
    .unwrap();
    lora_gguf::write(
        &dir.path().join("gemma-voice.gguf"),
        &random_adapter(&gemma, 4, &[LoraTarget::Q], 0.01, 1),
    )
    .unwrap();
    std::fs::write(dir.path().join("junk.gguf"), b"GGUF nonsense adapter.type").unwrap();
    let found = discover::compatible(&[dir.path().to_path_buf()], &smol);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].name, "smol-voice");
    assert_eq!(
        (found[0].rank, found[0].targets.clone()),
        (4, vec!["q".to_string(), "v".to_string()])
    );
    let found = discover::compatible(&[dir.path().to_path_buf()], &gemma);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "gemma-voice");
}

// ---- the CLI and the server -----------------------------------------------------------------

fn atelier(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(args)
        .env(
            "ATELIER_DATA",
            std::env::temp_dir().join("atelier-lora-test"),
        )
        .output()
        .expect("run atelier")
}

#[test]
fn cli_score_applies_the_adapter_and_refuses_a_mismatched_one() {
    let smol = base_shapes(&smollm2());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("voice.gguf");
    lora_gguf::write(
        &file,
        &random_adapter(&smol, 8, &LoraTarget::ALL, SMOLLM2_B, 42),
    )
    .unwrap();
    let score = |lora: Option<String>| {
        let mut args = vec![
            "score",
            "--model",
            "smollm2",
            "--prompt-ids",
            "[504, 33059, 40061]",
            "--continuation-ids",
            "[506, 5271, 553, 1052]",
        ];
        let lora = lora.unwrap_or_default();
        if !lora.is_empty() {
            args.extend(["--lora", &lora]);
        }
        let out = atelier(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["total_logprob"].as_f64().unwrap()
    };
    let base = score(None);
    let full = score(Some(file.display().to_string()));
    let off = score(Some(format!("{}:0", file.display())));
    assert!((full - base).abs() > 0.1, "{base} {full}");
    assert!(
        (off - base).abs() < 1e-4,
        "strength 0 is the base model: {base} {off}"
    );

    let gemma_file = dir.path().join("gemma.gguf");
    let gemma = base_shapes(&gemma3());
    lora_gguf::write(
        &gemma_file,
        &random_adapter(&gemma, 2, &[LoraTarget::Q], 0.01, 1),
    )
    .unwrap();
    let out = atelier(&[
        "write",
        "--prompt",
        "Once",
        "--max-tokens",
        "2",
        "--lora",
        &gemma_file.display().to_string(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("'gemma3'"), "{err}");
    let out = atelier(&["write", "--prompt", "Once", "--lora", "x.gguf:7"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("0..=2"));
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serve_offers_model_plus_adapter() {
    use std::io::BufRead;
    let smol = base_shapes(&smollm2());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("voice.gguf");
    lora_gguf::write(
        &file,
        &random_adapter(&smol, 8, &LoraTarget::ALL, SMOLLM2_B, 42),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--model",
            "smollm2",
            "--lora",
        ])
        .arg(&file)
        .env("ATELIER_DATA", dir.path())
        .env_remove("ATELIER_SERVE_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn atelier serve");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _guard = Kill(child);
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .expect("address")
        .to_string();
    let (status, body) = http(&addr, "GET", "/v1/models", "");
    assert_eq!(status, 200);
    assert!(
        body.contains("\"SmolLM2-135M-Instruct.Q4_1+voice\""),
        "{body}"
    );
    let complete = |model: &str| {
        let req = format!(
            r#"{{"model": "{model}", "prompt": "The lighthouse keeper", "max_tokens": 6, "temperature": 0, "logprobs": 1}}"#
        );
        let (status, body) = http(&addr, "POST", "/v1/completions", &req);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["choices"][0]["logprobs"]["token_logprobs"].clone()
    };
    let base = complete("smollm2");
    let adapted = complete("smollm2+voice");
    assert_ne!(base, adapted, "the adapter changes the model's predictions");
    assert_eq!(complete("smollm2"), base, "the base model is restored");
}

#[test]
fn a_retrained_adapter_saved_over_the_file_is_read_again() {
    let model = smollm2();
    let base = base_shapes(&model);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("voice.gguf");
    lora_gguf::write(
        &file,
        &random_adapter(&base, 4, &LoraTarget::ALL, SMOLLM2_B, 1),
    )
    .unwrap();
    let spec = AdapterSpec {
        path: file.clone(),
        scale: 1.0,
    };
    let mut llm = Llm::load_with_adapter(&model, Some(&spec)).unwrap();
    let ids = text_ids(&llm.tokenizer)[..12].to_vec();
    let first = atelier_logprobs(&mut llm, &ids);
    llm.set_adapter(Some(&spec)).unwrap();
    assert_eq!(atelier_logprobs(&mut llm, &ids), first, "nothing changed");
    std::thread::sleep(std::time::Duration::from_millis(20));
    lora_gguf::write(
        &file,
        &random_adapter(&base, 4, &LoraTarget::ALL, SMOLLM2_B, 2),
    )
    .unwrap();
    llm.set_adapter(Some(&spec)).unwrap();
    let second = atelier_logprobs(&mut llm, &ids);
    assert_ne!(second, first, "the new file is applied");
    let mut fresh = Llm::load_with_adapter(&model, Some(&spec)).unwrap();
    assert_eq!(atelier_logprobs(&mut fresh, &ids), second);
}
