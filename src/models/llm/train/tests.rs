//! The whole training pass against finite differences of its own loss, on the tiny random
//! Llama and Gemma 3 models of `tests/fixtures/train/` (f32 GGUFs), with every projection
//! adapted and B random so every gradient is non-zero. The per-op tests sit next to the ops.

use rand::SeedableRng;

use super::{AdamW, AdamWConfig, Lora, TrainModel, Workspace};
use crate::long_job::Stopped;
use crate::models::llm::lora::LoraTarget;
use crate::models::llm::native::tests::Lcg;

fn go() -> Result<(), Stopped> {
    Ok(())
}

pub(crate) fn tiny(name: &str) -> TrainModel {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/train")
        .join(format!("tiny_{name}.gguf"));
    TrainModel::load(&path).expect("tiny model")
}

fn random_lora(model: &TrainModel, seed: u64) -> Lora {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let lora = Lora::new(model, 3, 6.0, &LoraTarget::ALL, &mut rng).expect("lora");
    let mut adapter = lora.adapter().clone();
    let mut lcg = Lcg(seed);
    for p in &mut adapter.pairs {
        p.b = lcg.vec(p.b.len(), 0.3, 0.0);
    }
    Lora::from_adapter(model, adapter).expect("lora")
}

fn tokens(model: &TrainModel, n: usize, seed: u64) -> Vec<u32> {
    Lcg(seed)
        .vec(n, 0.5, 0.5)
        .iter()
        .map(|v| ((v * model.vocab() as f32) as u32).min(model.vocab() as u32 - 1))
        .collect()
}

#[test]
fn gradients_match_finite_differences() {
    for name in ["llama", "gemma3"] {
        let model = tiny(name);
        let lora = random_lora(&model, 5);
        let toks = tokens(&model, 2 * 9, 3);
        let mut ws = Workspace::default();
        let mut grads = lora.zero_grads();
        let loss = model
            .loss_and_grads(&lora, &toks, 2, &mut grads, &mut ws, &go)
            .expect("pass");
        let (sum, n) = model
            .eval_loss(Some(&lora), &toks, 2, &mut ws, &go)
            .expect("eval");
        assert!(
            (loss - sum / n as f64).abs() < 1e-6,
            "{loss} vs {}",
            sum / n as f64
        );
        let h = 2e-2f32;
        let mut checked = 0;
        for (i, pair) in lora.adapter().pairs.iter().enumerate() {
            for (which, len) in [("a", pair.a.len()), ("b", pair.b.len())] {
                // A few entries of every A and B, spread over the matrix.
                for j in [0, len / 3, len - 1] {
                    let at = |delta: f32| {
                        let mut adapter = lora.adapter().clone();
                        let p = &mut adapter.pairs[i];
                        let v = if which == "a" { &mut p.a } else { &mut p.b };
                        v[j] += delta;
                        let l = Lora::from_adapter(&model, adapter).expect("lora");
                        let (s, n) = model
                            .eval_loss(Some(&l), &toks, 2, &mut Workspace::default(), &go)
                            .expect("eval");
                        s / n as f64
                    };
                    let numeric = (at(h) - at(-h)) / (2.0 * h as f64);
                    let g = if which == "a" {
                        &grads.a[i]
                    } else {
                        &grads.b[i]
                    };
                    let analytic = g[j] as f64;
                    let tol = 2e-3 + 2e-2 * numeric.abs();
                    assert!(
                        (analytic - numeric).abs() < tol,
                        "{name} layer {} {:?} {which}[{j}]: analytic {analytic} vs numeric {numeric}",
                        pair.layer,
                        pair.target
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 2 * 7 * 2 * 3);
    }
}

#[test]
fn a_fresh_adapter_leaves_the_model_unchanged_and_training_lowers_the_loss() {
    for name in ["llama", "gemma3"] {
        let model = tiny(name);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut lora = Lora::new(&model, 4, 8.0, &LoraTarget::ALL, &mut rng).expect("lora");
        let toks = tokens(&model, 3 * 10, 8);
        let mut ws = Workspace::default();
        let base = model.eval_loss(None, &toks, 3, &mut ws, &go).expect("eval");
        let with = model
            .eval_loss(Some(&lora), &toks, 3, &mut ws, &go)
            .expect("eval");
        assert_eq!(base, with, "B = 0 must not change anything");
        let mut opt = AdamW::new(
            AdamWConfig {
                lr: 1e-2,
                ..AdamWConfig::default()
            },
            &lora,
        );
        let mut grads = lora.zero_grads();
        let first = model
            .loss_and_grads(&lora, &toks, 3, &mut grads, &mut ws, &go)
            .expect("pass");
        let mut last = first;
        for _ in 0..20 {
            grads.clear();
            last = model
                .loss_and_grads(&lora, &toks, 3, &mut grads, &mut ws, &go)
                .expect("pass");
            opt.update(&mut lora, &grads);
        }
        assert!(last < first * 0.9, "{name}: {first} -> {last}");
        let logits = model
            .next_logits(Some(&lora), &toks[..10], &mut ws, &go)
            .expect("logits");
        assert_eq!(logits.len(), model.vocab());
    }
}

#[test]
fn bad_batches_and_tokens_are_refused() {
    let model = tiny("llama");
    let mut ws = Workspace::default();
    let bad = model.eval_loss(None, &[1, 2, 3], 2, &mut ws, &go);
    assert!(matches!(bad, Err(super::Interrupted::BadBatch { .. })));
    let bad = model.eval_loss(None, &[1, 100_000], 1, &mut ws, &go);
    assert!(matches!(
        bad,
        Err(super::Interrupted::BadToken { id: 100_000, .. })
    ));
    let stop = || Err(Stopped);
    let bad = model.eval_loss(None, &[1, 2], 1, &mut ws, &stop);
    assert_eq!(bad, Err(super::Interrupted::Stopped));
}
