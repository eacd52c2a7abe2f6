//! The AVX2 kernel for CPUs without AVX-512 VNNI (most laptops): the same layout and steps as
//! [`super::avx512`], with each 64-byte register split into two 8-row halves and `vpdpbusd`
//! emulated by `vpmaddubsw` (u8 x i8 pairs to i16) plus `vpmaddwd` (pairs to i32).
//!
//! `vpmaddubsw` saturates at 32767: 4- and 5-bit quants (at most 31 x 127 x 2 per pair) never
//! reach it, but byte quants could (255 x 127 x 2). Those are stored as `q + 128`; here they are
//! turned back into signed `q` and multiplied as `|x| * (q * sign(x))`, llama.cpp's trick,
//! which stays under 127 x 128 x 2 — so the offset correction is skipped for them.

use std::arch::x86_64::*;

use super::blocks::{ACT_BLOCK, ActView, Bias, Factors, GROUP, MatView, Store};

/// Computes a tile of `tile` activation rows (at most 8) against group `g` into `acc`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; the views must describe consistent buffers.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn tile(
    tile: usize,
    w: MatView<'_>,
    g: usize,
    x: ActView<'_>,
    t: usize,
    acc: &mut [[f32; GROUP]; 8],
) {
    let pgb = w.store.group_block_bytes(w.block);
    let end = g * w.blocks + w.blocks;
    let len = |f: &Factors| match f {
        Factors::F16(v) => v.len(),
        Factors::F32(v) => v.len(),
    };
    let min = w.bias == Bias::Min;
    assert!(w.quants.len() >= end * pgb && len(w.scales) >= end * GROUP);
    assert!(!min || len(w.mins) >= end * GROUP);
    assert!(x.k == w.blocks * w.block && x.sum_block == w.block && x.q.len() >= (t + tile) * x.k);
    assert!(x.sums.len() >= (t + tile) * w.blocks && tile <= 8);
    let offset = match (w.bias, w.store) {
        // Byte quants are made signed below: no offset left to remove.
        (Bias::Offset(_), Store::Byte) | (Bias::Min, _) => 0,
        (Bias::Offset(o), _) => o,
    };
    // SAFETY: every offset below is inside the buffers checked above.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let low = _mm256_set1_epi8(0x0F);
        let flip = _mm256_set1_epi8(-128);
        let bit4 = _mm256_set1_epi8(0x10);
        for b in 0..w.blocks {
            let q = w.quants.as_ptr().add((g * w.blocks + b) * pgb);
            let meta = (g * w.blocks + b) * GROUP;
            for (i, out) in acc.iter_mut().take(tile).enumerate() {
                let row = t + i;
                let xp = x.q.as_ptr().add(row * x.k + b * w.block) as *const i32;
                let dx = *x.d.get_unchecked((row * x.k + b * w.block) / ACT_BLOCK);
                let sum = *x.sums.get_unchecked(row * w.blocks + b);
                for half in 0..2 {
                    let mut dot = _mm256_setzero_si256();
                    for s in 0..w.block / 4 {
                        let xw = _mm256_set1_epi32(xp.add(s).read_unaligned());
                        let prod = match w.store {
                            Store::Byte => {
                                let wv = _mm256_loadu_si256(q.add(s * 64 + half * 32) as *const _);
                                let signed = _mm256_xor_si256(wv, flip);
                                _mm256_maddubs_epi16(
                                    _mm256_abs_epi8(xw),
                                    _mm256_sign_epi8(signed, xw),
                                )
                            }
                            Store::Nib4 | Store::Nib5 => {
                                let (c, hi) = (s / 2, s % 2 == 1);
                                let raw = _mm256_loadu_si256(q.add(c * 64 + half * 32) as *const _);
                                let mut wv = if hi {
                                    _mm256_and_si256(_mm256_srli_epi16::<4>(raw), low)
                                } else {
                                    _mm256_and_si256(raw, low)
                                };
                                if w.store == Store::Nib5 {
                                    // Bits for this register's 32 bytes: half of its 64-bit mask.
                                    let planes = q.add(GROUP * w.block / 2 + s * 8 + half * 4);
                                    let m = (planes as *const u32).read_unaligned();
                                    wv =
                                        _mm256_or_si256(wv, _mm256_and_si256(expand_bits(m), bit4));
                                }
                                _mm256_maddubs_epi16(wv, xw)
                            }
                        };
                        dot = _mm256_add_epi32(dot, _mm256_madd_epi16(prod, ones));
                    }
                    if offset != 0 {
                        dot = _mm256_sub_epi32(dot, _mm256_set1_epi32(offset * sum));
                    }
                    let at = meta + half * 8;
                    let scale = load8(w.scales, at);
                    let o = out.as_mut_ptr().add(half * 8);
                    let mut f = _mm256_loadu_ps(o);
                    f = _mm256_fmadd_ps(
                        _mm256_cvtepi32_ps(dot),
                        _mm256_mul_ps(scale, _mm256_set1_ps(dx)),
                        f,
                    );
                    if min {
                        f = _mm256_fmadd_ps(load8(w.mins, at), _mm256_set1_ps(dx * sum as f32), f);
                    }
                    _mm256_storeu_ps(o, f);
                }
            }
        }
    }
}

/// Eight factors starting at `at`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8(f: &Factors, at: usize) -> __m256 {
    // SAFETY: the caller checked the length.
    unsafe {
        match f {
            Factors::F16(v) => _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(at) as *const _)),
            Factors::F32(v) => _mm256_loadu_ps(v.as_ptr().add(at)),
        }
    }
}

/// 32 mask bits to 32 bytes of 0xFF / 0x00 (bit i -> byte i).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn expand_bits(m: u32) -> __m256i {
    // Broadcast the 4 mask bytes so byte i sees mask byte i / 8, then test bit i % 8.
    let v = _mm256_set1_epi32(m as i32);
    let shuffle = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
        3, 3,
    );
    let bytes = _mm256_shuffle_epi8(v, shuffle);
    let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bits), bits)
}
