//! Choosing the next token from the model's logits.
//!
//! The chain follows llama.cpp's default order so settings mean the same thing in both:
//! repetition penalty → top-k → top-p → min-p → temperature → draw. Temperature 0 is greedy
//! (argmax after the penalty). Draws use a seeded ChaCha8 stream, so the same seed, settings and
//! model give the same text on every run and platform.

use rand::{Rng, SeedableRng};

use super::native::ops;
use rand_chacha::ChaCha8Rng;

/// How the next token is chosen. Defaults are the ones the Write panel shows.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Softmax temperature; 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 disables.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probabilities add up to p; 1 disables.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one; 0 disables.
    pub min_p: f32,
    /// Penalty on tokens seen in the last `repeat_last_n` tokens; 1 disables.
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    pub repeat_last_n: usize,
    /// Seed of the random stream.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            seed: 42,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding with no penalties: what the reference comparisons use.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            seed: 0,
        }
    }

    /// Checks the ranges; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(format!(
                "temperature must be 0 or more (got {})",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top-p must be in (0, 1] (got {})", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(format!("min-p must be in [0, 1] (got {})", self.min_p));
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return Err(format!(
                "repeat penalty must be above 0 (got {})",
                self.repeat_penalty
            ));
        }
        Ok(())
    }
}

/// A seeded sampler. One per generated candidate.
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler drawing from `params.seed`.
    pub fn new(params: SamplingParams) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(params.seed);
        Self { params, rng }
    }

    /// Picks the next token. `history` is every token so far (prompt and generated).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let mut logits = logits.to_vec();
        let window = history.len().saturating_sub(self.params.repeat_last_n);
        apply_repeat_penalty(&mut logits, &history[window..], self.params.repeat_penalty);
        if self.params.temperature <= 0.0 {
            return argmax(&logits);
        }
        let cands = filter_candidates(&logits, &self.params);
        // Temperature after the filters, as llama.cpp does.
        let t = self.params.temperature;
        let max = cands
            .iter()
            .map(|&(_, l)| l)
            .fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f64> = cands
            .iter()
            .map(|&(_, l)| (((l - max) / t) as f64).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return cands.first().map(|&(id, _)| id).unwrap_or(0);
        }
        let mut r = self.rng.random::<f64>() * total;
        for (&(id, _), w) in cands.iter().zip(&weights) {
            if r < *w {
                return id;
            }
            r -= w;
        }
        cands.last().map(|&(id, _)| id).unwrap_or(0)
    }
}

/// llama.cpp's repetition penalty: a seen token's positive logit is divided by the penalty,
/// a negative one multiplied, so it always becomes less likely.
pub fn apply_repeat_penalty(logits: &mut [f32], recent: &[u32], penalty: f32) {
    if penalty == 1.0 || recent.is_empty() {
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(recent.len());
    for &id in recent {
        if !seen.insert(id) {
            continue;
        }
        if let Some(l) = logits.get_mut(id as usize) {
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

/// The candidates that survive top-k, top-p and min-p, most likely first, as
/// `(token id, logit)`. Never empty for a non-empty, finite vocabulary.
pub fn filter_candidates(logits: &[f32], p: &SamplingParams) -> Vec<(u32, f32)> {
    let mut cands: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.is_nan())
        .map(|(i, &l)| (i as u32, l))
        .collect();
    let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if p.top_k > 0 && p.top_k < cands.len() {
        // Partial selection keeps this O(vocab) on 262k-token vocabularies.
        cands.select_nth_unstable_by(p.top_k - 1, by_logit);
        cands.truncate(p.top_k);
    }
    cands.sort_unstable_by(by_logit);
    if cands.is_empty() {
        return cands;
    }
    let max = cands[0].1;
    let probs: Vec<f64> = cands
        .iter()
        .map(|&(_, l)| ((l - max) as f64).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    let mut keep = cands.len();
    if p.top_p < 1.0 {
        let mut acc = 0.0;
        for (i, pr) in probs.iter().enumerate() {
            acc += pr / total;
            if acc >= p.top_p as f64 {
                keep = i + 1;
                break;
            }
        }
    }
    if p.min_p > 0.0 {
        // probs[0] is the most likely token's unnormalised probability (= 1).
        let floor = p.min_p as f64 * probs[0];
        let above = probs.iter().take_while(|&&pr| pr >= floor).count().max(1);
        keep = keep.min(above);
    }
    cands.truncate(keep.max(1));
    cands
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as u32
}

/// `log(sum(exp(logits)))`, ignoring non-finite logits. Runs once per generated token over
/// the whole vocabulary (262,144 entries for Gemma 3), so it uses the vectorized `exp` and
/// sums in f64 per chunk.
pub fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits
        .iter()
        .copied()
        .filter(|l| l.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return f64::NEG_INFINITY;
    }
    let mut total = 0f64;
    for chunk in logits.chunks(1024) {
        let mut part = 0f32;
        for &l in chunk {
            part += if l.is_finite() {
                ops::exp(l - max)
            } else {
                0.0
            };
        }
        total += part as f64;
    }
    total.ln() + max as f64
}

/// The chosen token's log-probability and the `k` most likely tokens as `(id, logprob)`, most
/// likely first (ties by id), in one pass without materializing the distribution.
pub fn logprob_and_top(logits: &[f32], id: u32, k: usize) -> (f64, Vec<(u32, f64)>) {
    let lse = log_sum_exp(logits);
    let logprob = logits
        .get(id as usize)
        .map_or(f64::NEG_INFINITY, |&l| l as f64 - lse);
    let mut top: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    if k > 0 {
        for (i, &l) in logits.iter().enumerate() {
            if l.is_nan() || (top.len() == k && l <= top[k - 1].1) {
                continue;
            }
            let at = top.partition_point(|&(_, t)| t >= l);
            top.insert(at, (i as u32, l));
            top.truncate(k);
        }
    }
    let top = top.into_iter().map(|(i, l)| (i, l as f64 - lse)).collect();
    (logprob, top)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(c: &[(u32, f32)]) -> Vec<u32> {
        c.iter().map(|&(i, _)| i).collect()
    }

    fn off() -> SamplingParams {
        SamplingParams {
            temperature: 1.0,
            ..SamplingParams::greedy()
        }
    }

    // Hand-made logits whose softmax is exactly [0.5, 0.25, 0.125, 0.0625, 0.0625].
    fn logits() -> Vec<f32> {
        [0.5f32, 0.25, 0.125, 0.0625, 0.0625]
            .iter()
            .map(|p| p.ln())
            .collect()
    }

    #[test]
    fn top_k_keeps_k_most_likely() {
        let l = vec![0.1, 3.0, 2.0, -1.0, 2.5];
        let p = SamplingParams { top_k: 2, ..off() };
        assert_eq!(ids(&filter_candidates(&l, &p)), vec![1, 4]);
        let p = SamplingParams { top_k: 0, ..off() };
        assert_eq!(ids(&filter_candidates(&l, &p)), vec![1, 4, 2, 0, 3]);
    }

    #[test]
    fn top_p_keeps_smallest_set_reaching_p() {
        let l = logits();
        let p = SamplingParams {
            top_p: 0.75,
            ..off()
        };
        assert_eq!(ids(&filter_candidates(&l, &p)), vec![0, 1]);
        let p = SamplingParams {
            top_p: 0.76,
            ..off()
        };
        assert_eq!(ids(&filter_candidates(&l, &p)), vec![0, 1, 2]);
        let p = SamplingParams {
            top_p: 0.4,
            ..off()
        };
        assert_eq!(ids(&filter_candidates(&l, &p)), vec![0]);
    }

    #[test]
    fn min_p_drops_tokens_below_fraction_of_best() {
        let l = logits();
        // 0.25 / 0.5 = 0.5 >= 0.45 stays; 0.125 / 0.5 = 0.25 goes.
        let p = SamplingParams {
            min_p: 0.45,
            ..off()
        };
        assert_eq!(ids(&filter_candidates(&l, &p)), vec![0, 1]);
        let p = SamplingParams {
            min_p: 0.2,
            ..off()
        };
        assert_eq!(ids(&filter_candidates(&l, &p)), vec![0, 1, 2]);
    }

    #[test]
    fn filters_compose_and_never_empty() {
        let l = logits();
        let p = SamplingParams {
            top_k: 3,
            top_p: 0.1,
            min_p: 0.9,
            ..off()
        };
        assert_eq!(ids(&filter_candidates(&l, &p)), vec![0]);
    }

    #[test]
    fn repeat_penalty_makes_seen_tokens_less_likely() {
        let mut l = vec![2.0, -2.0, 1.0];
        apply_repeat_penalty(&mut l, &[0, 1, 0], 2.0);
        assert_eq!(l, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn greedy_is_argmax_and_seeded_draws_repeat() {
        let l = vec![0.0, 1.0, 0.9, 0.2];
        let mut g = Sampler::new(SamplingParams::greedy());
        assert_eq!(g.sample(&l, &[]), 1);
        let params = SamplingParams {
            temperature: 1.5,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..SamplingParams::default()
        };
        let draw = |seed| {
            let mut s = Sampler::new(SamplingParams {
                seed,
                ..params.clone()
            });
            (0..64).map(|_| s.sample(&l, &[])).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        // Every token is reachable at a high temperature.
        let seen: std::collections::HashSet<_> = draw(7).into_iter().collect();
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn logprob_and_top_match_the_distribution() {
        let (lp, top) = logprob_and_top(&logits(), 0, 2);
        assert!((lp - 0.5f64.ln()).abs() < 1e-6);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![0, 1]);
        assert!((top[0].1 - lp).abs() < 1e-12);
        // Ties keep the lower id first; k larger than the vocabulary returns everything.
        let (_, top) = logprob_and_top(&[1.0, 2.0, 2.0, f32::NEG_INFINITY], 3, 9);
        assert_eq!(
            top.iter().map(|t| t.0).collect::<Vec<_>>(),
            vec![1, 2, 0, 3]
        );
    }

    #[test]
    fn validate_names_the_setting() {
        let p = SamplingParams {
            top_p: 0.0,
            ..SamplingParams::default()
        };
        assert!(p.validate().unwrap_err().contains("top-p"));
    }
}
