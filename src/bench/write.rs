//! The Write benchmark: model load time, prompt processing and decode speed, and peak memory
//! of a local language model, measured on exactly the code path the product uses
//! ([`Llm::load`] then [`generate::generate`]).
//!
//! One call measures each model given: it loads the model once (timed), builds a
//! deterministic prompt of exactly `prompt_tokens` token ids (BOS first where the model wants
//! it, then a fixed English passage), and runs `repeats` greedy generations of exactly
//! `decode_tokens` new tokens each. The first generation after a load is reported on its own
//! (it pays one-time costs such as first-touch page faults); the headline speeds are medians
//! over the later ones.
//!
//! Peak memory is the process's high-water mark (`VmHWM`), so it is only meaningful for one
//! model per process: `benches/write.sh` runs the binary once per model per repetition and
//! compares every number with llama.cpp (`benches/llamacpp_peer.py`) on the same token ids.
//! The JSON this returns carries those ids (`prompt_ids`) so the peer can replay them.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::measure::{kib_to_mb, median, memory_kib};

use crate::models::llm::generate::{self, GenerateParams, GenerationResult, StopReason};
use crate::models::llm::lora::{AdapterSpec, BaseShapes, LoraTarget};
use crate::models::llm::{Llm, SamplingParams};

/// The passage the benchmark prompt is cut from. Plain narrative English, so both a base model
/// and an instruct model keep writing for well over 128 tokens instead of ending the text.
pub const PROMPT_TEXT: &str = "The lighthouse keeper's daughter had never seen the mainland, \
though she could name every ship that passed the point and tell, from the set of its sails, \
which harbour it had left and how long it had been at sea. Each morning she climbed the one \
hundred and twelve steps of the tower with her father, polished the great lens until it threw \
the early sun in bright bands across the whitewashed walls, and wrote the weather in a ledger \
whose first pages had been filled by her grandmother. The wind came from the west for most of \
the year, carrying salt and the cries of gulls, and in winter it brought storms that shook the \
windows in their frames and drove the spray over the gallery rail. On those nights her father \
did not sleep at all. He sat by the lamp with a pot of black tea, trimming the wick, listening \
to the sea, and she sat with him, reading aloud from the few books the supply boat had left \
them: a history of the northern kingdoms, a manual of knots, a collection of letters written \
by a botanist who had travelled the length of a great river and described every plant he found \
along its banks. She knew the letters almost by heart. She liked the botanist's patience, the \
way he would spend a whole page on the colour of a single leaf, and the way he ended every \
letter by asking his sister to water the orange tree in their courtyard. One spring the supply \
boat arrived three weeks late, and the man who stepped off it was not the old boatman but a \
young surveyor with a case of brass instruments and a letter from the harbour master. The \
letter said that a new light was to be built on the headland across the bay, a light that \
would run on electricity and need no keeper, and that the surveyor was to choose the place for \
it. Her father read the letter twice, folded it carefully, and put it in the ledger between \
the pages for March and April. Then he showed the young man to the spare room, and said \
nothing more about it that day, or the next, or for many days after that.";

/// What `atelier bench write` measures: the models, the prompt and decode lengths, and how
/// many generations to time in this process.
#[derive(Clone, Debug, PartialEq, clap::Args)]
pub struct WriteBenchArgs {
    /// GGUF model to measure (repeat the flag for several; default: the two bundled models).
    /// Peak RSS is per process, so measure one model per process to compare memory.
    #[arg(long = "model", value_name = "PATH")]
    pub models: Vec<PathBuf>,
    /// Exact number of prompt tokens processed in one forward pass (BOS included).
    #[arg(long, default_value_t = 256)]
    pub prompt_tokens: usize,
    /// Exact number of tokens generated greedily after the prompt.
    #[arg(long, default_value_t = 128)]
    pub decode_tokens: usize,
    /// Timed generations per model after one load; the first is reported separately as the
    /// cold run, the medians of the others are the headline numbers.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Print one JSON object instead of a text summary.
    #[arg(long)]
    pub json: bool,
    /// Also measure with this LoRA adapter applied (PATH[:SCALE]; it must fit every model),
    /// each generation with it right after one without, on the same loaded model.
    #[arg(long, value_name = "ADAPTER.gguf[:SCALE]", value_parser = crate::models::llm::lora::AdapterSpec::parse, conflicts_with = "lora_rank")]
    pub lora: Option<AdapterSpec>,
    /// Also measure with a random adapter of this rank on all seven projections of every
    /// layer (written to --lora-dir first, so its load is measured from a file).
    #[arg(long, value_name = "RANK")]
    pub lora_rank: Option<usize>,
    /// Where --lora-rank writes its adapters (`<model>.lora-r<RANK>.gguf`; default: a
    /// temporary folder). The llama.cpp peer loads the same files.
    #[arg(long, value_name = "DIR")]
    pub lora_dir: Option<PathBuf>,
}

impl Default for WriteBenchArgs {
    fn default() -> Self {
        Self {
            models: Vec::new(),
            prompt_tokens: 256,
            decode_tokens: 128,
            repeats: 3,
            json: false,
            lora: None,
            lora_rank: None,
            lora_dir: None,
        }
    }
}

/// Runs the Write benchmark and returns `{"bench": "write", "engine": "atelier", "results":
/// [one object per model]}`. Each result holds `load_s`, `pp_tok_s` and `tg_tok_s` (medians of
/// the warm runs), `pp_tok_s_first` and `tg_tok_s_first` (the first run after loading),
/// `peak_rss_mb` (the process's high-water mark so far), every run's timings, the exact
/// `prompt_ids` and the greedy `generated_ids`.
pub fn run_write_bench(args: &WriteBenchArgs) -> anyhow::Result<Value> {
    if args.prompt_tokens < 2 {
        bail!("--prompt-tokens must be at least 2");
    }
    if args.decode_tokens < 2 {
        bail!(
            "--decode-tokens must be at least 2 (decode speed is measured after the first token)"
        );
    }
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let models = if args.models.is_empty() {
        vec![
            crate::paths::default_model(crate::paths::SMOLLM2_FILE),
            crate::paths::default_model(crate::paths::GEMMA3_FILE),
        ]
    } else {
        args.models.clone()
    };
    let mut results = Vec::with_capacity(models.len());
    for path in &models {
        results.push(bench_model(path, args)?);
    }
    Ok(json!({
        "bench": "write",
        "engine": "atelier",
        "version": env!("CARGO_PKG_VERSION"),
        "results": results,
    }))
}

/// One model: load, build the prompt, time `args.repeats` generations.
fn bench_model(path: &std::path::Path, args: &WriteBenchArgs) -> anyhow::Result<Value> {
    if !path.exists() {
        bail!(
            "model file {} does not exist (fetch the defaults with {})",
            path.display(),
            crate::paths::FETCH_COMMAND
        );
    }
    let baseline = memory_kib("VmHWM:");
    let started = Instant::now();
    let mut llm = Llm::load(path).with_context(|| format!("cannot load {}", path.display()))?;
    let load_s = started.elapsed().as_secs_f64();
    let rss_after_load = memory_kib("VmRSS:");
    let peak_after_load = memory_kib("VmHWM:");

    let prompt = prompt_ids(&llm, args.prompt_tokens)?;
    let needed = prompt.len() + args.decode_tokens;
    if needed > llm.model.context_length() {
        bail!(
            "{} prompt + decode tokens do not fit the model's {}-token context",
            needed,
            llm.model.context_length()
        );
    }
    let params = GenerateParams {
        sampling: SamplingParams::greedy(),
        max_new_tokens: args.decode_tokens,
        logprobs: 0,
    };
    let adapter = bench_adapter(path, args)?;
    let adapter_load_s = match &adapter {
        Some(spec) => {
            let started = Instant::now();
            let adapted = Llm::load_with_adapter(path, Some(spec))
                .with_context(|| format!("cannot load {} with its adapter", path.display()))?;
            let s = started.elapsed().as_secs_f64();
            drop(adapted);
            Some(s)
        }
        None => None,
    };
    let cancel = AtomicBool::new(false);
    let mut runs = Vec::with_capacity(args.repeats);
    let mut lora_runs = Vec::with_capacity(args.repeats);
    let mut generated_ids: Vec<u32> = Vec::new();
    let mut lora_ids: Vec<u32> = Vec::new();
    for i in 0..args.repeats {
        for with_adapter in [false, true] {
            if with_adapter && adapter.is_none() {
                continue;
            }
            let spec = adapter.as_ref().filter(|_| with_adapter);
            llm.set_adapter(spec)
                .with_context(|| format!("cannot apply the adapter to {}", path.display()))?;
            let result = generate::generate(&mut llm, &prompt, &params, &cancel, &mut |_tok| {})
                .with_context(|| format!("generation failed on {}", path.display()))?;
            check_complete(&result, args.decode_tokens, path)?;
            let ids: Vec<u32> = result.tokens.iter().map(|t| t.id).collect();
            let (first, runs) = if with_adapter {
                (&mut lora_ids, &mut lora_runs)
            } else {
                (&mut generated_ids, &mut runs)
            };
            if i == 0 {
                *first = ids;
            } else if ids != *first {
                // Greedy decoding of the same prompt must be reproducible.
                bail!(
                    "{}: greedy run {} produced different tokens than run 1",
                    path.display(),
                    i + 1
                );
            }
            runs.push(run_json(&result));
        }
    }
    let peak = memory_kib("VmHWM:");

    let warm: &[Value] = if runs.len() > 1 { &runs[1..] } else { &runs };
    let pick = |rs: &[Value], key: &str| -> Vec<f64> {
        rs.iter().filter_map(|r| r[key].as_f64()).collect()
    };
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lora = adapter.as_ref().map(|spec| {
        let lora_warm: &[Value] = if lora_runs.len() > 1 {
            &lora_runs[1..]
        } else {
            &lora_runs
        };
        let tg = median(&pick(lora_warm, "tg_tok_s"));
        json!({
            "path": spec.path.display().to_string(),
            "scale": spec.scale,
            "applied": llm.info.adapter,
            "load_s": adapter_load_s,
            "pp_tok_s": median(&pick(lora_warm, "pp_tok_s")),
            "tg_tok_s": tg,
            "ttft_ms": median(&pick(lora_warm, "ttft_ms")),
            "tg_ratio": tg / median(&pick(warm, "tg_tok_s")),
            "runs": lora_runs,
            "generated_ids": lora_ids,
        })
    });
    Ok(json!({
        "lora": lora,
        "engine": "atelier",
        "model": file,
        "model_path": path.display().to_string(),
        "model_name": llm.info.name,
        "architecture": llm.info.architecture,
        "backend": llm.info.backend,
        "threads": candle_core::utils::get_num_threads(),
        "prompt_tokens": prompt.len(),
        "decode_tokens": args.decode_tokens,
        "repeats": args.repeats,
        "load_s": load_s,
        "pp_tok_s": median(&pick(warm, "pp_tok_s")),
        "tg_tok_s": median(&pick(warm, "tg_tok_s")),
        "ttft_ms": median(&pick(warm, "ttft_ms")),
        "pp_tok_s_first": runs[0]["pp_tok_s"],
        "tg_tok_s_first": runs[0]["tg_tok_s"],
        "baseline_rss_mb": baseline.map(kib_to_mb),
        "rss_after_load_mb": rss_after_load.map(kib_to_mb),
        "peak_rss_after_load_mb": peak_after_load.map(kib_to_mb),
        "peak_rss_mb": peak.map(kib_to_mb),
        "runs": runs,
        "prompt_ids": prompt,
        "generated_ids": generated_ids,
    }))
}

/// The adapter to measure `path` with: `--lora`, or a random one of `--lora-rank` written to
/// `--lora-dir` (or a temporary folder that lives as long as the process).
fn bench_adapter(
    path: &std::path::Path,
    args: &WriteBenchArgs,
) -> anyhow::Result<Option<AdapterSpec>> {
    if let Some(spec) = &args.lora {
        return Ok(Some(spec.clone()));
    }
    let Some(rank) = args.lora_rank else {
        return Ok(None);
    };
    if rank == 0 || rank > crate::models::llm::lora::MAX_RANK {
        bail!(
            "--lora-rank must be from 1 to {}",
            crate::models::llm::lora::MAX_RANK
        );
    }
    let dir = match &args.lora_dir {
        Some(d) => d.clone(),
        None => {
            static TEMP: std::sync::OnceLock<Option<tempfile::TempDir>> =
                std::sync::OnceLock::new();
            TEMP.get_or_init(|| tempfile::tempdir().ok())
                .as_ref()
                .map(|t| t.path().to_path_buf())
                .context("cannot create a temporary folder for the adapter")?
        }
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = dir.join(format!("{stem}.lora-r{rank}.gguf"));
    let (content, _, _) = crate::models::llm::gguf::open(path)?;
    let adapter = crate::models::llm::lora::random::random_adapter(
        &BaseShapes::from_content(&content),
        rank,
        &LoraTarget::ALL,
        0.02,
        1,
    );
    crate::models::llm::lora::gguf::write(&file, &adapter)?;
    Ok(Some(AdapterSpec {
        path: file,
        scale: 1.0,
    }))
}

/// The benchmark prompt: BOS where the model wants it, then the fixed passage (repeated if
/// the tokenizer needs more text), cut to exactly `n` ids.
pub fn prompt_ids(llm: &Llm, n: usize) -> anyhow::Result<Vec<u32>> {
    let mut ids = match (llm.tokenizer.add_bos(), llm.tokenizer.bos_id()) {
        (true, Some(b)) => vec![b],
        _ => Vec::new(),
    };
    let mut text = String::from(PROMPT_TEXT);
    let body = loop {
        let body = llm
            .tokenizer
            .encode(&text, false)
            .context("cannot tokenize the benchmark prompt")?;
        if ids.len() + body.len() >= n {
            break body;
        }
        if text.len() > 64 * PROMPT_TEXT.len() {
            bail!("the benchmark passage does not reach {n} tokens with this tokenizer");
        }
        text.push_str("\n\n");
        text.push_str(PROMPT_TEXT);
    };
    let room = n - ids.len();
    ids.extend_from_slice(&body[..room]);
    Ok(ids)
}

/// A decode speed over fewer tokens than asked is not comparable: refuse it.
fn check_complete(
    result: &GenerationResult,
    wanted: usize,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let got = result.stats.generated_tokens;
    if got != wanted || result.stop != StopReason::MaxTokens {
        bail!(
            "{}: greedy decoding stopped after {got} of {wanted} tokens ({:?}); the benchmark \
             needs a prompt the model keeps continuing, so change PROMPT_TEXT in src/bench.rs",
            path.display(),
            result.stop
        );
    }
    Ok(())
}

/// One generation's timings, with the names the llama.cpp peer uses too.
fn run_json(r: &GenerationResult) -> Value {
    let s = &r.stats;
    let decode_s = if s.decode_tokens_per_s > 0.0 {
        (s.generated_tokens.saturating_sub(1)) as f64 / s.decode_tokens_per_s
    } else {
        0.0
    };
    json!({
        "prompt_s": s.prompt_seconds,
        "pp_tok_s": s.prompt_tokens_per_s,
        "ttft_ms": s.time_to_first_token_ms,
        "decode_s": decode_s,
        "tg_tok_s": s.decode_tokens_per_s,
        "generated": s.generated_tokens,
        "total_s": s.total_seconds,
    })
}

/// A human summary of [`run_write_bench`]'s result, one block per model.
pub fn summary_text(v: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    for r in v["results"].as_array().unwrap_or(&empty) {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        out.push_str(&format!(
            "{} ({}, {}, {} threads)\n  load           {:8.3} s\n  prompt ({:>4})  {:8.1} tok/s  (first run {:.1})\n  decode ({:>4})  {:8.1} tok/s  (first run {:.1})\n  peak RSS       {:8.1} MB\n",
            r["model"].as_str().unwrap_or("?"),
            r["architecture"].as_str().unwrap_or("?"),
            r["backend"].as_str().unwrap_or("?"),
            r["threads"],
            f("load_s"),
            r["prompt_tokens"],
            f("pp_tok_s"),
            f("pp_tok_s_first"),
            r["decode_tokens"],
            f("tg_tok_s"),
            f("tg_tok_s_first"),
            f("peak_rss_mb"),
        ));
        if r["lora"].is_object() {
            let l = &r["lora"];
            let g = |k: &str| l[k].as_f64().unwrap_or(f64::NAN);
            out.push_str(&format!(
                "  with adapter {}\n    load         {:8.3} s\n    prompt       {:8.1} tok/s\n    decode       {:8.1} tok/s  ({:.3}x without)\n",
                l["path"].as_str().unwrap_or("?"),
                g("load_s"),
                g("pp_tok_s"),
                g("tg_tok_s"),
                g("tg_ratio"),
            ));
        }
    }
    out
}
