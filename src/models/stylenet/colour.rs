//! The Style panel's finishing touches, on the CPU: **strength** (blend the stylised image with
//! the original) and **preserve original colours** (keep the original's chroma, take only the
//! stylised luminance).
//!
//! The GUI does the same in a WGSL shader for instant feedback; these functions are its
//! reference (the shader is tested against [`compose_pixel`]) and what the CLI uses. Colours are
//! treated as the 0..1 values stored in the image (no linearisation): the shader samples the
//! same textures, and the network itself works on stored values.
//!
//! Order: preserve-colour first (on the stylised pixel), then strength:
//! `out = mix(original, preserve ? luma_transfer(original, stylised) : stylised, strength)`.

use image::RgbImage;
use rayon::prelude::*;

/// Full-range BT.601 luma weights (JPEG's YCbCr).
pub const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// RGB (0..1) to full-range YCbCr with chroma centred on 0.
#[inline]
pub fn rgb_to_ycbcr([r, g, b]: [f32; 3]) -> [f32; 3] {
    let y = LUMA[0] * r + LUMA[1] * g + LUMA[2] * b;
    // Cb, Cr scaled so each spans -0.5..0.5 (JPEG's definition without the 128 offset).
    let cb = (b - y) / (2.0 * (1.0 - LUMA[2]));
    let cr = (r - y) / (2.0 * (1.0 - LUMA[0]));
    [y, cb, cr]
}

/// The inverse of [`rgb_to_ycbcr`] (not clamped).
#[inline]
pub fn ycbcr_to_rgb([y, cb, cr]: [f32; 3]) -> [f32; 3] {
    let r = y + 2.0 * (1.0 - LUMA[0]) * cr;
    let b = y + 2.0 * (1.0 - LUMA[2]) * cb;
    let g = (y - LUMA[0] * r - LUMA[2] * b) / LUMA[1];
    [r, g, b]
}

/// How the stylised image is finished.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Finish {
    /// 0 = the original, 1 = fully stylised.
    pub strength: f32,
    /// Keep the original's colours, transfer only luminance.
    pub preserve_colour: bool,
}

impl Default for Finish {
    fn default() -> Self {
        Self {
            strength: 1.0,
            preserve_colour: false,
        }
    }
}

impl Finish {
    /// Whether this leaves the stylised image unchanged.
    pub fn is_identity(&self) -> bool {
        self.strength >= 1.0 && !self.preserve_colour
    }
}

/// One output pixel from the original and stylised pixels (all 0..1), clamped to 0..1.
#[inline]
pub fn compose_pixel(original: [f32; 3], stylised: [f32; 3], finish: Finish) -> [f32; 3] {
    let styled = if finish.preserve_colour {
        let [y, _, _] = rgb_to_ycbcr(stylised);
        let [_, cb, cr] = rgb_to_ycbcr(original);
        ycbcr_to_rgb([y, cb, cr])
    } else {
        stylised
    };
    let t = finish.strength.clamp(0.0, 1.0);
    let mut out = [0.0; 3];
    for i in 0..3 {
        // Weighted sum, not `a + (b - a)·t`: the ends are then exactly the two images.
        out[i] = (original[i] * (1.0 - t) + styled[i] * t).clamp(0.0, 1.0);
    }
    out
}

/// Applies [`compose_pixel`] to whole images of the same size (8-bit, rounded to nearest).
/// `None` when the sizes differ.
pub fn compose(original: &RgbImage, stylised: &RgbImage, finish: Finish) -> Option<RgbImage> {
    if original.dimensions() != stylised.dimensions() {
        return None;
    }
    let (w, h) = original.dimensions();
    let mut out = vec![0u8; (w * h * 3) as usize];
    out.par_chunks_mut(3 * w as usize)
        .zip(original.as_raw().par_chunks(3 * w as usize))
        .zip(stylised.as_raw().par_chunks(3 * w as usize))
        .for_each(|((o, a), b)| {
            for ((op, ap), bp) in o
                .chunks_exact_mut(3)
                .zip(a.chunks_exact(3))
                .zip(b.chunks_exact(3))
            {
                let f = |p: &[u8]| {
                    [
                        p[0] as f32 / 255.0,
                        p[1] as f32 / 255.0,
                        p[2] as f32 / 255.0,
                    ]
                };
                let px = compose_pixel(f(ap), f(bp), finish);
                for i in 0..3 {
                    op[i] = (px[i] * 255.0).round() as u8;
                }
            }
        });
    RgbImage::from_raw(w, h, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ycbcr_round_trips() {
        for rgb in [
            [0.0, 0.0, 0.0],
            [1.0, 1.0, 1.0],
            [0.2, 0.7, 0.1],
            [0.9, 0.1, 0.5],
        ] {
            let back = ycbcr_to_rgb(rgb_to_ycbcr(rgb));
            for i in 0..3 {
                assert!((back[i] - rgb[i]).abs() < 1e-5, "{rgb:?} -> {back:?}");
            }
        }
        // Grey has no chroma.
        let [_, cb, cr] = rgb_to_ycbcr([0.4, 0.4, 0.4]);
        assert!(cb.abs() < 1e-6 && cr.abs() < 1e-6);
    }

    #[test]
    fn strength_zero_is_the_original_and_one_the_stylised() {
        let (a, b) = ([0.2, 0.5, 0.8], [0.9, 0.1, 0.3]);
        let f = |strength| Finish {
            strength,
            preserve_colour: false,
        };
        assert_eq!(compose_pixel(a, b, f(0.0)), a);
        assert_eq!(compose_pixel(a, b, f(1.0)), b);
        let mid = compose_pixel(a, b, f(0.5));
        assert!((mid[0] - 0.55).abs() < 1e-6);
    }

    #[test]
    fn preserve_colour_keeps_chroma_and_takes_luma() {
        let (a, b) = ([0.3, 0.5, 0.4], [0.6, 0.55, 0.7]);
        let out = compose_pixel(
            a,
            b,
            Finish {
                strength: 1.0,
                preserve_colour: true,
            },
        );
        let (yo, ya, yb) = (rgb_to_ycbcr(out), rgb_to_ycbcr(a), rgb_to_ycbcr(b));
        assert!((yo[0] - yb[0]).abs() < 1e-5);
        assert!((yo[1] - ya[1]).abs() < 1e-5 && (yo[2] - ya[2]).abs() < 1e-5);
    }
}
