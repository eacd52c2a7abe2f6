//! The AVX2 kernel for CPUs without AVX-512 VNNI (most laptops): the same layout and steps as
//! [`super::avx512`], with each 64-byte register split into two 8-row halves and `vpdpbusd`
//! emulated by `vpmaddubsw` (u8 x i8 pairs to i16) plus `vpmaddwd` (pairs to i32).
//!
//! A (group, block) half's weights are unpacked once into registers and then used for every
//! activation row of the tile: unpacking (nibble shifts, the fifth-bit plane) costs as much as
//! the products, so prompts, which come in tiles of 8 rows, would otherwise pay it 8 times.
//!
//! 4- and 5-bit quants are summed in i16 over several steps before one `vpmaddwd`: a
//! `vpmaddubsw` lane is at most 2 x 15 x 128 = 3840 (4-bit) or 2 x 31 x 128 = 7936 (5-bit) in
//! magnitude for any i8 activation, so 8 respectively 4 of them stay under 32767 — the sums are
//! exact, and the results equal the portable kernel's.
//!
//! Byte quants could reach 2 x 255 x 127 and saturate `vpmaddubsw`. They are stored as `q + 128`;
//! here they are turned back into signed `q` and multiplied as `|x| * (q * sign(x))`, llama.cpp's
//! trick, which stays under 127 x 128 x 2 — so the offset correction is skipped for them.

use std::arch::x86_64::*;

use super::blocks::{
    ACT_BLOCK, ActView, BYTE, Bias, Factors, GROUP, MatView, NIB4, NIB5, Store, check_tile,
};

/// Rows of a group in one 256-bit register of i32 lanes.
const HALF: usize = GROUP / 2;

/// Computes a tile of `tile` activation rows (1, 2, 4 or 8) against group `g` into `acc`;
/// `false` (nothing computed) for a layout this kernel does not cover.
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
) -> bool {
    macro_rules! by_tile {
        ($store:expr, $block:literal) => {
            match tile {
                8 => run::<8, $store, $block>(w, g, x, t, acc),
                4 => run::<4, $store, $block>(w, g, x, t, acc),
                2 => run::<2, $store, $block>(w, g, x, t, acc),
                _ => run::<1, $store, $block>(w, g, x, t, acc),
            }
        };
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match (w.store, w.block) {
            // Q4_0, Q4_1, Q4_K
            (Store::Nib4, 32) => by_tile!(NIB4, 32),
            // Q5_0, Q5_1, Q5_K
            (Store::Nib5, 32) => by_tile!(NIB5, 32),
            // Q8_0 and re-quantized formats
            (Store::Byte, 32) => by_tile!(BYTE, 32),
            // Q6_K
            (Store::Byte, 16) => by_tile!(BYTE, 16),
            // Layouts are built only with the four combinations above (quant.rs `layout_of`);
            // any other runs on the portable kernel.
            _ => return false,
        }
        true
    }
}

/// One half (8 rows) of a (group, block)'s weights: `BLOCK / 4` registers of 4 values per row,
/// unsigned for nibbles, signed (`q`, not `q + 128`) for bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load_half<const STORE: u8, const BLOCK: usize>(
    wq: *const u8,
    half: usize,
) -> [__m256i; 8] {
    let mut regs = [_mm256_setzero_si256(); 8];
    // SAFETY: the caller passes a pointer to a whole (group, block) of quants.
    unsafe {
        if STORE == BYTE {
            let flip = _mm256_set1_epi8(-128);
            for (s, r) in regs.iter_mut().enumerate().take(BLOCK / 4) {
                let raw = _mm256_loadu_si256(wq.add(s * 64 + half * 32) as *const _);
                *r = _mm256_xor_si256(raw, flip);
            }
        } else {
            let low = _mm256_set1_epi8(0x0F);
            for c in 0..BLOCK / 8 {
                let raw = _mm256_loadu_si256(wq.add(c * 64 + half * 32) as *const _);
                regs[2 * c] = _mm256_and_si256(raw, low);
                regs[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(raw), low);
            }
            if STORE == NIB5 {
                // The fifth bits: this half's 32 bits of each register's 64-bit mask.
                let planes = wq.add(GROUP * BLOCK / 2 + half * 4);
                let bit4 = _mm256_set1_epi8(0x10);
                for (s, r) in regs.iter_mut().enumerate().take(BLOCK / 4) {
                    let m = (planes.add(s * 8) as *const u32).read_unaligned();
                    *r = _mm256_or_si256(*r, _mm256_and_si256(expand_bits(m), bit4));
                }
            }
        }
    }
    regs
}

/// The i32 dot products of one activation row's block (`xp`, 4-byte words) with 8 rows of
/// weights from [`load_half`].
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn dot_half<const STORE: u8, const BLOCK: usize>(
    wv: &[__m256i; 8],
    xp: *const i32,
) -> __m256i {
    let ones = _mm256_set1_epi16(1);
    // SAFETY: the caller passes a pointer to a whole block of activations.
    unsafe {
        // A macro, not a closure: the broadcast must be compiled with this function's features.
        macro_rules! xw {
            ($s:expr) => {
                _mm256_set1_epi32(xp.add($s).read_unaligned())
            };
        }
        if STORE == BYTE {
            // Each product pair needs its own widening: two would overflow i16.
            let mut a0 = _mm256_setzero_si256();
            let mut a1 = _mm256_setzero_si256();
            for s in (0..BLOCK / 4).step_by(2) {
                let (x0, x1) = (xw!(s), xw!(s + 1));
                let p0 = _mm256_maddubs_epi16(_mm256_abs_epi8(x0), _mm256_sign_epi8(wv[s], x0));
                let p1 = _mm256_maddubs_epi16(_mm256_abs_epi8(x1), _mm256_sign_epi8(wv[s + 1], x1));
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(p0, ones));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(p1, ones));
            }
            _mm256_add_epi32(a0, a1)
        } else {
            // Steps summed in i16 before widening (see the module docs for the bounds).
            let run = if STORE == NIB4 { 8 } else { 4 };
            let mut dot = _mm256_setzero_si256();
            for s0 in (0..BLOCK / 4).step_by(run) {
                let mut a0 = _mm256_maddubs_epi16(wv[s0], xw!(s0));
                let mut a1 = _mm256_maddubs_epi16(wv[s0 + 1], xw!(s0 + 1));
                for s in (s0 + 2..(s0 + run).min(BLOCK / 4)).step_by(2) {
                    a0 = _mm256_add_epi16(a0, _mm256_maddubs_epi16(wv[s], xw!(s)));
                    a1 = _mm256_add_epi16(a1, _mm256_maddubs_epi16(wv[s + 1], xw!(s + 1)));
                }
                dot = _mm256_add_epi32(dot, _mm256_madd_epi16(_mm256_add_epi16(a0, a1), ones));
            }
            dot
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn run<const T: usize, const STORE: u8, const BLOCK: usize>(
    w: MatView<'_>,
    g: usize,
    x: ActView<'_>,
    t: usize,
    acc: &mut [[f32; GROUP]; 8],
) {
    let pgb = check_tile(&w, g, &x, t, T, Store::of_code(STORE), BLOCK);
    let min = w.bias == Bias::Min;
    let offset = match w.bias {
        // Byte quants are made signed in `load_half`: no offset left to remove.
        Bias::Offset(_) if STORE == BYTE => 0,
        Bias::Offset(o) => o,
        Bias::Min => 0,
    };
    assert!(T <= 8);
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
            let wq = wq0.add(b * pgb);
            let meta = meta0 + b * GROUP;
            for half in 0..2 {
                let wv = load_half::<STORE, BLOCK>(wq, half);
                let scale = load8(w.scales, meta + half * HALF);
                let mins = if min {
                    load8(w.mins, meta + half * HALF)
                } else {
                    _mm256_setzero_ps()
                };
                for (i, out) in acc.iter_mut().take(T).enumerate() {
                    let mut dot =
                        dot_half::<STORE, BLOCK>(&wv, xq0.add(i * words_per_row + b * BLOCK / 4));
                    let sum = *sums0.add(i * w.blocks + b);
                    if offset != 0 {
                        dot = _mm256_sub_epi32(dot, _mm256_set1_epi32(offset * sum));
                    }
                    let dx = *d0.add(i * x.k / ACT_BLOCK + b / blocks_per_act);
                    // The same float steps, in the same order, as the portable kernel.
                    let o = out.as_mut_ptr().add(half * HALF);
                    let mut f = _mm256_loadu_ps(o);
                    f = _mm256_fmadd_ps(
                        _mm256_cvtepi32_ps(dot),
                        _mm256_mul_ps(scale, _mm256_set1_ps(dx)),
                        f,
                    );
                    if min {
                        f = _mm256_fmadd_ps(mins, _mm256_set1_ps(dx * sum as f32), f);
                    }
                    _mm256_storeu_ps(o, f);
                }
            }
        }
    }
}

/// Eight factors starting at `at`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
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
#[inline]
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
