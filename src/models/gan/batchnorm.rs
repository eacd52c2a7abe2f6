//! `BatchNorm2d` over NHWC activations (`[rows][channels]`): training mode (batch statistics,
//! running statistics updated as PyTorch does: momentum 0.1, the unbiased variance) with its
//! backward, and evaluation mode (running statistics) for samples.
//!
//! A forward may normalise the rows as several equal **groups** with statistics of their own:
//! the discriminator sees the real and the generated half of a step as one batch for its matrix
//! products, yet normalises each half alone, exactly as two separate PyTorch calls would.
//!
//! Sums run over fixed chunks of rows in f64 and are combined in chunk order, so the result
//! does not depend on how many threads computed the chunks.

use rayon::prelude::*;

use super::{BN_EPS, BN_MOMENTUM, Param, ROWS_PER_CHUNK, ensure_len};

/// One BatchNorm layer: parameters, running statistics, and what the backward needs.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// Channels.
    pub channels: usize,
    /// Scale γ.
    pub gamma: Param,
    /// Shift β.
    pub beta: Param,
    /// Running mean (evaluation mode).
    pub running_mean: Vec<f32>,
    /// Running (unbiased) variance.
    pub running_var: Vec<f32>,
    /// Batches seen in training mode (PyTorch's `num_batches_tracked`).
    pub batches_tracked: i64,
    /// The last training forward's normalised input `x̂`.
    xhat: Vec<f32>,
    /// Its `1/√(σ² + ε)`, `[group][channel]`.
    inv_std: Vec<f32>,
    groups: usize,
}

/// Per-channel sums of `f(row)` over `rows` (`[rows][c]`), in fixed chunks, in f64.
fn channel_sums(c: usize, rows: usize, f: impl Fn(usize, &mut [f64]) + Sync) -> Vec<f64> {
    let chunks = rows.div_ceil(ROWS_PER_CHUNK);
    let partials: Vec<Vec<f64>> = (0..chunks)
        .into_par_iter()
        .map(|k| {
            let mut acc = vec![0f64; c];
            for r in k * ROWS_PER_CHUNK..rows.min((k + 1) * ROWS_PER_CHUNK) {
                f(r, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = vec![0f64; c];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}

impl BatchNorm {
    /// A layer with `gamma`, `beta` and running statistics (mean 0, variance 1 when new).
    pub fn new(gamma: Vec<f32>, beta: Vec<f32>) -> Self {
        let channels = gamma.len();
        Self {
            channels,
            gamma: Param::new(gamma),
            beta: Param::new(beta),
            running_mean: vec![0.0; channels],
            running_var: vec![1.0; channels],
            batches_tracked: 0,
            xhat: Vec::new(),
            inv_std: Vec::new(),
            groups: 0,
        }
    }

    /// Training mode: normalises each of `groups` equal parts of `x` (`[rows][channels]`)
    /// with its own batch statistics, writes `y = γ·x̂ + β`, and updates the running
    /// statistics once per group, in order.
    pub fn forward_train(&mut self, x: &[f32], groups: usize, y: &mut [f32]) {
        let c = self.channels;
        let rows = x.len() / c;
        let per = rows / groups.max(1);
        ensure_len(&mut self.xhat, x.len());
        self.inv_std.clear();
        let mut means = Vec::with_capacity(groups * c);
        for gi in 0..groups {
            let xs = &x[gi * per * c..][..per * c];
            let sum = channel_sums(c, per, |r, acc| {
                for (a, v) in acc.iter_mut().zip(&xs[r * c..][..c]) {
                    *a += *v as f64;
                }
            });
            let mean: Vec<f64> = sum.iter().map(|s| s / per as f64).collect();
            let sq = channel_sums(c, per, |r, acc| {
                for ((a, v), m) in acc.iter_mut().zip(&xs[r * c..][..c]).zip(&mean) {
                    let d = *v as f64 - m;
                    *a += d * d;
                }
            });
            for ch in 0..c {
                let var = sq[ch] / per as f64;
                let unbiased = if per > 1 {
                    sq[ch] / (per - 1) as f64
                } else {
                    var
                };
                let m = BN_MOMENTUM as f64;
                self.running_mean[ch] =
                    ((1.0 - m) * self.running_mean[ch] as f64 + m * mean[ch]) as f32;
                self.running_var[ch] =
                    ((1.0 - m) * self.running_var[ch] as f64 + m * unbiased) as f32;
                self.inv_std
                    .push((1.0 / (var + BN_EPS as f64).sqrt()) as f32);
                means.push(mean[ch] as f32);
            }
            self.batches_tracked += 1;
        }
        self.groups = groups;
        let (gamma, beta) = (&self.gamma.value, &self.beta.value);
        let inv_std = &self.inv_std;
        self.xhat
            .par_chunks_mut(ROWS_PER_CHUNK * c)
            .zip(y.par_chunks_mut(ROWS_PER_CHUNK * c))
            .zip(x.par_chunks(ROWS_PER_CHUNK * c))
            .enumerate()
            .for_each(|(k, ((xh, y), x))| {
                for (i, ((xh, y), x)) in xh
                    .chunks_exact_mut(c)
                    .zip(y.chunks_exact_mut(c))
                    .zip(x.chunks_exact(c))
                    .enumerate()
                {
                    let gi = ((k * ROWS_PER_CHUNK + i) / per).min(groups - 1);
                    let (m, s) = (&means[gi * c..][..c], &inv_std[gi * c..][..c]);
                    for ch in 0..c {
                        let h = (x[ch] - m[ch]) * s[ch];
                        xh[ch] = h;
                        y[ch] = gamma[ch] * h + beta[ch];
                    }
                }
            });
    }

    /// Evaluation mode: `y = γ·(x − μ_running)/√(σ²_running + ε) + β`.
    pub fn forward_eval(&self, x: &[f32], y: &mut [f32]) {
        let c = self.channels;
        let (scale, shift): (Vec<f32>, Vec<f32>) = (0..c)
            .map(|ch| {
                let s = self.gamma.value[ch] as f64
                    / (self.running_var[ch] as f64 + BN_EPS as f64).sqrt();
                let t = self.beta.value[ch] as f64 - self.running_mean[ch] as f64 * s;
                (s as f32, t as f32)
            })
            .unzip();
        y.par_chunks_mut(ROWS_PER_CHUNK * c)
            .zip(x.par_chunks(ROWS_PER_CHUNK * c))
            .for_each(|(y, x)| {
                for (y, x) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                    for ch in 0..c {
                        y[ch] = x[ch] * scale[ch] + shift[ch];
                    }
                }
            });
    }

    /// The backward of the last [`Self::forward_train`]: writes `dx` for `dy` and, when
    /// `param_grads`, adds γ's and β's gradients.
    pub fn backward(&mut self, dy: &[f32], param_grads: bool, dx: &mut [f32]) {
        let c = self.channels;
        let rows = dy.len() / c;
        let groups = self.groups.max(1);
        let per = rows / groups;
        let mut coef = Vec::with_capacity(groups * 3 * c);
        for gi in 0..groups {
            let dys = &dy[gi * per * c..][..per * c];
            let xh = &self.xhat[gi * per * c..][..per * c];
            // [Σ dy | Σ dy·x̂] per channel.
            let sums = channel_sums(2 * c, per, |r, acc| {
                let (a, b) = acc.split_at_mut(c);
                for ch in 0..c {
                    let d = dys[r * c + ch] as f64;
                    a[ch] += d;
                    b[ch] += d * xh[r * c + ch] as f64;
                }
            });
            let (dbeta, dgamma) = sums.split_at(c);
            if param_grads {
                for ch in 0..c {
                    self.beta.grad[ch] += dbeta[ch] as f32;
                    self.gamma.grad[ch] += dgamma[ch] as f32;
                }
            }
            // dx = γ·s·(dy − Σdy/n − x̂·Σ(dy·x̂)/n)
            for ch in 0..c {
                let k = self.gamma.value[ch] * self.inv_std[gi * c + ch];
                coef.push(k);
                coef.push((dbeta[ch] / per as f64) as f32);
                coef.push((dgamma[ch] / per as f64) as f32);
            }
        }
        let xhat = &self.xhat;
        dx.par_chunks_mut(ROWS_PER_CHUNK * c)
            .zip(dy.par_chunks(ROWS_PER_CHUNK * c))
            .zip(xhat.par_chunks(ROWS_PER_CHUNK * c))
            .enumerate()
            .for_each(|(k, ((dx, dy), xh))| {
                for (i, ((dx, dy), xh)) in dx
                    .chunks_exact_mut(c)
                    .zip(dy.chunks_exact(c))
                    .zip(xh.chunks_exact(c))
                    .enumerate()
                {
                    let gi = ((k * ROWS_PER_CHUNK + i) / per).min(groups - 1);
                    let cf = &coef[gi * 3 * c..][..3 * c];
                    for ch in 0..c {
                        let (a, mb, mg) = (cf[3 * ch], cf[3 * ch + 1], cf[3 * ch + 2]);
                        dx[ch] = a * (dy[ch] - mb - xh[ch] * mg);
                    }
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    #[test]
    fn training_mode_gradients_match_finite_differences() {
        let c = 3;
        let rows = 10; // two groups of 5
        let x: Vec<f32> = (0..rows * c)
            .map(|i| (i as f32 * 0.917).sin() * 1.5 + (i % c) as f32)
            .collect();
        let r: Vec<f32> = (0..rows * c).map(|i| (i as f32 * 0.31).cos()).collect();
        let gamma = vec![1.2, 0.7, -0.4];
        let beta = vec![0.1, -0.2, 0.3];
        let run = |x: &[f32], g: &[f32], b: &[f32]| {
            let mut bn = BatchNorm::new(g.to_vec(), b.to_vec());
            let mut y = vec![0f32; x.len()];
            bn.forward_train(x, 2, &mut y);
            (bn, y)
        };
        let (mut bn, _) = run(&x, &gamma, &beta);
        let mut dx = vec![0f32; x.len()];
        bn.backward(&r, true, &mut dx);
        let eps = 1e-2f32;
        let loss = |x: &[f32], g: &[f32], b: &[f32]| dot(&run(x, g, b).1, &r);
        for i in 0..x.len() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += eps;
            down[i] -= eps;
            let num = (loss(&up, &gamma, &beta) - loss(&down, &gamma, &beta)) / (2.0 * eps as f64);
            assert!(
                (num - dx[i] as f64).abs() < 2e-3,
                "dx[{i}]: {num} {}",
                dx[i]
            );
        }
        for ch in 0..c {
            let (mut up, mut down) = (gamma.clone(), gamma.clone());
            up[ch] += eps;
            down[ch] -= eps;
            let num = (loss(&x, &up, &beta) - loss(&x, &down, &beta)) / (2.0 * eps as f64);
            assert!((num - bn.gamma.grad[ch] as f64).abs() < 2e-3);
            let (mut up, mut down) = (beta.clone(), beta.clone());
            up[ch] += eps;
            down[ch] -= eps;
            let num = (loss(&x, &gamma, &up) - loss(&x, &gamma, &down)) / (2.0 * eps as f64);
            assert!((num - bn.beta.grad[ch] as f64).abs() < 2e-3);
        }
    }

    #[test]
    fn groups_are_normalised_alone_and_running_stats_follow_pytorch() {
        let x = vec![1.0f32, 2.0, 3.0, 10.0, 20.0, 30.0];
        let mut bn = BatchNorm::new(vec![1.0], vec![0.0]);
        let mut y = vec![0f32; 6];
        bn.forward_train(&x, 2, &mut y);
        let s = 1.0 / (2.0f32 / 3.0 + BN_EPS).sqrt();
        assert!((y[0] + s).abs() < 1e-5 && y[1].abs() < 1e-6 && (y[2] - s).abs() < 1e-5);
        assert!((y[3] + y[5]).abs() < 1e-6 && y[3] < -1.2);
        // Two updates: mean 2 (var 1 unbiased), then mean 20 (var 100).
        let m1 = 0.1 * 2.0;
        let m2 = 0.9 * m1 + 0.1 * 20.0;
        let v1 = 0.9 + 0.1 * 1.0;
        let v2 = 0.9 * v1 + 0.1 * 100.0;
        assert!((bn.running_mean[0] - m2).abs() < 1e-5);
        assert!((bn.running_var[0] - v2).abs() < 1e-4);
        assert_eq!(bn.batches_tracked, 2);
        let mut e = vec![0f32; 6];
        bn.forward_eval(&x, &mut e);
        assert!((e[0] - (1.0 - m2) / (v2 + BN_EPS).sqrt()).abs() < 1e-5);
    }
}
