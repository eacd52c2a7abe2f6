//! The random numbers of training, explicit and reproducible: a ChaCha8 generator per purpose
//! and step (`seed`, `stream`), so a resumed run draws exactly what an uninterrupted one would
//! without saving any generator state, and the draws do not depend on the thread count.
//!
//! Normal values use the same Box–Muller construction as the Faces panel's seeds
//! ([`crate::features::faces::latent_for_seed`]), so both are defined by this file alone, independent of
//! any distribution crate's algorithm.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A deterministic random generator.
#[derive(Clone, Debug)]
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// `ChaCha8Rng::seed_from_u64(seed)` (rand_chacha 0.9) on stream 0: what
    /// [`crate::features::faces::latent_for_seed`] uses.
    pub fn from_seed(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// The generator for one purpose (`stream`) of a run seeded with `seed`: streams are
    /// independent sequences of the same key.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(stream);
        Self(r)
    }

    /// A uniform value in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `0..n` (0 when `n` is 0), without modulo bias worth speaking of
    /// (53 random bits scaled).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n.saturating_sub(1))
    }

    /// A uniform integer in `lo..=hi`.
    pub fn range_inclusive(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1).max(1) as usize) as i64
    }
}

/// Fills `out` with independent standard normal values: for each pair, two uniforms `u₁, u₂`
/// ([`Rng::uniform`]) become `r·cos θ, r·sin θ` with `r = √(−2 ln(1 − u₁))`, `θ = 2π u₂`, in
/// f64 rounded to f32 (an odd last value drops its sine).
pub fn fill_normal(rng: &mut Rng, out: &mut [f32]) {
    let mut chunks = out.chunks_mut(2);
    for pair in &mut chunks {
        // 1 − u₁ lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - rng.uniform();
        let u2 = rng.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        pair[0] = (r * theta.cos()) as f32;
        if let Some(second) = pair.get_mut(1) {
            *second = (r * theta.sin()) as f32;
        }
    }
}

/// `n` values drawn from N(mean, std²) with [`fill_normal`].
pub fn normal(rng: &mut Rng, n: usize, mean: f32, std: f32) -> Vec<f32> {
    let mut v = vec![0f32; n];
    fill_normal(rng, &mut v);
    v.iter_mut().for_each(|x| *x = mean + std * *x);
    v
}

/// A permutation of `0..n` (Fisher–Yates).
pub fn permutation(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i + 1);
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_and_repeat() {
        let mut a = Rng::for_stream(7, 1);
        let mut b = Rng::for_stream(7, 2);
        let mut a2 = Rng::for_stream(7, 1);
        let (x, y, z) = (a.uniform(), b.uniform(), a2.uniform());
        assert_ne!(x, y);
        assert_eq!(x, z);
        let mut v = vec![0f32; 10_001];
        fill_normal(&mut Rng::from_seed(3), &mut v);
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        let mut p = permutation(&mut Rng::from_seed(1), 50);
        p.sort_unstable();
        assert_eq!(p, (0..50).collect::<Vec<_>>());
        for _ in 0..100 {
            let r = a.range_inclusive(-8, 8);
            assert!((-8..=8).contains(&r));
        }
    }
}
