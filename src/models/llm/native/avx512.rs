//! The AVX-512 VNNI kernel: `vpdpbusd` multiplies 64 unsigned weight quants by 4 broadcast
//! activation quants per lane and sums them into 16 i32 lanes, one per row of a group.
//! Per block, the integer sums are corrected for the weights' offset, converted, and
//! accumulated with the product of the weight and activation scales (plus the min term).

use std::arch::x86_64::*;

use super::blocks::{
    ACT_BLOCK, ActView, BYTE, Bias, Factors, GROUP, MatView, NIB4, NIB5, Store, check_tile,
};

/// Dispatches a tile of `tile` (1, 2, 4 or 8) activation rows against group `g`. Returns
/// false for a storage combination without a kernel (none of the formats produce one).
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
) -> bool {
    macro_rules! by_tile {
        ($store:expr, $block:literal, $min:literal, $half:literal) => {
            match tile {
                8 => run::<8, $store, $block, $min, $half>(w, g, x, t, acc),
                4 => run::<4, $store, $block, $min, $half>(w, g, x, t, acc),
                2 => run::<2, $store, $block, $min, $half>(w, g, x, t, acc),
                _ => run::<1, $store, $block, $min, $half>(w, g, x, t, acc),
            }
        };
    }
    let min = w.bias == Bias::Min;
    let half = matches!(w.scales, Factors::F16(_));
    // SAFETY: forwarded from the caller.
    unsafe {
        match (w.store, w.block, min, half) {
            // Q4_1, Q4_0, Q4_K
            (Store::Nib4, 32, true, true) => by_tile!(NIB4, 32, true, true),
            (Store::Nib4, 32, false, true) => by_tile!(NIB4, 32, false, true),
            (Store::Nib4, 32, true, false) => by_tile!(NIB4, 32, true, false),
            // Q5_0, Q5_1, Q5_K
            (Store::Nib5, 32, false, true) => by_tile!(NIB5, 32, false, true),
            (Store::Nib5, 32, true, true) => by_tile!(NIB5, 32, true, true),
            (Store::Nib5, 32, true, false) => by_tile!(NIB5, 32, true, false),
            // Q8_0 and re-quantized, Q6_K
            (Store::Byte, 32, false, true) => by_tile!(BYTE, 32, false, true),
            (Store::Byte, 16, false, false) => by_tile!(BYTE, 16, false, false),
            _ => return false,
        }
    }
    true
}

/// Whether [`tile`] has a kernel for this storage (tests check every format is covered).
pub fn covers(store: Store, block: usize, min: bool, half: bool) -> bool {
    matches!(
        (store, block, min, half),
        (Store::Nib4, 32, true, true)
            | (Store::Nib4, 32, false, true)
            | (Store::Nib4, 32, true, false)
            | (Store::Nib5, 32, false, true)
            | (Store::Nib5, 32, true, true)
            | (Store::Nib5, 32, true, false)
            | (Store::Byte, 32, false, true)
            | (Store::Byte, 16, false, false)
    )
}

/// One block's weights for 16 rows: `BLOCK / 4` registers of 4 values per row.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn load_block<const STORE: u8, const BLOCK: usize>(wq: *const u8) -> [__m512i; 8] {
    let mut regs = [_mm512_setzero_si512(); 8];
    // SAFETY: the caller passes a pointer to a whole (group, block) of quants.
    unsafe {
        if STORE == BYTE {
            for (s, r) in regs.iter_mut().enumerate().take(BLOCK / 4) {
                *r = _mm512_loadu_si512(wq.add(s * 64) as *const _);
            }
        } else {
            let mask = _mm512_set1_epi8(0x0F);
            for c in 0..BLOCK / 8 {
                let raw = _mm512_loadu_si512(wq.add(c * 64) as *const _);
                regs[2 * c] = _mm512_and_si512(raw, mask);
                regs[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), mask);
            }
            if STORE == NIB5 {
                // The fifth bits: one 64-bit lane mask per register.
                let planes = wq.add(GROUP * BLOCK / 2) as *const u64;
                let bit4 = _mm512_set1_epi8(0x10);
                for (s, r) in regs.iter_mut().enumerate().take(BLOCK / 4) {
                    let k: __mmask64 = planes.add(s).read_unaligned();
                    // The nibble has bit 4 clear: adding 0x10 where the mask is set ORs it in.
                    *r = _mm512_mask_add_epi8(*r, k, *r, bit4);
                }
            }
        }
    }
    regs
}

/// 16 factors (scales or mins) of one (group, block).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn load_factors<const HALF: bool>(f: &Factors, at: usize) -> __m512 {
    // SAFETY: the caller checked `at + 16 <= len`.
    unsafe {
        match f {
            Factors::F16(v) if HALF => {
                _mm512_cvtph_ps(_mm256_loadu_si256(v.as_ptr().add(at) as *const __m256i))
            }
            Factors::F32(v) if !HALF => _mm512_loadu_ps(v.as_ptr().add(at)),
            // `tile` dispatches on the factors' type.
            _ => _mm512_setzero_ps(),
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn run<
    const T: usize,
    const STORE: u8,
    const BLOCK: usize,
    const MIN: bool,
    const HALF: bool,
>(
    w: MatView<'_>,
    g: usize,
    x: ActView<'_>,
    t: usize,
    acc: &mut [[f32; GROUP]; 8],
) {
    let pgb = check_tile(&w, g, &x, t, T, Store::of_code(STORE), BLOCK);
    let offset = match w.bias {
        Bias::Offset(o) => o,
        Bias::Min => 0,
    };
    let mut facc = [_mm512_setzero_ps(); T];
    // SAFETY: every offset below is inside the buffers checked above.
    unsafe {
        let wq0 = w.quants.as_ptr().add(g * w.blocks * pgb);
        let meta0 = g * w.blocks * GROUP;
        let xq0 = x.q.as_ptr().add(t * x.k) as *const i32;
        let sums0 = x.sums.as_ptr().add(t * w.blocks);
        let d0 = x.d.as_ptr().add(t * x.k / ACT_BLOCK);
        let words_per_row = x.k / 4;
        let blocks_per_act = ACT_BLOCK / BLOCK;
        for b in 0..w.blocks {
            let wv = load_block::<STORE, BLOCK>(wq0.add(b * pgb));
            let scale = load_factors::<HALF>(w.scales, meta0 + b * GROUP);
            let min = if MIN {
                load_factors::<HALF>(w.mins, meta0 + b * GROUP)
            } else {
                _mm512_setzero_ps()
            };
            for (i, f) in facc.iter_mut().enumerate() {
                // The activations' 4-byte words of this block, broadcast one per step; two
                // accumulators halve the dependency chain.
                let xp = xq0.add(i * words_per_row + b * BLOCK / 4);
                let mut a0 = _mm512_setzero_si512();
                let mut a1 = _mm512_setzero_si512();
                for s in (0..BLOCK / 4).step_by(2) {
                    let x0 = _mm512_set1_epi32(xp.add(s).read_unaligned());
                    let x1 = _mm512_set1_epi32(xp.add(s + 1).read_unaligned());
                    a0 = _mm512_dpbusd_epi32(a0, wv[s], x0);
                    a1 = _mm512_dpbusd_epi32(a1, wv[s + 1], x1);
                }
                let sum = *sums0.add(i * w.blocks + b);
                let mut dot = _mm512_add_epi32(a0, a1);
                if !MIN {
                    dot = _mm512_sub_epi32(dot, _mm512_set1_epi32(offset * sum));
                }
                let dx = *d0.add(i * x.k / ACT_BLOCK + b / blocks_per_act);
                let s = _mm512_mul_ps(scale, _mm512_set1_ps(dx));
                *f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, *f);
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
