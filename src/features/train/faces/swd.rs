//! Sliced Wasserstein distance between two picture sets (Karras et al. 2018, "Progressive
//! Growing of GANs for Improved Quality, Stability, and Variation", §5,
//! <https://arxiv.org/abs/1710.10196>): how far apart the distributions of small patches of
//! the two sets are, at several scales, without any pretrained network.
//!
//! As computed here (the project's definition, so Atelier and the PyTorch peer are scored by
//! one implementation): each picture's Laplacian pyramid of 3 levels (64, 32, 16 px; 5×5
//! binomial filter, mirrored edges, as `cv2.pyrDown`/`pyrUp`); per level, 16,384 random 7×7
//! patches from each set (image `i mod n`, uniform centres); both sets' patch descriptors
//! normalised by the **reference** (training) set's per-channel mean and standard deviation;
//! 512 random unit directions; the distance is the mean absolute difference of the sorted
//! projections, averaged over directions and then over levels.

use rayon::prelude::*;

use crate::models::dcgan::sgemm_strided;
use crate::models::gan::IMAGE_SIZE;
use crate::models::gan::rng::{Rng, fill_normal};

/// The measurement's sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SwdConfig {
    /// Patches per set and level.
    pub patches: usize,
    /// Random projection directions.
    pub directions: usize,
    /// Pyramid levels (64, 32, 16 px for 3).
    pub levels: usize,
    /// Seed of the patch positions and the directions (fixed, so scores compare).
    pub seed: u64,
}

impl Default for SwdConfig {
    fn default() -> Self {
        Self {
            patches: 16_384,
            directions: 512,
            levels: 3,
            seed: 1,
        }
    }
}

/// Side of a patch.
const PATCH: usize = 7;
/// Values per patch descriptor (`[3][7][7]`).
const DESC: usize = 3 * PATCH * PATCH;

/// The 5×5 binomial kernel's 1-D factor (`[1 4 6 4 1]/16`; the 2-D kernel is its outer
/// product).
const BINOMIAL: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];

/// SciPy's `mirror` boundary: `… c b | a b c … | … b a`, the edge not repeated.
fn mirror(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - m }) as usize
}

/// `plane` (side `s`) filtered with the separable binomial kernel times `gain`.
fn blur(plane: &[f32], s: usize, gain: f32) -> Vec<f32> {
    let mut tmp = vec![0f32; s * s];
    for y in 0..s {
        for x in 0..s {
            tmp[y * s + x] = (0..5)
                .map(|k| BINOMIAL[k] * plane[y * s + mirror(x as isize + k as isize - 2, s)])
                .sum();
        }
    }
    let mut out = vec![0f32; s * s];
    for y in 0..s {
        for x in 0..s {
            out[y * s + x] = gain
                * (0..5)
                    .map(|k| BINOMIAL[k] * tmp[mirror(y as isize + k as isize - 2, s) * s + x])
                    .sum::<f32>();
        }
    }
    out
}

/// Blur, then every second pixel from the first (`cv2.pyrDown`).
fn down(plane: &[f32], s: usize) -> Vec<f32> {
    let b = blur(plane, s, 1.0);
    let h = s / 2;
    let mut out = vec![0f32; h * h];
    for y in 0..h {
        for x in 0..h {
            out[y * h + x] = b[2 * y * s + 2 * x];
        }
    }
    out
}

/// Zeros between the pixels, then blur ×4 (`cv2.pyrUp`).
fn up(plane: &[f32], s: usize) -> Vec<f32> {
    let t = 2 * s;
    let mut z = vec![0f32; t * t];
    for y in 0..s {
        for x in 0..s {
            z[2 * y * t + 2 * x] = plane[y * s + x];
        }
    }
    blur(&z, t, 4.0)
}

/// One image's Laplacian pyramid, `levels` levels of 3 planes each (finest first; the last
/// is the low-pass residual).
fn pyramid(image: &[f32], levels: usize) -> Vec<Vec<Vec<f32>>> {
    let s = IMAGE_SIZE;
    let mut planes: Vec<Vec<f32>> = (0..3)
        .map(|c| (0..s * s).map(|i| image[i * 3 + c]).collect())
        .collect();
    let mut side = s;
    let mut out = Vec::with_capacity(levels);
    for level in 0..levels {
        if level + 1 == levels {
            out.push(planes);
            break;
        }
        let lower: Vec<Vec<f32>> = planes.iter().map(|p| down(p, side)).collect();
        let band = planes
            .iter()
            .zip(&lower)
            .map(|(p, l)| {
                let u = up(l, side / 2);
                p.iter().zip(u).map(|(a, b)| a - b).collect()
            })
            .collect();
        out.push(band);
        planes = lower;
        side /= 2;
    }
    out
}

/// Raw patch descriptors of `images` (`[n][64][64][3]`) per level: `[level][patch][DESC]`.
fn descriptors(images: &[f32], cfg: &SwdConfig, stream: u64) -> Vec<Vec<f32>> {
    let per = IMAGE_SIZE * IMAGE_SIZE * 3;
    let n = images.len() / per;
    let pyramids: Vec<Vec<Vec<Vec<f32>>>> = images
        .par_chunks(per)
        .map(|img| pyramid(img, cfg.levels))
        .collect();
    (0..cfg.levels)
        .map(|level| {
            let side = IMAGE_SIZE >> level;
            let mut rng = Rng::for_stream(cfg.seed, stream * 16 + level as u64);
            let mut out = vec![0f32; cfg.patches * DESC];
            let h = PATCH / 2;
            for (p, desc) in out.chunks_exact_mut(DESC).enumerate() {
                let img = &pyramids[p % n.max(1)][level];
                // Centres where the whole patch fits: h ≤ c < side − h.
                let cy = h + rng.below(side - 2 * h);
                let cx = h + rng.below(side - 2 * h);
                let mut k = 0;
                for plane in img {
                    for y in cy - h..=cy + h {
                        desc[k..k + PATCH].copy_from_slice(&plane[y * side + cx - h..][..PATCH]);
                        k += PATCH;
                    }
                }
            }
            out
        })
        .collect()
}

/// A reference set (the training pictures), with what every comparison reuses: its
/// normalisation, the directions, and its sorted projections.
pub struct SwdReference {
    cfg: SwdConfig,
    levels: Vec<LevelRef>,
}

struct LevelRef {
    /// Per channel: mean and 1/std of the reference descriptors.
    mean: [f32; 3],
    inv_std: [f32; 3],
    /// `[DESC][directions]`, unit columns.
    dirs: Vec<f32>,
    /// `[directions][patches]`, each row sorted.
    sorted: Vec<f32>,
}

fn normalise(desc: &mut [f32], mean: &[f32; 3], inv_std: &[f32; 3]) {
    for d in desc.chunks_exact_mut(DESC) {
        for (c, ch) in d.chunks_exact_mut(PATCH * PATCH).enumerate() {
            ch.iter_mut().for_each(|v| *v = (*v - mean[c]) * inv_std[c]);
        }
    }
}

/// Projections of `desc` on `dirs`, one sorted row per direction.
fn sorted_projections(desc: &[f32], dirs: &[f32], cfg: &SwdConfig) -> Vec<f32> {
    let (p, d) = (cfg.patches, cfg.directions);
    let mut proj = vec![0f32; d * p];
    // projᵀ[d][p] = dirsᵀ · descᵀ
    sgemm_strided(d, p, DESC, (dirs, 1, d), (desc, 1, DESC), &mut proj);
    proj.par_chunks_mut(p)
        .for_each(|row| row.sort_unstable_by(f32::total_cmp));
    proj
}

impl SwdReference {
    /// Prepares `reference` (`[n][64][64][3]`, any consistent value scale) for comparisons.
    pub fn new(reference: &[f32], cfg: SwdConfig) -> Self {
        let raw = descriptors(reference, &cfg, 0);
        let levels = raw
            .into_iter()
            .enumerate()
            .map(|(level, mut desc)| {
                let mut mean = [0f32; 3];
                let mut inv_std = [0f32; 3];
                for c in 0..3 {
                    let vals = desc
                        .chunks_exact(DESC)
                        .flat_map(|d| &d[c * PATCH * PATCH..][..PATCH * PATCH]);
                    let (mut s, mut s2, mut n) = (0f64, 0f64, 0f64);
                    for &v in vals {
                        s += v as f64;
                        s2 += v as f64 * v as f64;
                        n += 1.0;
                    }
                    let m = s / n.max(1.0);
                    let var = (s2 / n.max(1.0) - m * m).max(0.0);
                    mean[c] = m as f32;
                    inv_std[c] = (1.0 / var.sqrt().max(1e-8)) as f32;
                }
                normalise(&mut desc, &mean, &inv_std);
                let mut rng = Rng::for_stream(cfg.seed, 1000 + level as u64);
                let mut dirs = vec![0f32; DESC * cfg.directions];
                fill_normal(&mut rng, &mut dirs);
                for j in 0..cfg.directions {
                    let norm = (0..DESC)
                        .map(|i| (dirs[i * cfg.directions + j] as f64).powi(2))
                        .sum::<f64>()
                        .sqrt()
                        .max(1e-12);
                    for i in 0..DESC {
                        dirs[i * cfg.directions + j] /= norm as f32;
                    }
                }
                let sorted = sorted_projections(&desc, &dirs, &cfg);
                LevelRef {
                    mean,
                    inv_std,
                    dirs,
                    sorted,
                }
            })
            .collect();
        Self { cfg, levels }
    }

    /// The distance of `images` (same layout and scale as the reference) to the reference:
    /// the mean over levels, and each level's value.
    pub fn distance(&self, images: &[f32]) -> (f64, Vec<f64>) {
        let raw = descriptors(images, &self.cfg, 1);
        let per_level: Vec<f64> = raw
            .into_iter()
            .zip(&self.levels)
            .map(|(mut desc, lr)| {
                normalise(&mut desc, &lr.mean, &lr.inv_std);
                let sorted = sorted_projections(&desc, &lr.dirs, &self.cfg);
                let rows: Vec<f64> = sorted
                    .par_chunks(self.cfg.patches)
                    .zip(lr.sorted.par_chunks(self.cfg.patches))
                    .map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).sum())
                    .collect();
                rows.iter().sum::<f64>() / (self.cfg.patches * self.cfg.directions) as f64
            })
            .collect();
        let mean = per_level.iter().sum::<f64>() / per_level.len().max(1) as f64;
        (mean, per_level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(n: usize, seed: u64, blocky: bool) -> Vec<f32> {
        let mut rng = Rng::from_seed(seed);
        let mut out = vec![0f32; n * IMAGE_SIZE * IMAGE_SIZE * 3];
        for img in out.chunks_exact_mut(IMAGE_SIZE * IMAGE_SIZE * 3) {
            let phase = rng.uniform() as f32 * 6.0;
            for (i, v) in img.iter_mut().enumerate() {
                let (y, x) = ((i / 3) / IMAGE_SIZE, (i / 3) % IMAGE_SIZE);
                *v = if blocky {
                    if (x / 8 + y / 8) % 2 == 0 { 0.8 } else { -0.8 }
                } else {
                    ((x as f32 * 0.3 + phase).sin() * (y as f32 * 0.2).cos()) * 0.8
                };
            }
        }
        out
    }

    #[test]
    fn the_same_distribution_is_near_and_a_different_one_far() {
        let cfg = SwdConfig {
            patches: 2048,
            directions: 64,
            levels: 3,
            seed: 3,
        };
        let reference = SwdReference::new(&images(20, 1, false), cfg);
        let (near, _) = reference.distance(&images(20, 2, false));
        let (far, levels) = reference.distance(&images(20, 3, true));
        assert_eq!(levels.len(), 3);
        assert!(near < 0.5 * far, "near {near}, far {far}");
    }

    #[test]
    fn mirror_matches_scipy() {
        // scipy.ndimage 'mirror' on [a b c d]: index −1 → b, −2 → c, 4 → c, 5 → b.
        let idx: Vec<usize> = [-2, -1, 0, 3, 4, 5].iter().map(|&i| mirror(i, 4)).collect();
        assert_eq!(idx, vec![2, 1, 0, 3, 2, 1]);
        // A constant image has an empty band-pass level and keeps its value in the residual.
        let flat = vec![0.5f32; IMAGE_SIZE * IMAGE_SIZE * 3];
        let p = pyramid(&flat, 3);
        assert!(p[0][0].iter().all(|v| v.abs() < 1e-6));
        assert!(p[2][1].iter().all(|v| (v - 0.5).abs() < 1e-6));
    }
}
