//! DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
//! Training", <https://arxiv.org/abs/2006.10738>), policy `color,translation,cutout`, as the
//! authors' PyTorch code (`DiffAugment_pytorch.py`) defines it, on NHWC images:
//!
//! - brightness: `x + b`, `b ~ U(−0.5, 0.5)`;
//! - saturation: `(x − mean_c x)·s + mean_c x` (mean over the colour channels of a pixel),
//!   `s ~ U(0, 2)`;
//! - contrast: `(x − mean x)·k + mean x` (mean over the whole image), `k ~ U(0.5, 1.5)`;
//! - translation by up to 1/8 of the side each way (`out[y][x] = in[y + ty][x + tx]`, zero
//!   outside), `ty, tx ~ U{−8 … 8}` at 64 px;
//! - cutout: a zeroed square of half the side centred at `(cy, cx) ~ U{0 … 64}` (clipped).
//!
//! The same transforms apply to real and generated images, and the generator's gradient
//! flows back through them ([`backward`]), which is what keeps a GAN trained on a hundred
//! pictures from memorising them. The random draws are explicit ([`AugmentParams`]) so a
//! step can be replayed exactly, e.g. against PyTorch.

use rayon::prelude::*;

use super::rng::Rng;

/// Which transforms run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    /// Brightness, saturation, contrast.
    pub color: bool,
    /// Translation.
    pub translation: bool,
    /// Cutout.
    pub cutout: bool,
}

impl Policy {
    /// `color,translation,cutout`: the paper's choice for small sets.
    pub const ALL: Policy = Policy {
        color: true,
        translation: true,
        cutout: true,
    };
}

/// One image's random draws. The identity is brightness 0, saturation 1, contrast 1, no
/// shift, no cutout.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AugmentParams {
    /// Added to every value.
    pub brightness: f32,
    /// Saturation factor.
    pub saturation: f32,
    /// Contrast factor.
    pub contrast: f32,
    /// Rows to shift by (`out[y] = in[y + ty]`).
    pub translate_y: i32,
    /// Columns to shift by.
    pub translate_x: i32,
    /// Centre `(row, column)` of the cutout square, if any.
    pub cutout: Option<(i32, i32)>,
}

impl AugmentParams {
    /// No change.
    pub const IDENTITY: AugmentParams = AugmentParams {
        brightness: 0.0,
        saturation: 1.0,
        contrast: 1.0,
        translate_y: 0,
        translate_x: 0,
        cutout: None,
    };

    /// Draws one image's parameters for `side`-pixel images under `policy`.
    pub fn draw(rng: &mut Rng, policy: Policy, side: usize) -> Self {
        let mut p = Self::IDENTITY;
        if policy.color {
            p.brightness = (rng.uniform() - 0.5) as f32;
            p.saturation = (rng.uniform() * 2.0) as f32;
            p.contrast = (rng.uniform() + 0.5) as f32;
        }
        if policy.translation {
            let shift = (side as f64 * 0.125 + 0.5) as i64;
            p.translate_y = rng.range_inclusive(-shift, shift) as i32;
            p.translate_x = rng.range_inclusive(-shift, shift) as i32;
        }
        if policy.cutout {
            // randint(0, side + (1 − size % 2)) in the reference: 0 … side for an even size.
            let size = cutout_size(side);
            let hi = side as i64 - (size % 2) as i64;
            p.cutout = Some((
                rng.range_inclusive(0, hi) as i32,
                rng.range_inclusive(0, hi) as i32,
            ));
        }
        p
    }

    /// Draws parameters for `n` images.
    pub fn draw_batch(rng: &mut Rng, policy: Policy, side: usize, n: usize) -> Vec<Self> {
        (0..n).map(|_| Self::draw(rng, policy, side)).collect()
    }
}

fn cutout_size(side: usize) -> usize {
    (side as f64 * 0.5 + 0.5) as usize
}

/// The rows (or columns) `lo..=hi` a cutout centred at `centre` covers.
fn cutout_span(centre: i32, side: usize) -> (usize, usize) {
    let size = cutout_size(side) as i32;
    let lo = (centre - size / 2).clamp(0, side as i32 - 1);
    let hi = (centre - size / 2 + size - 1).clamp(0, side as i32 - 1);
    (lo as usize, hi as usize)
}

/// Applies `params[i]` to image `i` of `images` (`[n][side][side][c]`) in place.
pub fn apply(images: &mut [f32], side: usize, c: usize, params: &[AugmentParams]) {
    let len = side * side * c;
    images
        .par_chunks_mut(len)
        .zip(params.par_iter())
        .for_each_init(Vec::new, |scratch, (img, p)| {
            if p.brightness != 0.0 {
                img.iter_mut().for_each(|v| *v += p.brightness);
            }
            if p.saturation != 1.0 {
                for px in img.chunks_exact_mut(c) {
                    let mean = px.iter().sum::<f32>() / c as f32;
                    px.iter_mut()
                        .for_each(|v| *v = (*v - mean) * p.saturation + mean);
                }
            }
            if p.contrast != 1.0 {
                let mean = (img.iter().map(|v| *v as f64).sum::<f64>() / len as f64) as f32;
                img.iter_mut()
                    .for_each(|v| *v = (*v - mean) * p.contrast + mean);
            }
            if p.translate_y != 0 || p.translate_x != 0 {
                scratch.clear();
                scratch.extend_from_slice(img);
                shift(scratch, img, side, c, p.translate_y, p.translate_x, false);
            }
            if let Some((cy, cx)) = p.cutout {
                zero_square(img, side, c, cy, cx);
            }
        });
}

/// The gradient of [`apply`]: turns `grad` (d loss / d augmented images) into d loss /
/// d images, in place.
pub fn backward(grad: &mut [f32], side: usize, c: usize, params: &[AugmentParams]) {
    let len = side * side * c;
    grad.par_chunks_mut(len)
        .zip(params.par_iter())
        .for_each_init(Vec::new, |scratch, (g, p)| {
            if let Some((cy, cx)) = p.cutout {
                zero_square(g, side, c, cy, cx);
            }
            if p.translate_y != 0 || p.translate_x != 0 {
                scratch.clear();
                scratch.extend_from_slice(g);
                shift(scratch, g, side, c, p.translate_y, p.translate_x, true);
            }
            if p.contrast != 1.0 {
                // y = k·x + (1 − k)·mean(x): dx = k·dy + (1 − k)·mean(dy).
                let mean = (g.iter().map(|v| *v as f64).sum::<f64>() / len as f64) as f32;
                g.iter_mut()
                    .for_each(|v| *v = *v * p.contrast + (1.0 - p.contrast) * mean);
            }
            if p.saturation != 1.0 {
                for px in g.chunks_exact_mut(c) {
                    let mean = px.iter().sum::<f32>() / c as f32;
                    px.iter_mut()
                        .for_each(|v| *v = *v * p.saturation + (1.0 - p.saturation) * mean);
                }
            }
            // Brightness adds a constant: its gradient passes through unchanged.
        });
}

/// `dst[y][x] = src[y + ty][x + tx]` (zero outside); with `adjoint`, the transpose:
/// `dst[y + ty][x + tx] = src[y][x]` for the pixels that stay inside.
fn shift(src: &[f32], dst: &mut [f32], side: usize, c: usize, ty: i32, tx: i32, adjoint: bool) {
    dst.fill(0.0);
    let s = side as i32;
    for y in 0..s {
        let (from_y, to_y) = if adjoint { (y, y + ty) } else { (y + ty, y) };
        if !(0..s).contains(&from_y) || !(0..s).contains(&to_y) {
            continue;
        }
        for x in 0..s {
            let (from_x, to_x) = if adjoint { (x, x + tx) } else { (x + tx, x) };
            if !(0..s).contains(&from_x) || !(0..s).contains(&to_x) {
                continue;
            }
            let from = ((from_y * s + from_x) as usize) * c;
            let to = ((to_y * s + to_x) as usize) * c;
            dst[to..to + c].copy_from_slice(&src[from..from + c]);
        }
    }
}

fn zero_square(img: &mut [f32], side: usize, c: usize, cy: i32, cx: i32) {
    let (y0, y1) = cutout_span(cy, side);
    let (x0, x1) = cutout_span(cx, side);
    for y in y0..=y1 {
        img[(y * side + x0) * c..(y * side + x1 + 1) * c].fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_is_the_adjoint_of_the_forward() {
        // Every transform is affine in the image, so <A(x) − A(0), y> = <x, Aᵀ(y)>.
        let (side, c, n) = (8, 3, 6);
        let mut rng = Rng::from_seed(5);
        let params = AugmentParams::draw_batch(&mut rng, Policy::ALL, side, n);
        let x: Vec<f32> = (0..n * side * side * c)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let y: Vec<f32> = (0..x.len()).map(|i| (i as f32 * 0.73).cos()).collect();
        let mut ax = x.clone();
        apply(&mut ax, side, c, &params);
        let mut a0 = vec![0f32; x.len()];
        apply(&mut a0, side, c, &params);
        let mut aty = y.clone();
        backward(&mut aty, side, c, &params);
        let lhs: f64 = ax
            .iter()
            .zip(&a0)
            .zip(&y)
            .map(|((a, b), y)| (*a as f64 - *b as f64) * *y as f64)
            .sum();
        let rhs: f64 = x.iter().zip(&aty).map(|(a, b)| *a as f64 * *b as f64).sum();
        assert!((lhs - rhs).abs() < 1e-3, "{lhs} {rhs}");
    }

    #[test]
    fn translation_and_cutout_follow_the_reference() {
        let side = 64;
        // Shifts up to int(64·0.125 + 0.5) = 8 and cutout centres 0 … 64.
        let mut rng = Rng::from_seed(1);
        for _ in 0..500 {
            let p = AugmentParams::draw(&mut rng, Policy::ALL, side);
            assert!((-8..=8).contains(&p.translate_y) && (-8..=8).contains(&p.translate_x));
            let (cy, cx) = p.cutout.unwrap();
            assert!((0..=64).contains(&cy) && (0..=64).contains(&cx));
            assert!((-0.5..0.5).contains(&p.brightness) && (0.0..2.0).contains(&p.saturation));
        }
        assert_eq!(cutout_span(0, 64), (0, 15));
        assert_eq!(cutout_span(40, 64), (24, 55));
        assert_eq!(cutout_span(64, 64), (48, 63));
        // out[y][x] = in[y + ty][x + tx].
        let img: Vec<f32> = (0..16).map(|v| v as f32 + 1.0).collect();
        let mut out = vec![0f32; 16];
        shift(&img, &mut out, 4, 1, 1, -1, false);
        assert_eq!(&out[..4], &[0.0, 5.0, 6.0, 7.0]);
        assert_eq!(&out[12..], &[0.0; 4]);
        let mut id = img.clone();
        apply(&mut id, 4, 1, &[AugmentParams::IDENTITY]);
        assert_eq!(id, img);
    }
}
