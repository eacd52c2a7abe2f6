//! Fine-tuning a language model with LoRA (`atelier train write`).
//!
//! - One LoRA step on tiny random Llama and Gemma 3 models equals PyTorch + PEFT's (float64;
//!   `tests/fixtures/train/`, made by `scripts/fixtures/train_write_step.py`): the loss, the
//!   logits, every gradient of A and B, and A and B after one and two AdamW steps.

use atelier::models::llm::lora::{LoraAdapter, LoraPair, LoraTarget};
use atelier::models::llm::train::{AdamW, AdamWConfig, Lora, TrainModel, Workspace};
use serde_json::Value;

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
    for step in 0..2 {
        grads.clear();
        let loss = model
            .loss_and_grads(&lora, &flat, seqs, &mut grads, &mut ws, &go)
            .expect("pass");
        let dl = (loss - want_loss[step] as f64).abs();
        assert!(
            dl < 1e-4,
            "{name} step {step}: loss {loss} vs {}",
            want_loss[step]
        );
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
