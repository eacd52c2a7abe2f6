//! A stable-toolchain fuzz smoke run for every reader of user files (the same entry points as
//! the cargo-fuzz targets in `fuzz/`, see `atelier::fuzzing`): seed files — the real models,
//! the built-in picture, a small safetensors file — are mutated deterministically (bit flips,
//! interesting values, truncation, splices, inserted bytes) and each mutant must be refused or
//! accepted without a panic. A failure prints the seed and the mutation so it can be replayed.
//!
//! Regression inputs for crashes found by fuzzing go in `regressions` below.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use atelier::fuzzing;
use atelier::models::llm::Architecture;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Mutants per seed file (CI); `ATELIER_FUZZ_SECONDS=N` runs each seed for N seconds instead.
const ROUNDS: usize = 150;

fn budget() -> Option<std::time::Duration> {
    std::env::var("ATELIER_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(std::time::Duration::from_secs_f64)
}

fn mutate(seed: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    let edits = rng.random_range(1..=8);
    for _ in 0..edits {
        if data.is_empty() {
            data.push(rng.random());
            continue;
        }
        // Header bytes matter most: aim half the edits at the first 4 KiB.
        let limit = if rng.random_bool(0.5) {
            data.len().min(4096)
        } else {
            data.len()
        };
        let at = rng.random_range(0..limit);
        match rng.random_range(0..6) {
            0 => data[at] ^= 1 << rng.random_range(0..8),
            1 => data[at] = [0x00, 0x7f, 0x80, 0xff][rng.random_range(0..4)],
            2 => {
                let n = rng.random_range(1..=8).min(data.len() - at);
                for b in &mut data[at..at + n] {
                    *b = 0xff;
                }
            }
            3 => data.truncate(at),
            4 => {
                let bytes: Vec<u8> = (0..rng.random_range(1..32)).map(|_| rng.random()).collect();
                data.splice(at..at, bytes);
            }
            _ => {
                // Copy a chunk of the file elsewhere (repeated structures, bad offsets).
                let from = rng.random_range(0..data.len());
                let n = rng.random_range(1..64).min(data.len() - from);
                let chunk = data[from..from + n].to_vec();
                let end = (at + n).min(data.len());
                data.splice(at..end, chunk);
            }
        }
    }
    data
}

/// Runs `target` on `ROUNDS` mutants of `seed`; fails naming the first mutant that panicked.
fn fuzz(name: &str, seed: &[u8], target: fn(&[u8]) -> bool) {
    let mut rng = ChaCha8Rng::seed_from_u64(0xA7E1_1E12);
    assert!(
        catch_unwind(|| target(seed)).is_ok(),
        "{name}: the unmodified seed panics"
    );
    let mut accepted = 0;
    let started = std::time::Instant::now();
    let budget = budget();
    let mut round = 0;
    while budget.map_or(round < ROUNDS, |b| started.elapsed() < b) {
        round += 1;
        let data = mutate(seed, &mut rng);
        match catch_unwind(AssertUnwindSafe(|| target(&data))) {
            Ok(ok) => accepted += ok as usize,
            Err(_) => {
                let dump = std::env::temp_dir().join(format!("atelier-fuzz-{name}-{round}.bin"));
                let _ = std::fs::write(&dump, &data);
                panic!(
                    "{name}: mutant {round} panicked; input saved to {}",
                    dump.display()
                );
            }
        }
    }
    eprintln!(
        "{name}: {round} mutants in {:.0} s, {accepted} accepted, none panicked",
        started.elapsed().as_secs_f64()
    );
}

fn models() -> PathBuf {
    atelier::paths::models_dir()
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn gguf_and_tokenizer() {
    // The first megabytes hold the header, the metadata (the whole vocabulary) and the tensor
    // table: the tokenizer builder runs on them (see `fuzzing::gguf`).
    let seed = read(models().join(atelier::paths::SMOLLM2_FILE));
    let head = seed[..(2 << 20).min(seed.len())].to_vec();
    assert!(fuzzing::gguf(&head), "the tokenizer builds from the seed");
    fuzz("gguf-smollm2-head", &head, fuzzing::gguf);
    // Gemma's 262k-token vocabulary (SentencePiece with scores) needs a longer head.
    let gemma = read(models().join(atelier::paths::GEMMA3_FILE));
    let head = &gemma[..(8 << 20).min(gemma.len())];
    assert!(
        fuzzing::gguf(head),
        "the Gemma tokenizer builds from the seed"
    );
    fuzz("gguf-gemma3-head", head, fuzzing::gguf);
}

#[test]
fn gguf_model_loading_and_generation() {
    // Whole small models, so mutants reach hyperparameter checks, both implementations'
    // loaders and a few tokens of generation (see `fuzzing::run_model`).
    for arch in [Architecture::Llama, Architecture::Gemma3] {
        let seed = fuzzing::tiny_gguf(arch, |_| {}).expect("tiny model");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.gguf");
        std::fs::write(&path, &seed).unwrap();
        assert!(fuzzing::run_model(&path), "{arch:?}: the seed loads");
        fuzz(
            &format!("gguf-tiny-{}", arch.gguf_name()),
            &seed,
            fuzzing::gguf,
        );
    }
}

/// Writes the tiny model seeds of the cargo-fuzz `gguf` target (committed in
/// `fuzz/corpus/gguf/`): `cargo test --test fuzz_smoke -- --ignored write_tiny_model_seeds`.
#[test]
#[ignore = "writes fuzz seeds into the source tree"]
fn write_tiny_model_seeds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/gguf");
    for arch in [Architecture::Llama, Architecture::Gemma3] {
        let seed = fuzzing::tiny_gguf(arch, |_| {}).expect("tiny model");
        std::fs::write(dir.join(format!("tiny-{}.gguf", arch.gguf_name())), seed).unwrap();
    }
}

#[test]
fn chat_templates() {
    // Real templates (ChatML, Llama 3, Gemma 3) and a hostile one; every mutant must render
    // or fail within the fuel and output bounds.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/chat_template");
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("template seeds")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    seeds.sort();
    for path in seeds {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        fuzz(
            &format!("template-{name}"),
            &read(path),
            fuzzing::chat_template,
        );
    }
}

#[test]
fn pickle_and_checkpoint() {
    let tar = read(atelier::features::faces::default_model());
    // The pickle inside the zip.
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&tar)).expect("checkpoint is a zip");
    let name = zip
        .file_names()
        .filter_map(Result::ok)
        .find(|n| n.ends_with("data.pkl"))
        .expect("data.pkl")
        .to_string();
    let mut pkl = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name(&name).unwrap(), &mut pkl).unwrap();
    fuzz("pickle", &pkl, fuzzing::pickle);
    fuzz("checkpoint", &tar, fuzzing::checkpoint);
}

#[test]
fn onnx() {
    let seed = read(models().join(atelier::models::stylenet::MULTISTYLE_FILE));
    fuzz("onnx-multistyle26", &seed, fuzzing::onnx);
}

#[test]
fn safetensors() {
    let mut tensors = std::collections::BTreeMap::new();
    tensors.insert("main.0.weight".to_string(), (vec![2, 3], vec![0.5f32; 6]));
    tensors.insert(
        "main.1.running_mean".to_string(),
        (vec![3], vec![1.0f32; 3]),
    );
    let seed = atelier::models::state_dict::to_safetensors(&tensors);
    assert!(fuzzing::safetensors(&seed), "the seed loads");
    fuzz("safetensors", &seed, fuzzing::safetensors);
}

#[test]
fn images() {
    let png = read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/style/chelsea_256.png"));
    fuzz("png", &png, fuzzing::image);
    for name in ["rocket.jpg", "logo.png"] {
        let p = models().join("images").join(name);
        if p.is_file() {
            fuzz(name, &read(p), fuzzing::image);
        }
    }
}

/// Inputs that crashed a reader once (from fuzzing); each must now be refused cleanly.
#[test]
fn regressions() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let target: fn(&[u8]) -> bool = match path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('-').next())
        {
            Some("gguf") => fuzzing::gguf,
            Some("pickle") => fuzzing::pickle,
            Some("checkpoint") => fuzzing::checkpoint,
            Some("safetensors") => fuzzing::safetensors,
            Some("onnx") => fuzzing::onnx,
            Some("image") => fuzzing::image,
            Some("chat_template") => fuzzing::chat_template,
            _ => continue,
        };
        let data = read(path.clone());
        assert!(
            catch_unwind(AssertUnwindSafe(|| target(&data))).is_ok(),
            "{} panics again",
            path.display()
        );
    }
}
