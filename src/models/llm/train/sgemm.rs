//! An AVX-512 f32 matrix product for the training passes' large products: BLIS-style blocking
//! (Van Zee & van de Geijn 2015, "BLIS: A Framework for Rapidly Instantiating BLAS
//! Functionality") with a 12×32 register tile and operands packed into panels (16 × 16 blocks
//! transposed in registers). Each product is split once into one part per thread (columns,
//! rows or depth of C, see [`sgemm`]), each packing its own operands, so the threads never wait
//! on each other inside a product.
//!
//! Why not only the `gemm` crate: on the AMD EPYC (Zen 4) this project is measured on, it
//! reached about 30 GFLOP/s per core on the training shapes where MKL (PyTorch's) reaches
//! about 64; this kernel is what lets training keep up with PyTorch + PEFT. Shapes too thin
//! for the tile (an adapter's rank-8 side) and CPUs without AVX-512 still go to `gemm`.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;

use super::view::View as Operand;

/// Rows of the register tile (broadcast from A).
const MR: usize = 12;
/// Columns of the register tile (two 16-float vectors of B).
const NR: usize = 32;
/// Depth of a packed block: a B micro-panel (KC × NR floats, 16 KB) stays in L1 (32 KB on
/// Zen 4). 192 (fewer loads and stores of C) measured no faster.
const KC: usize = 128;
/// Columns of a packed B block (KC × NC floats, 1 MB), in L2/L3.
const NC: usize = 2048;
/// Rows of C per packed A block (MC × KC floats, 48 KB, in L2).
const MC: usize = 8 * MR;

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether a product suits the register tile: wide enough in `n` (a thin `m`, such as an
/// adapter's rank, is padded to the tile's 12 rows; the caller transposes a thin `n`).
pub fn suits(m: usize, n: usize, k: usize) -> bool {
    m >= 4 && n >= NR && k >= 4
}

/// Packs rows `i0..i0+mc` × depth `p0..p0+kc` of A into MR-row panels, k-major (zero rows past
/// `m`). Every element of `out` is written, so it is never cleared first.
#[allow(clippy::too_many_arguments)]
fn pack_a(
    a: Operand<'_>,
    m: usize,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    out: &mut Vec<f32>,
) {
    let panels = mc.div_ceil(MR);
    grow(out, panels * MR * kc);
    for (panel, dst) in out.chunks_exact_mut(MR * kc).take(panels).enumerate() {
        let r0 = i0 + panel * MR;
        let rows = MR.min(m.saturating_sub(r0));
        // Row-major A (the usual case): 16-deep blocks through registers, as in `pack_b`.
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if a.cs == 1 && rows > 0 && available() {
            done = kc - kc % 16;
            for pb in (0..done).step_by(16) {
                let src = &a.data[r0 * a.rs + p0 + pb..];
                // SAFETY: AVX-512F is available; `src` holds `rows` rows of 16 at stride
                // `a.rs` (inside A) and the panel 16 rows of MR from `pb · MR`.
                unsafe { transpose16(src, a.rs, rows, &mut dst[pb * MR..], MR) };
            }
        }
        for r in 0..rows {
            let base = (r0 + r) * a.rs + p0 * a.cs;
            for p in done..kc {
                dst[p * MR + r] = a.data[base + p * a.cs];
            }
        }
        if rows < MR {
            for p in 0..kc {
                dst[p * MR + rows..(p + 1) * MR].fill(0.0);
            }
        }
    }
}

/// Packs depth `p0..p0+kc` × columns `j0..j0+nc` of B into NR-column panels, k-major (zero
/// columns past `n`). Every element of `out` is written.
#[allow(clippy::too_many_arguments)]
fn pack_b(
    b: Operand<'_>,
    n: usize,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    out: &mut Vec<f32>,
) {
    let panels = nc.div_ceil(NR);
    grow(out, panels * NR * kc);
    for (panel, dst) in out.chunks_exact_mut(NR * kc).take(panels).enumerate() {
        let c0 = j0 + panel * NR;
        let cols = NR.min(n.saturating_sub(c0));
        if b.rs == 1 {
            // B is stored transposed (x·Wᵀ): W's rows become the panel's columns. Whole
            // 16 × 16 blocks go through registers (a scalar scatter made packing a fifth of a
            // training step: the head packs Gemma's 262,144-row embedding every product).
            let mut done = 0;
            #[cfg(target_arch = "x86_64")]
            if cols == NR && available() {
                done = kc - kc % 16;
                for jb in 0..NR / 16 {
                    for pb in (0..done).step_by(16) {
                        let src = &b.data[(c0 + jb * 16) * b.cs + p0 + pb..];
                        let out = &mut dst[pb * NR + jb * 16..];
                        // SAFETY: AVX-512F is available; `src` holds 16 rows of 16 at stride
                        // `b.cs` (inside B, whose extent the caller checked) and `out` 16 rows
                        // of 16 at stride NR (inside the kc × NR panel).
                        unsafe { transpose16(src, b.cs, 16, out, NR) };
                    }
                }
            }
            for j in 0..cols {
                let src = &b.data[(c0 + j) * b.cs + p0..][..kc];
                for (p, &v) in src.iter().enumerate().skip(done) {
                    dst[p * NR + j] = v;
                }
            }
            if cols < NR {
                for p in 0..kc {
                    dst[p * NR + cols..(p + 1) * NR].fill(0.0);
                }
            }
        } else {
            for p in 0..kc {
                let row = &mut dst[p * NR..(p + 1) * NR];
                let base = (p0 + p) * b.rs + c0 * b.cs;
                if b.cs == 1 {
                    // A fixed-size copy compiles to two vector moves, not a memmove call.
                    match (
                        <&mut [f32; NR]>::try_from(&mut *row),
                        <&[f32; NR]>::try_from(b.data.get(base..base + NR).unwrap_or(&[])),
                    ) {
                        (Ok(d), Ok(s)) if cols == NR => *d = *s,
                        _ => row[..cols].copy_from_slice(&b.data[base..base + cols]),
                    }
                } else {
                    for (j, v) in row[..cols].iter_mut().enumerate() {
                        *v = b.data[base + j * b.cs];
                    }
                }
                row[cols..].fill(0.0);
            }
        }
    }
}

/// `out[q * out_rs + r] = src[r * src_rs + q]` for `q < 16`, `r < rows ≤ 16`: a 16 × 16
/// block (rows past `rows` read as zero and are not written) by unpacking pairs, then 4 × 4
/// blocks, then 128-bit lanes.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(src: &[f32], src_rs: usize, rows: usize, out: &mut [f32], out_rs: usize) {
    assert!((1..=16).contains(&rows));
    assert!(src.len() >= (rows - 1) * src_rs + 16 && out.len() >= 15 * out_rs + rows);
    let mask = (u32::MAX >> (32 - rows)) as u16;
    // SAFETY: the reads and writes stay inside the lengths asserted above.
    unsafe {
        let r: [__m512; 16] = std::array::from_fn(|i| {
            if i < rows {
                _mm512_loadu_ps(src.as_ptr().add(i * src_rs))
            } else {
                _mm512_setzero_ps()
            }
        });
        // Within each 128-bit lane: (a0 b0 a1 b1) and (a2 b2 a3 b3).
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (x, y) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_ps(x, y)
            } else {
                _mm512_unpackhi_ps(x, y)
            }
        });
        // u[4g + c]: rows 4g..4g+4 at column 4L + c of each lane L.
        let u: [__m512; 16] = std::array::from_fn(|i| {
            let (g, c) = (i / 4, i % 4);
            let (x, y) = (t[4 * g + c / 2], t[4 * g + 2 + c / 2]);
            if c % 2 == 0 {
                _mm512_shuffle_ps::<0x44>(x, y)
            } else {
                _mm512_shuffle_ps::<0xEE>(x, y)
            }
        });
        for c in 0..4 {
            let (g0, g1, g2, g3) = (u[c], u[4 + c], u[8 + c], u[12 + c]);
            let w0 = _mm512_shuffle_f32x4::<0x44>(g0, g1);
            let w1 = _mm512_shuffle_f32x4::<0xEE>(g0, g1);
            let w2 = _mm512_shuffle_f32x4::<0x44>(g2, g3);
            let w3 = _mm512_shuffle_f32x4::<0xEE>(g2, g3);
            let rows = [
                _mm512_shuffle_f32x4::<0x88>(w0, w2),
                _mm512_shuffle_f32x4::<0xDD>(w0, w2),
                _mm512_shuffle_f32x4::<0x88>(w1, w3),
                _mm512_shuffle_f32x4::<0xDD>(w1, w3),
            ];
            for (l, v) in rows.into_iter().enumerate() {
                _mm512_mask_storeu_ps(out.as_mut_ptr().add((4 * l + c) * out_rs), mask, v);
            }
        }
    }
}

/// Makes `v` at least `n` long without touching what it already holds (the packers overwrite
/// it; clearing first cost as much memory traffic as the packing itself).
fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// `tile = A-panel · B-panel` over `kc`, as 12×32 floats row-major.
///
/// # Safety
/// The CPU must have AVX-512F; `a` holds `kc * MR` floats and `b` `kc * NR`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel(kc: usize, a: &[f32], b: &[f32], out: Out<'_>) {
    debug_assert!(a.len() >= kc * MR && b.len() >= kc * NR);
    let (a, b) = (a.as_ptr(), b.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..kc {
        // SAFETY: p < kc, and the slices hold kc panels' worth (checked by the caller).
        let (b0, b1) = unsafe {
            (
                _mm512_loadu_ps(b.add(p * NR)),
                _mm512_loadu_ps(b.add(p * NR + 16)),
            )
        };
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            let ai = _mm512_set1_ps(unsafe { *a.add(p * MR + i) });
            acc[0] = _mm512_fmadd_ps(ai, b0, acc[0]);
            acc[1] = _mm512_fmadd_ps(ai, b1, acc[1]);
        }
    }
    match out {
        Out::Tile(tile) => {
            for (i, acc) in acc.iter().enumerate() {
                // SAFETY: the tile holds MR rows of NR floats.
                unsafe {
                    _mm512_storeu_ps(tile.as_mut_ptr().add(i * NR), acc[0]);
                    _mm512_storeu_ps(tile.as_mut_ptr().add(i * NR + 16), acc[1]);
                }
            }
        }
        Out::C {
            ptr,
            rs,
            scale,
            add,
        } => {
            let s = _mm512_set1_ps(scale);
            for (i, acc) in acc.iter().enumerate() {
                // SAFETY: the caller passes a full MR × NR block of C at row stride rs.
                unsafe {
                    let c = ptr.add(i * rs);
                    let (mut v0, mut v1) = (_mm512_mul_ps(acc[0], s), _mm512_mul_ps(acc[1], s));
                    if add {
                        v0 = _mm512_add_ps(v0, _mm512_loadu_ps(c));
                        v1 = _mm512_add_ps(v1, _mm512_loadu_ps(c.add(16)));
                    }
                    _mm512_storeu_ps(c, v0);
                    _mm512_storeu_ps(c.add(16), v1);
                }
            }
        }
    }
}

/// Where the kernel writes: a scratch tile, or straight into C (a full tile).
enum Out<'a> {
    Tile(&'a mut [f32; MR * NR]),
    C {
        ptr: *mut f32,
        rs: usize,
        scale: f32,
        add: bool,
    },
}

/// The destination: element `(i, j)` at `data[i * rs + j * cs]`.
pub struct Dest<'a> {
    pub data: &'a mut [f32],
    pub rs: usize,
    pub cs: usize,
}

/// C's storage as the threads see it: each writes only inside its own part (rows, columns or a
/// private buffer), which is what makes sharing the pointer sound.
#[derive(Clone, Copy)]
struct CPtr {
    ptr: *mut f32,
    rs: usize,
    cs: usize,
}

// SAFETY: the parts handed to different threads never overlap (see `sgemm`).
unsafe impl Send for CPtr {}
// SAFETY: as above.
unsafe impl Sync for CPtr {}

/// Products whose C is at most this many floats split their depth across the threads, each
/// into a private C, summed at the end: the head's `dlogits · E` (128 × 640 over a 262,144
/// vocabulary) has too few rows and columns to share any other way.
const SPLIT_K_MAX_C: usize = 1 << 18;

thread_local! {
    /// Each thread's packed A and B blocks, kept between products (a fresh 1 MB buffer per
    /// product meant an mmap and page faults every time).
    static PACKED: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

/// `C = scale · A·B (+ C if accumulate)`, `A` m×k, `B` k×n, `C` m×n. The caller has checked
/// [`available`], [`suits`] and that every operand lies inside its slice.
///
/// With `parallel`, the work is split once, into one part per thread, each packing its own
/// operands (no synchronisation inside the product): by columns of C when B is the larger
/// operand (each thread packs only its columns of B, and all of the smaller A), by rows when A
/// is, and by depth when C is small and the depth long.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: Operand<'_>,
    b: Operand<'_>,
    c: Dest<'_>,
    scale: f32,
    accumulate: bool,
    parallel: bool,
) {
    let threads = if parallel {
        rayon::current_num_threads()
    } else {
        1
    };
    let whole = Part {
        rows: 0..m,
        cols: 0..n,
        depth: 0..k,
    };
    let cp = CPtr {
        ptr: c.data.as_mut_ptr(),
        rs: c.rs,
        cs: c.cs,
    };
    if threads < 2 {
        // SAFETY: one caller, the whole of C.
        unsafe { run(a, b, cp, &whole, scale, accumulate) };
        return;
    }
    let (col_panels, row_panels) = (n.div_ceil(NR), m.div_ceil(MR));
    if m * n <= SPLIT_K_MAX_C && k >= 4 * KC * threads && m * n < k {
        let parts: Vec<Vec<f32>> = (0..threads)
            .into_par_iter()
            .map(|t| {
                let depth = k * t / threads..k * (t + 1) / threads;
                let mut own = vec![0f32; m * n];
                let op = CPtr {
                    ptr: own.as_mut_ptr(),
                    rs: n,
                    cs: 1,
                };
                let part = Part {
                    depth,
                    ..whole.clone()
                };
                // SAFETY: `own` is this thread's alone and m × n.
                unsafe { run(a, b, op, &part, 1.0, false) };
                own
            })
            .collect();
        for i in 0..m {
            for j in 0..n {
                let sum: f32 = parts.iter().map(|p| p[i * n + j]).sum();
                let dst = &mut c.data[i * c.rs + j * c.cs];
                *dst = if accumulate {
                    *dst + scale * sum
                } else {
                    scale * sum
                };
            }
        }
        return;
    }
    let by_cols = n * k >= m * k && col_panels >= threads || row_panels < threads;
    let (units, span, len) = if by_cols {
        (col_panels, NR, n)
    } else {
        (row_panels, MR, m)
    };
    let parts = threads.min(units);
    (0..parts).into_par_iter().for_each(|t| {
        let range = (units * t / parts * span).min(len)..(units * (t + 1) / parts * span).min(len);
        let part = if by_cols {
            Part {
                cols: range,
                ..whole.clone()
            }
        } else {
            Part {
                rows: range,
                ..whole.clone()
            }
        };
        // SAFETY: the parts' row (or column) ranges are disjoint, so no element of C is
        // written by two threads.
        unsafe { run(a, b, cp, &part, scale, accumulate) };
    });
}

/// The rows, columns and depth of a product one thread computes.
#[derive(Clone)]
struct Part {
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    depth: std::ops::Range<usize>,
}

/// `C[rows, cols] = scale · A[rows, depth] · B[depth, cols] (+ C if accumulate)` on this
/// thread.
///
/// # Safety
/// `c` must address a matrix covering `part`'s rows and columns that nothing else reads or writes inside `part`'s rows
/// and columns while this runs.
#[allow(clippy::too_many_arguments)]
unsafe fn run(a: Operand<'_>, b: Operand<'_>, c: CPtr, part: &Part, scale: f32, accumulate: bool) {
    #[cfg(target_arch = "x86_64")]
    PACKED.with_borrow_mut(|(ap, bp)| {
        let (rows, cols) = (&part.rows, &part.cols);
        for j0 in cols.clone().step_by(NC) {
            let nc = NC.min(cols.end - j0);
            for p0 in part.depth.clone().step_by(KC) {
                let kc = KC.min(part.depth.end - p0);
                pack_b(b, cols.end, p0, kc, j0, nc, bp);
                let add = accumulate || p0 > part.depth.start;
                for i0 in rows.clone().step_by(MC) {
                    let mc = MC.min(rows.end - i0);
                    pack_a(a, rows.end, i0, mc, p0, kc, ap);
                    let mut tile = [0f32; MR * NR];
                    let b_panels = bp.chunks_exact(NR * kc).take(nc.div_ceil(NR));
                    for (jp, bpanel) in b_panels.enumerate() {
                        let cj = j0 + jp * NR;
                        let ncols = NR.min(cols.end - cj);
                        let a_panels = ap.chunks_exact(MR * kc).take(mc.div_ceil(MR));
                        for (ip, apanel) in a_panels.enumerate() {
                            let ri = i0 + ip * MR;
                            let nrows = MR.min(rows.end - ri);
                            if nrows == MR && ncols == NR && c.cs == 1 {
                                let out = Out::C {
                                    // SAFETY: (ri, cj) and the MR × NR tile from it lie inside
                                    // C and inside this part.
                                    ptr: unsafe { c.ptr.add(ri * c.rs + cj) },
                                    rs: c.rs,
                                    scale,
                                    add,
                                };
                                // SAFETY: AVX-512F was checked (`available`); the panels hold
                                // kc × MR and kc × NR floats.
                                unsafe { kernel(kc, apanel, bpanel, out) };
                                continue;
                            }
                            // SAFETY: as above; the tile is MR × NR.
                            unsafe { kernel(kc, apanel, bpanel, Out::Tile(&mut tile)) };
                            for r in 0..nrows {
                                for (j, &t) in tile[r * NR..r * NR + ncols].iter().enumerate() {
                                    // SAFETY: (ri + r, cj + j) lies inside C and this part.
                                    let c = unsafe {
                                        &mut *c.ptr.add((ri + r) * c.rs + (cj + j) * c.cs)
                                    };
                                    *c = if add { *c + scale * t } else { scale * t };
                                }
                            }
                        }
                    }
                }
            }
        }
    });
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, b, c, part, scale, accumulate);
        unreachable!("sgemm::available() is false off x86_64");
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn the_register_transpose_matches_a_plain_one() {
        if !available() {
            return;
        }
        let (src_rs, out_rs) = (21, 35);
        let src: Vec<f32> = (0..16 * src_rs).map(|i| i as f32).collect();
        for rows in [16, 12, 5] {
            let mut out = vec![-1f32; 16 * out_rs];
            // SAFETY: AVX-512F checked; both buffers hold 16 rows at their strides.
            unsafe { transpose16(&src, src_rs, rows, &mut out, out_rs) };
            for q in 0..16 {
                for r in 0..rows {
                    assert_eq!(out[q * out_rs + r], src[r * src_rs + q], "({q}, {r})");
                }
                let rest = &out[q * out_rs + rows..(q + 1) * out_rs];
                assert!(
                    rest.iter().all(|&v| v == -1.0),
                    "row {q} written past {rows}"
                );
            }
        }
    }
}
