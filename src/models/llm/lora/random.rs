//! Random adapters of a realistic size and magnitude for a given base model: what the
//! benchmarks (`atelier bench write --lora-rank`) and the llama.cpp round-trip tests apply.
//! Never presented as a trained adapter: it changes the model's predictions, not its voice.

use super::{BaseShapes, LoraAdapter, LoraPair, LoraTarget};

/// A random adapter of `rank` on `targets` of every layer of `base` (`alpha` = 2·rank, as
/// many PEFT recipes). A is uniform in ±1/√n_in (PEFT's initialisation of A); B is uniform in
/// ±`b_scale`, where a trained B would have grown from zero.
pub fn random_adapter(
    base: &BaseShapes,
    rank: usize,
    targets: &[LoraTarget],
    b_scale: f32,
    seed: u64,
) -> LoraAdapter {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut uniform = move || {
        // SplitMix64: deterministic, dependency-free.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let mut pairs = Vec::new();
    for (&(layer, target), &(n_out, n_in)) in &base.projections {
        if !targets.contains(&target) {
            continue;
        }
        let a_scale = 1.0 / (n_in as f32).sqrt();
        pairs.push(LoraPair {
            layer,
            target,
            rank,
            n_in,
            n_out,
            a: (0..rank * n_in).map(|_| a_scale * uniform()).collect(),
            b: (0..n_out * rank).map(|_| b_scale * uniform()).collect(),
        });
    }
    LoraAdapter {
        architecture: base.architecture.clone(),
        alpha: 2.0 * rank as f32,
        pairs,
    }
}
