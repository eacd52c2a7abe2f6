//! The generator's one matrix kernel: a register-tiled product of a few *gathered* rows of
//! activations with a weight panel packed at load, with the shift and ReLU applied before the
//! single store.
//!
//! Why not a GEMM library: for one sample the layers are small (16–256 output pixels per
//! parity class), and `gemm` spent a third of the forward pass packing the same weights again
//! on every call and a fifth in a separate col2im pass. Here the weights are packed once
//! (`[panel][k][width]`, `width` = 16·`NV` output channels, so each `k` step loads `NV`
//! contiguous vectors), the rows are read where they lie (each row is up to four input pixels'
//! channel vectors — the taps of a transposed convolution — so no im2col copy exists), and the
//! result goes straight to the output image.

use std::marker::PhantomData;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_max_ps, _mm512_set1_ps,
    _mm512_setzero_ps, _mm512_storeu_ps,
};

/// Floats per SIMD vector (AVX-512); panel widths are multiples of it.
pub const LANES: usize = 16;

/// Which implementation [`tile`] runs, chosen once per process by [`Kernel::detect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512F, detected at run time.
    Avx512,
    /// Plain Rust, for CPUs without AVX-512 (the compiler vectorizes what it can).
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Kernel::Avx512;
        }
        Kernel::Portable
    }
}

/// Rows per tile for a panel of `nv` vectors: as many accumulators as the 32 vector registers
/// hold next to the `nv` weight vectors (6×4 or 8×3 accumulators).
pub fn max_rows(nv: usize) -> usize {
    match nv {
        1 => 14,
        2 => 12,
        3 => 8,
        _ => 6,
    }
}

/// An output buffer several threads write disjoint parts of (the parity classes and channel
/// panels of a layer interleave in memory, so they cannot be split into `&mut` slices).
#[derive(Clone, Copy)]
pub struct SharedOut<'a> {
    ptr: *mut f32,
    len: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: a SharedOut is only written through `tile`, whose contract makes every concurrent
// call write a disjoint range; it holds the buffer's `&mut` borrow for its lifetime.
unsafe impl Send for SharedOut<'_> {}
// SAFETY: as above.
unsafe impl Sync for SharedOut<'_> {}

impl<'a> SharedOut<'a> {
    /// Wraps `out` for the lifetime of its borrow.
    pub fn new(out: &'a mut [f32]) -> Self {
        Self {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _borrow: PhantomData,
        }
    }
}

/// One tile's operands. Row `r` of the product is
/// `out[out_rows[r]..][..width] = act(shift + Σ_t Σ_i a[rows[r] + taps[t] + i] · panel[t·kc + i][..])`,
/// or a part of that sum: a long `k` is run in blocks whose weights stay in the L1 cache
/// across many tiles (`first` starts the sum, later blocks add to what `out` holds, `last`
/// applies shift and activation).
pub struct Tile<'a> {
    /// The activations the rows gather from.
    pub a: &'a [f32],
    /// Where each row's tap-0 values start in `a` (at most [`max_rows`]`(nv)` rows).
    pub rows: &'a [usize],
    /// Offsets of the taps from a row's start; each tap contributes `kc` consecutive values.
    pub taps: &'a [isize],
    /// Values per tap.
    pub kc: usize,
    /// `[taps·kc][16·nv]`, packed at load.
    pub panel: &'a [f32],
    /// `[16·nv]`, added before the activation.
    pub shift: &'a [f32],
    /// Vectors per row of the panel.
    pub nv: usize,
    /// Apply ReLU (else the identity).
    pub relu: bool,
    /// This block starts the sum (else it adds to the partial sum in `out`).
    pub first: bool,
    /// This block ends the sum: add `shift`, apply the activation.
    pub last: bool,
}

/// Computes one tile into `out` at `out_rows` (see [`Tile`]).
///
/// Panics if any operand is too short for the shapes it claims.
///
/// # Safety
/// No other thread may read or write `out[out_rows[r]..][..16·nv]` during the call, for any `r`.
pub unsafe fn tile(kernel: Kernel, t: &Tile<'_>, out: SharedOut<'_>, out_rows: &[usize]) {
    let width = LANES * t.nv;
    assert!(
        (1..=4).contains(&t.nv) && !t.rows.is_empty() && t.rows.len() <= max_rows(t.nv),
        "tile shape out of range"
    );
    assert_eq!(t.rows.len(), out_rows.len(), "tile rows");
    assert!(
        t.panel.len() >= t.taps.len() * t.kc * width && t.shift.len() >= width,
        "weight panel too short"
    );
    for &row in t.rows {
        for &tap in t.taps {
            let start = row as isize + tap;
            assert!(
                start >= 0 && start as usize + t.kc <= t.a.len(),
                "tile row outside the activations"
            );
        }
    }
    for &o in out_rows {
        assert!(o + width <= out.len, "tile output outside the buffer");
    }
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Avx512` is only constructed after detecting AVX-512F; every address the
        // kernel touches was bounds-checked above; exclusivity of the output is the caller's.
        Kernel::Avx512 => unsafe { avx512::dispatch(t, out, out_rows) },
        // SAFETY: bounds checked above; exclusivity of the output is the caller's.
        _ => unsafe { portable(t, out, out_rows) },
    }
}

/// The reference implementation, and the fallback without AVX-512.
///
/// # Safety
/// As [`tile`], with its bounds already checked.
unsafe fn portable(t: &Tile<'_>, out: SharedOut<'_>, out_rows: &[usize]) {
    let width = LANES * t.nv;
    let mut acc = [0f32; 4 * LANES];
    for (&row, &o) in t.rows.iter().zip(out_rows) {
        let acc = &mut acc[..width];
        // SAFETY: `o + width <= out.len` was checked by `tile`; the caller guarantees no
        // other thread touches this range.
        let dst = unsafe { std::slice::from_raw_parts_mut(out.ptr.add(o), width) };
        if t.first {
            acc.fill(0.0);
        } else {
            acc.copy_from_slice(dst);
        }
        for (ti, &tap) in t.taps.iter().enumerate() {
            let start = (row as isize + tap) as usize;
            let xs = &t.a[start..start + t.kc];
            let w = &t.panel[ti * t.kc * width..][..t.kc * width];
            for (x, wrow) in xs.iter().zip(w.chunks_exact(width)) {
                for (a, w) in acc.iter_mut().zip(wrow) {
                    *a = x.mul_add(*w, *a);
                }
            }
        }
        if t.last {
            for (a, s) in acc.iter_mut().zip(t.shift) {
                *a += s;
                if t.relu {
                    *a = a.max(0.0);
                }
            }
        }
        dst.copy_from_slice(acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;

    /// Picks the monomorphized kernel for the tile's row count and panel width.
    ///
    /// # Safety
    /// AVX-512F is available; the operands were bounds-checked by [`tile`]; the output
    /// ranges are exclusively the caller's.
    pub(super) unsafe fn dispatch(t: &Tile<'_>, out: SharedOut<'_>, out_rows: &[usize]) {
        macro_rules! go {
            ($nv:literal: $($mr:literal)*) => {
                match t.rows.len() {
                    // SAFETY: forwarded from this function's contract.
                    $($mr => unsafe { kernel::<$mr, $nv>(t, out, out_rows) },)*
                    _ => unreachable!("tile checked the row count"),
                }
            };
        }
        match t.nv {
            1 => go!(1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14),
            2 => go!(2: 1 2 3 4 5 6 7 8 9 10 11 12),
            3 => go!(3: 1 2 3 4 5 6 7 8),
            _ => go!(4: 1 2 3 4 5 6),
        }
    }

    /// `MR` rows × `NV` vectors of accumulators held in registers across the whole `k` loop.
    ///
    /// # Safety
    /// As [`dispatch`], with `t.rows.len() == MR` and `t.nv == NV`.
    #[target_feature(enable = "avx512f")]
    #[inline(never)]
    unsafe fn kernel<const MR: usize, const NV: usize>(
        t: &Tile<'_>,
        out: SharedOut<'_>,
        out_rows: &[usize],
    ) {
        let width = LANES * NV;
        let a = t.a.as_ptr();
        let mut w = t.panel.as_ptr();
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        if !t.first {
            for (r, acc) in acc.iter_mut().enumerate() {
                for (v, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: `tile` checked `out_rows[r] + width <= out.len`; the caller
                    // guarantees the range is not touched by another thread.
                    *acc = unsafe { _mm512_loadu_ps(out.ptr.add(out_rows[r] + LANES * v)) };
                }
            }
        }
        for &tap in t.taps {
            // SAFETY (this block and the loop): `tile` checked that every row's tap range
            // `rows[r] + tap .. + kc` lies inside `a`, and that the panel holds
            // `taps·kc·width` values, which `w` walks exactly once.
            let x: [*const f32; MR] =
                std::array::from_fn(|r| unsafe { a.offset(t.rows[r] as isize + tap) });
            for i in 0..t.kc {
                let wv: [__m512; NV] =
                    std::array::from_fn(|v| unsafe { _mm512_loadu_ps(w.add(LANES * v)) });
                for r in 0..MR {
                    let xr = _mm512_set1_ps(unsafe { *x[r].add(i) });
                    for v in 0..NV {
                        acc[r][v] = _mm512_fmadd_ps(xr, wv[v], acc[r][v]);
                    }
                }
                w = unsafe { w.add(width) };
            }
        }
        let zero = _mm512_setzero_ps();
        // SAFETY: `tile` checked `shift.len() >= width`.
        let shift: [__m512; NV] =
            std::array::from_fn(|v| unsafe { _mm512_loadu_ps(t.shift.as_ptr().add(LANES * v)) });
        for (r, acc) in acc.iter().enumerate() {
            for (v, (&y, &s)) in acc.iter().zip(&shift).enumerate() {
                let mut y = y;
                if t.last {
                    y = _mm512_add_ps(y, s);
                    if t.relu {
                        y = _mm512_max_ps(y, zero);
                    }
                }
                // SAFETY: `tile` checked `out_rows[r] + width <= out.len`; the caller
                // guarantees the range is not touched by another thread.
                unsafe { _mm512_storeu_ps(out.ptr.add(out_rows[r] + LANES * v), y) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX-512 kernel equals the portable one for every tile shape, with gathered taps
    /// that step backwards and forwards.
    #[test]
    fn kernels_agree() {
        let kernel = Kernel::detect();
        let kc = 7;
        let taps = [0isize, 9, -4];
        let a: Vec<f32> = (0..200)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        for nv in 1..=4 {
            let width = LANES * nv;
            let panel: Vec<f32> = (0..taps.len() * kc * width)
                .map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0)
                .collect();
            let shift: Vec<f32> = (0..width).map(|i| i as f32 * 0.1 - 2.0).collect();
            for mr in 1..=max_rows(nv) {
                let rows: Vec<usize> = (0..mr).map(|r| 10 + 11 * r).collect();
                let out_rows: Vec<usize> = (0..mr).map(|r| r * width).collect();
                for relu in [false, true] {
                    let t = |first, last| Tile {
                        a: &a,
                        rows: &rows,
                        taps: &taps,
                        kc,
                        panel: &panel,
                        shift: &shift,
                        nv,
                        relu,
                        first,
                        last,
                    };
                    let mut got = vec![0f32; mr * width];
                    let mut want = vec![0f32; mr * width];
                    // SAFETY: single-threaded; the buffers are exclusively borrowed.
                    unsafe {
                        // Two blocks: a partial sum, then the same again finished.
                        tile(kernel, &t(true, false), SharedOut::new(&mut got), &out_rows);
                        tile(kernel, &t(false, true), SharedOut::new(&mut got), &out_rows);
                        let mut w = SharedOut::new(&mut want);
                        tile(Kernel::Portable, &t(true, false), w, &out_rows);
                        w = SharedOut::new(&mut want);
                        tile(Kernel::Portable, &t(false, true), w, &out_rows);
                    }
                    // The reference, computed directly.
                    for (r, &row) in rows.iter().enumerate() {
                        for col in 0..width {
                            let mut sum = 0f32;
                            for (ti, &tap) in taps.iter().enumerate() {
                                for i in 0..kc {
                                    let x = a[(row as isize + tap) as usize + i];
                                    sum += x * panel[(ti * kc + i) * width + col];
                                }
                            }
                            let mut y = 2.0 * sum + shift[col];
                            if relu {
                                y = y.max(0.0);
                            }
                            let w = want[r * width + col];
                            assert!((y - w).abs() < 1e-4, "portable: {w} vs {y}");
                        }
                    }
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() < 1e-4, "nv {nv} mr {mr}: {g} vs {w}");
                    }
                    if relu {
                        assert!(want.iter().all(|&v| v >= 0.0));
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "tile row outside the activations")]
    fn rejects_rows_outside_the_input() {
        let a = vec![0f32; 10];
        let panel = vec![0f32; 2 * LANES];
        let shift = vec![0f32; LANES];
        let t = Tile {
            a: &a,
            rows: &[9],
            taps: &[0],
            kc: 2,
            panel: &panel,
            shift: &shift,
            nv: 1,
            relu: false,
            first: true,
            last: true,
        };
        let mut out = vec![0f32; LANES];
        // SAFETY: single-threaded; panics before touching memory.
        unsafe { tile(Kernel::detect(), &t, SharedOut::new(&mut out), &[0]) };
    }
}
