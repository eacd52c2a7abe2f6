//! `Conv2d` and `ConvTranspose2d` without bias (DCGAN's convolutions), forward and backward,
//! as GEMMs around [`im2col`]/[`col2im`] with the batch folded into the rows.
//!
//! Weights are kept in the layout the products want — `Conv2d`: `[c_out][ky][kx][c_in]`,
//! `ConvTranspose2d`: `[c_in][ky][kx][c_out]` — and converted to PyTorch's (`[c_out][c_in][ky][kx]`
//! and `[c_in][c_out][ky][kx]`) only at the edges (state dicts, checkpoints, fixtures).

use super::Param;
use super::im2col::{ConvGeom, col2im, im2col};
use crate::models::dcgan::{sgemm_strided, sgemm_strided_into};

/// A convolution weight's two layouts: PyTorch's `[outer][inner][k][k]` and this module's
/// `[outer][k][k][inner]` (`outer` is `c_out` for a convolution, `c_in` for a transposed one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightLayout {
    /// The first dimension in both layouts.
    pub outer: usize,
    /// The channel dimension that moves behind the taps.
    pub inner: usize,
    /// Kernel side.
    pub kernel: usize,
}

impl WeightLayout {
    /// PyTorch's shape.
    pub fn torch_shape(&self) -> Vec<usize> {
        vec![self.outer, self.inner, self.kernel, self.kernel]
    }

    /// Values in PyTorch's layout converted to this module's (`torch` must hold
    /// `outer·inner·kernel²` values: callers check shapes first).
    pub fn from_torch(&self, torch: &[f32]) -> Vec<f32> {
        let (a, b, taps) = (self.outer, self.inner, self.kernel * self.kernel);
        let mut out = vec![0f32; torch.len()];
        for i in 0..a {
            for j in 0..b {
                for t in 0..taps {
                    out[(i * taps + t) * b + j] = torch[(i * b + j) * taps + t];
                }
            }
        }
        out
    }

    /// Values in this module's layout converted to PyTorch's.
    pub fn to_torch(&self, ours: &[f32]) -> Vec<f32> {
        let (a, b, taps) = (self.outer, self.inner, self.kernel * self.kernel);
        let mut out = vec![0f32; ours.len()];
        for i in 0..a {
            for t in 0..taps {
                for j in 0..b {
                    out[(i * b + j) * taps + t] = ours[(i * taps + t) * b + j];
                }
            }
        }
        out
    }
}

/// Which way a [`Conv`] runs.
pub trait Direction: Clone + std::fmt::Debug {
    /// A transposed convolution (its weight is `[c_in][c_out][k][k]` in PyTorch).
    const TRANSPOSED: bool;
}

/// An ordinary convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Direct;

impl Direction for Direct {
    const TRANSPOSED: bool = false;
}

/// A transposed convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transposed;

impl Direction for Transposed {
    const TRANSPOSED: bool = true;
}

/// A convolution `c_in -> c_out` with a square kernel, no bias, ordinary or transposed.
#[derive(Clone, Debug)]
pub struct Conv<D> {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding (of the ordinary convolution's input).
    pub pad: usize,
    /// `[c_out][ky][kx][c_in]`, or `[c_in][ky][kx][c_out]` transposed.
    pub weight: Param,
    /// Scratch: a convolution keeps its forward's columns for the backward; a transposed
    /// one holds its forward's columns, then the output gradient's.
    col: Vec<f32>,
    direction: std::marker::PhantomData<D>,
}

/// `Conv2d` (DCGAN's discriminator).
pub type Conv2d = Conv<Direct>;
/// `ConvTranspose2d` (DCGAN's generator).
pub type ConvTranspose2d = Conv<Transposed>;

impl<D: Direction> Conv<D> {
    /// A layer with weights in PyTorch's layout (`[c_out][c_in][k][k]`, transposed
    /// `[c_in][c_out][k][k]`).
    pub fn from_torch(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
        torch: &[f32],
    ) -> Self {
        let mut layer = Self::without_weight(c_in, c_out, kernel, stride, pad);
        layer.weight = Param::new(layer.layout().from_torch(torch));
        layer
    }

    /// The layer's shape with an empty weight, to be set in this module's layout.
    pub(super) fn without_weight(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        Self {
            c_in,
            c_out,
            kernel,
            stride,
            pad,
            weight: Param::default(),
            col: Vec::new(),
            direction: std::marker::PhantomData,
        }
    }

    /// How the weight (and anything shaped like it) converts to PyTorch's layout.
    pub fn layout(&self) -> WeightLayout {
        let (outer, inner) = if D::TRANSPOSED {
            (self.c_in, self.c_out)
        } else {
            (self.c_out, self.c_in)
        };
        WeightLayout {
            outer,
            inner,
            kernel: self.kernel,
        }
    }
}

impl Conv2d {
    /// The geometry of this layer on `batch` inputs of `side`×`side`; `None` if the kernel
    /// does not fit.
    pub fn geom(&self, batch: usize, side: usize) -> Option<ConvGeom> {
        ConvGeom::new(batch, self.c_in, side, self.kernel, self.stride, self.pad)
    }

    /// `y[(n, oy, ox)][c_out]` for `x[n][y][x][c_in]`.
    pub fn forward(&mut self, g: &ConvGeom, x: &[f32], y: &mut [f32]) {
        let (rows, k) = (g.rows(), g.cols());
        super::ensure_len(&mut self.col, rows * k);
        im2col(g, x, &mut self.col);
        let w = &self.weight.value;
        sgemm_strided(rows, self.c_out, k, (&self.col, k, 1), (w, 1, k), y);
    }

    /// Given `dy` for the last forward, adds the weight gradient (when `weight_grad`) and
    /// writes the input gradient into `dx` (when given).
    pub fn backward(
        &mut self,
        g: &ConvGeom,
        dy: &[f32],
        weight_grad: bool,
        dx: Option<&mut [f32]>,
    ) {
        let (rows, k, co) = (g.rows(), g.cols(), self.c_out);
        if weight_grad {
            // dW[co][K] += dyᵀ · col
            let grad = &mut self.weight.grad;
            sgemm_strided_into(co, k, rows, (dy, 1, co), (&self.col, k, 1), grad, true);
        }
        if let Some(dx) = dx {
            // The columns are not needed any more: their buffer takes the column gradient.
            let w = &self.weight.value;
            sgemm_strided(rows, k, co, (dy, co, 1), (w, k, 1), &mut self.col);
            col2im(g, &self.col, dx);
        }
    }
}

impl ConvTranspose2d {
    /// The geometry on `batch` inputs of `side`×`side` (the grid) producing
    /// `((side − 1)·stride + kernel − 2·pad)`-sided outputs (the image); `None` if that is not
    /// a valid size.
    pub fn geom(&self, batch: usize, side: usize) -> Option<ConvGeom> {
        let out = ((side.checked_sub(1)?) * self.stride + self.kernel).checked_sub(2 * self.pad)?;
        let g = ConvGeom::new(batch, self.c_out, out, self.kernel, self.stride, self.pad)?;
        (g.grid == side).then_some(g)
    }

    /// `y[n][oy][ox][c_out]` for `x[(n, iy, ix)][c_in]`.
    pub fn forward(&mut self, g: &ConvGeom, x: &[f32], y: &mut [f32]) {
        let mut col = std::mem::take(&mut self.col);
        self.forward_with(g, x, y, &mut col);
        self.col = col;
    }

    /// [`Self::forward`] with the caller's scratch buffer (a shared layer, e.g. sampling
    /// while the training cache must stay as it is).
    pub fn forward_with(&self, g: &ConvGeom, x: &[f32], y: &mut [f32], col: &mut Vec<f32>) {
        let (rows, k) = (g.rows(), g.cols());
        super::ensure_len(col, rows * k);
        let w = &self.weight.value;
        sgemm_strided(rows, k, self.c_in, (x, self.c_in, 1), (w, k, 1), col);
        col2im(g, col, y);
    }

    /// Given the forward's input `x` and the output gradient `dy`, adds the weight gradient
    /// (when `weight_grad`) and writes the input gradient into `dx` (when given).
    pub fn backward(
        &mut self,
        g: &ConvGeom,
        x: &[f32],
        dy: &[f32],
        weight_grad: bool,
        dx: Option<&mut [f32]>,
    ) {
        let (rows, k, ci) = (g.rows(), g.cols(), self.c_in);
        super::ensure_len(&mut self.col, rows * k);
        im2col(g, dy, &mut self.col);
        if weight_grad {
            // dW[ci][K] += xᵀ · col(dy)
            let grad = &mut self.weight.grad;
            sgemm_strided_into(ci, k, rows, (x, 1, ci), (&self.col, k, 1), grad, true);
        }
        if let Some(dx) = dx {
            let w = &self.weight.value;
            sgemm_strided(rows, ci, k, (&self.col, k, 1), (w, 1, k), dx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::gan::rng::{Rng, fill_normal};

    fn randn(rng: &mut Rng, n: usize, std: f32) -> Vec<f32> {
        let mut v = vec![0f32; n];
        fill_normal(rng, &mut v);
        v.iter_mut().for_each(|x| *x *= std);
        v
    }

    /// The loss `Σ r·y` for fixed random `r`, in f64.
    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    /// Checks analytic gradients against central differences of `Σ r·layer(x)` at a few
    /// coordinates of the input and the weight.
    fn check<F, B>(x: &mut [f32], w_len: usize, out_len: usize, mut fwd: F, mut bwd: B)
    where
        F: FnMut(&[f32], &[f32]) -> Vec<f32>,
        B: FnMut(&[f32], &[f32], &[f32]) -> (Vec<f32>, Vec<f32>),
    {
        let mut rng = Rng::for_stream(9, 0);
        let mut w = randn(&mut rng, w_len, 0.5);
        let r = randn(&mut rng, out_len, 1.0);
        let (dx, dw) = bwd(x, &w, &r);
        let eps = 1e-2f32;
        let mut worst = 0f64;
        for i in (0..x.len()).step_by(x.len() / 23 + 1) {
            let keep = x[i];
            x[i] = keep + eps;
            let up = dot(&fwd(x, &w), &r);
            x[i] = keep - eps;
            let down = dot(&fwd(x, &w), &r);
            x[i] = keep;
            let num = (up - down) / (2.0 * eps as f64);
            worst = worst.max((num - dx[i] as f64).abs() / num.abs().max(1.0));
        }
        for i in (0..w.len()).step_by(w.len() / 23 + 1) {
            let keep = w[i];
            w[i] = keep + eps;
            let up = dot(&fwd(x, &w), &r);
            w[i] = keep - eps;
            let down = dot(&fwd(x, &w), &r);
            w[i] = keep;
            let num = (up - down) / (2.0 * eps as f64);
            worst = worst.max((num - dw[i] as f64).abs() / num.abs().max(1.0));
        }
        assert!(worst < 2e-3, "finite differences disagree by {worst}");
    }

    #[test]
    fn conv2d_gradients_match_finite_differences() {
        for &(batch, c_in, c_out, side, k, s, p) in &[
            (2, 3, 4, 8, 4, 2, 1),
            (2, 5, 1, 4, 4, 1, 0),
            (1, 2, 3, 5, 3, 1, 1),
        ] {
            let mut rng = Rng::for_stream(1, 0);
            let mut x = randn(&mut rng, batch * side * side * c_in, 1.0);
            let proto = Conv2d::from_torch(c_in, c_out, k, s, p, &vec![0.0; c_out * c_in * k * k]);
            let g = proto.geom(batch, side).unwrap();
            let out_len = g.rows() * c_out;
            let layer = |w: &[f32]| {
                let mut l = proto.clone();
                l.weight = Param::new(w.to_vec());
                l
            };
            check(
                &mut x,
                proto.weight.value.len(),
                out_len,
                |x, w| {
                    let mut y = vec![0f32; out_len];
                    layer(w).forward(&g, x, &mut y);
                    y
                },
                |x, w, dy| {
                    let mut l = layer(w);
                    let mut y = vec![0f32; out_len];
                    l.forward(&g, x, &mut y);
                    let mut dx = vec![0f32; x.len()];
                    l.backward(&g, dy, true, Some(&mut dx));
                    (dx, l.weight.grad)
                },
            );
        }
    }

    #[test]
    fn conv_transpose_gradients_match_finite_differences() {
        for &(batch, c_in, c_out, side, k, s, p) in &[
            (2, 4, 3, 4, 4, 2, 1),
            (3, 5, 4, 1, 4, 1, 0),
            (1, 2, 2, 3, 3, 2, 1),
        ] {
            let mut rng = Rng::for_stream(2, 0);
            let mut x = randn(&mut rng, batch * side * side * c_in, 1.0);
            let proto =
                ConvTranspose2d::from_torch(c_in, c_out, k, s, p, &vec![0.0; c_in * c_out * k * k]);
            let g = proto.geom(batch, side).unwrap();
            let out_len = g.image_len();
            let layer = |w: &[f32]| {
                let mut l = proto.clone();
                l.weight = Param::new(w.to_vec());
                l
            };
            check(
                &mut x,
                proto.weight.value.len(),
                out_len,
                |x, w| {
                    let mut y = vec![0f32; out_len];
                    layer(w).forward(&g, x, &mut y);
                    y
                },
                |x, w, dy| {
                    let mut l = layer(w);
                    let mut dx = vec![0f32; x.len()];
                    l.backward(&g, x, dy, true, Some(&mut dx));
                    (dx, l.weight.grad)
                },
            );
        }
    }

    #[test]
    fn conv_transpose_matches_a_direct_sum() {
        // ConvTranspose2d(2, 3, 4, 2, 1) on one 2×2 input, against the definition
        // y[o] += x[i]·w[i][o][ky][kx] at o = i·s − p + k.
        let (ci, co, k, s, p, side) = (2, 3, 4, 2, 1, 2);
        let torch: Vec<f32> = (0..ci * co * k * k)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let x: Vec<f32> = (0..side * side * ci)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let mut l = ConvTranspose2d::from_torch(ci, co, k, s, p, &torch);
        let g = l.geom(1, side).unwrap();
        let out = g.image;
        assert_eq!(out, 4);
        let mut y = vec![0f32; g.image_len()];
        l.forward(&g, &x, &mut y);
        let mut want = vec![0f32; y.len()];
        for iy in 0..side {
            for ix in 0..side {
                for ky in 0..k {
                    for kx in 0..k {
                        let oy = (iy * s + ky) as isize - p as isize;
                        let ox = (ix * s + kx) as isize - p as isize;
                        if !(0..out as isize).contains(&oy) || !(0..out as isize).contains(&ox) {
                            continue;
                        }
                        for i in 0..ci {
                            for o in 0..co {
                                want[(oy as usize * out + ox as usize) * co + o] += x
                                    [(iy * side + ix) * ci + i]
                                    * torch[((i * co + o) * k + ky) * k + kx];
                            }
                        }
                    }
                }
            }
        }
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} {b}");
        }
        assert_eq!(l.layout().to_torch(&l.weight.value), torch);
    }
}
