//! The style predictor's layers on quantised NHWC activations.
//!
//! Every activation of the quantised MobileNetV2 is an 8-bit integer on a per-tensor grid, so
//! it is kept as one byte per value (the code, see [`Grid`]) with a pixel's channels
//! contiguous: a quarter of the memory traffic of floats, 1×1 convolutions become byte GEMMs
//! ([`super::pointwise`]) and the depthwise 3×3s vectorise across channels. Each layer
//! reproduces onnxruntime's arithmetic for it exactly, so the bottleneck stays bit-identical
//! to the reference.

use rayon::prelude::*;

use super::ops::{FakeQuant, FeatureMap, mlas_stride_k};

/// A tensor's quantisation grid: value = (code − `offset`) · `scale`, codes `0..=255`
/// (an int8 `q` is stored as `q + 128`, a uint8 as itself).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Grid {
    pub(crate) scale: f32,
    /// The code of the real zero (zero point − qmin).
    pub(crate) offset: i32,
}

impl Grid {
    /// The grid a quantiser writes.
    pub(crate) fn of(q: FakeQuant) -> Self {
        let [scale, zp, lo, _] = q.params();
        Self {
            scale,
            offset: (zp - lo) as i32,
        }
    }

    /// Each code's value as `DequantizeLinear` computes it: `(q − zp) · scale`.
    pub(crate) fn lut(&self) -> [f32; 256] {
        std::array::from_fn(|c| (c as i32 - self.offset) as f32 * self.scale)
    }
}

/// NHWC codes on one grid.
#[derive(Clone, Debug)]
pub(crate) struct Codes {
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) c: usize,
    pub(crate) data: Vec<u8>,
    pub(crate) grid: Grid,
}

/// A quantiser's code of `v`, exactly as `QuantizeLinear` computes it.
#[inline(always)]
pub(crate) fn quantise(v: f32, [scale, zp, qmin, qmax]: [f32; 4]) -> u8 {
    let q = clamp((v / scale).round_ties_even() + zp, qmin, qmax);
    (q - qmin) as u8
}

#[inline(always)]
fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if v > hi { hi } else { v }
}

/// A small dense float convolution (the stem: 3×3, stride 2, 3 → 32) in MLAS's order: K in
/// (input channel, ky, kx) order, fused multiply-adds from zero in runs of MLAS's K stride.
#[derive(Clone, Debug)]
pub(crate) struct Stem {
    pub(crate) cin: usize,
    pub(crate) cout: usize,
    pub(crate) k: usize,
    pub(crate) stride: usize,
    /// `[top, left, bottom, right]`, zeros.
    pub(crate) pads: [usize; 4],
    /// `[cin · k · k][cout]`.
    pub(crate) weights: Vec<f32>,
    pub(crate) bias: Vec<f32>,
    pub(crate) act: (f32, f32),
    pub(crate) out: FakeQuant,
}

impl Stem {
    /// The stem on an image (`cin` planes of floats), quantised first by `input`.
    pub(crate) fn forward(&self, x: &FeatureMap, input: FakeQuant) -> Codes {
        self.forward_on(x, input, super::pointwise::avx512_available())
    }

    /// [`Stem::forward`], with the AVX-512 kernel where `vector` says so.
    fn forward_on(&self, x: &FeatureMap, input: FakeQuant, vector: bool) -> Codes {
        let (k, s, cout, cin) = (self.k, self.stride, self.cout, self.cin);
        let oh = (x.h + self.pads[0] + self.pads[2]).saturating_sub(k) / s + 1;
        let ow = (x.w + self.pads[1] + self.pads[3]).saturating_sub(k) / s + 1;
        let depth = cin * k * k;
        let run = mlas_stride_k(oh * ow, depth);
        // The input quantised once into zero-padded planes, so every tap of every output
        // pixel is a fixed offset from the pixel's corner (and the copy vectorises).
        let (ph, pw) = ((oh - 1) * s + k, (ow - 1) * s + k);
        let mut xp = vec![0f32; cin * ph * pw];
        let (pt, pl) = (self.pads[0], self.pads[1]);
        for (ci, plane) in xp.chunks_exact_mut(ph * pw).enumerate().take(x.c) {
            for (y, src) in x.plane(ci).chunks_exact(x.w).enumerate() {
                let Some(row) = plane.get_mut((y + pt) * pw + pl..(y + pt + 1) * pw) else {
                    continue;
                };
                for (d, &v) in row.iter_mut().zip(src) {
                    *d = input.apply(v);
                }
            }
        }
        // Tap (ci, ky, kx), MLAS's K order, as an offset from the corner.
        let taps: Vec<usize> = (0..cin)
            .flat_map(|ci| {
                (0..k).flat_map(move |ky| (0..k).map(move |kx| ci * ph * pw + ky * pw + kx))
            })
            .collect();
        let quant = self.out.params();
        let mut data = vec![0u8; oh * ow * cout];
        #[cfg(target_arch = "x86_64")]
        let fast = vector && (cout == 16 || cout == 32);
        data.par_chunks_mut(ow * cout)
            .enumerate()
            .for_each(|(oy, row)| {
                let corner = |ox: usize| oy * s * pw + ox * s;
                #[cfg(target_arch = "x86_64")]
                if fast {
                    // SAFETY: AVX-512 present (checked above); every corner + tap offset lies in
                    // xp (the padded image covers all taps of all outputs).
                    unsafe { x86::stem_row(self, &xp, &taps, corner(0), s, run, row) };
                    return;
                }
                let mut acc = vec![0f32; cout];
                let mut total = vec![0f32; cout];
                for (ox, px) in row.chunks_exact_mut(cout).enumerate() {
                    let base = corner(ox);
                    for k0 in (0..depth).step_by(run) {
                        acc.fill(0.0);
                        for (kk, &t) in taps.iter().enumerate().skip(k0).take(run) {
                            let w = &self.weights[kk * cout..][..cout];
                            let v = xp[base + t];
                            for (a, &wv) in acc.iter_mut().zip(w) {
                                *a = v.mul_add(wv, *a);
                            }
                        }
                        if k0 == 0 {
                            total.copy_from_slice(&acc);
                        } else {
                            total.iter_mut().zip(&acc).for_each(|(t, a)| *t += a);
                        }
                    }
                    for ((o, &t), &b) in px.iter_mut().zip(&total).zip(&self.bias) {
                        *o = quantise(clamp(t + b, self.act.0, self.act.1), quant);
                    }
                }
            });
        Codes {
            h: oh,
            w: ow,
            c: cout,
            data,
            grid: Grid::of(self.out),
        }
    }
}

/// A quantised depthwise k×k convolution (`QLinearConv` with one group per channel): exact
/// integer sums (held in floats: at most 9 · 255 · 128, far below 2^24), then the same
/// requantisation as the 1×1s.
#[derive(Clone, Debug)]
pub(crate) struct Depthwise {
    pub(crate) c: usize,
    pub(crate) k: usize,
    pub(crate) stride: usize,
    pub(crate) pads: [usize; 4],
    /// Integer weights `[k · k][c]`.
    pub(crate) weights: Vec<f32>,
    /// Integer bias `[c]`.
    pub(crate) bias: Vec<f32>,
    /// `s_x · s_w / s_y` per channel.
    pub(crate) mult: Vec<f32>,
    /// Saturation in steps from the output zero point.
    pub(crate) lo: f32,
    pub(crate) hi: f32,
    /// The output grid.
    pub(crate) out: Grid,
}

/// Channels per inner vector loop.
const DW_LANES: usize = 16;

impl Depthwise {
    pub(crate) fn forward(&self, x: &Codes) -> Codes {
        self.forward_on(x, super::pointwise::avx512_available())
    }

    /// [`Depthwise::forward`], with the AVX-512 kernel where `vector` says so.
    fn forward_on(&self, x: &Codes, vector: bool) -> Codes {
        let (k, s, c) = (self.k, self.stride, self.c);
        let (pt, pl) = (self.pads[0], self.pads[1]);
        let oh = (x.h + self.pads[0] + self.pads[2]).saturating_sub(k) / s + 1;
        let ow = (x.w + self.pads[1] + self.pads[3]).saturating_sub(k) / s + 1;
        // Input rows as integer steps, with zero columns for the padding either side.
        let pw = (ow - 1) * s + k;
        let off = x.grid.offset as f32;
        let off_out = self.out.offset as f32;
        let mut data = vec![0u8; oh * ow * c];
        #[cfg(target_arch = "x86_64")]
        let fast = vector && k <= x86::MAX_K;
        let rows_per = oh.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let zero_row = vec![0f32; pw * c];
        data.par_chunks_mut(rows_per * ow * c)
            .enumerate()
            .for_each(|(part, out_rows)| {
                // The last k input rows converted, slot iy % k holding row iy.
                let mut ring = vec![0f32; k * pw * c];
                let mut held = vec![usize::MAX; k];
                for (r, orow) in out_rows.chunks_exact_mut(ow * c).enumerate() {
                    let oy = part * rows_per + r;
                    for ky in 0..k {
                        let Some(iy) = (oy * s + ky).checked_sub(pt).filter(|&iy| iy < x.h) else {
                            continue;
                        };
                        let slot = iy % k;
                        if held[slot] == iy {
                            continue;
                        }
                        held[slot] = iy;
                        let brow = &mut ring[slot * pw * c..][..pw * c];
                        let src = &x.data[iy * x.w * c..][..x.w * c];
                        let n = (x.w * c).min(brow.len() - pl * c);
                        brow[..pl * c].fill(0.0);
                        for (b, &v) in brow[pl * c..][..n].iter_mut().zip(src) {
                            *b = v as f32 - off;
                        }
                        brow[pl * c + n..].fill(0.0);
                    }
                    let rows: Vec<&[f32]> = (0..k)
                        .map(
                            |ky| match (oy * s + ky).checked_sub(pt).filter(|&iy| iy < x.h) {
                                Some(iy) => &ring[(iy % k) * pw * c..][..pw * c],
                                None => &zero_row[..],
                            },
                        )
                        .collect();
                    #[cfg(target_arch = "x86_64")]
                    if fast {
                        // SAFETY: AVX-512 F/BW present (checked once above); each of the k
                        // rows has pw·c floats, covering every tap of this output row.
                        unsafe { x86::depthwise_row(self, &rows, off_out, orow) };
                        continue;
                    }
                    self.row_portable(&rows, off_out, orow);
                }
            });
        Codes {
            h: oh,
            w: ow,
            c,
            data,
            grid: self.out,
        }
    }

    /// One output row from its `k` input rows (integer steps, padded), plain loops.
    fn row_portable(&self, rows: &[&[f32]], off_out: f32, orow: &mut [u8]) {
        let (k, s, c) = (self.k, self.stride, self.c);
        for (ox, px) in orow.chunks_exact_mut(c).enumerate() {
            for c0 in (0..c).step_by(DW_LANES) {
                let n = DW_LANES.min(c - c0);
                let mut acc = [0f32; DW_LANES];
                for (ky, brow) in rows.iter().enumerate() {
                    for kx in 0..k {
                        let xs = &brow[(ox * s + kx) * c + c0..][..n];
                        let ws = &self.weights[(ky * k + kx) * c + c0..][..n];
                        for ((a, &xv), &wv) in acc.iter_mut().zip(xs).zip(ws) {
                            *a += xv * wv;
                        }
                    }
                }
                let (b, m) = (&self.bias[c0..c0 + n], &self.mult[c0..c0 + n]);
                for (((o, &a), &bv), &mv) in px[c0..c0 + n].iter_mut().zip(&acc).zip(b).zip(m) {
                    let q = clamp((a + bv) * mv, self.lo, self.hi).round_ties_even();
                    *o = (q + off_out) as u8;
                }
            }
        }
    }
}

/// The residual add: both inputs dequantised, added in float, requantised (as onnxruntime
/// computes the QDQ graph's `Add`).
pub(crate) fn add(a: &Codes, b: &Codes, out: FakeQuant) -> Codes {
    add_on(a, b, out, super::pointwise::avx512_available())
}

/// [`add`], with the AVX-512 kernel where `vector` says so.
fn add_on(a: &Codes, b: &Codes, out: FakeQuant, vector: bool) -> Codes {
    let (ga, gb) = (a.grid, b.grid);
    let quant = out.params();
    let mut data = vec![0u8; a.data.len()];
    let chunk = a
        .data
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(64);
    #[cfg(target_arch = "x86_64")]
    let fast = vector;
    data.par_chunks_mut(chunk)
        .zip(a.data.par_chunks(chunk).zip(b.data.par_chunks(chunk)))
        .for_each(|(o, (xa, xb))| {
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: AVX-512 F/BW present (checked above).
                unsafe { x86::add(xa, ga, xb, gb, quant, o) };
                return;
            }
            for ((o, &va), &vb) in o.iter_mut().zip(xa).zip(xb) {
                let v = (va as i32 - ga.offset) as f32 * ga.scale
                    + (vb as i32 - gb.offset) as f32 * gb.scale;
                *o = quantise(v, quant);
            }
        });
    Codes {
        data,
        grid: Grid::of(out),
        ..*a
    }
}

/// Per-channel mean of the dequantised values, summed as onnxruntime's float
/// `GlobalAveragePool` does (MLAS: four lanes over the plane in raster order, reduced as
/// `(l0 + l2) + (l1 + l3)`, leftovers one by one, divided by the pixel count).
pub(crate) fn channel_mean_mlas(x: &Codes) -> Vec<f32> {
    let (n, c) = (x.h * x.w, x.c);
    let lut = x.grid.lut();
    let full = n / 4 * 4;
    let mut lanes = vec![[0f32; 4]; c];
    for p in 0..full {
        for (l, &code) in lanes.iter_mut().zip(&x.data[p * c..][..c]) {
            l[p % 4] += lut[code as usize];
        }
    }
    let mut sums: Vec<f32> = lanes
        .iter()
        .map(|l| (l[0] + l[2]) + (l[1] + l[3]))
        .collect();
    for p in full..n {
        for (s, &code) in sums.iter_mut().zip(&x.data[p * c..][..c]) {
            *s += lut[code as usize];
        }
    }
    sums.into_iter().map(|s| s / n as f32).collect()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Depthwise, Grid, Stem};

    /// [`super::add`] sixteen values at a time: the same float operations in each lane.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and BW.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn add(
        a: &[u8],
        ga: Grid,
        b: &[u8],
        gb: Grid,
        quant: [f32; 4],
        out: &mut [u8],
    ) {
        let n = out.len().min(a.len()).min(b.len());
        let [scale, zp, qmin, qmax] = quant;
        let (sa, sb, oa, ob) = (
            _mm512_set1_ps(ga.scale),
            _mm512_set1_ps(gb.scale),
            _mm512_set1_epi32(ga.offset),
            _mm512_set1_epi32(gb.offset),
        );
        let (sc, zpv, qlo, qhi) = (
            _mm512_set1_ps(scale),
            _mm512_set1_ps(zp),
            _mm512_set1_ps(qmin),
            _mm512_set1_ps(qmax),
        );
        for i in (0..n).step_by(16) {
            let mask: u16 = if n - i >= 16 {
                u16::MAX
            } else {
                (1u16 << (n - i)) - 1
            };
            // SAFETY: lanes below n − i only (masked).
            unsafe {
                let va = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(
                    mask,
                    a.as_ptr().add(i) as *const i8,
                ));
                let vb = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(
                    mask,
                    b.as_ptr().add(i) as *const i8,
                ));
                let fa = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(va, oa)), sa);
                let fb = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(vb, ob)), sb);
                let q = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm512_div_ps(_mm512_add_ps(fa, fb), sc),
                );
                let q = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(q, zpv), qlo), qhi);
                let code = _mm512_cvttps_epi32(_mm512_sub_ps(q, qlo));
                _mm_mask_storeu_epi8(
                    out.as_mut_ptr().add(i) as *mut i8,
                    mask,
                    _mm512_cvtepi32_epi8(code),
                );
            }
        }
    }

    /// One row of stem outputs, four pixels at a time: per pixel `cout / 16` vectors of
    /// fused multiply-add chains over the taps in MLAS's runs, then bias, activation and the
    /// output quantiser.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and BW; `cout` 16 or 32; every `first + ox · step + tap`
    /// for the row's outputs must lie in `xp`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn stem_row(
        l: &Stem,
        xp: &[f32],
        taps: &[usize],
        first: usize,
        step: usize,
        run: usize,
        row: &mut [u8],
    ) {
        let cout = l.cout;
        let ow = row.len() / cout;
        assert!((cout == 16 || cout == 32) && row.len() == ow * cout);
        assert!(l.weights.len() == taps.len() * cout && l.bias.len() == cout);
        assert!(
            ow == 0 || first + (ow - 1) * step + taps.iter().max().copied().unwrap_or(0) < xp.len()
        );
        let g = StemRow {
            l,
            xp,
            taps,
            first,
            step,
            run: run.max(1),
            row: row.as_mut_ptr(),
        };
        let mut ox = 0;
        while ox + 4 <= ow {
            // SAFETY: pixels ox..ox + 4 are in the row (the caller's bounds).
            unsafe {
                if cout == 32 {
                    g.pixels::<4, 2>(ox)
                } else {
                    g.pixels::<4, 1>(ox)
                }
            }
            ox += 4;
        }
        while ox < ow {
            // SAFETY: as above, one pixel.
            unsafe {
                if cout == 32 {
                    g.pixels::<1, 2>(ox)
                } else {
                    g.pixels::<1, 1>(ox)
                }
            }
            ox += 1;
        }
    }

    /// One stem row's inputs and output.
    struct StemRow<'a> {
        l: &'a Stem,
        xp: &'a [f32],
        taps: &'a [usize],
        first: usize,
        step: usize,
        run: usize,
        row: *mut u8,
    }

    impl StemRow<'_> {
        /// Output pixels `ox .. ox + P`, `NV` vectors of channels each.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        #[inline]
        unsafe fn pixels<const P: usize, const NV: usize>(&self, ox: usize) {
            let l = self.l;
            let cout = NV * 16;
            let (wp, xq) = (l.weights.as_ptr(), self.xp.as_ptr());
            let mut total = [[_mm512_setzero_ps(); NV]; P];
            for k0 in (0..self.taps.len()).step_by(self.run) {
                let mut acc = [[_mm512_setzero_ps(); NV]; P];
                for (kk, &t) in self.taps.iter().enumerate().skip(k0).take(self.run) {
                    let mut w = [_mm512_setzero_ps(); NV];
                    for (v, wv) in w.iter_mut().enumerate() {
                        // SAFETY: row kk of the weights has cout floats (the caller's check).
                        *wv = unsafe { _mm512_loadu_ps(wp.add(kk * cout + v * 16)) };
                    }
                    for (j, a) in acc.iter_mut().enumerate() {
                        // SAFETY: inside xp (the caller's check).
                        let b = _mm512_set1_ps(unsafe {
                            *xq.add(self.first + (ox + j) * self.step + t)
                        });
                        for (av, &wv) in a.iter_mut().zip(&w) {
                            *av = _mm512_fmadd_ps(b, wv, *av);
                        }
                    }
                }
                for (t, a) in total.iter_mut().zip(&acc) {
                    for (tv, &av) in t.iter_mut().zip(a) {
                        *tv = if k0 == 0 { av } else { _mm512_add_ps(*tv, av) };
                    }
                }
            }
            let [scale, zp, qmin, qmax] = l.out.params();
            let (alo, ahi) = (_mm512_set1_ps(l.act.0), _mm512_set1_ps(l.act.1));
            let (sc, zpv, qlo, qhi) = (
                _mm512_set1_ps(scale),
                _mm512_set1_ps(zp),
                _mm512_set1_ps(qmin),
                _mm512_set1_ps(qmax),
            );
            for (j, t) in total.iter().enumerate() {
                for (v, &tv) in t.iter().enumerate() {
                    // SAFETY: v·16 + 16 ≤ cout for the bias; output pixel ox + j is in the row.
                    unsafe {
                        let x = _mm512_add_ps(tv, _mm512_loadu_ps(l.bias.as_ptr().add(v * 16)));
                        let x = _mm512_min_ps(_mm512_max_ps(x, alo), ahi);
                        let q = _mm512_roundscale_ps::<
                            { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                        >(_mm512_div_ps(x, sc));
                        let q = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(q, zpv), qlo), qhi);
                        let code = _mm512_cvttps_epi32(_mm512_sub_ps(q, qlo));
                        _mm_storeu_si128(
                            self.row.add((ox + j) * cout + v * 16) as *mut __m128i,
                            _mm512_cvtepi32_epi8(code),
                        );
                    }
                }
            }
        }
    }

    /// Largest kernel the vector path keeps in registers.
    pub(super) const MAX_K: usize = 3;

    /// Output pixels per step: independent chains of fused multiply-adds.
    const PX: usize = 4;

    /// [`Depthwise::row_portable`] with 16 channels per register, the k×k weight vectors
    /// held in registers across the row and four output pixels at a time.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and BW; `k ≤ MAX_K`; `rows` must be `k` rows of at least
    /// `((ow − 1)·s + k)·c` floats for the `ow = orow.len() / c` outputs.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn depthwise_row(
        l: &Depthwise,
        rows: &[&[f32]],
        off_out: f32,
        orow: &mut [u8],
    ) {
        let (k, s, c) = (l.k, l.stride, l.c);
        let ow = orow.len() / c;
        assert!(
            k <= MAX_K && rows.len() == k && l.weights.len() == k * k * c && orow.len() == ow * c
        );
        assert!(ow == 0 || rows.iter().all(|r| r.len() >= ((ow - 1) * s + k) * c));
        let (lo, hi, off) = (
            _mm512_set1_ps(l.lo),
            _mm512_set1_ps(l.hi),
            _mm512_set1_ps(off_out),
        );
        let op = orow.as_mut_ptr();
        let mut rp = [std::ptr::null::<f32>(); MAX_K];
        for (p, r) in rp.iter_mut().zip(rows) {
            *p = r.as_ptr();
        }
        for c0 in (0..c).step_by(16) {
            let mask: u16 = if c - c0 >= 16 {
                u16::MAX
            } else {
                (1u16 << (c - c0)) - 1
            };
            let mut w = [_mm512_setzero_ps(); MAX_K * MAX_K];
            for (t, wv) in w.iter_mut().enumerate().take(k * k) {
                // SAFETY: tap t's row of c weights; masked past the last channel.
                *wv = unsafe { _mm512_maskz_loadu_ps(mask, l.weights.as_ptr().add(t * c + c0)) };
            }
            // SAFETY: c0 + lane < c where the mask is set.
            let (b, m) = unsafe {
                (
                    _mm512_maskz_loadu_ps(mask, l.bias.as_ptr().add(c0)),
                    _mm512_maskz_loadu_ps(mask, l.mult.as_ptr().add(c0)),
                )
            };
            let finish = |acc: __m512, ox: usize| {
                let v = _mm512_min_ps(
                    _mm512_max_ps(_mm512_mul_ps(_mm512_add_ps(acc, b), m), lo),
                    hi,
                );
                let q =
                    _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                let code = _mm512_cvttps_epi32(_mm512_add_ps(q, off));
                // SAFETY: output pixel ox < ow, channels c0.. masked to c.
                unsafe {
                    _mm_mask_storeu_epi8(
                        op.add(ox * c + c0) as *mut i8,
                        mask,
                        _mm512_cvtepi32_epi8(code),
                    )
                };
            };
            let mut ox = 0;
            while ox + PX <= ow {
                let mut acc = [_mm512_setzero_ps(); PX];
                for (ky, &row) in rp.iter().enumerate().take(k) {
                    for kx in 0..k {
                        let wv = w[ky * k + kx];
                        for (j, a) in acc.iter_mut().enumerate() {
                            // SAFETY: column (ox + j)·s + kx of the row exists (asserted).
                            let xv = unsafe {
                                _mm512_maskz_loadu_ps(mask, row.add(((ox + j) * s + kx) * c + c0))
                            };
                            *a = _mm512_fmadd_ps(xv, wv, *a);
                        }
                    }
                }
                for (j, &a) in acc.iter().enumerate() {
                    finish(a, ox + j);
                }
                ox += PX;
            }
            while ox < ow {
                let mut acc = _mm512_setzero_ps();
                for (ky, &row) in rp.iter().enumerate().take(k) {
                    for kx in 0..k {
                        // SAFETY: as above.
                        let xv =
                            unsafe { _mm512_maskz_loadu_ps(mask, row.add((ox * s + kx) * c + c0)) };
                        acc = _mm512_fmadd_ps(xv, w[ky * k + kx], acc);
                    }
                }
                finish(acc, ox);
                ox += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::onnx::QuantParams;

    fn rnd(seed: &mut u32) -> u32 {
        *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *seed >> 8
    }

    fn codes(h: usize, w: usize, c: usize, offset: i32, seed: &mut u32) -> Codes {
        Codes {
            h,
            w,
            c,
            data: (0..h * w * c).map(|_| rnd(seed) as u8).collect(),
            grid: Grid {
                scale: 0.0235,
                offset,
            },
        }
    }

    fn fq(scale: f32, zero_point: i32) -> FakeQuant {
        FakeQuant::new(QuantParams {
            scale,
            zero_point,
            qmin: -128,
            qmax: 127,
        })
    }

    #[test]
    fn depthwise_matches_the_integer_definition_on_both_paths() {
        let mut s = 3;
        // 48 and 40 channels: whole vectors and a masked tail; strides 1 and 2, SAME pads.
        for (c, stride, pads, h, w) in [
            (48, 1, [1, 1, 1, 1], 9, 11),
            (40, 2, [0, 0, 1, 1], 10, 7),
            (16, 2, [1, 1, 1, 1], 5, 5),
        ] {
            let k = 3;
            let dw = Depthwise {
                c,
                k,
                stride,
                pads,
                weights: (0..k * k * c)
                    .map(|_| (rnd(&mut s) % 255) as f32 - 127.0)
                    .collect(),
                bias: (0..c)
                    .map(|_| (rnd(&mut s) % 4001) as f32 - 2000.0)
                    .collect(),
                mult: (0..c)
                    .map(|_| 1e-3 + (rnd(&mut s) % 100) as f32 * 1e-5)
                    .collect(),
                lo: 0.0,
                hi: 255.0,
                out: Grid {
                    scale: 0.0235,
                    offset: 0,
                },
            };
            let x = codes(h, w, c, 5, &mut s);
            let fast = dw.forward_on(&x, true);
            let plain = dw.forward_on(&x, false);
            assert_eq!(fast.data, plain.data, "c {c} stride {stride}");
            let (oh, ow) = (fast.h, fast.w);
            assert_eq!(
                (oh, ow),
                (
                    (h + pads[0] + pads[2] - k) / stride + 1,
                    (w + pads[1] + pads[3] - k) / stride + 1
                )
            );
            for (oy, ox, ch) in [(0, 0, 0), (oh - 1, ow - 1, c - 1), (oh / 2, ow / 2, c / 2)] {
                let mut sum = 0i32;
                for ky in 0..k {
                    for kx in 0..k {
                        let iy = (oy * stride + ky) as isize - pads[0] as isize;
                        let ix = (ox * stride + kx) as isize - pads[1] as isize;
                        if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                            let code = x.data[(iy as usize * w + ix as usize) * c + ch] as i32;
                            sum += (code - 5) * dw.weights[(ky * k + kx) * c + ch] as i32;
                        }
                    }
                }
                let v = ((sum as f32 + dw.bias[ch]) * dw.mult[ch])
                    .clamp(0.0, 255.0)
                    .round_ties_even();
                assert_eq!(
                    fast.data[(oy * ow + ox) * c + ch],
                    v as u8,
                    "c {c} stride {stride} at {oy},{ox},{ch}"
                );
            }
        }
    }

    #[test]
    fn stem_paths_agree_and_follow_mlas_order() {
        let mut s = 5;
        for cout in [32, 16] {
            let (k, cin) = (3, 3);
            let stem = Stem {
                cin,
                cout,
                k,
                stride: 2,
                pads: [0, 0, 1, 1],
                weights: (0..cin * k * k * cout)
                    .map(|_| (rnd(&mut s) % 2001) as f32 * 1e-3 - 1.0)
                    .collect(),
                bias: (0..cout)
                    .map(|_| (rnd(&mut s) % 2001) as f32 * 1e-3 - 1.0)
                    .collect(),
                act: (0.0, 6.0),
                out: fq(0.0235, -128),
            };
            let (h, w) = (13, 10);
            let img = FeatureMap::from_vec(
                3,
                h,
                w,
                (0..3 * h * w)
                    .map(|_| (rnd(&mut s) % 1000) as f32 * 1e-3)
                    .collect(),
            )
            .unwrap();
            let input = fq(1.0 / 255.0, -128);
            let fast = stem.forward_on(&img, input, true);
            let plain = stem.forward_on(&img, input, false);
            assert_eq!(fast.data, plain.data, "cout {cout}");
            // One output by hand: taps in (ci, ky, kx) order, one fused chain (27 < MLAS's run).
            let (oy, ox, co) = (fast.h - 1, fast.w - 1, cout - 1);
            let mut acc = 0f32;
            for ci in 0..cin {
                for ky in 0..k {
                    for kx in 0..k {
                        let (iy, ix) = (oy * 2 + ky, ox * 2 + kx);
                        let v = if iy < h && ix < w {
                            input.apply(img.data[ci * h * w + iy * w + ix])
                        } else {
                            0.0
                        };
                        acc = v.mul_add(stem.weights[((ci * k + ky) * k + kx) * cout + co], acc);
                    }
                }
            }
            let want = quantise((acc + stem.bias[co]).clamp(0.0, 6.0), stem.out.params());
            assert_eq!(fast.data[(oy * fast.w + ox) * cout + co], want);
        }
    }

    #[test]
    fn add_paths_agree() {
        let mut s = 9;
        for n in [1, 16, 100, 4099] {
            let a = codes(1, n, 1, 120, &mut s);
            let mut b = codes(1, n, 1, 133, &mut s);
            b.grid.scale = 0.031;
            let out = fq(0.05, 3);
            let fast = add_on(&a, &b, out, true);
            let plain = add_on(&a, &b, out, false);
            assert_eq!(fast.data, plain.data, "{n} values");
            let v =
                (a.data[0] as i32 - 120) as f32 * 0.0235 + (b.data[0] as i32 - 133) as f32 * 0.031;
            assert_eq!(plain.data[0], quantise(v, out.params()));
        }
    }

    #[test]
    fn mlas_mean_sums_four_lanes_then_leftovers() {
        let x = Codes {
            h: 1,
            w: 6,
            c: 1,
            data: vec![1, 2, 3, 4, 5, 6],
            grid: Grid {
                scale: 0.5,
                offset: 0,
            },
        };
        let v: Vec<f32> = x.data.iter().map(|&c| c as f32 * 0.5).collect();
        let sum = ((v[0] + v[2]) + (v[1] + v[3]) + v[4]) + v[5];
        assert_eq!(channel_mean_mlas(&x), vec![sum / 6.0]);
    }
}
