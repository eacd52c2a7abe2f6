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

#[cfg(target_arch = "x86_64")]
use super::lora_simd;
use super::quant::Kernel;
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
    /// Decoding (one row) runs on the calling thread: it reads about 3% of the bytes the base
    /// weights stream. Prompts (many rows) run the rows in parallel on the current pool.
    pub fn apply(&self, kernel: Kernel, x: &[f32], m: usize, strength: f32, y: &mut [f32]) {
        if m == 1 {
            self.row(kernel, x, strength, y);
            return;
        }
        use rayon::prelude::*;
        x.par_chunks_exact(self.n_in)
            .zip(y.par_chunks_exact_mut(self.n_out))
            .take(m)
            .with_min_len(4)
            .for_each(|(xr, yr)| self.row(kernel, xr, strength, yr));
    }

    /// One row: `u = A x`, then `y += strength · Bᵀᵀ u`.
    fn row(&self, kernel: Kernel, x: &[f32], strength: f32, y: &mut [f32]) {
        with_scratch(self.rank, |u| {
            #[cfg(target_arch = "x86_64")]
            if self.n_in.is_multiple_of(BLOCK) && self.n_out.is_multiple_of(BLOCK) {
                let (a, b) = (&self.a, &self.bt);
                match kernel {
                    // SAFETY: `Kernel::best` picks these only where the CPU has the features.
                    Kernel::Vnni => unsafe {
                        lora_simd::dots_avx512(&a.q, &a.d, a.cols, x, u);
                        u.iter_mut().for_each(|v| *v *= strength);
                        lora_simd::axpys_avx512(&b.q, &b.d, b.cols, u, y);
                        return;
                    },
                    // SAFETY: as above.
                    Kernel::Avx2 => unsafe {
                        lora_simd::dots_avx2(&a.q, &a.d, a.cols, x, u);
                        u.iter_mut().for_each(|v| *v *= strength);
                        lora_simd::axpys_avx2(&b.q, &b.d, b.cols, u, y);
                        return;
                    },
                    Kernel::Portable => {}
                }
            }
            for (j, uj) in u.iter_mut().enumerate() {
                *uj = self.a.dot(j, x);
            }
            for (j, &uj) in u.iter().enumerate() {
                self.bt.axpy(j, strength * uj, y);
            }
        })
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
    pub fn apply(
        &self,
        kernel: Kernel,
        target: LoraTarget,
        x: &[f32],
        m: usize,
        strength: f32,
        y: &mut [f32],
    ) {
        if let Some(p) = self.get(target) {
            p.apply(kernel, x, m, strength, y);
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

    /// The kernels this CPU runs.
    fn kernels() -> Vec<Kernel> {
        let mut k = vec![Kernel::Portable];
        if super::super::quant::avx2_available() {
            k.push(Kernel::Avx2);
        }
        if super::super::quant::fast_kernels_available() {
            k.push(Kernel::Vnni);
        }
        k
    }

    #[test]
    fn side_path_matches_f32_on_every_kernel() {
        // 70×45 takes the plain loops everywhere; 96×64 (and rank 5: a short row group)
        // takes the SIMD kernels where the CPU has them.
        for (rank, n_in, n_out) in [(5, 70, 45), (5, 96, 64), (8, 64, 160)] {
            for kernel in kernels() {
                check(kernel, rank, n_in, n_out);
            }
        }
    }

    fn check(kernel: Kernel, rank: usize, n_in: usize, n_out: usize) {
        let mut rng = Lcg(7);
        let m = 3;
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
        lr.apply(kernel, &x, m, 0.5, &mut y);
        // One row at a time (the decode path) gives the same, up to f32 rounding.
        let mut y1 = vec![1.0f32; m * n_out];
        for (xr, yr) in x.chunks(n_in).zip(y1.chunks_mut(n_out)) {
            lr.apply(kernel, xr, 1, 0.5, yr);
        }
        for (a, b) in y.iter().zip(&y1) {
            assert!((a - b).abs() < 1e-5, "{kernel:?}: {a} {b}");
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
        assert!(
            max_err < 0.02 * max_val,
            "{kernel:?}: {max_err} vs {max_val}"
        );
    }
}
