//! Direct convolution for [`SumOrder::Fast`](super::ops::SumOrder) on AVX-512: no im2col.
//!
//! multistyle26's big layers have few channels on large images (9×9 3→32 at full size, 3×3
//! 32→32 at stride 2, 9×9 4→3): im2col multiplied their input 9–81× in memory before the GEMM
//! read it back, and that copy, not the arithmetic, was most of their time. Here a block of
//! output rows first copies the input rows it needs into a small band in cache, with the
//! padding (reflect or zero) and 2× upsampling resolved and, for stride 2, the even and odd
//! columns split apart so every tap reads contiguous pixels. A register tile of `MV` vectors of
//! 16 output pixels × `NR` output channels then sums over (input channel, ky, kx) with fused
//! multiply-adds, loading each input vector once per tap and broadcasting each weight once,
//! and stores straight into the output planes.
//!
//! Without AVX-512 (or for shapes this does not cover) the caller keeps the im2col + GEMM path.

use std::cell::RefCell;
use std::sync::Mutex;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
    _mm512_set1_ps, _mm512_setzero_ps,
};

use rayon::prelude::*;

use super::planes::{FeatureMap, PadMode, axis_map};

/// Floats per vector.
const LANES: usize = 16;

/// Floats of input band per block of output rows: about a quarter of an L2 cache.
const BAND_FLOATS: usize = 160 * 1024;

/// Floats of output per block of rows: the epilogue (instance-norm moments) reads them while
/// they are still in the L2 cache.
const OUT_FLOATS: usize = 128 * 1024;

thread_local! {
    /// Per-thread band scratch, reused across blocks and layers.
    static BAND: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Output buffers handed back with [`recycle`], reused by the next layers, and the input size
/// of the run they came from. One pool for the process (not per thread: a pass may run on any
/// pool thread, and per-thread pools would each keep a run's buffers).
static SPARE: Mutex<Spare> = Mutex::new(Spare {
    run: 0,
    buffers: Vec::new(),
});

struct Spare {
    /// Input pixels of the run the buffers belong to.
    run: usize,
    buffers: Vec<Vec<f32>>,
}

/// Buffers [`SPARE`] keeps: one in use, one being read, and the residual's.
const SPARE_MAX: usize = 3;

fn spare() -> std::sync::MutexGuard<'static, Spare> {
    // The pool holds plain buffers: one left by a panicking thread is still a valid buffer.
    SPARE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts a forward pass on an input of `pixels`: buffers kept from a run of another size are
/// dropped, so the pool never holds more than one run's maps (a tiled job's statistics pass
/// and its tiles, or a preview and the full pass, would otherwise add up past the memory
/// budget the tiles were chosen for). Runs of one size (the tiles of a job, repeated jobs)
/// keep reusing them.
pub fn begin_run(pixels: usize) {
    let mut s = spare();
    if s.run != pixels {
        s.run = pixels;
        s.buffers = Vec::new();
    }
}

/// Hands a finished feature map's buffer back for the next layer's output. A fresh buffer of
/// tens of megabytes is page-faulted and zeroed by the kernel on first touch: measured 13 ms of
/// a 512² forward pass's 60 (single thread).
pub fn recycle(buffer: Vec<f32>) {
    let mut s = spare();
    if s.buffers.len() < SPARE_MAX {
        s.buffers.push(buffer);
    } else if let Some(small) = s.buffers.iter_mut().min_by_key(|b| b.capacity()) {
        // Keep the big ones: they are the costly ones to fault in again.
        if small.capacity() < buffer.capacity() {
            *small = buffer;
        }
    }
}

/// A buffer of `len` values for an output that will be overwritten in full: a recycled one
/// when one fits (its old values are left in place, never read), else a new zeroed one.
fn reuse(len: usize) -> Vec<f32> {
    let mut s = spare();
    // The smallest that holds `len` without growing, and not so big that a large layer
    // would miss it later (the network's output leaves the pool with the caller).
    let fit = s
        .buffers
        .iter()
        .enumerate()
        .filter(|(_, b)| b.capacity() >= len && b.capacity() <= 4 * len)
        .min_by_key(|(_, b)| b.capacity())
        .map(|(i, _)| i);
    let Some(i) = fit else {
        drop(s);
        return super::planes::zeroed(len);
    };
    let mut b = s.buffers.swap_remove(i);
    if b.len() >= len {
        b.truncate(len);
    } else {
        b.resize(len, 0.0);
    }
    b
}

/// A convolution's weights packed for the direct kernel: `[cout/nr][cin][kh][kw][nr]`.
#[derive(Clone, Debug)]
pub struct DirectWeights {
    /// Output channels per register tile.
    nr: usize,
    data: Vec<f32>,
}

impl DirectWeights {
    /// Packs `[K][cout]` weights (`K` in `(ci, ky, kx)` order); `None` when this CPU has no
    /// AVX-512 or the channel count has no tile shape here.
    pub fn pack(k_by_cout: &[f32], k: usize, cout: usize) -> Option<Self> {
        if !available() {
            return None;
        }
        let nr = match cout {
            c if c % 8 == 0 => 8,
            3 | 4 => cout,
            _ => return None,
        };
        let mut data = Vec::with_capacity(k * cout);
        for cb in 0..cout / nr {
            for kk in 0..k {
                data.extend_from_slice(&k_by_cout[kk * cout + cb * nr..][..nr]);
            }
        }
        Some(Self { nr, data })
    }
}

/// Whether the direct kernel runs on this CPU.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The geometry of one convolution call.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Input channels, output channels.
    pub cin: usize,
    pub cout: usize,
    /// Kernel size.
    pub kh: usize,
    pub kw: usize,
    /// Stride (1 or 2) and upsampling factor of the input (1 or 2).
    pub stride: usize,
    pub up: usize,
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    pub mode: PadMode,
    /// Taps summed per run: each run's fused multiply-adds start from zero and its sum is
    /// added to the total (MLAS's K stride); the whole kernel for one chain.
    pub run: usize,
}

/// Runs the convolution; same contract as `Conv::forward` (raw sums in the output planes, then
/// `epilogue(channel, first_pixel, values)` per block of output rows and channel, results as
/// `[block][channel]`). `None` if the shape is not one this kernel covers.
pub fn forward<S, F>(
    weights: &DirectWeights,
    sh: Shape,
    x: &FeatureMap,
    epilogue: F,
) -> Option<(FeatureMap, Vec<Vec<S>>)>
where
    S: Send,
    F: Fn(usize, usize, &mut [f32]) -> S + Sync,
{
    let s = sh.stride;
    if !(1..=2).contains(&s) || !(1..=2).contains(&sh.up) || x.c != sh.cin || x.h == 0 || x.w == 0 {
        return None;
    }
    let ph = x.h * sh.up + sh.pads[0] + sh.pads[2];
    let pw = x.w * sh.up + sh.pads[1] + sh.pads[3];
    if ph < sh.kh || pw < sh.kw {
        return None;
    }
    let (oh, ow) = ((ph - sh.kh) / s + 1, (pw - sh.kw) / s + 1);
    let hw = oh * ow;
    let ymap = axis_map(x.h, sh.up, sh.pads[0], ph, sh.mode);
    let xmap = axis_map(x.w, sh.up, sh.pads[1], pw, sh.mode);
    // Each band row holds `s` phases (even / odd padded columns) of `phase_w` values.
    let phase_w = pw.div_ceil(s);
    let row_len = s * phase_w;
    let kx_off: Vec<usize> = (0..sh.kw).map(|kx| (kx % s) * phase_w + kx / s).collect();
    let per_row = sh.cin * s * row_len;
    // The block's output, too, should still be in cache when the epilogue reads it.
    let rows_fit = (BAND_FLOATS / per_row)
        .min(OUT_FLOATS / (sh.cout * ow).max(1))
        .max(1);
    // Blocks of output rows: as many as fit the band, but at least 4 per thread.
    let want = 4 * rayon::current_num_threads();
    let rb = rows_fit.min(oh.div_ceil(want)).max(1);
    let blocks = oh.div_ceil(rb);
    // Every output value is written below (masked tails included), so the buffer's old
    // contents never show.
    let mut out = FeatureMap {
        c: sh.cout,
        h: oh,
        w: ow,
        data: reuse(sh.cout * hw),
    };
    let dst = OutPtr(out.data.as_mut_ptr(), out.data.len());
    let results = (0..blocks)
        .into_par_iter()
        .map(|bi| {
            let (oy0, oy1) = (bi * rb, (bi * rb + rb).min(oh));
            let band_rows = (oy1 - oy0 - 1) * s + sh.kh;
            BAND.with(|band| {
                let mut band = band.borrow_mut();
                // The slack lets a full vector load run past the last tap of a row.
                band.resize(sh.cin * band_rows * row_len + LANES, 0.0);
                fill_band(x, sh, &ymap, &xmap, oy0 * s, band_rows, phase_w, &mut band);
                let (ci_stride, ky_stride) = (band_rows * row_len, row_len);
                let tap_off: Vec<usize> = (0..sh.cin)
                    .flat_map(|ci| {
                        let kx_off = &kx_off;
                        (0..sh.kh).flat_map(move |ky| {
                            kx_off
                                .iter()
                                .map(move |&kx| ci * ci_stride + ky * ky_stride + kx)
                        })
                    })
                    .collect();
                let geo = Geometry {
                    run: sh.run.max(1),
                    tap_off: &tap_off,
                    ci_stride: band_rows * row_len,
                    ky_stride: row_len,
                    kx_off: &kx_off,
                    cin: sh.cin,
                    kh: sh.kh,
                };
                for oy in oy0..oy1 {
                    let row = &band[(oy - oy0) * s * row_len..];
                    // SAFETY: the band rows and weights were sized above for every tap this
                    // row reads (checked again in `run_row`); the output rows at `oy` belong
                    // to this block only.
                    unsafe { run_row(&geo, row, weights, sh.cout, dst, oy * ow, hw, ow) };
                }
            });
            (0..sh.cout)
                .map(|ch| {
                    let (p0, np) = (oy0 * ow, (oy1 - oy0) * ow);
                    assert!(ch * hw + p0 + np <= dst.1);
                    // SAFETY: this block's rows of plane `ch`, in bounds (asserted), written by
                    // no other block; the kernel's writes above are complete.
                    let seg =
                        unsafe { std::slice::from_raw_parts_mut(dst.0.add(ch * hw + p0), np) };
                    epilogue(ch, p0, seg)
                })
                .collect()
        })
        .collect();
    Some((out, results))
}

/// A raw pointer (and length) to the output planes, which blocks write disjoint rows of.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32, usize);
// SAFETY: every block writes only its own output rows of each plane (disjoint index sets),
// and the buffer outlives the parallel loop that uses the pointer.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// Where a tap's input vector lies in the band, relative to an output row's band start.
struct Geometry<'a> {
    /// Taps per summation run (see [`Shape::run`]).
    run: usize,
    /// Every tap's offset in (ci, ky, kx) order, for the kernel that sums in runs.
    tap_off: &'a [usize],
    ci_stride: usize,
    ky_stride: usize,
    kx_off: &'a [usize],
    cin: usize,
    kh: usize,
}

/// Copies padded rows `iy0 .. iy0 + rows` (padded coordinates) of every input channel into
/// `band` as `[ci][row][phase][phase_w]`: padded column `j` goes to phase `j % s`, index
/// `j / s`.
#[allow(clippy::too_many_arguments)]
fn fill_band(
    x: &FeatureMap,
    sh: Shape,
    ymap: &[i32],
    xmap: &[i32],
    iy0: usize,
    rows: usize,
    phase_w: usize,
    band: &mut [f32],
) {
    let (s, up, pl) = (sh.stride, sh.up, sh.pads[1]);
    let u = x.w * up;
    for ci in 0..sh.cin {
        let plane = x.plane(ci);
        for r in 0..rows {
            let sy = ymap[iy0 + r];
            for p in 0..s {
                let dst = &mut band[((ci * rows + r) * s + p) * phase_w..][..phase_w];
                if sy < 0 {
                    dst.fill(0.0);
                    continue;
                }
                let src = &plane[sy as usize * x.w..][..x.w];
                // Phase index i holds padded column j = i·s + p; the interior (no padding)
                // is i in [lo, hi).
                let lo = pl.saturating_sub(p).div_ceil(s).min(phase_w);
                let hi = ((u + pl).saturating_sub(p).div_ceil(s)).clamp(lo, phase_w);
                for (i, d) in dst.iter_mut().enumerate() {
                    if i == lo {
                        break;
                    }
                    let m = xmap.get(i * s + p).copied().unwrap_or(-1);
                    *d = if m < 0 { 0.0 } else { src[m as usize] };
                }
                interior(&mut dst[lo..hi], src, lo * s + p - pl, up, s);
                for (i, d) in dst.iter_mut().enumerate().skip(hi) {
                    let m = xmap.get(i * s + p).copied().unwrap_or(-1);
                    *d = if m < 0 { 0.0 } else { src[m as usize] };
                }
            }
        }
    }
}

/// `dst[i] = src[(j0 + i·stride) / up]` for the cases the networks use, written so the loops
/// vectorise.
fn interior(dst: &mut [f32], src: &[f32], j0: usize, up: usize, stride: usize) {
    let n = dst.len();
    match (up, stride) {
        (1, 1) => dst.copy_from_slice(&src[j0..j0 + n]),
        (1, 2) => {
            // Pairs, so the loop vectorises (a stepped iterator does not).
            let pairs = src[j0..].len().min(2 * n) / 2;
            for (d, pair) in dst.iter_mut().zip(src[j0..j0 + 2 * pairs].chunks_exact(2)) {
                *d = pair[0];
            }
            if pairs < n {
                dst[pairs] = src[j0 + 2 * pairs];
            }
        }
        (2, 1) => {
            // Each source value twice; the run may start on the second copy.
            let mut i = 0;
            if j0 % 2 == 1 && n > 0 {
                dst[0] = src[j0 / 2];
                i = 1;
            }
            let first = (j0 + i) / 2;
            let pairs = (n - i) / 2;
            for (d, &v) in dst[i..i + 2 * pairs]
                .chunks_exact_mut(2)
                .zip(&src[first..first + pairs])
            {
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

/// One output row, all channels: tiles of `MV·16` pixels × `nr` channels, the channel blocks
/// innermost so a tile's input stays in the L1 cache while every block reads it.
///
/// # Safety
/// `dst` holds `cout` planes of `hw` values; no other thread writes the plane rows at
/// `p_row .. p_row + ow`. Runs only where AVX-512F was detected.
#[allow(clippy::too_many_arguments)]
unsafe fn run_row(
    geo: &Geometry<'_>,
    band_row: &[f32],
    weights: &DirectWeights,
    cout: usize,
    dst: OutPtr,
    p_row: usize,
    hw: usize,
    ow: usize,
) {
    let nr = weights.nr;
    let taps = geo.cin * geo.kh * geo.kx_off.len();
    assert!(weights.data.len() >= taps * cout, "weights too short");
    // The furthest value any tap of this row reads (vectors past `ow` are masked).
    let kx_max = geo.kx_off.iter().copied().max().unwrap_or(0);
    let last = (geo.cin - 1) * geo.ci_stride + (geo.kh - 1) * geo.ky_stride + kx_max + ow;
    assert!(last <= band_row.len(), "band too short");
    assert!((cout - 1) * hw + p_row + ow <= dst.1, "output too short");
    let mv_max = mv_max(nr);
    let mut ox0 = 0;
    while ox0 < ow {
        let mv = (ow - ox0).div_ceil(LANES).min(mv_max);
        let n = (ow - ox0).min(mv * LANES);
        for cb in 0..cout / nr {
            let tile = Tile {
                geo,
                x: band_row[ox0..].as_ptr(),
                w: weights.data[cb * taps * nr..].as_ptr(),
                out: dst.0,
                out_at: cb * nr * hw + p_row + ox0,
                hw,
                tail: (n - (mv - 1) * LANES) as u32,
            };
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the asserts above bound every load (masked past `n`) and store;
            // AVX-512F availability and output exclusivity are this function's contract.
            unsafe {
                avx512::dispatch(&tile, mv, nr)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = tile;
        }
        ox0 += n;
    }
}

/// Vectors of pixels per register tile for `nr` channels: the accumulators, one input vector
/// per pixel vector and a broadcast weight must fit the 32 vector registers.
fn mv_max(nr: usize) -> usize {
    match nr {
        3 => 6,
        4 => 5,
        _ => 3,
    }
}

/// One register tile: pointers already offset to its first pixel.
struct Tile<'a> {
    geo: &'a Geometry<'a>,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    out_at: usize,
    hw: usize,
    /// Valid lanes of the last vector (1..=16).
    tail: u32,
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;

    /// Picks the monomorphized kernel.
    ///
    /// # Safety
    /// As [`run_row`].
    pub(super) unsafe fn dispatch(t: &Tile<'_>, mv: usize, nr: usize) {
        let one_run = t.geo.run >= t.geo.tap_off.len();
        macro_rules! go {
            ($nr:literal: $($mv:literal)*) => {
                match mv {
                    // SAFETY: forwarded from this function's contract.
                    $($mv if one_run => unsafe { kernel::<$mv, $nr>(t) },)*
                    $($mv => unsafe { kernel_runs::<$mv, $nr>(t) },)*
                    _ => unreachable!("run_row bounds the vector count"),
                }
            };
        }
        match nr {
            3 => go!(3: 1 2 3 4 5 6),
            4 => go!(4: 1 2 3 4 5),
            _ => go!(8: 1 2 3),
        }
    }

    /// `MV` vectors of pixels × `NR` output channels of accumulators.
    ///
    /// # Safety
    /// As [`run_row`]; `t` addresses were bounds-checked there.
    // Indexing the accumulator tile by (vector, channel) reads clearer than nested iterators.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f")]
    #[inline(never)]
    unsafe fn kernel<const MV: usize, const NR: usize>(t: &Tile<'_>) {
        let g = t.geo;
        let mask = |v: usize| -> u16 {
            if v + 1 == MV {
                ((1u32 << t.tail) - 1) as u16
            } else {
                u16::MAX
            }
        };
        let mut acc = [[_mm512_setzero_ps(); NR]; MV];
        let mut w = t.w;
        for ci in 0..g.cin {
            for ky in 0..g.kh {
                let base = ci * g.ci_stride + ky * g.ky_stride;
                for &kx in g.kx_off {
                    // SAFETY: `run_row` checked the furthest read of the row; lanes past the
                    // row's end are masked off (and fault-suppressed).
                    let xv: [__m512; MV] = std::array::from_fn(|v| unsafe {
                        _mm512_maskz_loadu_ps(mask(v), t.x.add(base + kx + LANES * v))
                    });
                    for c in 0..NR {
                        // SAFETY: `run_row` checked the weights hold every tap's `nr` values.
                        let wc = _mm512_set1_ps(unsafe { *w.add(c) });
                        for v in 0..MV {
                            acc[v][c] = _mm512_fmadd_ps(xv[v], wc, acc[v][c]);
                        }
                    }
                    // SAFETY: as above; the pointer advances once per tap.
                    w = unsafe { w.add(NR) };
                }
            }
        }
        for (v, acc) in acc.iter().enumerate() {
            for (c, &a) in acc.iter().enumerate() {
                // SAFETY: `run_row` checked the output planes; lanes past the row are masked.
                unsafe {
                    _mm512_mask_storeu_ps(t.out.add(t.out_at + c * t.hw + LANES * v), mask(v), a)
                };
            }
        }
    }

    /// [`kernel`] summing in runs of `g.run` taps (MLAS's order): each run's chains start
    /// from zero, and its sums are stored (first run) or added to the output.
    /// A separate copy rather than `kernel` with one run: the flat tap table it walks made
    /// multistyle26 at 512² 7% slower (32.1 → 34.5 ms) when it served both.
    ///
    /// # Safety
    /// As [`kernel`].
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f")]
    #[inline(never)]
    unsafe fn kernel_runs<const MV: usize, const NR: usize>(t: &Tile<'_>) {
        let g = t.geo;
        let mask = |v: usize| -> u16 {
            if v + 1 == MV {
                ((1u32 << t.tail) - 1) as u16
            } else {
                u16::MAX
            }
        };
        let taps = g.tap_off.len();
        let mut start = 0;
        while start < taps {
            let end = (start + g.run).min(taps);
            let mut acc = [[_mm512_setzero_ps(); NR]; MV];
            // SAFETY: tap `start`'s weights; `run_row` checked the weights hold every tap's.
            let mut w = unsafe { t.w.add(start * NR) };
            for &off in &g.tap_off[start..end] {
                // SAFETY: `run_row` checked the furthest read of the row; lanes past the
                // row's end are masked off (and fault-suppressed).
                let xv: [__m512; MV] = std::array::from_fn(|v| unsafe {
                    _mm512_maskz_loadu_ps(mask(v), t.x.add(off + LANES * v))
                });
                for c in 0..NR {
                    // SAFETY: as above.
                    let wc = _mm512_set1_ps(unsafe { *w.add(c) });
                    for v in 0..MV {
                        acc[v][c] = _mm512_fmadd_ps(xv[v], wc, acc[v][c]);
                    }
                }
                // SAFETY: as above; the pointer advances once per tap.
                w = unsafe { w.add(NR) };
            }
            for (v, acc) in acc.iter().enumerate() {
                for (c, &a) in acc.iter().enumerate() {
                    // SAFETY: `run_row` checked the output planes; lanes past the row are
                    // masked.
                    unsafe {
                        let p = t.out.add(t.out_at + c * t.hw + LANES * v);
                        let sum = if start == 0 {
                            a
                        } else {
                            _mm512_add_ps(_mm512_maskz_loadu_ps(mask(v), p), a)
                        };
                        _mm512_mask_storeu_ps(p, mask(v), sum);
                    }
                }
            }
            start = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ops::{Conv, FeatureMap, PadMode};

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i + seed) * 7919 % 2003) as f32 / 2003.0) - 0.5)
            .collect()
    }

    /// The direct kernel gives the im2col + GEMM path's sums for every shape multistyle26
    /// uses — strides 1 and 2, 2× upsampling, reflect and zero padding, 3–32 output channels —
    /// on widths that leave partial vectors, and hands the epilogue the same segments' values.
    #[test]
    fn matches_the_im2col_path() {
        if !super::available() {
            return;
        }
        let cases = [
            // (cin, cout, k, stride, up, pad, mode, h, w)
            (3, 32, 9, 1, 1, 4, PadMode::Reflect, 21, 37),
            (32, 32, 3, 2, 1, 1, PadMode::Reflect, 19, 50),
            (32, 8, 3, 1, 2, 1, PadMode::Reflect, 9, 13),
            (8, 4, 3, 1, 2, 1, PadMode::Zero, 11, 7),
            (4, 3, 9, 1, 1, 4, PadMode::Reflect, 17, 70),
            (16, 16, 3, 1, 1, 0, PadMode::Zero, 6, 18),
        ];
        for (i, &(cin, cout, k, stride, up, pad, mode, h, w)) in cases.iter().enumerate() {
            let weights = values(cout * cin * k * k, i);
            let conv = |direct: bool| {
                let c = Conv::from_oihw(&weights, [cout, cin, k, k], None, stride, [pad; 4], mode)
                    .expect("valid conv");
                if direct { c.with_direct() } else { c }
            };
            let x = FeatureMap::from_vec(cin, h, w, values(cin * h * w, 100 + i)).expect("shape");
            let sums = |seg: &mut [f32]| seg.iter().map(|&v| v as f64).sum::<f64>();
            let (want, want_sums) = conv(false).forward(&x, up, |_, _, seg| sums(seg));
            let (got, got_sums) = conv(true).forward(&x, up, |_, _, seg| sums(seg));
            assert_eq!((got.c, got.h, got.w), (want.c, want.h, want.w), "case {i}");
            let worst = got
                .data
                .iter()
                .zip(&want.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-4, "case {i}: max |diff| {worst}");
            let total = |s: &[Vec<f64>]| s.iter().flatten().sum::<f64>();
            assert!(
                (total(&got_sums) - total(&want_sums)).abs() < 1e-2,
                "case {i}"
            );
        }
    }

    /// In MLAS's order (runs of 128 taps: 3·9·9 = 243 and 32·3·3 = 288 taps are split) the
    /// direct kernel gives exactly the im2col + GEMM path's sums, bit for bit.
    #[test]
    fn sums_in_mlas_runs_like_the_im2col_path() {
        use super::super::ops::SumOrder;
        if !super::available() {
            return;
        }
        let cases = [
            (3, 8, 9, 1, 1, 4, PadMode::Reflect, 21, 37),
            (32, 32, 3, 1, 1, 1, PadMode::Reflect, 19, 50),
            (8, 3, 9, 1, 2, 4, PadMode::Reflect, 9, 13),
            (32, 16, 3, 2, 1, 1, PadMode::Zero, 24, 24),
        ];
        for (i, &(cin, cout, k, stride, up, pad, mode, h, w)) in cases.iter().enumerate() {
            let weights = values(cout * cin * k * k, 7 + i);
            let conv = |direct: bool| {
                let c = Conv::from_oihw(&weights, [cout, cin, k, k], None, stride, [pad; 4], mode)
                    .expect("valid conv")
                    .with_order(SumOrder::Mlas);
                if direct { c.with_direct() } else { c }
            };
            let x = FeatureMap::from_vec(cin, h, w, values(cin * h * w, 50 + i)).expect("shape");
            let (want, _) = conv(false).forward(&x, up, |_, _, _| ());
            let (got, _) = conv(true).forward(&x, up, |_, _, _| ());
            assert!(
                conv(true).run_length(got.h * got.w) < cin * k * k,
                "case {i}: one run"
            );
            assert_eq!(got.data, want.data, "case {i}");
        }
    }

    /// A recycled buffer comes back for a layer of a similar size, and never for one much
    /// smaller (which would take it away from the big layer that needs it).
    #[test]
    fn reuse_prefers_a_close_fit() {
        super::recycle(vec![1.0; 1000]);
        super::recycle(vec![2.0; 100]);
        assert_eq!(super::reuse(10).capacity(), 10);
        let b = super::reuse(90);
        assert_eq!((b.len(), b[0]), (90, 2.0));
        let b = super::reuse(900);
        assert_eq!((b.len(), b[0]), (900, 1.0));
    }
}
