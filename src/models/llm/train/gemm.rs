//! f32 matrix products for training: strided operands so a transpose costs nothing,
//! accumulation into the destination, and the rayon pool the training job runs in. Large
//! products run on [`super::sgemm`] (AVX-512), the rest on the `gemm` crate (the kernel
//! candle's CPU matmul uses).

use super::sgemm;
pub use super::view::View;

/// Whether a `rows × cols` matrix at strides `rs`, `cs` lies inside `len` elements.
fn fits(rows: usize, cols: usize, rs: usize, cs: usize, len: usize) -> bool {
    (rows - 1)
        .checked_mul(rs)
        .and_then(|x| (cols - 1).checked_mul(cs).and_then(|y| x.checked_add(y)))
        .is_some_and(|last| last < len)
}

/// `dst = scale · a · b` (or `dst += …` with `accumulate`), where `a` is `m × k`, `b` is
/// `k × n` and `dst` is `m × n` with row stride `dst_rs` (column stride 1).
///
/// Panics if an operand's strides reach outside its slice (a bug in the caller, never the
/// user's data), so the unsafe call inside never reads or writes out of bounds.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: View<'_>,
    b: View<'_>,
    dst: &mut [f32],
    dst_rs: usize,
    scale: f32,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        fits(m, n, dst_rs, 1, dst.len()),
        "matmul: destination too small"
    );
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                dst[row * dst_rs..row * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        fits(m, k, a.rs, a.cs, a.data.len()) && fits(k, n, b.rs, b.cs, b.data.len()),
        "matmul: operands smaller than their shapes"
    );
    let threads = rayon::current_num_threads();
    let parallel = threads > 1 && m * n * k >= 1 << 17;
    if sgemm::available() {
        let c = sgemm::Dest {
            data: &mut *dst,
            rs: dst_rs,
            cs: 1,
        };
        if sgemm::suits(m, n, k) {
            sgemm::sgemm(m, n, k, a, b, c, scale, accumulate, parallel);
            return;
        }
        // A thin n (an adapter's rank): Cᵀ = Bᵀ·Aᵀ puts the thin side in the tile's rows.
        if sgemm::suits(n, m, k) {
            let ct = sgemm::Dest {
                data: c.data,
                rs: 1,
                cs: dst_rs,
            };
            sgemm::sgemm(n, m, k, b.t(), a.t(), ct, scale, accumulate, false);
            return;
        }
    }
    let par = if parallel {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above prove every element the strides address lies inside its
    // slice; `dst` is exclusively borrowed and cannot alias the shared borrows `a` and `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| a.data[i * a.rs + p * a.cs] * b.data[p * b.rs + j * b.cs])
                    .sum();
            }
        }
        out
    }

    #[test]
    fn strided_products_and_accumulation_match_a_plain_loop() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        // a as given, b transposed (stored n × k).
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let want = naive(m, n, k, View::rows(&a, k), View::rows(&b, n));
        let mut got = vec![1f32; m * n];
        matmul(
            m,
            n,
            k,
            View::rows(&a, k),
            View::rows(&bt, k).t(),
            &mut got,
            n,
            1.0,
            false,
        );
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6);
        }
        matmul(
            m,
            n,
            k,
            View::rows(&a, k),
            View::rows(&b, n),
            &mut got,
            n,
            0.5,
            true,
        );
        for (g, w) in got.iter().zip(&want) {
            assert!((g - 1.5 * w).abs() < 1e-5);
        }
    }

    /// `len` values in [-1, 1], no two neighbours alike.
    fn operand(len: usize, step: usize, modulus: usize) -> Vec<f32> {
        let half = (modulus / 2) as f32;
        (0..len)
            .map(|i| ((i * step % modulus) as f32 - half) / half)
            .collect()
    }

    #[test]
    fn every_way_of_sharing_a_product_between_threads_matches_a_plain_loop() {
        // Column parts (n ≥ m), row parts (m > n), depth parts (small C, long depth), with
        // three threads so the parts are uneven.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool");
        for (m, n, k) in [(40, 200, 70), (200, 40, 70), (13, 33, 1700), (5, 64, 1600)] {
            let (a, bt) = (operand(m * k, 37, 101), operand(n * k, 53, 97));
            let (av, bv) = (View::rows(&a, k), View::rows(&bt, k).t());
            let want = naive(m, n, k, av, bv);
            let mut got = vec![2f32; m * n];
            pool.install(|| {
                matmul(m, n, k, av, bv, &mut got, n, 1.0, false);
                matmul(m, n, k, av, bv, &mut got, n, 0.5, true);
            });
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let close = (g - 1.5 * w).abs() < 1e-3 * w.abs().max(1.0);
                assert!(close, "{m}x{n}x{k} [{i}]: {g} vs {}", 1.5 * w);
            }
        }
    }

    #[test]
    fn the_tiled_kernel_matches_a_plain_loop_on_ragged_shapes() {
        // Edges in every direction: rows past a 12-row tile, columns past 32, depth past 128,
        // more columns than a 2048-wide block, a strided destination.
        for (m, n, k) in [
            (13, 33, 129),
            (25, 2049 + 31, 135),
            (12, 32, 8),
            (100, 70, 300),
        ] {
            assert!(sgemm::suits(m, n, k));
            let (a, b) = (operand(m * k, 37, 101), operand(k * n, 53, 97));
            // The same B stored n × k, read through a transposed view.
            let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let want = naive(m, n, k, View::rows(&a, k), View::rows(&b, n));
            for view in [View::rows(&b, n), View::rows(&bt, k).t()] {
                let stride = n + 3;
                let mut got = vec![7f32; m * stride];
                let av = View::rows(&a, k);
                matmul(m, n, k, av, view, &mut got, stride, 1.0, false);
                matmul(m, n, k, av, view, &mut got, stride, 0.5, true);
                for i in 0..m {
                    for j in 0..n {
                        let (g, w) = (got[i * stride + j], 1.5 * want[i * n + j]);
                        let close = (g - w).abs() < 1e-3 * w.abs().max(1.0);
                        assert!(close, "{m}x{n}x{k} ({i},{j}): {g} vs {w}");
                    }
                    let pad = &got[i * stride + n..(i + 1) * stride];
                    assert!(pad.iter().all(|&v| v == 7.0), "row {i} padding overwritten");
                }
            }
        }
    }
}
