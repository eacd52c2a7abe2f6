//! 1×1 convolutions on quantised NHWC activations, the bulk of the style predictor's work.
//!
//! Activations are bytes: the tensor's integer codes shifted to `0..=255` (see
//! [`super::mobilenet::Grid`]), one pixel's channels contiguous. A 1×1 convolution is then a
//! GEMM of `pixels × K` bytes by `K × cout` weights, and the two kinds onnxruntime runs are
//! reproduced bit for bit:
//!
//! - [`PointwiseInt8`]: the convolutions its QDQ fusion turns into `QLinearConv` — exact
//!   integer sums (`vpdpbusd`: unsigned codes × signed weights, four products per lane), one
//!   float multiply by `s_x · s_w / s_y`, saturation, round half to even.
//! - [`PointwiseFloat`]: the ones it leaves as float `Conv` (dequantised inputs and weights,
//!   MLAS's SGEMM): per output, fused multiply-adds from zero in runs of MLAS's K stride, each
//!   run's sum added to the total, then bias, activation and the output quantiser.
//!
//! With AVX-512 (F, BW, VNNI) a register tile of 8 pixels × up to 48 output channels does the
//! work; elsewhere a plain loop computes the same numbers.

use rayon::prelude::*;

use super::ops::mlas_stride_k;
// The same AVX-512 F/BW/VNNI check as the language model's int8 kernels.
use crate::models::llm::native::quant::fast_kernels_available;

/// Pixels per register tile.
pub(crate) const MR: usize = 8;
/// Output channels per vector.
const LANES: usize = 16;

/// An int8 1×1 convolution as `QLinearConv` computes it.
#[derive(Clone, Debug)]
pub(crate) struct PointwiseInt8 {
    k: usize,
    cout: usize,
    /// `cout` rounded up to whole vectors.
    cout_pad: usize,
    /// `[k / 4][cout_pad][4]`: four consecutive input channels of one output channel per
    /// 32-bit lane, the layout `vpdpbusd` multiplies against a broadcast pixel.
    packed: Vec<i8>,
    /// `[k][cout]` as stored, for the portable loop.
    plain: Vec<i32>,
    /// `bias - offset_in · Σ w` per output channel (`[cout_pad]`): the sums run over the
    /// shifted codes, this takes the input's zero back out.
    corr: Vec<i32>,
    /// `s_x · s_w / s_y` per output channel (`[cout_pad]`).
    mult: Vec<f32>,
    /// Saturation in steps from the output zero point.
    lo: f32,
    hi: f32,
    /// The output code of step 0.
    off_out: i32,
}

impl PointwiseInt8 {
    /// From integer weights `[k][cout]`, integer bias, the input's code offset (the code of
    /// the real zero), per-channel multipliers, saturation bounds in steps and the output's
    /// code offset.
    #[allow(clippy::too_many_arguments)] // one constructor from the loader's parts
    pub(crate) fn new(
        weights_k_by_cout: &[i32],
        k: usize,
        cout: usize,
        bias: &[i32],
        off_in: i32,
        mult: &[f32],
        (lo, hi): (i32, i32),
        off_out: i32,
    ) -> Option<Self> {
        if k == 0
            || cout == 0
            || weights_k_by_cout.len() != k * cout
            || bias.len() != cout
            || mult.len() != cout
            || weights_k_by_cout
                .iter()
                .any(|&w| !(-128..=127).contains(&w))
        {
            return None;
        }
        let cout_pad = cout.div_ceil(LANES) * LANES;
        let k4 = k.div_ceil(4);
        let mut packed = vec![0i8; k4 * cout_pad * 4];
        let mut corr = vec![0i32; cout_pad];
        let mut mult_pad = vec![0f32; cout_pad];
        for co in 0..cout {
            let mut sum = 0i32;
            for kk in 0..k {
                let w = weights_k_by_cout[kk * cout + co];
                sum += w;
                // The value was range-checked above.
                packed[((kk / 4) * cout_pad + co) * 4 + kk % 4] = w as i8;
            }
            corr[co] = bias[co] - off_in * sum;
            mult_pad[co] = mult[co];
        }
        Some(Self {
            k,
            cout,
            cout_pad,
            packed,
            plain: weights_k_by_cout.to_vec(),
            corr,
            mult: mult_pad,
            lo: lo as f32,
            hi: hi as f32,
            off_out,
        })
    }

    /// Input and output channels.
    pub(crate) fn channels(&self) -> (usize, usize) {
        (self.k, self.cout)
    }

    /// The output codes of `x` (`pixels × k` bytes), `pixels × cout` bytes.
    pub(crate) fn forward(&self, x: &[u8], out: &mut [u8]) {
        let (k, cout) = (self.k, self.cout);
        let pixels = x.len() / k;
        debug_assert_eq!(out.len(), pixels * cout);
        #[cfg(target_arch = "x86_64")]
        if k.is_multiple_of(4) && fast_kernels_available() {
            par_pixels(x, k, out, cout, |xs, os| {
                // SAFETY: the CPU has the features (checked above); the slices hold whole
                // pixels of k and cout bytes, which is all the kernel reads and writes.
                unsafe { x86::int8_rows(self, xs, os) }
            });
            return;
        }
        par_pixels(x, k, out, cout, |xs, os| self.portable(xs, os));
    }

    /// The reference loop: exact integer sums, then the same float steps.
    fn portable(&self, x: &[u8], out: &mut [u8]) {
        let (k, cout) = (self.k, self.cout);
        for (px, o) in x.chunks_exact(k).zip(out.chunks_exact_mut(cout)) {
            for (co, ov) in o.iter_mut().enumerate() {
                let mut acc = self.corr[co];
                for (kk, &xv) in px.iter().enumerate() {
                    acc += xv as i32 * self.plain[kk * cout + co];
                }
                let v = (acc as f32 * self.mult[co]).clamp(self.lo, self.hi);
                *ov = (v.round_ties_even() as i32 + self.off_out) as u8;
            }
        }
    }
}

/// A float 1×1 convolution as onnxruntime's float `Conv` computes it.
#[derive(Clone, Debug)]
pub(crate) struct PointwiseFloat {
    k: usize,
    cout: usize,
    cout_pad: usize,
    /// Dequantised weights `[k][cout_pad]` (zeros past `cout`).
    weights: Vec<f32>,
    /// `[cout_pad]`.
    bias: Vec<f32>,
    /// The input's dequantised value of each code (256).
    lut: Vec<f32>,
    /// The activation's bounds (±∞ for none).
    act: (f32, f32),
    /// The output quantiser: scale, zero point, `qmin`, `qmax`.
    quant: [f32; 4],
}

impl PointwiseFloat {
    /// From dequantised weights `[k][cout]`, the float bias, the input's value per code, the
    /// activation's bounds and the output quantiser `(scale, zero point, qmin, qmax)`.
    pub(crate) fn new(
        weights_k_by_cout: &[f32],
        k: usize,
        cout: usize,
        bias: &[f32],
        lut: [f32; 256],
        act: (f32, f32),
        quant: [f32; 4],
    ) -> Option<Self> {
        if k == 0 || cout == 0 || weights_k_by_cout.len() != k * cout || bias.len() != cout {
            return None;
        }
        let lut = lut.to_vec();
        let cout_pad = cout.div_ceil(LANES) * LANES;
        let mut weights = vec![0f32; k * cout_pad];
        for kk in 0..k {
            weights[kk * cout_pad..][..cout]
                .copy_from_slice(&weights_k_by_cout[kk * cout..][..cout]);
        }
        let mut b = vec![0f32; cout_pad];
        b[..cout].copy_from_slice(bias);
        Some(Self {
            k,
            cout,
            cout_pad,
            weights,
            bias: b,
            lut,
            act,
            quant,
        })
    }

    /// Input and output channels.
    pub(crate) fn channels(&self) -> (usize, usize) {
        (self.k, self.cout)
    }

    /// The output codes of `x` (`pixels × k` bytes), `pixels × cout` bytes. `run` is MLAS's K
    /// stride for this layer's whole output (it depends on the pixel count, not on the split).
    pub(crate) fn forward(&self, x: &[u8], out: &mut [u8]) {
        let (k, cout) = (self.k, self.cout);
        let pixels = x.len() / k;
        debug_assert_eq!(out.len(), pixels * cout);
        let run = mlas_stride_k(pixels, k);
        #[cfg(target_arch = "x86_64")]
        if avx512_available() {
            par_pixels(x, k, out, cout, |xs, os| {
                // SAFETY: AVX-512F is present (checked above); whole pixels as for int8.
                unsafe { x86::float_rows(self, run, xs, os) }
            });
            return;
        }
        par_pixels(x, k, out, cout, |xs, os| self.portable(run, xs, os));
    }

    /// The final code of a raw sum for output channel `co`.
    #[inline(always)]
    fn finish(&self, co: usize, sum: f32) -> u8 {
        let [scale, zp, qmin, qmax] = self.quant;
        let v = clamp(sum + self.bias[co], self.act.0, self.act.1);
        let q = clamp((v / scale).round_ties_even() + zp, qmin, qmax);
        (q - qmin) as u8
    }

    /// The reference loop, in MLAS's order.
    fn portable(&self, run: usize, x: &[u8], out: &mut [u8]) {
        let (k, cout) = (self.k, self.cout);
        for (px, o) in x.chunks_exact(k).zip(out.chunks_exact_mut(cout)) {
            for (co, ov) in o.iter_mut().enumerate() {
                let mut total = 0f32;
                for k0 in (0..k).step_by(run) {
                    let mut acc = 0f32;
                    for (kk, &code) in px.iter().enumerate().skip(k0).take(run) {
                        acc = self.lut[code as usize]
                            .mul_add(self.weights[kk * self.cout_pad + co], acc);
                    }
                    total = if k0 == 0 { acc } else { total + acc };
                }
                *ov = self.finish(co, total);
            }
        }
    }
}

/// `v` limited to `lo..=hi` (vectorises; NaN-free inputs).
#[inline(always)]
fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if v > hi { hi } else { v }
}

/// Splits the pixels into one contiguous part per worker thread (whole register tiles), so
/// each layer costs one fork and join however small it is.
fn par_pixels(
    x: &[u8],
    k: usize,
    out: &mut [u8],
    cout: usize,
    f: impl Fn(&[u8], &mut [u8]) + Sync,
) {
    let pixels = x.len() / k;
    let parts = rayon::current_num_threads().max(1);
    let per = pixels.div_ceil(parts).div_ceil(MR).max(1) * MR;
    x.par_chunks(per * k)
        .zip(out.par_chunks_mut(per * cout))
        .for_each(|(xs, os)| f(xs, os));
}

/// Whether the float kernel runs on this CPU.
pub(crate) fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{LANES, MR, PointwiseFloat, PointwiseInt8};

    /// Output channels per column block, as vectors: 8 pixels × 3 vectors keep 24 accumulators
    /// and the 3 weight vectors in registers.
    const NV: usize = 3;

    /// The byte mask of the output channels `co .. co + 16` that exist.
    #[inline(always)]
    fn lane_mask(co: usize, cout: usize) -> u16 {
        let n = cout.saturating_sub(co).min(LANES);
        if n == LANES {
            u16::MAX
        } else {
            (1u16 << n) - 1
        }
    }

    /// Runs `block::<nv>(p0, co, rows)` over the pixel tiles and column blocks of a part;
    /// tiles past the last pixel read a zero-padded copy (`pad`).
    macro_rules! for_blocks {
        ($cout_pad:expr, $co:ident, $nv:ident => $body:expr) => {{
            let mut $co = 0;
            while $co < $cout_pad {
                let left = ($cout_pad - $co) / LANES;
                match left.min(NV) {
                    3 => {
                        const $nv: usize = 3;
                        $body;
                    }
                    2 => {
                        const $nv: usize = 2;
                        $body;
                    }
                    _ => {
                        const $nv: usize = 1;
                        $body;
                    }
                }
                $co += left.min(NV) * LANES;
            }
        }};
    }

    /// The int8 convolution of whole pixels `x` (`k` bytes each) into `out` (`cout` each).
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW and VNNI, and `l.k` must be a multiple of 4.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) unsafe fn int8_rows(l: &PointwiseInt8, x: &[u8], out: &mut [u8]) {
        let (k, cout) = (l.k, l.cout);
        let pixels = x.len() / k;
        let mut pad = Vec::new();
        for p0 in (0..pixels).step_by(MR) {
            let rows = MR.min(pixels - p0);
            let src: *const u8 = if rows == MR {
                x[p0 * k..][..MR * k].as_ptr()
            } else {
                pad.clear();
                pad.resize(MR * k, 0);
                pad[..rows * k].copy_from_slice(&x[p0 * k..][..rows * k]);
                pad.as_ptr()
            };
            let dst = out[p0 * cout..][..rows * cout].as_mut_ptr();
            for_blocks!(l.cout_pad, co, N => {
                // SAFETY: src holds MR pixels of k bytes; dst holds `rows` pixels of cout
                // bytes and the stores are masked to channels below cout.
                unsafe { int8_block::<N>(l, src, co, dst, rows) }
            });
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn int8_block<const N: usize>(
        l: &PointwiseInt8,
        src: *const u8,
        co: usize,
        dst: *mut u8,
        rows: usize,
    ) {
        let (k, cout, cout_pad) = (l.k, l.cout, l.cout_pad);
        let mut acc = [[_mm512_setzero_si512(); N]; MR];
        let mut wp = unsafe { l.packed.as_ptr().add(co * 4) };
        for kk in (0..k).step_by(4) {
            let mut w = [_mm512_setzero_si512(); N];
            for (v, wv) in w.iter_mut().enumerate() {
                *wv = unsafe { _mm512_loadu_si512(wp.add(v * 64) as *const _) };
            }
            for (p, row) in acc.iter_mut().enumerate() {
                let four = unsafe { (src.add(p * k + kk) as *const i32).read_unaligned() };
                let b = _mm512_set1_epi32(four);
                for (a, &wv) in row.iter_mut().zip(&w) {
                    *a = _mm512_dpbusd_epi32(*a, b, wv);
                }
            }
            wp = unsafe { wp.add(cout_pad * 4) };
        }
        let (lo, hi) = (_mm512_set1_ps(l.lo), _mm512_set1_ps(l.hi));
        let off = _mm512_set1_epi32(l.off_out);
        for v in 0..N {
            let c0 = co + v * LANES;
            let corr = unsafe { _mm512_loadu_si512(l.corr.as_ptr().add(c0) as *const _) };
            let mult = unsafe { _mm512_loadu_ps(l.mult.as_ptr().add(c0)) };
            let mask = lane_mask(c0, cout);
            for (p, row) in acc.iter().enumerate().take(rows) {
                let f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(row[v], corr)), mult);
                let f = _mm512_min_ps(_mm512_max_ps(f, lo), hi);
                let q = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    f,
                );
                let bytes = _mm512_cvtepi32_epi8(_mm512_add_epi32(q, off));
                unsafe { _mm_mask_storeu_epi8(dst.add(p * cout + c0) as *mut i8, mask, bytes) };
            }
        }
    }

    /// The float convolution of whole pixels `x` into `out`, K summed in runs of `run`.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and BW.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn float_rows(l: &PointwiseFloat, run: usize, x: &[u8], out: &mut [u8]) {
        let (k, cout) = (l.k, l.cout);
        let pixels = x.len() / k;
        // The tile's inputs, dequantised once: `[MR][k]`.
        let mut tile = vec![0f32; MR * k];
        for p0 in (0..pixels).step_by(MR) {
            let rows = MR.min(pixels - p0);
            for (t, &code) in tile.iter_mut().zip(&x[p0 * k..(p0 + rows) * k]) {
                *t = l.lut[code as usize];
            }
            tile[rows * k..].fill(0.0);
            let dst = out[p0 * cout..][..rows * cout].as_mut_ptr();
            for_blocks!(l.cout_pad, co, N => {
                // SAFETY: tile holds MR × k floats; dst as for int8.
                unsafe { float_block::<N>(l, run, tile.as_ptr(), co, dst, rows) }
            });
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn float_block<const N: usize>(
        l: &PointwiseFloat,
        run: usize,
        tile: *const f32,
        co: usize,
        dst: *mut u8,
        rows: usize,
    ) {
        let (k, cout, cout_pad) = (l.k, l.cout, l.cout_pad);
        let mut total = [[_mm512_setzero_ps(); N]; MR];
        let mut k0 = 0;
        while k0 < k {
            let kn = run.min(k - k0);
            let mut acc = [[_mm512_setzero_ps(); N]; MR];
            for kk in k0..k0 + kn {
                let wp = unsafe { l.weights.as_ptr().add(kk * cout_pad + co) };
                let mut w = [_mm512_setzero_ps(); N];
                for (v, wv) in w.iter_mut().enumerate() {
                    *wv = unsafe { _mm512_loadu_ps(wp.add(v * LANES)) };
                }
                for (p, row) in acc.iter_mut().enumerate() {
                    let b = _mm512_set1_ps(unsafe { *tile.add(p * k + kk) });
                    for (a, &wv) in row.iter_mut().zip(&w) {
                        *a = _mm512_fmadd_ps(b, wv, *a);
                    }
                }
            }
            for (t, a) in total.iter_mut().zip(&acc) {
                for (tv, &av) in t.iter_mut().zip(a) {
                    *tv = if k0 == 0 { av } else { _mm512_add_ps(*tv, av) };
                }
            }
            k0 += kn;
        }
        let [scale, zp, qmin, qmax] = l.quant;
        let (alo, ahi) = (_mm512_set1_ps(l.act.0), _mm512_set1_ps(l.act.1));
        let (scale, zp) = (_mm512_set1_ps(scale), _mm512_set1_ps(zp));
        let (qlo, qhi, qmin) = (
            _mm512_set1_ps(qmin),
            _mm512_set1_ps(qmax),
            _mm512_set1_ps(qmin),
        );
        for v in 0..N {
            let c0 = co + v * LANES;
            let bias = unsafe { _mm512_loadu_ps(l.bias.as_ptr().add(c0)) };
            let mask = lane_mask(c0, cout);
            for (p, row) in total.iter().enumerate().take(rows) {
                let x = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(row[v], bias), alo), ahi);
                let q = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm512_div_ps(x, scale),
                );
                let q = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(q, zp), qlo), qhi);
                let code = _mm512_cvttps_epi32(_mm512_sub_ps(q, qmin));
                let bytes = _mm512_cvtepi32_epi8(code);
                unsafe { _mm_mask_storeu_epi8(dst.add(p * cout + c0) as *mut i8, mask, bytes) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rnd(seed: &mut u32) -> u32 {
        *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *seed >> 8
    }

    #[test]
    fn int8_kernel_matches_the_portable_loop() {
        let mut s = 7;
        for (pixels, k, cout) in [(37, 16, 24), (64, 96, 160), (9, 32, 16), (130, 8, 48)] {
            let w: Vec<i32> = (0..k * cout)
                .map(|_| (rnd(&mut s) % 255) as i32 - 127)
                .collect();
            let bias: Vec<i32> = (0..cout)
                .map(|_| (rnd(&mut s) % 2001) as i32 - 1000)
                .collect();
            let mult: Vec<f32> = (0..cout)
                .map(|_| 1e-3 + (rnd(&mut s) % 1000) as f32 * 1e-6)
                .collect();
            let l = PointwiseInt8::new(&w, k, cout, &bias, 3, &mult, (-120, 130), 122).unwrap();
            let x: Vec<u8> = (0..pixels * k).map(|_| rnd(&mut s) as u8).collect();
            let (mut a, mut b) = (vec![0u8; pixels * cout], vec![0u8; pixels * cout]);
            l.forward(&x, &mut a);
            l.portable(&x, &mut b);
            assert_eq!(a, b, "{pixels}×{k}→{cout}");
            // And against the definition.
            for p in [0, pixels - 1] {
                for co in [0, cout - 1] {
                    let sum: i32 = (0..k)
                        .map(|kk| (x[p * k + kk] as i32 - 3) * w[kk * cout + co])
                        .sum();
                    let v = ((sum + bias[co]) as f32 * mult[co])
                        .clamp(-120.0, 130.0)
                        .round_ties_even();
                    assert_eq!(a[p * cout + co] as i32, v as i32 + 122);
                }
            }
        }
    }

    #[test]
    fn float_kernel_matches_the_portable_loop_in_mlas_order() {
        let mut s = 11;
        let mut lut = [0f32; 256];
        for (i, v) in lut.iter_mut().enumerate() {
            *v = (i as i32 - 131) as f32 * 0.0371;
        }
        // 300 and 576 deep: more than one MLAS K run.
        for (pixels, k, cout) in [(37, 24, 144), (64, 576, 160), (9, 300, 24), (256, 96, 24)] {
            let w: Vec<f32> = (0..k * cout)
                .map(|_| ((rnd(&mut s) % 255) as f32 - 127.0) * 0.0113)
                .collect();
            let bias: Vec<f32> = (0..cout)
                .map(|_| (rnd(&mut s) % 2001) as f32 * 1e-3 - 1.0)
                .collect();
            let l = PointwiseFloat::new(
                &w,
                k,
                cout,
                &bias,
                lut,
                (0.0, 6.0),
                [0.0235, -128.0, -128.0, 127.0],
            )
            .unwrap();
            let x: Vec<u8> = (0..pixels * k).map(|_| rnd(&mut s) as u8).collect();
            let (mut a, mut b) = (vec![0u8; pixels * cout], vec![0u8; pixels * cout]);
            l.forward(&x, &mut a);
            l.portable(mlas_stride_k(pixels, k), &x, &mut b);
            assert_eq!(a, b, "{pixels}×{k}→{cout}");
        }
    }
}
