//! The elementwise and per-row pieces of a decoder layer with their gradients: RMS
//! normalisation, the SiLU and GELU-tanh gates, and the softmax cross-entropy. The forward
//! halves are the native decoder's ([`crate::models::llm::native::ops`]), so training computes
//! what Write runs.

use rayon::prelude::*;

use crate::models::llm::native::ops::{exp, rms_scale};

/// Rows per parallel task in the row-wise loops (small enough to balance two to sixteen
/// threads on 512 rows, large enough that a task is not all overhead).
const ROWS_PER_TASK: usize = 16;

/// `y = x · rms(x) · w` for each `n`-value row; keeps each row's scale in `inv` for the
/// backward pass.
pub fn rms_norm_fwd(x: &[f32], n: usize, w: &[f32], eps: f32, y: &mut [f32], inv: &mut [f32]) {
    y.par_chunks_mut(n * ROWS_PER_TASK)
        .zip(x.par_chunks(n * ROWS_PER_TASK))
        .zip(inv.par_chunks_mut(ROWS_PER_TASK))
        .for_each(|((y, x), inv)| {
            for ((y, x), inv) in y.chunks_exact_mut(n).zip(x.chunks_exact(n)).zip(inv) {
                let r = rms_scale(x, eps);
                *inv = r;
                for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                    *y = x * r * w;
                }
            }
        });
}

/// The forward output again from the saved input and scale (cheaper to recompute than to
/// keep for every layer).
pub fn rms_norm_apply(x: &[f32], n: usize, w: &[f32], inv: &[f32], y: &mut [f32]) {
    y.par_chunks_mut(n * ROWS_PER_TASK)
        .zip(x.par_chunks(n * ROWS_PER_TASK))
        .zip(inv.par_chunks(ROWS_PER_TASK))
        .for_each(|((y, x), inv)| {
            for ((y, x), &r) in y.chunks_exact_mut(n).zip(x.chunks_exact(n)).zip(inv) {
                for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                    *y = x * r * w;
                }
            }
        });
}

/// Gradient of [`rms_norm_fwd`]: with `g = dy · w`,
/// `dx = r·g − x · r³ · (g·x) / n`; added to `dx` when `accumulate`.
pub fn rms_norm_bwd(
    x: &[f32],
    n: usize,
    w: &[f32],
    inv: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    accumulate: bool,
) {
    dx.par_chunks_mut(n * ROWS_PER_TASK)
        .zip(x.par_chunks(n * ROWS_PER_TASK))
        .zip(dy.par_chunks(n * ROWS_PER_TASK))
        .zip(inv.par_chunks(ROWS_PER_TASK))
        .for_each(|(((dx, x), dy), inv)| {
            for (((dx, x), dy), &r) in dx
                .chunks_exact_mut(n)
                .zip(x.chunks_exact(n))
                .zip(dy.chunks_exact(n))
                .zip(inv)
            {
                let dot: f32 = x
                    .iter()
                    .zip(dy)
                    .zip(w)
                    .map(|((&x, &d), &w)| x * d * w)
                    .sum();
                let c = r * r * r * dot / n as f32;
                for (((dx, &x), &d), &w) in dx.iter_mut().zip(x).zip(dy).zip(w) {
                    let v = r * d * w - x * c;
                    *dx = if accumulate { *dx + v } else { v };
                }
            }
        });
}

/// `sigmoid(x)` with the native decoder's `exp`.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// √(2/π), GELU's tanh-approximation constant.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// GELU's cubic coefficient.
const GELU_CUBIC: f32 = 0.044_715;

/// The gate's activation and its derivative at `g`.
#[inline(always)]
fn act_and_grad(gelu: bool, g: f32) -> (f32, f32) {
    if gelu {
        // gelu(g) = g · sigmoid(2z), z = c (g + 0.044715 g³), as the native gelu_mul.
        let z = SQRT_2_OVER_PI * (g + GELU_CUBIC * g * g * g);
        let s = sigmoid(2.0 * z);
        let dz = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * g * g);
        (g * s, s + g * s * (1.0 - s) * 2.0 * dz)
    } else {
        let s = sigmoid(g);
        (g * s, s * (1.0 + g * (1.0 - s)))
    }
}

/// `a = act(g) · u` (SwiGLU with SiLU, GeGLU with GELU-tanh).
pub fn gate_fwd(gelu: bool, g: &[f32], u: &[f32], a: &mut [f32]) {
    const CHUNK: usize = 4096;
    a.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .for_each(|(a, (g, u))| {
            for ((a, &g), &u) in a.iter_mut().zip(g).zip(u) {
                *a = act_and_grad(gelu, g).0 * u;
            }
        });
}

/// Gradient of [`gate_fwd`]: `dg = da · u · act'(g)`, `du = da · act(g)`.
pub fn gate_bwd(gelu: bool, g: &[f32], u: &[f32], da: &[f32], dg: &mut [f32], du: &mut [f32]) {
    const CHUNK: usize = 4096;
    dg.par_chunks_mut(CHUNK)
        .zip(du.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .zip(da.par_chunks(CHUNK))
        .for_each(|(((dg, du), (g, u)), da)| {
            for ((((dg, du), &g), &u), &d) in dg.iter_mut().zip(du).zip(g).zip(u).zip(da) {
                let (a, da_dg) = act_and_grad(gelu, g);
                *dg = d * u * da_dg;
                *du = d * a;
            }
        });
}

/// Softmax cross-entropy of one row of logits against `target`: returns `-log p[target]`
/// and, with `grad`, overwrites the row with `scale · (softmax − onehot)`.
pub fn cross_entropy(row: &mut [f32], target: usize, grad: Option<f32>) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    let picked = row[target];
    // Eight partial sums keep the loop vectorized; the total is f64 (262,144 terms for Gemma).
    // With a gradient to make, the exponentials are kept in the row for it (one `exp` per
    // logit, not two).
    let mut part = [0f32; 8];
    if grad.is_some() {
        for chunk in row.chunks_mut(8) {
            for (p, v) in part.iter_mut().zip(chunk) {
                *v = exp(*v - max);
                *p += *v;
            }
        }
    } else {
        for chunk in row.chunks(8) {
            for (p, &v) in part.iter_mut().zip(chunk) {
                *p += exp(v - max);
            }
        }
    }
    let sum: f64 = part.iter().map(|&p| p as f64).sum();
    let lse = max as f64 + sum.ln();
    let loss = lse - picked as f64;
    if let Some(scale) = grad {
        let k = (1.0 / sum) as f32 * scale;
        row.iter_mut().for_each(|v| *v *= k);
        row[target] -= scale;
    }
    loss
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Central differences of `f` at `x` along every coordinate.
    pub(crate) fn numeric_grad(x: &[f32], h: f32, f: impl Fn(&[f32]) -> f64) -> Vec<f64> {
        let mut x = x.to_vec();
        (0..x.len())
            .map(|i| {
                let keep = x[i];
                x[i] = keep + h;
                let up = f(&x);
                x[i] = keep - h;
                let down = f(&x);
                x[i] = keep;
                (up - down) / (2.0 * h as f64)
            })
            .collect()
    }

    pub(crate) fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
        let scale = want.iter().fold(1e-3f64, |a, v| a.max(v.abs()));
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= tol * scale,
                "{what}[{i}]: analytic {g} vs numeric {w} (scale {scale})"
            );
        }
    }

    fn rand(n: usize, seed: u64) -> Vec<f32> {
        crate::models::llm::native::tests::Lcg(seed).vec(n, 1.0, 0.0)
    }

    #[test]
    fn rms_norm_backward_matches_finite_differences() {
        let (rows, n) = (3, 8);
        let x = rand(rows * n, 1);
        let w = crate::models::llm::native::tests::Lcg(2).vec(n, 0.3, 1.0);
        let r = rand(rows * n, 3);
        let loss = |x: &[f32]| {
            let (mut y, mut inv) = (vec![0f32; rows * n], vec![0f32; rows]);
            rms_norm_fwd(x, n, &w, 1e-6, &mut y, &mut inv);
            y.iter().zip(&r).map(|(&a, &b)| a as f64 * b as f64).sum()
        };
        let (mut y, mut inv) = (vec![0f32; rows * n], vec![0f32; rows]);
        rms_norm_fwd(&x, n, &w, 1e-6, &mut y, &mut inv);
        let mut again = vec![0f32; rows * n];
        rms_norm_apply(&x, n, &w, &inv, &mut again);
        assert_eq!(y, again);
        let mut dx = vec![0f32; rows * n];
        rms_norm_bwd(&x, n, &w, &inv, &r, &mut dx, false);
        assert_close(&dx, &numeric_grad(&x, 1e-2, loss), 2e-3, "rms dx");
    }

    #[test]
    fn gate_backward_matches_finite_differences() {
        for gelu in [false, true] {
            let n = 40;
            let gu: Vec<f32> = rand(2 * n, 4).iter().map(|v| v * 3.0).collect();
            let r = rand(n, 5);
            let loss = |gu: &[f32]| {
                let mut a = vec![0f32; n];
                gate_fwd(gelu, &gu[..n], &gu[n..], &mut a);
                a.iter().zip(&r).map(|(&a, &b)| a as f64 * b as f64).sum()
            };
            let (mut dg, mut du) = (vec![0f32; n], vec![0f32; n]);
            gate_bwd(gelu, &gu[..n], &gu[n..], &r, &mut dg, &mut du);
            let both: Vec<f32> = dg.into_iter().chain(du).collect();
            assert_close(&both, &numeric_grad(&gu, 1e-2, loss), 2e-3, "gate");
        }
    }

    #[test]
    fn cross_entropy_backward_matches_finite_differences() {
        let logits: Vec<f32> = rand(37, 6).iter().map(|v| v * 4.0).collect();
        let target = 11;
        let loss = |l: &[f32]| cross_entropy(&mut l.to_vec(), target, None);
        let mut row = logits.clone();
        let l = cross_entropy(&mut row, target, Some(0.5));
        assert!((l - loss(&logits)).abs() < 1e-9);
        let want: Vec<f64> = numeric_grad(&logits, 1e-2, loss)
            .into_iter()
            .map(|g| g * 0.5)
            .collect();
        assert_close(&row, &want, 2e-3, "cross-entropy");
    }
}
