//! The AVX-512 VNNI kernel: `vpdpbusd` multiplies 64 unsigned weight quants by 4 broadcast
//! activation quants per lane and sums them into 16 i32 lanes, one per row of a group.
//! Per block, the integer sums are corrected for the weights' offset, converted, and
//! accumulated with the product of the weight and activation scales (plus the min term).

use std::arch::x86_64::*;

use super::quant::{ACT_BLOCK, ActView, Bias, GROUP, MatView};

/// Dispatches a tile of `tile` (1, 2, 4 or 8) activation rows against group `g`.
///
/// # Safety
/// The CPU must support AVX-512 F/BW and VNNI; the views must describe consistent buffers.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub unsafe fn tile(
    tile: usize,
    w: MatView<'_>,
    g: usize,
    x: ActView<'_>,
    t: usize,
    acc: &mut [[f32; GROUP]; 8],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match (tile, w.nibbles, w.block) {
            (8, true, _) => run::<8, true, 32>(w, g, x, t, acc),
            (4, true, _) => run::<4, true, 32>(w, g, x, t, acc),
            (2, true, _) => run::<2, true, 32>(w, g, x, t, acc),
            (_, true, _) => run::<1, true, 32>(w, g, x, t, acc),
            (8, false, 16) => run::<8, false, 16>(w, g, x, t, acc),
            (4, false, 16) => run::<4, false, 16>(w, g, x, t, acc),
            (2, false, 16) => run::<2, false, 16>(w, g, x, t, acc),
            (_, false, 16) => run::<1, false, 16>(w, g, x, t, acc),
            (8, false, _) => run::<8, false, 32>(w, g, x, t, acc),
            (4, false, _) => run::<4, false, 32>(w, g, x, t, acc),
            (2, false, _) => run::<2, false, 32>(w, g, x, t, acc),
            (_, false, _) => run::<1, false, 32>(w, g, x, t, acc),
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn run<const T: usize, const NIB: bool, const BLOCK: usize>(
    w: MatView<'_>,
    g: usize,
    x: ActView<'_>,
    t: usize,
    acc: &mut [[f32; GROUP]; 8],
) {
    let pgb = GROUP * BLOCK / if NIB { 2 } else { 1 };
    let (offset, has_min) = match w.bias {
        Bias::Offset(o) => (o, false),
        Bias::Min => (0, true),
    };
    let mask = _mm512_set1_epi8(0x0F);
    let mut facc = [_mm512_setzero_ps(); T];
    // Bounds: checked once here so the loop can use raw pointers.
    let last_meta = (g * w.blocks + w.blocks) * GROUP;
    assert!(w.quants.len() >= (g * w.blocks + w.blocks) * pgb && w.scales.len() >= last_meta);
    assert!(!has_min || w.mins.len() >= last_meta);
    assert!(x.q.len() >= (t + T) * x.k && x.k == w.blocks * BLOCK);
    assert!(x.sums.len() >= (t + T) * x.k / x.sum_block && x.sum_block == BLOCK);
    let qbase = w.quants.as_ptr();
    let xrow = |i: usize| unsafe { x.q.as_ptr().add((t + i) * x.k) };
    for b in 0..w.blocks {
        // SAFETY: every offset below is inside the buffers checked above.
        unsafe {
            let wq = qbase.add((g * w.blocks + b) * pgb);
            let mut iacc = [_mm512_setzero_si512(); T];
            if NIB {
                for c in 0..BLOCK / 8 {
                    let raw = _mm512_loadu_si512(wq.add(c * 64) as *const _);
                    let lo = _mm512_and_si512(raw, mask);
                    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), mask);
                    for i in 0..T {
                        let p = xrow(i).add(b * BLOCK + 8 * c) as *const i32;
                        let x0 = _mm512_set1_epi32(p.read_unaligned());
                        let x1 = _mm512_set1_epi32(p.add(1).read_unaligned());
                        iacc[i] = _mm512_dpbusd_epi32(iacc[i], lo, x0);
                        iacc[i] = _mm512_dpbusd_epi32(iacc[i], hi, x1);
                    }
                }
            } else {
                for s in 0..BLOCK / 4 {
                    let wv = _mm512_loadu_si512(wq.add(s * 64) as *const _);
                    for i in 0..T {
                        let p = xrow(i).add(b * BLOCK + 4 * s) as *const i32;
                        iacc[i] = _mm512_dpbusd_epi32(iacc[i], wv, _mm512_set1_epi32(p.read_unaligned()));
                    }
                }
            }
            let meta = (g * w.blocks + b) * GROUP;
            let scale = _mm512_loadu_ps(w.scales.as_ptr().add(meta));
            let min = if has_min {
                _mm512_loadu_ps(w.mins.as_ptr().add(meta))
            } else {
                _mm512_setzero_ps()
            };
            for i in 0..T {
                let row = t + i;
                let dx = *x.d.get_unchecked((row * x.k + b * BLOCK) / ACT_BLOCK);
                let sum = *x.sums.get_unchecked(row * x.k / BLOCK + b);
                let mut dot = iacc[i];
                if offset != 0 {
                    dot = _mm512_sub_epi32(dot, _mm512_set1_epi32(offset * sum));
                }
                let s = _mm512_mul_ps(scale, _mm512_set1_ps(dx));
                facc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, facc[i]);
                if has_min {
                    facc[i] = _mm512_fmadd_ps(min, _mm512_set1_ps(dx * sum as f32), facc[i]);
                }
            }
        }
    }
    for i in 0..T {
        // SAFETY: acc rows are 16 f32.
        unsafe { _mm512_storeu_ps(acc[i].as_mut_ptr(), facc[i]) };
    }
}
