//! An AVX-512 f32 matrix product for the training passes' large products: BLIS-style blocking
//! (Van Zee & van de Geijn 2015, "BLIS: A Framework for Rapidly Instantiating BLAS
//! Functionality") with a 12×32 register tile: operands packed into panels, a `KC`-deep block
//! of B shared by every thread, row blocks of C split across the pool.
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
/// Depth of a packed block: a B micro-panel (KC × NR floats, 16 KB) stays in L1.
const KC: usize = 128;
/// Columns of a packed B block (KC × NC floats, 1 MB): shared by the threads, in L2/L3.
const NC: usize = 2048;
/// Rows of C per parallel task (a packed A block of MC × KC floats, 48 KB).
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
/// `m`).
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
    out.clear();
    out.resize(panels * MR * kc, 0.0);
    for (panel, dst) in out.chunks_exact_mut(MR * kc).enumerate() {
        let r0 = i0 + panel * MR;
        let rows = MR.min(m.saturating_sub(r0));
        for r in 0..rows {
            let base = (r0 + r) * a.rs + p0 * a.cs;
            for p in 0..kc {
                dst[p * MR + r] = a.data[base + p * a.cs];
            }
        }
    }
}

/// Packs depth `p0..p0+kc` × columns `j0..j0+nc` of B into NR-column panels, k-major (zero
/// columns past `n`).
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
    out.clear();
    out.resize(panels * NR * kc, 0.0);
    out.par_chunks_mut(NR * kc)
        .enumerate()
        .for_each(|(panel, dst)| {
            let c0 = j0 + panel * NR;
            let cols = NR.min(n.saturating_sub(c0));
            if b.rs == 1 {
                // B is stored transposed (x·Wᵀ): read each of W's rows along its length.
                for j in 0..cols {
                    let src = &b.data[(c0 + j) * b.cs + p0..][..kc];
                    for (p, &v) in src.iter().enumerate() {
                        dst[p * NR + j] = v;
                    }
                }
            } else {
                for p in 0..kc {
                    let row = &mut dst[p * NR..p * NR + cols];
                    let base = (p0 + p) * b.rs + c0 * b.cs;
                    if b.cs == 1 {
                        row.copy_from_slice(&b.data[base..base + cols]);
                    } else {
                        for (j, v) in row.iter_mut().enumerate() {
                            *v = b.data[base + j * b.cs];
                        }
                    }
                }
            }
        });
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

/// `C = scale · A·B (+ C if accumulate)`, `A` m×k, `B` k×n, `C` m×n. The caller has checked
/// [`available`], [`suits`] and that every operand lies inside its slice. Row blocks of C run
/// in parallel when `parallel` and C's rows are contiguous (`cs == 1`).
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
    #[cfg(target_arch = "x86_64")]
    {
        let (c_rs, c_cs) = (c.rs, c.cs);
        let mut bp = Vec::new();
        for j0 in (0..n).step_by(NC) {
            let nc = NC.min(n - j0);
            for p0 in (0..k).step_by(KC) {
                let kc = KC.min(k - p0);
                pack_b(b, n, p0, kc, j0, nc, &mut bp);
                let add = accumulate || p0 > 0;
                // One block of MC rows of C; `part` starts at row `origin` of C.
                let block = |(i0, origin, part): (usize, usize, &mut [f32])| {
                    let mc = MC.min(m - i0);
                    let mut ap = Vec::new();
                    pack_a(a, m, i0, mc, p0, kc, &mut ap);
                    let mut tile = [0f32; MR * NR];
                    for (jp, bpanel) in bp.chunks_exact(NR * kc).enumerate() {
                        let cj = j0 + jp * NR;
                        let cols = NR.min(n - cj);
                        for (ip, apanel) in ap.chunks_exact(MR * kc).enumerate() {
                            let ri = i0 - origin + ip * MR;
                            let nrows = MR.min(mc - ip * MR);
                            if nrows == MR && cols == NR && c_cs == 1 {
                                let start = ri * c_rs + cj;
                                let end = start + (MR - 1) * c_rs + NR;
                                let block = &mut part[start..end];
                                let out = Out::C {
                                    ptr: block.as_mut_ptr(),
                                    rs: c_rs,
                                    scale,
                                    add,
                                };
                                // SAFETY: AVX-512F was checked (`available`); the panels hold
                                // kc × MR and kc × NR floats; `block` spans the MR × NR tile.
                                unsafe { kernel(kc, apanel, bpanel, out) };
                                continue;
                            }
                            // SAFETY: as above; the tile is MR × NR.
                            unsafe { kernel(kc, apanel, bpanel, Out::Tile(&mut tile)) };
                            for r in 0..nrows {
                                let t = &tile[r * NR..r * NR + cols];
                                for (j, &t) in t.iter().enumerate() {
                                    let c = &mut part[(ri + r) * c_rs + (cj + j) * c_cs];
                                    *c = if add { *c + scale * t } else { scale * t };
                                }
                            }
                        }
                    }
                };
                let blocks = m.div_ceil(MC);
                if parallel && c_cs == 1 && blocks > 1 {
                    // Row blocks of C: MC rows each (the last one's slice ends where C ends).
                    let mut parts = Vec::with_capacity(blocks);
                    let mut rest = &mut c.data[..];
                    for blk in 0..blocks {
                        let len = if blk + 1 == blocks {
                            rest.len()
                        } else {
                            MC * c_rs
                        };
                        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
                        parts.push((blk * MC, blk * MC, head));
                        rest = tail;
                    }
                    parts.into_par_iter().for_each(block);
                } else {
                    for blk in 0..blocks {
                        block((blk * MC, 0, &mut c.data[..]));
                    }
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, n, k, a, b, c, scale, accumulate, parallel);
        unreachable!("sgemm::available() is false off x86_64");
    }
}
