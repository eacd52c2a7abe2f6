//! The two data movements around a convolution's matrix product, for square NHWC images and a
//! square kernel: im2col (each output position's receptive field as one row) and its adjoint
//! col2im (sum each row's values back onto the pixels they came from).
//!
//! A `Conv2d` is `im2col` then a product; its input gradient is a product then `col2im`. A
//! `ConvTranspose2d` is the same pair the other way round, with the transposed convolution's
//! output playing the convolution's input ("image") and its input the output grid.
//!
//! Both run in parallel over rows of the result, each written by exactly one work item, in a
//! fixed order: the sums in `col2im` are in the same order whatever the thread count.

use rayon::prelude::*;

/// Where the receptive fields lie: a `kernel`×`kernel` window with `stride` and zero `pad`
/// slid over `batch` images of `image`×`image`×`channels`, giving a `grid`×`grid` output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Images.
    pub batch: usize,
    /// Channels of the image side.
    pub channels: usize,
    /// Side of the image (a convolution's input, a transposed convolution's output).
    pub image: usize,
    /// Side of the output grid (a convolution's output, a transposed convolution's input).
    pub grid: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub pad: usize,
}

impl ConvGeom {
    /// The geometry of a convolution over `image`-sided images; `None` if the window does not
    /// fit (`kernel > image + 2·pad`) or `stride` is 0.
    pub fn new(
        batch: usize,
        channels: usize,
        image: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> Option<Self> {
        let span = (image + 2 * pad).checked_sub(kernel)?;
        if stride == 0 {
            return None;
        }
        Some(Self {
            batch,
            channels,
            image,
            grid: span / stride + 1,
            kernel,
            stride,
            pad,
        })
    }

    /// Rows of the column matrix: output positions over the batch.
    pub fn rows(&self) -> usize {
        self.batch * self.grid * self.grid
    }

    /// Columns of the column matrix: `kernel·kernel·channels`, ordered `(ky, kx, c)`.
    pub fn cols(&self) -> usize {
        self.kernel * self.kernel * self.channels
    }

    /// Values of the image side (`batch·image²·channels`).
    pub fn image_len(&self) -> usize {
        self.batch * self.image * self.image * self.channels
    }

    /// The same geometry for another batch size.
    pub fn with_batch(self, batch: usize) -> Self {
        Self { batch, ..self }
    }
}

/// `col[(n, oy, ox)][(ky, kx, c)] = image[n][oy·s − p + ky][ox·s − p + kx][c]`, zero outside
/// the image. `col` must hold `rows()·cols()` values.
pub fn im2col(g: &ConvGeom, image: &[f32], col: &mut [f32]) {
    let (k, c, s, p) = (g.kernel, g.channels, g.stride, g.pad);
    let row_len = g.cols();
    let image = &image[..g.image_len()];
    let col = &mut col[..g.rows() * row_len];
    col.par_chunks_mut(g.grid * row_len)
        .enumerate()
        .for_each(|(r, out)| {
            let (n, oy) = (r / g.grid, r % g.grid);
            let img = &image[n * g.image * g.image * c..][..g.image * g.image * c];
            for (ox, dst) in out.chunks_exact_mut(row_len).enumerate() {
                for ky in 0..k {
                    let dst = &mut dst[ky * k * c..][..k * c];
                    let iy = (oy * s + ky) as isize - p as isize;
                    if iy < 0 || iy >= g.image as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let line = &img[iy as usize * g.image * c..][..g.image * c];
                    let ix0 = (ox * s) as isize - p as isize;
                    if ix0 >= 0 && ix0 as usize + k <= g.image {
                        // The whole window row lies inside: one contiguous copy.
                        dst.copy_from_slice(&line[ix0 as usize * c..][..k * c]);
                    } else {
                        for (kx, d) in dst.chunks_exact_mut(c).enumerate() {
                            let ix = ix0 + kx as isize;
                            if ix < 0 || ix >= g.image as isize {
                                d.fill(0.0);
                            } else {
                                d.copy_from_slice(&line[ix as usize * c..][..c]);
                            }
                        }
                    }
                }
            }
        });
}

/// The adjoint of [`im2col`]: `image[n][iy][ix][c]` becomes the sum of every `col` value that
/// `im2col` would have copied from there (values that fell on the padding are dropped).
/// Overwrites `image`.
pub fn col2im(g: &ConvGeom, col: &[f32], image: &mut [f32]) {
    let (k, c, s, p) = (g.kernel, g.channels, g.stride, g.pad);
    let row_len = g.cols();
    let col = &col[..g.rows() * row_len];
    let image = &mut image[..g.image_len()];
    // A margined image row: output position ox's window row lands at [ox·s·c ..][..k·c], a
    // contiguous run (pixel ix sits at ix + pad), so the sum is a run of vector adds.
    let span = (g.grid - 1) * s + k;
    image.par_chunks_mut(g.image * c).enumerate().for_each_init(
        || vec![0f32; span * c],
        |line, (r, out)| {
            let (n, iy) = (r / g.image, r % g.image);
            line.fill(0.0);
            for ky in 0..k {
                // The output row oy whose window row ky covers image row iy.
                let t = iy + p;
                if t < ky || !(t - ky).is_multiple_of(s) || (t - ky) / s >= g.grid {
                    continue;
                }
                let oy = (t - ky) / s;
                let src = &col[(n * g.grid + oy) * g.grid * row_len..][..g.grid * row_len];
                for (ox, window) in src.chunks_exact(row_len).enumerate() {
                    let add = &window[ky * k * c..][..k * c];
                    let dst = &mut line[ox * s * c..][..k * c];
                    for (d, v) in dst.iter_mut().zip(add) {
                        *d += v;
                    }
                }
            }
            // Pixels past the last window (when the windows do not reach the far edge)
            // received nothing: zero.
            let have = span.saturating_sub(p).min(g.image) * c;
            out[..have].copy_from_slice(&line[p * c..][..have]);
            out[have..].fill(0.0);
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_im2col(g: &ConvGeom, image: &[f32]) -> Vec<f32> {
        let mut col = vec![0f32; g.rows() * g.cols()];
        for n in 0..g.batch {
            for oy in 0..g.grid {
                for ox in 0..g.grid {
                    for ky in 0..g.kernel {
                        for kx in 0..g.kernel {
                            for c in 0..g.channels {
                                let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                                let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                let inside = (0..g.image as isize).contains(&iy)
                                    && (0..g.image as isize).contains(&ix);
                                let v = if inside {
                                    image[((n * g.image + iy as usize) * g.image + ix as usize)
                                        * g.channels
                                        + c]
                                } else {
                                    0.0
                                };
                                col[((n * g.grid + oy) * g.grid + ox) * g.cols()
                                    + (ky * g.kernel + kx) * g.channels
                                    + c] = v;
                            }
                        }
                    }
                }
            }
        }
        col
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / 1e7)
            .collect()
    }

    #[test]
    fn im2col_matches_the_definition_and_col2im_is_its_adjoint() {
        for &(batch, c, image, k, s, p) in &[
            (2, 3, 8, 4, 2, 1),
            (1, 2, 4, 4, 1, 0),
            (2, 5, 1, 4, 1, 3),
            (1, 1, 7, 3, 2, 0),
            (3, 2, 6, 4, 2, 1),
        ] {
            let g = ConvGeom::new(batch, c, image, k, s, p).unwrap();
            let x = values(g.image_len(), 7);
            let mut col = vec![f32::NAN; g.rows() * g.cols()];
            im2col(&g, &x, &mut col);
            assert_eq!(col, naive_im2col(&g, &x), "{g:?}");
            // <im2col(x), y> = <x, col2im(y)> for any y.
            let y = values(col.len(), 3);
            let mut back = vec![f32::NAN; g.image_len()];
            col2im(&g, &y, &mut back);
            let lhs: f64 = col.iter().zip(&y).map(|(a, b)| *a as f64 * *b as f64).sum();
            let rhs: f64 = x
                .iter()
                .zip(&back)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum();
            assert!(
                (lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1.0),
                "{g:?}: {lhs} {rhs}"
            );
        }
    }

    #[test]
    fn impossible_geometry_is_none() {
        assert!(ConvGeom::new(1, 1, 2, 5, 1, 1).is_none());
        assert!(ConvGeom::new(1, 1, 8, 4, 0, 1).is_none());
        let g = ConvGeom::new(1, 3, 64, 4, 2, 1).unwrap();
        assert_eq!(g.grid, 32);
        assert_eq!(ConvGeom::new(1, 3, 4, 4, 1, 0).unwrap().grid, 1);
    }
}
