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
    macro_rules! by_tile {
        ($nib:literal, $block:literal, $min:literal) => {
            match tile {
                8 => run::<8, $nib, $block, $min>(w, g, x, t, acc),
                4 => run::<4, $nib, $block, $min>(w, g, x, t, acc),
                2 => run::<2, $nib, $block, $min>(w, g, x, t, acc),
                _ => run::<1, $nib, $block, $min>(w, g, x, t, acc),
            }
        };
    }
    let min = w.bias == Bias::Min;
    // SAFETY: forwarded from the caller.
    unsafe {
        match (w.nibbles, w.block, min) {
            (true, _, true) => by_tile!(true, 32, true),
            (true, _, false) => by_tile!(true, 32, false),
            (false, 16, true) => by_tile!(false, 16, true),
            (false, 16, false) => by_tile!(false, 16, false),
            (false, _, true) => by_tile!(false, 32, true),
            (false, _, false) => by_tile!(false, 32, false),
        }
    }
}

/// One block's weights for 16 rows: `BLOCK / 4` registers of 4 values per row.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn load_block<const NIB: bool, const BLOCK: usize>(wq: *const u8) -> [__m512i; 8] {
    let mut regs = [_mm512_setzero_si512(); 8];
    // SAFETY: the caller passes a pointer to a whole (group, block) of quants.
    unsafe {
        if NIB {
            let mask = _mm512_set1_epi8(0x0F);
            for c in 0..BLOCK / 8 {
                let raw = _mm512_loadu_si512(wq.add(c * 64) as *const _);
                regs[2 * c] = _mm512_and_si512(raw, mask);
                regs[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), mask);
            }
        } else {
            for (s, r) in regs.iter_mut().enumerate().take(BLOCK / 4) {
                *r = _mm512_loadu_si512(wq.add(s * 64) as *const _);
            }
        }
    }
    regs
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn run<const T: usize, const NIB: bool, const BLOCK: usize, const MIN: bool>(
    w: MatView<'_>,
    g: usize,
    x: ActView<'_>,
    t: usize,
    acc: &mut [[f32; GROUP]; 8],
) {
    let pgb = GROUP * BLOCK / if NIB { 2 } else { 1 };
    let offset = match w.bias {
        Bias::Offset(o) => o,
        Bias::Min => 0,
    };
    // Bounds, checked once so the loop can use raw pointers.
    let end = g * w.blocks + w.blocks;
    assert!(w.quants.len() >= end * pgb && w.scales.len() >= end * GROUP);
    assert!(!MIN || w.mins.len() >= end * GROUP);
    assert!(x.k == w.blocks * BLOCK && x.sum_block == BLOCK && x.q.len() >= (t + T) * x.k);
    assert!(x.sums.len() >= (t + T) * w.blocks && x.d.len() >= (t + T) * x.k / ACT_BLOCK);
    let mut facc = [_mm512_setzero_ps(); T];
    // SAFETY: every offset below is inside the buffers checked above.
    unsafe {
        let wq0 = w.quants.as_ptr().add(g * w.blocks * pgb);
        let sc0 = w.scales.as_ptr().add(g * w.blocks * GROUP);
        let mn0 = w.mins.as_ptr().add(if MIN { g * w.blocks * GROUP } else { 0 });
        let xq0 = x.q.as_ptr().add(t * x.k) as *const i32;
        let sums0 = x.sums.as_ptr().add(t * w.blocks);
        let d0 = x.d.as_ptr().add(t * x.k / ACT_BLOCK);
        let words_per_row = x.k / 4;
        let blocks_per_act = ACT_BLOCK / BLOCK;
        for b in 0..w.blocks {
            let wv = load_block::<NIB, BLOCK>(wq0.add(b * pgb));
            let scale = _mm512_loadu_ps(sc0.add(b * GROUP));
            let min = if MIN {
                _mm512_loadu_ps(mn0.add(b * GROUP))
            } else {
                _mm512_setzero_ps()
            };
            for (i, f) in facc.iter_mut().enumerate() {
                // The activations' 4-byte words of this block, broadcast one per step.
                let xp = xq0.add(i * words_per_row + b * BLOCK / 4);
                let mut a0 = _mm512_setzero_si512();
                let mut a1 = _mm512_setzero_si512();
                for s in (0..BLOCK / 4).step_by(2) {
                    // Nibble registers hold values 8c..8c+4 then 8c+4..8c+8: the same
                    // word order as the activations.
                    a0 = _mm512_dpbusd_epi32(a0, wv[s], _mm512_set1_epi32(xp.add(s).read_unaligned()));
                    a1 = _mm512_dpbusd_epi32(
                        a1,
                        wv[s + 1],
                        _mm512_set1_epi32(xp.add(s + 1).read_unaligned()),
                    );
                }
                let sum = *sums0.add(i * w.blocks + b);
                let mut dot = _mm512_add_epi32(a0, a1);
                if !MIN {
                    dot = _mm512_sub_epi32(dot, _mm512_set1_epi32(offset * sum));
                }
                let dx = *d0.add(i * x.k / ACT_BLOCK + b / blocks_per_act);
                *f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(scale, _mm512_set1_ps(dx)), *f);
                if MIN {
                    *f = _mm512_fmadd_ps(min, _mm512_set1_ps(dx * sum as f32), *f);
                }
            }
        }
        for (i, f) in facc.iter().enumerate() {
            _mm512_storeu_ps(acc[i].as_mut_ptr(), *f);
        }
    }
}
