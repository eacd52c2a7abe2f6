//! LoRA (Hu et al. 2021, <https://arxiv.org/abs/2106.09685>) on the native decoder as a
//! low-rank side path, as llama.cpp applies it: `y = W x + s · (alpha / r) · B (A x)`, with the
//! base weights left exactly as repacked.
//!
//! Why not merge `B·A` into the repacked weights: an adapter's per-weight change is far below
//! a 4-bit format's step, so re-quantizing `W + ΔW` mostly rounds it away (or, with fresh
//! scales, adds new 4-bit noise of the size of the change); a side path keeps both exact.
//! Decoding is bound by memory traffic, so A and B are stored as 8-bit integers with one f32
//! scale per 32 values (a quarter of f32's bytes; rank 8 on all seven projections of SmolLM2
//! streams about 3% of the base weights' bytes per token). A is kept row-major (`rank × n_in`,
//! each row a dot product with x), B transposed (`rank × n_out`, each row an axpy into y), so
//! both loops run over contiguous memory and vectorize. The strength `s` is a plain factor at
//! run time: changing it needs no rebuild.

use crate::models::llm::lora::{LoraAdapter, LoraPair, LoraTarget};

/// Values per quantization block.
const BLOCK: usize = 32;

/// Rows of 8-bit values with one scale per [`BLOCK`] (the last block of a row may be short).
#[derive(Clone, Debug)]
struct Q8Rows {
    cols: usize,
    q: Vec<i8>,
    /// `rows × cols.div_ceil(BLOCK)` scales.
    d: Vec<f32>,
}

impl Q8Rows {
    /// Quantizes `rows × cols` row-major values, each row scaled by `row_factor(row)`.
    fn new(values: &[f32], rows: usize, cols: usize, row_factor: impl Fn(usize) -> f32) -> Self {
        let blocks = cols.div_ceil(BLOCK);
        let mut q = Vec::with_capacity(rows * cols);
        let mut d = Vec::with_capacity(rows * blocks);
        for (r, row) in values.chunks_exact(cols).take(rows).enumerate() {
            let f = row_factor(r);
            for blk in row.chunks(BLOCK) {
                let amax = blk.iter().fold(0f32, |a, &v| a.max((v * f).abs()));
                let scale = amax / 127.0;
                let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
                d.push(scale);
                q.extend(blk.iter().map(|&v| (v * f * inv).round() as i8));
            }
        }
        Self { cols, q, d }
    }

    fn blocks(&self) -> usize {
        self.cols.div_ceil(BLOCK)
    }

    /// `dot(row r, x)`.
    #[inline]
    fn dot(&self, r: usize, x: &[f32]) -> f32 {
        let row = &self.q[r * self.cols..(r + 1) * self.cols];
        let scales = &self.d[r * self.blocks()..(r + 1) * self.blocks()];
        let mut total = 0f32;
        for ((q, x), &d) in row.chunks(BLOCK).zip(x.chunks(BLOCK)).zip(scales) {
            // Lane-wise partial sums so the loop vectorizes (a single f32 sum would not).
            let mut lanes = [0f32; 16];
            for (qs, xs) in q.chunks(16).zip(x.chunks(16)) {
                for ((l, &qv), &xv) in lanes.iter_mut().zip(qs).zip(xs) {
                    *l = (qv as f32).mul_add(xv, *l);
                }
            }
            total = d.mul_add(lanes.iter().sum::<f32>(), total);
        }
        total
    }

    /// `y += c · row r`.
    #[inline]
    fn axpy(&self, r: usize, c: f32, y: &mut [f32]) {
        let row = &self.q[r * self.cols..(r + 1) * self.cols];
        let scales = &self.d[r * self.blocks()..(r + 1) * self.blocks()];
        for ((q, y), &d) in row.chunks(BLOCK).zip(y.chunks_mut(BLOCK)).zip(scales) {
            let cd = c * d;
            for (yv, &qv) in y.iter_mut().zip(q) {
                *yv = (qv as f32).mul_add(cd, *yv);
            }
        }
    }

    fn bytes(&self) -> usize {
        self.q.len() + self.d.len() * 4
    }

    /// The rows as f32.
    fn to_f32(&self) -> Vec<f32> {
        let blocks = self.blocks();
        let mut out = Vec::with_capacity(self.q.len());
        for (row, scales) in self.q.chunks(self.cols).zip(self.d.chunks(blocks)) {
            for (q, &d) in row.chunks(BLOCK).zip(scales) {
                out.extend(q.iter().map(|&v| d * v as f32));
            }
        }
        out
    }
}

/// `dot(a, x)` in f32 with lane-wise partial sums (so the loop vectorizes).
fn dot_f32(a: &[f32], x: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    for (ac, xc) in a.chunks(16).zip(x.chunks(16)) {
        for ((l, &av), &xv) in lanes.iter_mut().zip(ac).zip(xc) {
            *l = av.mul_add(xv, *l);
        }
    }
    lanes.iter().sum()
}

/// Runs `f` on a zeroed buffer of `n` floats (on the stack for the usual ranks).
fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut small = [0f32; 64];
    if n <= small.len() {
        f(&mut small[..n])
    } else {
        f(&mut vec![0f32; n])
    }
}

/// One adapted projection: `y += strength · B (A x)` with `alpha / r` folded into B.
#[derive(Clone, Debug)]
pub struct LowRank {
    rank: usize,
    n_in: usize,
    n_out: usize,
    /// `rank × n_in`.
    a: Q8Rows,
    /// Bᵀ, `rank × n_out`, times `alpha / rank`.
    bt: Q8Rows,
}

impl LowRank {
    /// Quantizes a pair; `factor` is the adapter's `alpha / rank` for it.
    pub fn new(pair: &LoraPair, factor: f32) -> Self {
        let bt: Vec<f32> = (0..pair.rank)
            .flat_map(|j| (0..pair.n_out).map(move |i| pair.b[i * pair.rank + j]))
            .collect();
        Self {
            rank: pair.rank,
            n_in: pair.n_in,
            n_out: pair.n_out,
            a: Q8Rows::new(&pair.a, pair.rank, pair.n_in, |_| 1.0),
            bt: Q8Rows::new(&bt, pair.rank, pair.n_out, |_| factor),
        }
    }

    /// `y += strength · B (A x)` for `m` rows of `x` (`m × n_in`) and `y` (`m × n_out`).
    /// Decoding (one row) reads the 8-bit A and B directly: it is bound by memory traffic.
    /// Prompts (many rows) expand A and Bᵀ to f32 once and run the rows in parallel on the
    /// current pool: they are bound by arithmetic.
    pub fn apply(&self, x: &[f32], m: usize, strength: f32, y: &mut [f32]) {
        if m == 1 {
            with_scratch(self.rank, |u| {
                for (j, uj) in u.iter_mut().enumerate() {
                    *uj = self.a.dot(j, x);
                }
                for (j, &uj) in u.iter().enumerate() {
                    self.bt.axpy(j, strength * uj, y);
                }
            });
            return;
        }
        let (a, bt) = (self.a.to_f32(), self.bt.to_f32());
        let (n_in, n_out) = (self.n_in, self.n_out);
        use rayon::prelude::*;
        x.par_chunks_exact(n_in)
            .zip(y.par_chunks_exact_mut(n_out))
            .take(m)
            .with_min_len(4)
            .for_each(|(xr, yr)| {
                with_scratch(self.rank, |u| {
                    for (uj, ar) in u.iter_mut().zip(a.chunks_exact(n_in)) {
                        *uj = dot_f32(ar, xr);
                    }
                    for (&uj, br) in u.iter().zip(bt.chunks_exact(n_out)) {
                        let c = strength * uj;
                        for (yv, &b) in yr.iter_mut().zip(br) {
                            *yv = b.mul_add(c, *yv);
                        }
                    }
                })
            });
    }

    /// Bytes read per token.
    pub fn bytes(&self) -> usize {
        self.a.bytes() + self.bt.bytes()
    }
}

/// The side paths of one layer, by target.
#[derive(Clone, Debug, Default)]
pub struct LayerLora {
    paths: [Option<LowRank>; 7],
}

impl LayerLora {
    /// The side path of `target`, if adapted.
    pub fn get(&self, target: LoraTarget) -> Option<&LowRank> {
        self.paths[index(target)].as_ref()
    }

    /// Applies `target`'s side path (if any) to `y`.
    pub fn apply(&self, target: LoraTarget, x: &[f32], m: usize, strength: f32, y: &mut [f32]) {
        if let Some(p) = self.get(target) {
            p.apply(x, m, strength, y);
        }
    }
}

fn index(t: LoraTarget) -> usize {
    LoraTarget::ALL.iter().position(|&x| x == t).unwrap_or(0)
}

/// Builds the per-layer side paths of `adapter` for a model of `layers` layers, checking every
/// pair against `shape(layer, target)` = the (n_out, n_in) of the base projection.
pub fn build(
    adapter: &LoraAdapter,
    layers: usize,
    shape: impl Fn(usize, LoraTarget) -> (usize, usize),
) -> Result<Vec<LayerLora>, String> {
    let mut out = vec![LayerLora::default(); layers];
    for p in &adapter.pairs {
        if p.layer >= layers || shape(p.layer, p.target) != (p.n_out, p.n_in) {
            return Err(format!(
                "{} ({}x{}) does not fit the model",
                p.base_name(),
                p.n_out,
                p.n_in
            ));
        }
        out[p.layer].paths[index(p.target)] = Some(LowRank::new(p, adapter.factor(p)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::llm::native::tests::Lcg;

    #[test]
    fn side_path_matches_f32() {
        let mut rng = Lcg(7);
        let (rank, n_in, n_out, m) = (5, 70, 45, 3);
        let pair = LoraPair {
            layer: 0,
            target: LoraTarget::Q,
            rank,
            n_in,
            n_out,
            a: rng.vec(rank * n_in, 0.1, 0.0),
            b: rng.vec(n_out * rank, 0.05, 0.0),
        };
        let x = rng.vec(m * n_in, 1.0, 0.0);
        let lr = LowRank::new(&pair, 2.0);
        let mut y = vec![1.0f32; m * n_out];
        lr.apply(&x, m, 0.5, &mut y);
        // One row at a time (the decode path) gives the same, up to f32 rounding.
        let mut y1 = vec![1.0f32; m * n_out];
        for (xr, yr) in x.chunks(n_in).zip(y1.chunks_mut(n_out)) {
            lr.apply(xr, 1, 0.5, yr);
        }
        for (a, b) in y.iter().zip(&y1) {
            assert!((a - b).abs() < 1e-5, "{a} {b}");
        }
        let mut max_err = 0f32;
        let mut max_val = 0f32;
        for t in 0..m {
            for i in 0..n_out {
                let mut want = 0f32;
                for j in 0..rank {
                    let u: f32 = (0..n_in)
                        .map(|k| pair.a[j * n_in + k] * x[t * n_in + k])
                        .sum();
                    want += pair.b[i * rank + j] * u;
                }
                let delta = y[t * n_out + i] - 1.0;
                max_err = max_err.max((delta - want).abs());
                max_val = max_val.max(want.abs());
            }
        }
        // 8-bit storage: errors well under 2% of the largest change.
        assert!(max_err < 0.02 * max_val, "{max_err} vs {max_val}");
    }
}
