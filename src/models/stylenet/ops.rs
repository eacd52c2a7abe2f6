//! The CPU kernels both style networks are built from, on planar (CHW, batch 1) feature maps.
//!
//! A convolution is an im2col copy into a column-major block (one row of K per kernel tap and
//! input channel, contiguous over output pixels) and one GEMM per block (the `gemm` crate, the
//! kernel candle's matmul uses) that writes straight into the output planes. Planar data makes
//! the im2col copies contiguous runs, lets 1×1 convolutions read their input in place, and
//! gives per-channel work (instance norm, fake quantisation) contiguous planes. candle's own
//! `conv2d` was several times slower on these small-channel, large-image layers (see
//! BENCHMARKS.md, "Style").
//!
//! Padding (reflect or zero) and 2× nearest upsampling are not separate passes: they are folded
//! into the im2col source-index maps ([`axis_map`]), built on the one reflect rule in
//! [`reflect_index`].

use std::cell::RefCell;

use rayon::prelude::*;

use super::direct::{self, DirectWeights};
pub use super::planes::{FeatureMap, PadMode, axis_map, reflect_index, reflect_pad};
use crate::models::onnx::QuantParams;

/// The order in which a convolution adds up its products. Float sums depend on it in the last
/// bit, and a fake-quantised network rounds every activation to a coarse grid, so a last-bit
/// difference occasionally moves a value one step, and through the instance-norm statistics
/// that can spread through the whole image. Summing like onnxruntime removes those
/// differences at the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SumOrder {
    /// Whatever is fastest (one GEMM over all of K).
    Fast,
    /// onnxruntime's float `Conv` (MLAS im2col + SGEMM): input channel, kernel row, column;
    /// fused multiply-adds from zero in runs of MLAS's K stride, each run's sum added to the
    /// total; the bias added last.
    Mlas,
}

/// The K run length MLAS's SGEMM uses for an `n`-column output of depth `k`
/// (`MlasSgemmOperation`: strides start at 128 × 128; a shallow product shrinks the K stride
/// while it still covers K, a deep narrow one trades N stride for K stride).
pub fn mlas_stride_k(n: usize, k: usize) -> usize {
    let mut stride_k = 128usize;
    if n >= k {
        while stride_k / 2 >= k {
            stride_k /= 2;
        }
    } else {
        let mut stride_n = 128usize;
        while stride_n > 16 && stride_n / 2 >= n {
            stride_k *= 2;
            stride_n /= 2;
        }
    }
    stride_k
}

/// A 2-D convolution with weights packed for a column-major im2col GEMM.
#[derive(Clone, Debug)]
pub struct Conv {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// What fills the padding.
    pub mode: PadMode,
    /// How the products are summed.
    pub order: SumOrder,
    /// `[K, cout]` row-major, `K = cin * kh * kw` in `(ci, ky, kx)` order.
    weights: Vec<f32>,
    /// `[cout]` (zeros when the layer has none).
    pub bias: Vec<f32>,
    /// The same weights for the direct kernel, when [`Conv::with_direct`] asked for it and
    /// the CPU runs it.
    direct: Option<DirectWeights>,
}

/// Floats of im2col per block: the block (K × pixels) stays in the L2 cache while the GEMM
/// reads it.
const BLOCK_COL_FLOATS: usize = 96 * 1024;

/// Below this many output pixels a plain loop is used instead of the GEMM (whose small-size
/// paths sum in another order).
const MIN_GEMM_PIXELS: usize = 16;

thread_local! {
    /// Per-thread im2col scratch, reused across blocks and layers.
    static COLS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A raw pointer to the output that blocks write disjoint parts of from several threads.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every user writes only its own block's pixel range of each plane (disjoint index
// sets), and the buffer outlives the parallel loop that uses the pointer.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl Conv {
    /// Packs ONNX/PyTorch-layout weights `[cout, cin, kh, kw]`.
    pub fn from_oihw(
        w: &[f32],
        dims: [usize; 4],
        bias: Option<Vec<f32>>,
        stride: usize,
        pads: [usize; 4],
        mode: PadMode,
    ) -> Option<Self> {
        let [cout, cin, kh, kw] = dims;
        if w.len() != cout * cin * kh * kw || stride == 0 || cout == 0 || w.is_empty() {
            return None;
        }
        let k = cin * kh * kw;
        let mut weights = vec![0.0; w.len()];
        for co in 0..cout {
            for kk in 0..k {
                weights[kk * cout + co] = w[co * k + kk];
            }
        }
        let bias = bias.unwrap_or_else(|| vec![0.0; cout]);
        (bias.len() == cout).then_some(Self {
            cin,
            cout,
            kh,
            kw,
            stride,
            pads,
            mode,
            order: SumOrder::Fast,
            weights,
            bias,
            direct: None,
        })
    }

    /// The packed weights: `[K][cout]` row-major, `K` in `(ci, ky, kx)` order.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The K run length the products are summed in for `pixels` output pixels (the whole of
    /// K when the order is [`SumOrder::Fast`]).
    pub fn run_length(&self, pixels: usize) -> usize {
        let k = self.cin * self.kh * self.kw;
        match self.order {
            SumOrder::Fast => k,
            SumOrder::Mlas => mlas_stride_k(pixels, k),
        }
    }

    /// The same convolution run by the direct kernel (`direct.rs`: no im2col) where
    /// the CPU has AVX-512 (in either sum order); otherwise unchanged.
    pub fn with_direct(mut self) -> Self {
        self.direct = DirectWeights::pack(&self.weights, self.cin * self.kh * self.kw, self.cout);
        self
    }

    /// The same convolution summing in `order`.
    pub fn with_order(mut self, order: SumOrder) -> Self {
        self.order = order;
        self
    }

    /// Output size for an input of `h × w` upsampled `up`×.
    pub fn out_size(&self, h: usize, w: usize, up: usize) -> (usize, usize) {
        let ph = h * up + self.pads[0] + self.pads[2];
        let pw = w * up + self.pads[1] + self.pads[3];
        (
            ph.saturating_sub(self.kh) / self.stride + 1,
            pw.saturating_sub(self.kw) / self.stride + 1,
        )
    }

    /// Runs the convolution on `x` upsampled `up`× (nearest; 1 for none). The raw sums (bias
    /// not added) land in the output planes; then, for each block of output pixels and each
    /// channel, `epilogue(channel, first_pixel, values)` finishes them in place (bias,
    /// activation, quantisation, statistics) while they are in cache, and its results come
    /// back as `[block][channel]`.
    pub fn forward<S, F>(&self, x: &FeatureMap, up: usize, epilogue: F) -> (FeatureMap, Vec<Vec<S>>)
    where
        S: Send,
        F: Fn(usize, usize, &mut [f32]) -> S + Sync,
    {
        debug_assert_eq!(x.c, self.cin);
        if let Some(dw) = &self.direct {
            let (oh, ow) = self.out_size(x.h, x.w, up);
            let shape = direct::Shape {
                run: self.run_length(oh * ow),
                cin: self.cin,
                cout: self.cout,
                kh: self.kh,
                kw: self.kw,
                stride: self.stride,
                up,
                pads: self.pads,
                mode: self.mode,
            };
            if let Some(done) = direct::forward(dw, shape, x, &epilogue) {
                return done;
            }
        }
        let (oh, ow) = self.out_size(x.h, x.w, up);
        let hw = oh * ow;
        let k = self.kh * self.kw * self.cin;
        let cout = self.cout;
        let mut out = FeatureMap::zeros(cout, oh, ow);
        let direct = self.kh == 1
            && self.kw == 1
            && self.stride == 1
            && up == 1
            && self.pads == [0, 0, 0, 0];
        let block = (BLOCK_COL_FLOATS / k).clamp(64, 8192) / 16 * 16;
        let ph = x.h * up + self.pads[0] + self.pads[2];
        let pw = x.w * up + self.pads[1] + self.pads[3];
        let ymap = axis_map(x.h, up, self.pads[0], ph, self.mode);
        let xmap = axis_map(x.w, up, self.pads[1], pw, self.mode);
        let run = match self.order {
            SumOrder::Fast => k,
            SumOrder::Mlas => mlas_stride_k(hw, k),
        };
        let dst = OutPtr(out.data.as_mut_ptr());
        let out_len = out.data.len();
        let blocks = hw.div_ceil(block);
        let results: Vec<Vec<S>> = (0..blocks)
            .into_par_iter()
            .map(|bi| {
                let p0 = bi * block;
                let np = block.min(hw - p0);
                COLS.with(|cols| {
                    let mut cols = cols.borrow_mut();
                    // Column-major lhs: element (pixel p, depth kk) at lhs[kk * lhs_cs + p].
                    let (lhs, lhs_cs): (&[f32], usize) = if direct {
                        (&x.data[p0..], hw)
                    } else {
                        cols.resize(k * np, 0.0);
                        self.im2col(x, &ymap, &xmap, up, ow, p0, np, &mut cols);
                        (&cols, np)
                    };
                    for k0 in (0..k).step_by(run) {
                        let kn = run.min(k - k0);
                        if np < MIN_GEMM_PIXELS {
                            self.small_product(lhs, lhs_cs, np, k0, kn, dst, hw, p0, out_len);
                        } else {
                            // SAFETY: lhs holds pixels 0..np of every depth row (checked by the
                            // slice lengths: `direct` slices start at p0 with planes of hw,
                            // `cols` has k * np); the weights are k × cout; dst addresses
                            // p0..p0+np of each of the cout planes of `out` (len cout * hw),
                            // which no other block writes.
                            assert!(
                                lhs.len() >= (k - 1) * lhs_cs + np
                                    && self.weights.len() == k * cout
                            );
                            assert!((cout - 1) * hw + p0 + np <= out_len);
                            unsafe {
                                gemm::gemm(
                                    np,
                                    cout,
                                    kn,
                                    dst.0.add(p0),
                                    hw as isize,
                                    1,
                                    k0 > 0,
                                    lhs.as_ptr().add(k0 * lhs_cs),
                                    lhs_cs as isize,
                                    1,
                                    self.weights.as_ptr().add(k0 * cout),
                                    1,
                                    cout as isize,
                                    if k0 > 0 { 1.0 } else { 0.0 },
                                    1.0,
                                    false,
                                    false,
                                    false,
                                    // Blocks already run in parallel on the rayon pool.
                                    gemm::Parallelism::None,
                                );
                            }
                        }
                    }
                });
                (0..cout)
                    .map(|ch| {
                        // SAFETY: this block's pixel range of plane `ch` (bounds as above);
                        // no other block touches it and the gemm writes above are done.
                        let seg =
                            unsafe { std::slice::from_raw_parts_mut(dst.0.add(ch * hw + p0), np) };
                        epilogue(ch, p0, seg)
                    })
                    .collect()
            })
            .collect();
        (out, results)
    }

    /// The product for a handful of pixels (e.g. a 1×1 map), summed per output value in plain
    /// sequential fused multiply-adds, as MLAS does within a K run.
    #[allow(clippy::too_many_arguments)]
    fn small_product(
        &self,
        lhs: &[f32],
        lhs_cs: usize,
        np: usize,
        k0: usize,
        kn: usize,
        dst: OutPtr,
        hw: usize,
        p0: usize,
        out_len: usize,
    ) {
        let cout = self.cout;
        for p in 0..np {
            for co in 0..cout {
                let mut acc = 0.0f32;
                for kk in k0..k0 + kn {
                    acc = lhs[kk * lhs_cs + p].mul_add(self.weights[kk * cout + co], acc);
                }
                let i = co * hw + p0 + p;
                assert!(i < out_len);
                // SAFETY: in bounds (asserted) and inside this block's own pixel range.
                unsafe {
                    let d = dst.0.add(i);
                    *d = if k0 > 0 { *d + acc } else { acc };
                }
            }
        }
    }

    /// Column-major im2col of output pixels `p0 .. p0 + np`: row `kk = (ci, ky, kx)` holds,
    /// for each pixel, the input value that kernel tap reads (padding and upsampling resolved
    /// through the axis maps). Within each output row, the columns whose tap lands inside the
    /// (upsampled) input are copied directly; only the few at the edges use the maps.
    #[allow(clippy::too_many_arguments)]
    fn im2col(
        &self,
        x: &FeatureMap,
        ymap: &[i32],
        xmap: &[i32],
        up: usize,
        ow: usize,
        p0: usize,
        np: usize,
        cols: &mut [f32],
    ) {
        let (kh, kw, s, pl) = (self.kh, self.kw, self.stride, self.pads[1]);
        let hw_in = x.pixels();
        let u = (x.w * up) as isize;
        // Per kx, the output columns [lo, hi) whose tap position j = ox*s + kx - pl is inside
        // the upsampled input (no padding involved).
        let interior: Vec<(usize, usize)> = (0..kw)
            .map(|kx| {
                let j = |ox: usize| (ox * s + kx) as isize - pl as isize;
                let lo = (0..ow).find(|&ox| j(ox) >= 0).unwrap_or(ow);
                let hi = (lo..ow).find(|&ox| j(ox) >= u).unwrap_or(ow);
                (lo, hi)
            })
            .collect();
        for ci in 0..self.cin {
            let plane = &x.data[ci * hw_in..(ci + 1) * hw_in];
            for ky in 0..kh {
                for kx in 0..kw {
                    let row_out = &mut cols[((ci * kh + ky) * kw + kx) * np..][..np];
                    let (lo, hi) = interior[kx];
                    let mut p = p0;
                    while p < p0 + np {
                        let (oy, ox0) = (p / ow, p % ow);
                        let n = (ow - ox0).min(p0 + np - p);
                        let dst = &mut row_out[p - p0..p - p0 + n];
                        p += n;
                        let sy = ymap[oy * s + ky];
                        if sy < 0 {
                            dst.fill(0.0);
                            continue;
                        }
                        let src = &plane[sy as usize * x.w..(sy as usize + 1) * x.w];
                        let (a, b) = (lo.clamp(ox0, ox0 + n), hi.clamp(ox0, ox0 + n));
                        let mapped = |ox: usize| {
                            let sx = xmap[ox * s + kx];
                            if sx < 0 { 0.0 } else { src[sx as usize] }
                        };
                        for ox in (ox0..a).chain(b..ox0 + n) {
                            dst[ox - ox0] = mapped(ox);
                        }
                        if a < b {
                            let mid = &mut dst[a - ox0..b - ox0];
                            let j0 = a * s + kx - pl;
                            copy_mapped(mid, src, j0, up, s);
                        }
                    }
                }
            }
        }
    }
}

/// `dst[i] = src[(j0 + i * stride) / up]`, specialised for the cases the networks use so the
/// loops vectorise (a general division per element would dominate the convolution).
#[inline]
fn copy_mapped(dst: &mut [f32], src: &[f32], j0: usize, up: usize, stride: usize) {
    let n = dst.len();
    match (up, stride) {
        (1, 1) => dst.copy_from_slice(&src[j0..j0 + n]),
        (1, 2) => {
            let s = &src[j0..j0 + 2 * n - 1];
            for (i, d) in dst.iter_mut().enumerate() {
                *d = s[2 * i];
            }
        }
        (2, 1) => {
            // Each source value twice; the run may start on the second copy.
            let mut i = 0;
            let mut j = j0;
            if j % 2 == 1 && i < n {
                dst[0] = src[j / 2];
                i = 1;
                j += 1;
            }
            let pairs = (n - i) / 2;
            let s = &src[j / 2..j / 2 + pairs];
            for (d, &v) in dst[i..i + 2 * pairs].chunks_exact_mut(2).zip(s) {
                d[0] = v;
                d[1] = v;
            }
            i += 2 * pairs;
            if i < n {
                dst[i] = src[(j0 + i) / 2];
            }
        }
        _ => {
            for (i, d) in dst.iter_mut().enumerate() {
                *d = src[(j0 + i * stride) / up];
            }
        }
    }
}

/// Sum and sum of squares of one channel segment, in f64 (exact enough for a variance).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Moments {
    /// Values counted.
    pub n: usize,
    /// Σx.
    pub sum: f64,
    /// Σx².
    pub sum_sq: f64,
}

impl Moments {
    /// Moments of `v`.
    pub fn of(v: &[f32]) -> Self {
        // Blocks of f32 sums keep the inner loop vectorised; 256 values stay exact enough.
        let (mut sum, mut sum_sq) = (0.0f64, 0.0f64);
        for chunk in v.chunks(256) {
            let (mut s, mut q) = (0.0f32, 0.0f32);
            for &x in chunk {
                s += x;
                q += x * x;
            }
            sum += s as f64;
            sum_sq += q as f64;
        }
        Self {
            n: v.len(),
            sum,
            sum_sq,
        }
    }

    /// Adds another segment's moments.
    pub fn merge(self, o: Moments) -> Self {
        Self {
            n: self.n + o.n,
            sum: self.sum + o.sum,
            sum_sq: self.sum_sq + o.sum_sq,
        }
    }

    /// Mean and (biased) variance.
    pub fn mean_var(&self) -> (f32, f32) {
        let n = self.n.max(1) as f64;
        let mean = self.sum / n;
        (mean as f32, (self.sum_sq / n - mean * mean).max(0.0) as f32)
    }
}

/// Per-channel means and variances from a convolution's `[block][channel]` moments.
pub fn merge_moments(blocks: &[Vec<Moments>], c: usize) -> (Vec<f32>, Vec<f32>) {
    (0..c)
        .map(|ch| {
            blocks
                .iter()
                .fold(Moments::default(), |m, b| m.merge(b[ch]))
                .mean_var()
        })
        .unzip()
}

/// Per-channel mean (global average pooling), summed in f64.
pub fn channel_mean(x: &FeatureMap) -> Vec<f32> {
    let hw = x.pixels();
    x.data
        .par_chunks(hw.max(1))
        .map(|p| {
            let s: f64 = p.chunks(256).map(|c| c.iter().sum::<f32>() as f64).sum();
            (s / hw.max(1) as f64) as f32
        })
        .collect()
}

/// Runs `f(channel, plane)` on every plane of `data` (planes of `hw` values), in parallel.
pub fn map_planes(data: &mut [f32], hw: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    data.par_chunks_mut(hw.max(1))
        .enumerate()
        .for_each(|(ch, p)| f(ch, p));
}

/// Fake quantisation to a per-tensor int8/uint8 grid and back, exactly as ONNX
/// `QuantizeLinear` → `DequantizeLinear` computes it: divide by the scale, round half to even,
/// add the zero point, saturate, subtract the zero point, multiply by the scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FakeQuant {
    scale: f32,
    zp: f32,
    lo: f32,
    hi: f32,
}

impl FakeQuant {
    /// From a `QuantizeLinear` node's parameters.
    pub fn new(q: QuantParams) -> Self {
        Self {
            scale: q.scale,
            zp: q.zero_point as f32,
            lo: q.qmin as f32,
            hi: q.qmax as f32,
        }
    }

    /// The quantisation step.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// `(scale, zero point, qmin, qmax)`, the GPU kernels' `vec4` (`fq` in
    /// `shaders/compute/common.wgsl`).
    pub fn params(&self) -> [f32; 4] {
        [self.scale, self.zp, self.lo, self.hi]
    }

    /// `x` snapped to the grid.
    #[inline(always)]
    pub fn apply(&self, x: f32) -> f32 {
        let q = (x / self.scale).round_ties_even() + self.zp;
        (clamp(q, self.lo, self.hi) - self.zp) * self.scale
    }
}

/// e^x from IEEE operations only (products, fused multiply-adds, rounding, scaling by a power
/// of two), so that the GPU kernels (`exp_portable` in `shaders/compute/common.wgsl`) compute
/// the same bits; a library `exp` differs from a driver's in the last bit, and the arbitrary
/// transform quantises its sigmoid output right after. Cody–Waite reduction by ln 2 and
/// Cephes' degree-6 polynomial on [−ln2/2, ln2/2]: within 1 ULP of e^x for x in [−87, 88]
/// (clamped there: the sigmoid is 0 or 1 beyond).
// The coefficients as Cephes publishes them (and as the WGSL copy spells them).
#[allow(clippy::excessive_precision)]
pub fn exp_portable(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = (-n).mul_add(0.693_359_4, x);
    let r = (-n).mul_add(-2.121_944_4e-4, r);
    let mut c = 1.987_569_15e-4_f32.mul_add(r, 1.398_199_950_7e-3);
    c = c.mul_add(r, 8.333_451_907_3e-3);
    c = c.mul_add(r, 4.166_579_589_4e-2);
    c = c.mul_add(r, 1.666_666_545_9e-1);
    c = c.mul_add(r, 5.000_000_120_1e-1);
    let e = c.mul_add(r * r, r) + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `v` limited to `lo..=hi` with plain comparisons: unlike `f32::clamp`/`max`/`min` (NaN
/// handling, bound checks) this compiles to vector min/max, so the element loops vectorise.
#[inline(always)]
pub fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if v > hi { hi } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_index_matches_hand_computed_cases() {
        // n = 4: ... 2 1 | 0 1 2 3 | 2 1 0 1 ...
        let got: Vec<usize> = (-3..8).map(|i| reflect_index(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]);
        assert_eq!(reflect_index(-5, 1), 0);
        assert_eq!(reflect_index(2, 2), 0);
    }

    #[test]
    fn reflect_pad_matches_a_hand_worked_case() {
        // [[1 2 3]      padded by top 1, bottom 1, left 2, right 2:
        //  [4 5 6]]     row -1 = row 1, row 2 = row 0; cols -2,-1 = 2,1; cols 3,4 = 1,0
        let x = FeatureMap::from_vec(1, 2, 3, vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let p = reflect_pad(&x, 1, 1, 2, 2);
        assert_eq!((p.h, p.w), (4, 7));
        let want = [
            [6., 5., 4., 5., 6., 5., 4.],
            [3., 2., 1., 2., 3., 2., 1.],
            [6., 5., 4., 5., 6., 5., 4.],
            [3., 2., 1., 2., 3., 2., 1.],
        ];
        assert_eq!(p.data, want.concat());
    }

    /// Direct (slow, obvious) convolution on a reflect-padded, upsampled input.
    fn naive(
        x: &FeatureMap,
        w: &[f32],
        dims: [usize; 4],
        stride: usize,
        pad: usize,
        up: usize,
    ) -> FeatureMap {
        let [cout, cin, kh, kw] = dims;
        let mut u = FeatureMap::zeros(x.c, x.h * up, x.w * up);
        for c in 0..x.c {
            for y in 0..u.h {
                for xx in 0..u.w {
                    u.data[(c * u.h + y) * u.w + xx] = x.data[(c * x.h + y / up) * x.w + xx / up];
                }
            }
        }
        let p = reflect_pad(&u, pad, pad, pad, pad);
        let oh = (p.h - kh) / stride + 1;
        let ow = (p.w - kw) / stride + 1;
        let mut out = FeatureMap::zeros(cout, oh, ow);
        for co in 0..cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0.0;
                    for ci in 0..cin {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                s += p.data[(ci * p.h + oy * stride + ky) * p.w + ox * stride + kx]
                                    * w[((co * cin + ci) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    out.data[(co * oh + oy) * ow + ox] = s;
                }
            }
        }
        out
    }

    fn rnd(seed: &mut u32) -> f32 {
        *seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
        (*seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    }

    #[test]
    fn conv_matches_naive_with_reflect_pad_stride_and_upsample() {
        let mut seed = 1u32;
        for &(cin, cout, k, stride, up, h, w, order) in &[
            (3, 5, 3, 1, 1, 7, 9, SumOrder::Fast),
            (4, 3, 9, 1, 1, 12, 10, SumOrder::Mlas),
            (6, 7, 3, 2, 1, 9, 8, SumOrder::Fast),
            (5, 4, 3, 1, 2, 5, 6, SumOrder::Mlas),
            (40, 4, 1, 1, 1, 3, 2, SumOrder::Mlas),
        ] {
            let x = FeatureMap::from_vec(
                cin,
                h,
                w,
                (0..h * w * cin).map(|_| rnd(&mut seed)).collect(),
            )
            .unwrap();
            let wt: Vec<f32> = (0..cout * cin * k * k).map(|_| rnd(&mut seed)).collect();
            let pad = k / 2;
            let conv = Conv::from_oihw(
                &wt,
                [cout, cin, k, k],
                None,
                stride,
                [pad; 4],
                PadMode::Reflect,
            )
            .unwrap()
            .with_order(order);
            let (got, _) = conv.forward(&x, up, |_, _, _| ());
            let want = naive(&x, &wt, [cout, cin, k, k], stride, pad, up);
            assert_eq!((got.c, got.h, got.w), (want.c, want.h, want.w));
            let max = got
                .data
                .iter()
                .zip(&want.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                max < 1e-4,
                "cin {cin} k {k} stride {stride} up {up}: max diff {max}"
            );
        }
    }

    #[test]
    fn mlas_k_runs() {
        assert_eq!(mlas_stride_k(147456, 243), 128);
        assert_eq!(mlas_stride_k(147456, 72), 128);
        assert_eq!(mlas_stride_k(1, 1280), 1024);
        assert_eq!(mlas_stride_k(64, 160), 256);
    }

    #[test]
    fn fake_quant_rounds_half_to_even_and_saturates() {
        let fq = FakeQuant::new(QuantParams {
            scale: 0.5,
            zero_point: -128,
            qmin: -128,
            qmax: 127,
        });
        assert_eq!(fq.apply(0.25), 0.0); // 0.5 -> 0 (even)
        assert_eq!(fq.apply(0.75), 1.0); // 1.5 -> 2 -> 1.0
        assert_eq!(fq.apply(-3.0), 0.0); // below the grid: saturates at zp
        assert_eq!(fq.apply(1000.0), 127.5); // 255 steps
    }

    #[test]
    fn portable_exp_is_within_one_ulp() {
        let mut worst = 0.0f64;
        for i in -87_000..=87_900 {
            let x = i as f32 * 1e-3 + 1.7e-4;
            let want = (x as f64).exp();
            let got = exp_portable(x) as f64;
            let ulp = (f32::from_bits((want as f32).to_bits() + 1) - want as f32) as f64;
            worst = worst.max((got - want).abs() / ulp);
        }
        assert!(worst <= 1.0, "worst error {worst} ULP");
        assert_eq!(exp_portable(0.0), 1.0);
        assert_eq!(exp_portable(-1000.0), exp_portable(-87.0));
    }

    #[test]
    fn moments_give_mean_and_variance() {
        let (mean, var) = Moments::of(&[1.0, 3.0])
            .merge(Moments::of(&[1.0, 3.0]))
            .mean_var();
        assert_eq!((mean, var), (2.0, 1.0));
    }
}
