//! The output norm, the (often tied) output projection and the causal-LM loss. Logits are
//! made a block of rows at a time and turned into their gradient in place, so a 262,144-token
//! vocabulary (Gemma 3) never needs `rows × vocab` floats at once.

use rayon::prelude::*;

use super::TrainModel;
use super::gemm::{View, matmul};
use super::layer::Dims;
use super::ops::{cross_entropy, rms_norm_bwd, rms_norm_fwd};

/// Logits held at once, at most (256 MB): as many rows per product as fit, since each product
/// streams (and packs) the whole output matrix once. Gemma 3's 262,144-token vocabulary makes
/// that 256 rows, two products per step of 4 × 128 tokens; at half this budget, packing the
/// embedding four times a step took a tenth of the step.
const LOGIT_BUDGET: usize = 64 << 20;
/// Padding of a logits row: a vocabulary that is a multiple of 1024 would put every row of a
/// register tile in the same L1 cache set.
const ROW_PAD: usize = 16;

/// Reused buffers.
#[derive(Default)]
pub(crate) struct HeadScratch {
    h: Vec<f32>,
    inv: Vec<f32>,
    rows: Vec<f32>,
    logits: Vec<f32>,
    dh_rows: Vec<f32>,
    dh: Vec<f32>,
}

impl TrainModel {
    fn output_matrix(&self) -> &[f32] {
        self.output.as_deref().unwrap_or(&self.embed)
    }
}

/// The positions that have a next token to predict: every one but each sequence's last,
/// paired with that next token.
fn targets(dims: Dims, tokens: &[u32]) -> Vec<(usize, usize)> {
    (0..dims.seqs)
        .flat_map(|b| (0..dims.len.saturating_sub(1)).map(move |t| b * dims.len + t))
        .map(|r| (r, tokens[r + 1] as usize))
        .collect()
}

/// The summed loss over every predicted position of `x` (the last layer's output, `rows ×
/// n_embd`) and their count; with `dx`, also the gradient of the *mean* loss with respect to
/// `x`.
pub(crate) fn loss(
    model: &TrainModel,
    dims: Dims,
    tokens: &[u32],
    x: &[f32],
    sc: &mut HeadScratch,
    dx: Option<&mut Vec<f32>>,
) -> (f64, usize) {
    let c = &model.hp.cfg;
    let (d, v, m) = (c.n_embd, model.vocab, dims.rows());
    sc.h.resize(m * d, 0.0);
    sc.inv.resize(m, 0.0);
    rms_norm_fwd(x, d, &model.output_norm, c.eps, &mut sc.h, &mut sc.inv);
    let targets = targets(dims, tokens);
    let n = targets.len();
    let grad_scale = dx.is_some().then(|| 1.0 / n.max(1) as f32);
    if grad_scale.is_some() {
        sc.dh.clear();
        sc.dh.resize(m * d, 0.0);
    }
    let w = model.output_matrix();
    let stride = v + ROW_PAD;
    let block = (LOGIT_BUDGET / stride).clamp(8, 512);
    let mut total = 0f64;
    for chunk in targets.chunks(block) {
        let k = chunk.len();
        sc.rows.clear();
        for &(r, _) in chunk {
            sc.rows.extend_from_slice(&sc.h[r * d..(r + 1) * d]);
        }
        sc.logits.resize(k * stride, 0.0);
        let (rows, w_t) = (View::rows(&sc.rows, d), View::rows(w, d).t());
        matmul(k, v, d, rows, w_t, &mut sc.logits, stride, 1.0, false);
        let losses: Vec<f64> = sc
            .logits
            .par_chunks_mut(stride)
            .zip(chunk)
            .map(|(row, &(_, target))| cross_entropy(&mut row[..v], target, grad_scale))
            .collect();
        total += losses.iter().sum::<f64>();
        if grad_scale.is_some() {
            sc.dh_rows.resize(k * d, 0.0);
            let (dl, w) = (View::strided(&sc.logits, stride, 1), View::rows(w, d));
            matmul(k, d, v, dl, w, &mut sc.dh_rows, d, 1.0, false);
            for (&(r, _), row) in chunk.iter().zip(sc.dh_rows.chunks_exact(d)) {
                sc.dh[r * d..(r + 1) * d].copy_from_slice(row);
            }
        }
    }
    if let Some(dx) = dx {
        dx.resize(m * d, 0.0);
        rms_norm_bwd(x, d, &model.output_norm, &sc.inv, &sc.dh, dx, false);
    }
    (total, n)
}

/// The logits after the last row of `x` (for sampling a continuation).
pub(crate) fn last_logits(model: &TrainModel, x: &[f32]) -> Vec<f32> {
    let c = &model.hp.cfg;
    let (d, v) = (c.n_embd, model.vocab);
    let last = &x[x.len() - d..];
    let (mut h, mut inv) = (vec![0f32; d], vec![0f32; 1]);
    rms_norm_fwd(last, d, &model.output_norm, c.eps, &mut h, &mut inv);
    let mut logits = vec![0f32; v];
    matmul(
        1,
        v,
        d,
        View::rows(&h, d),
        View::rows(model.output_matrix(), d).t(),
        &mut logits,
        v,
        1.0,
        false,
    );
    logits
}
