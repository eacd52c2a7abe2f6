//! The non-saturating GAN loss as PyTorch's `BCEWithLogitsLoss` (mean over the batch):
//! `ℓ(x, t) = max(x, 0) − x·t + log(1 + e^(−|x|))`, stable for any logit.

/// The mean loss of `logits` against the label `target` (1 real, 0 generated), and its
/// gradient `(σ(x) − t)/n` written into `grad`.
pub fn bce_with_logits(logits: &[f32], target: f32, grad: &mut [f32]) -> f32 {
    let n = logits.len().max(1) as f64;
    let mut total = 0f64;
    for (x, g) in logits.iter().zip(grad.iter_mut()) {
        let x = *x as f64;
        let t = target as f64;
        total += x.max(0.0) - x * t + (-x.abs()).exp().ln_1p();
        let sigmoid = if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            let e = x.exp();
            e / (1.0 + e)
        };
        *g = ((sigmoid - t) / n) as f32;
    }
    (total / n) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_and_gradient() {
        let logits = [-30.0f32, -1.5, 0.0, 0.7, 40.0];
        let mut g = [0f32; 5];
        for t in [0.0f32, 1.0] {
            let l = bce_with_logits(&logits, t, &mut g);
            assert!(l.is_finite());
            let eps = 1e-3f32;
            for i in 0..logits.len() {
                let (mut up, mut down) = (logits, logits);
                up[i] += eps;
                down[i] -= eps;
                let mut scratch = [0f32; 5];
                let num = (bce_with_logits(&up, t, &mut scratch) as f64
                    - bce_with_logits(&down, t, &mut scratch) as f64)
                    / (2.0 * eps as f64);
                assert!((num - g[i] as f64).abs() < 1e-3, "{t} {i}: {num} {}", g[i]);
            }
        }
        // log 2 at a zero logit.
        let l = bce_with_logits(&[0.0], 1.0, &mut [0.0]);
        assert!((l - std::f32::consts::LN_2).abs() < 1e-6);
    }
}
