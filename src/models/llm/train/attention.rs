//! Causal grouped-query attention over a batch of equal-length sequences, forward and
//! backward, with Gemma 3's sliding window (a query at `p` sees keys `p - window < k <= p`, as
//! the native decoder). The backward pass recomputes the attention probabilities from the saved
//! queries and keys instead of keeping `heads × T × T` floats per layer.

use rayon::prelude::*;

use super::gemm::{View, matmul};
use crate::models::llm::native::ops::softmax;

/// The layout of one layer's attention over a batch.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Sequences in the batch.
    pub seqs: usize,
    /// Tokens per sequence (all positions start at 0).
    pub len: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (query heads share them in consecutive groups).
    pub kv_heads: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Multiplies the scores.
    pub scale: f32,
    /// Sliding window, if any.
    pub window: Option<usize>,
}

impl Shape {
    fn q_width(&self) -> usize {
        self.heads * self.head_dim
    }
    fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }
    /// Head `h` of sequence `b` in a row-major `(seqs·len) × heads·head_dim` matrix.
    fn head<'a>(&self, x: &'a [f32], width: usize, b: usize, h: usize) -> View<'a> {
        View::strided(&x[b * self.len * width + h * self.head_dim..], width, 1)
    }
}

/// `P = softmax(scale · Q Kᵀ + causal/window mask)` for one head: `len × len`, row-major,
/// zero where masked.
fn probabilities(s: &Shape, q: View<'_>, k: View<'_>, p: &mut [f32]) {
    let t = s.len;
    matmul(t, t, s.head_dim, q, k.t(), p, t, s.scale, false);
    for (i, row) in p.chunks_exact_mut(t).enumerate() {
        let lo = s.window.map_or(0, |w| (i + 1).saturating_sub(w));
        row[..lo].fill(0.0);
        row[i + 1..].fill(0.0);
        softmax(&mut row[lo..=i]);
    }
}

/// Copies a `[seqs][heads][len][head_dim]` buffer into row-major `(seqs·len) × heads·head_dim`.
fn heads_to_rows(s: &Shape, heads: usize, src: &[f32], dst: &mut [f32]) {
    let (t, hd) = (s.len, s.head_dim);
    dst.par_chunks_mut(t * heads * hd)
        .zip(src.par_chunks(heads * t * hd))
        .for_each(|(dst, src)| {
            for (h, block) in src.chunks_exact(t * hd).enumerate() {
                for (i, row) in block.chunks_exact(hd).enumerate() {
                    dst[i * heads * hd + h * hd..][..hd].copy_from_slice(row);
                }
            }
        });
}

/// `out = softmax(Q Kᵀ · scale) V` per head; `q` is `(seqs·len) × heads·head_dim`, `k` and
/// `v` are `(seqs·len) × kv_heads·head_dim`; `scratch` holds `seqs·heads·len·head_dim`.
pub fn forward(
    s: &Shape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    let (t, hd) = (s.len, s.head_dim);
    scratch.resize(s.seqs * s.heads * t * hd, 0.0);
    scratch
        .par_chunks_mut(t * hd)
        .enumerate()
        .for_each(|(task, o)| {
            let (b, h) = (task / s.heads, task % s.heads);
            let kvh = h / s.group();
            let mut p = vec![0f32; t * t];
            probabilities(
                s,
                s.head(q, s.q_width(), b, h),
                s.head(k, s.kv_width(), b, kvh),
                &mut p,
            );
            let vh = s.head(v, s.kv_width(), b, kvh);
            matmul(t, hd, t, View::rows(&p, t), vh, o, hd, 1.0, false);
        });
    heads_to_rows(s, s.heads, scratch, out);
}

/// Reused buffers of the backward pass.
#[derive(Default)]
pub struct BackwardScratch {
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
}

/// Gradients of [`forward`] with respect to `q`, `k` and `v`, given `dout`; the probabilities
/// are recomputed. One task per (sequence, key/value head) sums its query heads' shares of
/// dK and dV in a fixed order, so the result does not depend on the thread count.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    s: &Shape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dout: &[f32],
    scratch: &mut BackwardScratch,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let (t, hd, g) = (s.len, s.head_dim, s.group());
    scratch.dq.resize(s.seqs * s.heads * t * hd, 0.0);
    scratch.dk.resize(s.seqs * s.kv_heads * t * hd, 0.0);
    scratch.dv.resize(s.seqs * s.kv_heads * t * hd, 0.0);
    scratch
        .dq
        .par_chunks_mut(g * t * hd)
        .zip(scratch.dk.par_chunks_mut(t * hd))
        .zip(scratch.dv.par_chunks_mut(t * hd))
        .enumerate()
        .for_each(|(task, ((dq, dk), dv))| {
            let (b, kvh) = (task / s.kv_heads, task % s.kv_heads);
            let kh = s.head(k, s.kv_width(), b, kvh);
            let vh = s.head(v, s.kv_width(), b, kvh);
            let mut p = vec![0f32; t * t];
            let mut dp = vec![0f32; t * t];
            for (j, dq) in dq.chunks_exact_mut(t * hd).enumerate() {
                let h = kvh * g + j;
                let qh = s.head(q, s.q_width(), b, h);
                let doh = s.head(dout, s.q_width(), b, h);
                probabilities(s, qh, kh, &mut p);
                let first = j == 0;
                // dV += Pᵀ dO; dP = dO Vᵀ.
                matmul(t, hd, t, View::rows(&p, t).t(), doh, dv, hd, 1.0, !first);
                matmul(t, t, hd, doh, vh.t(), &mut dp, t, 1.0, false);
                // dS = P ⊙ (dP − rowsum(P ⊙ dP)).
                for (pr, dr) in p.chunks_exact(t).zip(dp.chunks_exact_mut(t)) {
                    let dot: f32 = pr.iter().zip(dr.iter()).map(|(a, b)| a * b).sum();
                    for (d, &p) in dr.iter_mut().zip(pr) {
                        *d = p * (*d - dot);
                    }
                }
                // dQ = scale · dS K; dK += scale · dSᵀ Q.
                matmul(t, hd, t, View::rows(&dp, t), kh, dq, hd, s.scale, false);
                matmul(
                    t,
                    hd,
                    t,
                    View::rows(&dp, t).t(),
                    qh,
                    dk,
                    hd,
                    s.scale,
                    !first,
                );
            }
        });
    heads_to_rows(s, s.heads, &scratch.dq, dq);
    heads_to_rows(s, s.kv_heads, &scratch.dk, dk);
    heads_to_rows(s, s.kv_heads, &scratch.dv, dv);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::llm::native::tests::Lcg;
    use crate::models::llm::train::ops::tests::{assert_close, numeric_grad};

    #[test]
    fn backward_matches_finite_differences_with_groups_and_a_window() {
        for window in [None, Some(3)] {
            let s = Shape {
                seqs: 2,
                len: 5,
                heads: 4,
                kv_heads: 2,
                head_dim: 3,
                scale: 0.7,
                window,
            };
            let (nq, nkv) = (s.seqs * s.len * s.q_width(), s.seqs * s.len * s.kv_width());
            let x = Lcg(9).vec(nq + 2 * nkv, 1.0, 0.0);
            let r = Lcg(10).vec(nq, 1.0, 0.0);
            let split = |x: &[f32]| -> (Vec<f32>, Vec<f32>, Vec<f32>) {
                (
                    x[..nq].to_vec(),
                    x[nq..nq + nkv].to_vec(),
                    x[nq + nkv..].to_vec(),
                )
            };
            let loss = |x: &[f32]| {
                let (q, k, v) = split(x);
                let mut out = vec![0f32; nq];
                forward(&s, &q, &k, &v, &mut Vec::new(), &mut out);
                out.iter().zip(&r).map(|(&a, &b)| a as f64 * b as f64).sum()
            };
            let (q, k, v) = split(&x);
            let (mut dq, mut dk, mut dv) = (vec![0f32; nq], vec![0f32; nkv], vec![0f32; nkv]);
            let mut scratch = BackwardScratch::default();
            backward(&s, &q, &k, &v, &r, &mut scratch, &mut dq, &mut dk, &mut dv);
            let got: Vec<f32> = dq.into_iter().chain(dk).chain(dv).collect();
            assert_close(&got, &numeric_grad(&x, 1e-2, loss), 2e-3, "attention");
        }
    }

    #[test]
    fn the_window_hides_old_keys() {
        // With a window of 1 every query sees only itself: the output is its own value.
        let s = Shape {
            seqs: 1,
            len: 4,
            heads: 2,
            kv_heads: 1,
            head_dim: 2,
            scale: 1.0,
            window: Some(1),
        };
        let q = Lcg(1).vec(4 * 4, 1.0, 0.0);
        let k = Lcg(2).vec(4 * 2, 1.0, 0.0);
        let v = Lcg(3).vec(4 * 2, 1.0, 0.0);
        let mut out = vec![0f32; 16];
        forward(&s, &q, &k, &v, &mut Vec::new(), &mut out);
        for i in 0..4 {
            for h in 0..2 {
                for e in 0..2 {
                    assert!((out[i * 4 + h * 2 + e] - v[i * 2 + e]).abs() < 1e-6);
                }
            }
        }
    }
}
