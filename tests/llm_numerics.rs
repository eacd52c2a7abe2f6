//! Numerics of the two default language models against llama.cpp.
//!
//! `tests/fixtures/llm/llamacpp.json` (see its README) holds, for each model and prompt,
//! llama.cpp's 24 greedy tokens and its teacher-forced log-softmax at every step. Quantized
//! inference is not bit-exact across implementations (both quantize activations to 8 bits
//! before their dot products, and different summation orders flip some roundings), so this
//! compares log-probabilities with a
//! tolerance, top-1 only where llama.cpp's own margin is clear, and greedy generation up to
//! the first near-tie. One `#[test]` per model loads it once and runs all its cases; run with
//! `--nocapture` for the summary tables (their decode speeds are `cargo test` timings of the
//! teacher-forced steps, indicative only).

use std::sync::Mutex;
use std::time::Instant;

use atelier::models::llm::{Backend, CausalLm, gguf};
use serde_json::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/llm/llamacpp.json"
);

/// Mean |Δ log-prob| of the reference tokens allowed per case (nats).
const MAX_MEAN_DELTA: f64 = 0.1;
/// |Δ log-prob| allowed at any single position (nats).
const MAX_DELTA: f64 = 0.5;
/// Where llama.cpp's top-2 margin exceeds this, our top-1 must always agree.
const CLEAR_MARGIN: f64 = 0.5;
/// A near-tie: two candidates closer than this (nats) may legitimately swap between
/// implementations. The reference contradicts itself at such margins: llama.cpp's batched
/// teacher-forced evaluation prefers another token than its own one-at-a-time greedy run at
/// margins of up to 0.246 nats in this fixture (Gemma, "The studio was quiet except for",
/// step 3), so a smaller threshold would fail llama.cpp against itself.
const NEAR_TIE: f64 = 0.25;
/// Where llama.cpp's margin exceeds [`NEAR_TIE`], our top-1 must agree at >= 90% of positions
/// of every case.
const NEAR_TIE_AGREEMENT: f64 = 0.9;
/// Top-1 agreement where llama.cpp's margin exceeds this is printed, not asserted. For Gemma 3
/// it is set by quantization noise, not by the model code: over nine noise realizations
/// (perturbing the embedding scale by a few ppm) one case ranged from 18/21 to 21/21 and the
/// three cases together from 89% to 98.5%, so a 90% bar would fail at random between
/// machines (see `gemma3_matches_llamacpp`).
const SOFT_MARGIN: f64 = 0.1;

/// llama.cpp's teacher-forced view of one generated token.
struct RefStep {
    token: u32,
    logprob: f64,
    /// Five best `(id, logprob)`, best first.
    top: Vec<(u32, f64)>,
}

impl RefStep {
    fn margin(&self) -> f64 {
        self.top[0].1 - self.top[1].1
    }
}

struct Case {
    label: String,
    prompt_ids: Vec<u32>,
    greedy_ids: Vec<u32>,
    steps: Vec<RefStep>,
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn load_cases(model_file: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(FIXTURE).expect("read fixture");
    let json: Value = serde_json::from_str(&text).expect("parse fixture");
    let model = &json["models"][model_file];
    let mut cases = Vec::new();
    for kind in ["continue", "instruct"] {
        let Some(list) = model[kind].as_array() else {
            continue;
        };
        for c in list {
            let text = c["prompt"].as_str().or(c["user"].as_str()).unwrap_or("?");
            let steps = c["teacher_forced_top5"]
                .as_array()
                .expect("teacher_forced_top5")
                .iter()
                .map(|s| RefStep {
                    token: s["token"].as_u64().expect("token") as u32,
                    logprob: s["logprob"].as_f64().expect("logprob"),
                    top: s["top"]
                        .as_array()
                        .expect("top")
                        .iter()
                        .map(|p| {
                            (
                                p[0].as_u64().expect("top id") as u32,
                                p[1].as_f64().expect("top logprob"),
                            )
                        })
                        .collect(),
                })
                .collect::<Vec<_>>();
            let case = Case {
                label: format!("{kind}: {text}"),
                prompt_ids: ids(&c["prompt_ids"]),
                greedy_ids: ids(&c["greedy_ids"]),
                steps,
            };
            assert_eq!(case.steps.len(), case.greedy_ids.len());
            cases.push(case);
        }
    }
    assert!(!cases.is_empty(), "no cases for {model_file}");
    cases
}

/// Log-softmax in f64 over f32 logits.
fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    logits.iter().map(|&x| x as f64 - lse).collect()
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// The first step where our greedy generation picks another token than llama.cpp's.
struct Divergence {
    step: usize,
    ours: u32,
    theirs: u32,
    /// llama.cpp's `lp(theirs) - lp(ours)`, if our token is in its top 5.
    ref_gap: Option<f64>,
    /// Whether our token is llama.cpp's own teacher-forced top-1 here (its batched and
    /// one-at-a-time evaluations disagree).
    ours_is_ref_top1: bool,
    /// Our `logit(ours) - logit(theirs)`.
    our_gap: f64,
    /// Our |Δlp| against llama.cpp for both candidates (ours when in its top 5).
    delta_theirs: f64,
    delta_ours: Option<f64>,
}

/// What one case measured.
struct Outcome {
    mean_delta: f64,
    max_delta: f64,
    max_delta_at: usize,
    clear: (usize, usize),
    near: (usize, usize),
    soft: (usize, usize),
    divergence: Option<Divergence>,
    /// Tokens reproduced by greedy generation before the first divergence.
    greedy_matched: usize,
    decode_tok_s: f64,
}

/// A model under test: `(tokens, pos) -> logits predicting the token after the last one`,
/// where `pos == 0` starts a new sequence.
type Forward<'a> = dyn FnMut(&[u32], usize) -> Vec<f32> + 'a;

fn run_case(forward: &mut Forward, case: &Case) -> Outcome {
    let n = case.greedy_ids.len();
    // Teacher-forced: the prompt at position 0, then each reference token one at a time.
    let mut lps = Vec::with_capacity(n);
    let mut tops = Vec::with_capacity(n);
    let mut decode_time = 0.0;
    for j in 0..n {
        let started = Instant::now();
        let logits = if j == 0 {
            forward(&case.prompt_ids, 0)
        } else {
            forward(&case.greedy_ids[j - 1..j], case.prompt_ids.len() + j - 1)
        };
        if j > 0 {
            decode_time += started.elapsed().as_secs_f64();
        }
        tops.push(argmax(&logits));
        lps.push(log_softmax(&logits));
    }

    let deltas: Vec<f64> = case
        .steps
        .iter()
        .zip(&lps)
        .map(|(s, lp)| (lp[s.token as usize] - s.logprob).abs())
        .collect();
    let mean_delta = deltas.iter().sum::<f64>() / n as f64;
    let (max_delta_at, max_delta) = deltas
        .iter()
        .copied()
        .enumerate()
        .fold((0, 0.0), |acc, (i, d)| if d > acc.1 { (i, d) } else { acc });
    let mut clear = (0, 0);
    let mut near = (0, 0);
    let mut soft = (0, 0);
    for (s, &ours) in case.steps.iter().zip(&tops) {
        let agree = usize::from(ours == s.top[0].0);
        if s.margin() > CLEAR_MARGIN {
            clear = (clear.0 + agree, clear.1 + 1);
        }
        if s.margin() > NEAR_TIE {
            near = (near.0 + agree, near.1 + 1);
        }
        if s.margin() > SOFT_MARGIN {
            soft = (soft.0 + agree, soft.1 + 1);
        }
    }

    // Greedy generation from the prompt, up to the first token that differs from llama.cpp.
    let mut divergence = None;
    let mut greedy_matched = n;
    let mut logits = forward(&case.prompt_ids, 0);
    for j in 0..n {
        let ours = argmax(&logits);
        let theirs = case.greedy_ids[j];
        if ours != theirs {
            let s = &case.steps[j];
            let ref_lp = |id: u32| {
                if id == s.token {
                    Some(s.logprob)
                } else {
                    s.top.iter().find(|p| p.0 == id).map(|p| p.1)
                }
            };
            let lp = log_softmax(&logits);
            divergence = Some(Divergence {
                step: j,
                ours,
                theirs,
                ref_gap: ref_lp(ours).map(|o| s.logprob - o),
                ours_is_ref_top1: s.top[0].0 == ours,
                our_gap: logits[ours as usize] as f64 - logits[theirs as usize] as f64,
                delta_theirs: (lp[theirs as usize] - s.logprob).abs(),
                delta_ours: ref_lp(ours).map(|r| (lp[ours as usize] - r).abs()),
            });
            greedy_matched = j;
            break;
        }
        if j + 1 < n {
            logits = forward(&[ours], case.prompt_ids.len() + j);
        }
    }

    Outcome {
        mean_delta,
        max_delta,
        max_delta_at,
        clear,
        near,
        soft,
        divergence,
        greedy_matched,
        decode_tok_s: (n - 1) as f64 / decode_time,
    }
}

/// Runs every case of `file` through `forward`, prints the summary table and returns what
/// failed the criteria.
fn compare(file: &str, forward: &mut Forward) -> Vec<String> {
    let cases = load_cases(file);
    let outcomes: Vec<Outcome> = cases.iter().map(|c| run_case(forward, c)).collect();

    println!(
        "| case | mean |Δlp| | max |Δlp| (step) | top-1 agrees, margin > {CLEAR_MARGIN} | > {NEAR_TIE} | > {SOFT_MARGIN} | greedy tokens matched | first divergence | decode tok/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let pair = |p: (usize, usize)| format!("{}/{}", p.0, p.1);
    for (c, o) in cases.iter().zip(&outcomes) {
        let div = match &o.divergence {
            None => "none".to_string(),
            Some(d) => format!(
                "step {}: {} instead of {}; llama.cpp: lp({}) - lp({}) = {} (its top-2 margin {:.3}{}); ours: logit({}) - logit({}) = {:.3}",
                d.step,
                d.ours,
                d.theirs,
                d.theirs,
                d.ours,
                d.ref_gap
                    .map_or("n/a, ours not in its top 5".into(), |g| format!("{g:.3}")),
                c.steps[d.step].margin(),
                if d.ours_is_ref_top1 {
                    ", its top-1 is ours"
                } else {
                    ""
                },
                d.ours,
                d.theirs,
                d.our_gap,
            ),
        };
        println!(
            "| {} | {:.4} | {:.4} ({}) | {} | {} | {} | {}/{} | {div} | {:.1} |",
            c.label,
            o.mean_delta,
            o.max_delta,
            o.max_delta_at,
            pair(o.clear),
            pair(o.near),
            pair(o.soft),
            o.greedy_matched,
            c.greedy_ids.len(),
            o.decode_tok_s,
        );
    }
    let soft = outcomes
        .iter()
        .fold((0, 0), |a, o| (a.0 + o.soft.0, a.1 + o.soft.1));
    println!(
        "all cases: top-1 agrees at {}/{} ({:.1}%) of the positions where llama.cpp's margin > {SOFT_MARGIN}",
        soft.0,
        soft.1,
        100.0 * soft.0 as f64 / soft.1.max(1) as f64
    );

    let mut failures = Vec::new();
    for (c, o) in cases.iter().zip(&outcomes) {
        if o.mean_delta > MAX_MEAN_DELTA {
            failures.push(format!("{}: mean |Δlp| {:.4}", c.label, o.mean_delta));
        }
        if o.max_delta > MAX_DELTA {
            failures.push(format!(
                "{}: |Δlp| {:.4} at step {}",
                c.label, o.max_delta, o.max_delta_at
            ));
        }
        if o.clear.0 != o.clear.1 {
            failures.push(format!(
                "{}: top-1 differs where llama.cpp's margin > {CLEAR_MARGIN} ({})",
                c.label,
                pair(o.clear)
            ));
        }
        if (o.near.0 as f64) < NEAR_TIE_AGREEMENT * o.near.1 as f64 {
            failures.push(format!(
                "{}: top-1 agrees at only {} positions where llama.cpp's margin > {NEAR_TIE}",
                c.label,
                pair(o.near)
            ));
        }
        if let Some(d) = &o.divergence {
            // Acceptable only at a near-tie of the reference (llama.cpp's log-probs for the two
            // candidates are within NEAR_TIE, or its own batched evaluation already prefers
            // ours), and when our log-probs for both candidates are within the per-position
            // tolerance of llama.cpp's, so the swap is explained by errors we accept anywhere.
            let near_tie = d.ours_is_ref_top1 || d.ref_gap.is_some_and(|g| g.abs() < NEAR_TIE);
            let explained =
                d.delta_theirs < MAX_DELTA && d.delta_ours.is_some_and(|x| x < MAX_DELTA);
            if !near_tie || !explained {
                failures.push(format!(
                    "{}: greedy diverges at step {} ({} instead of {}), not at a near-tie (llama.cpp gap {:?}, our logit gap {:.3}, |Δlp| {:.3} / {:?})",
                    c.label,
                    d.step,
                    d.ours,
                    d.theirs,
                    d.ref_gap,
                    d.our_gap,
                    d.delta_theirs,
                    d.delta_ours
                ));
            }
        }
    }
    failures
}

/// Runs the models one at a time: the tests share the CPU, and the decode speeds they print
/// are only meaningful without another model running.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn model_path(file: &str) -> std::path::PathBuf {
    let path = atelier::paths::default_model(file);
    assert!(
        path.is_file(),
        "{} is missing; run {}",
        path.display(),
        atelier::paths::FETCH_COMMAND
    );
    path
}

fn load(file: &str, backend: Backend) -> CausalLm {
    let path = model_path(file);
    let started = Instant::now();
    let (content, mut f, _) = gguf::open(&path).expect("open gguf");
    let model = CausalLm::load_with(&path, &content, &mut f, &candle_core::Device::Cpu, backend)
        .expect("load model");
    println!(
        "\n{file} ({}): loaded in {:.2}s",
        model.backend_name(),
        started.elapsed().as_secs_f64()
    );
    model
}

fn check_model(file: &str, backend: Backend) {
    let mut model = load(file, backend);
    let failures = compare(file, &mut |ids: &[u32], pos| {
        model.forward(ids, pos).expect("forward")
    });
    assert!(failures.is_empty(), "{file}:\n{}", failures.join("\n"));
}

#[test]
fn smollm2_matches_llamacpp() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    check_model(atelier::paths::SMOLLM2_FILE, Backend::Auto);
}

/// candle's path, which runs on CPUs without AVX-512 VNNI.
#[test]
fn smollm2_on_candle_matches_llamacpp() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    check_model(atelier::paths::SMOLLM2_FILE, Backend::Candle);
}

#[test]
fn gemma3_matches_llamacpp() {
    // The remaining differences are quantization noise, not a model bug: with every weight
    // dequantized to f32 (CANDLE_DEQUANTIZE_ALL=1, no 8-bit activations on our side) the mean
    // |Δlp| falls to 0.040-0.050 per case, llama.cpp's own share, and our batched and
    // one-token-at-a-time runs agree exactly; in the quantized path they already differ from
    // each other by 0.04-0.07 nats on average, as much as from llama.cpp. Sliding-window and
    // cache schedules beyond these short prompts are checked exactly on a tiny model in
    // src/models/llm/gemma3.rs.
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    check_model(atelier::paths::GEMMA3_FILE, Backend::Auto);
}

/// Atelier's candle port of Gemma 3, which runs on CPUs without AVX-512 VNNI.
#[test]
fn gemma3_on_candle_matches_llamacpp() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    check_model(atelier::paths::GEMMA3_FILE, Backend::Candle);
}

/// The "before" numbers: candle-transformers' own quantized_gemma3 on the same cases.
/// Ignored (several GB of rotary tables); run with `--ignored --nocapture`.
#[test]
#[ignore]
fn gemma3_candle_original_before() {
    use candle_transformers::models::quantized_gemma3::ModelWeights;
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let file = atelier::paths::GEMMA3_FILE;
    let path = model_path(file);
    let (content, mut f, _) = gguf::open(&path).expect("open gguf");
    let device = candle_core::Device::Cpu;
    let started = Instant::now();
    let mut model = ModelWeights::from_gguf(content, &mut f, &device).expect("load");
    println!(
        "\n{file} (candle's quantized_gemma3): loaded in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    let failures = compare(file, &mut |ids: &[u32], pos| {
        // candle's model resets its cache itself when pos == 0.
        let input = candle_core::Tensor::new(ids, &device)
            .and_then(|t| t.unsqueeze(0))
            .expect("input");
        let logits = model.forward(&input, pos).expect("forward");
        logits
            .flatten_all()
            .and_then(|l| l.to_vec1::<f32>())
            .expect("logits")
    });
    println!("{} criteria failed", failures.len());
}
