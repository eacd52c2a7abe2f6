//! Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization",
//! <https://arxiv.org/abs/1412.6980>) exactly as `torch.optim.Adam`'s single-tensor path
//! computes it on the CPU (no weight decay, no AMSGrad):
//!
//! ```text
//! m ← m + (1 − β₁)(g − m)          v ← β₂·v + (1 − β₂)·g²
//! p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```
//! with the bias corrections in f64, as Python computes them.

use rayon::prelude::*;

use super::Param;

/// Adam's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
}

impl Default for AdamConfig {
    /// DCGAN's: lr 2e-4, β = (0.5, 0.999), ε 1e-8.
    fn default() -> Self {
        Self {
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// The optimizer's state for one network: a step count and two moments per parameter, in
/// the order the network lists its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    /// Hyper-parameters.
    pub config: AdamConfig,
    /// Updates done (PyTorch's per-parameter `step`, the same for all here).
    pub step: u64,
    /// First moments (`exp_avg`).
    pub m: Vec<Vec<f32>>,
    /// Second moments (`exp_avg_sq`).
    pub v: Vec<Vec<f32>>,
}

/// Values per parallel work item of an update.
const CHUNK: usize = 1 << 14;

impl Adam {
    /// Fresh state for parameters of the given lengths.
    pub fn new(config: AdamConfig, lengths: &[usize]) -> Self {
        Self {
            config,
            step: 0,
            m: lengths.iter().map(|&n| vec![0.0; n]).collect(),
            v: lengths.iter().map(|&n| vec![0.0; n]).collect(),
        }
    }

    /// One update of `params` (the same parameters, in the same order, every time) from
    /// their gradients.
    pub fn update(&mut self, params: &mut [&mut Param]) {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        let step_size = (c.lr / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        // Scalars rounded to f32 as PyTorch rounds a Python float for a float tensor.
        let (one_b1, b2, one_b2, eps) = (
            (1.0 - c.beta1) as f32,
            c.beta2 as f32,
            (1.0 - c.beta2) as f32,
            c.eps as f32,
        );
        for ((p, m), v) in params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
            p.value
                .par_chunks_mut(CHUNK)
                .zip(p.grad.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .for_each(|(((p, g), m), v)| {
                    for (((p, g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut())
                    {
                        *m += one_b1 * (g - *m);
                        *v = *v * b2 + one_b2 * g * g;
                        let denom = v.sqrt() / bc2_sqrt + eps;
                        *p -= step_size * (*m / denom);
                    }
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_steps_follow_the_formula() {
        let mut p = Param::new(vec![1.0, -2.0]);
        p.grad = vec![0.5, -0.001];
        let mut opt = Adam::new(AdamConfig::default(), &[2]);
        opt.update(&mut [&mut p]);
        // Step 1: m̂ = g, v̂ = g², so each value moves by lr against its gradient's sign.
        assert!((p.value[0] - (1.0 - 2e-4)).abs() < 1e-7);
        assert!((p.value[1] - (-2.0 + 2e-4)).abs() < 1e-6);
        p.grad = vec![0.1, 0.0];
        opt.update(&mut [&mut p]);
        let (m, v) = (
            0.5f64 * 0.25 + 0.5 * 0.1,
            0.999f64 * 0.001 * 0.25 + 0.001 * 0.01,
        );
        let want = 1.0 - 2e-4 - 2e-4 / 0.75 * m / (v.sqrt() / (1.0 - 0.999f64.powi(2)).sqrt());
        assert!(
            (p.value[0] as f64 - want).abs() < 1e-6,
            "{} {want}",
            p.value[0]
        );
        assert_eq!(opt.step, 2);
    }
}
