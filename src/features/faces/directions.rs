//! Principal latent directions, GANSpace-style (Härkönen et al. 2020, "GANSpace: Discovering
//! Interpretable GAN Controls", <https://arxiv.org/abs/2004.02546>): PCA over the first layer's
//! activations of a few thousand random samples, transferred back to latent space by linear
//! regression of the latents on their principal coordinates. Sliders along these directions
//! change pose, light or age more coherently than random axes do.
//!
//! The 8192-dimensional activations of 4096 samples would take 134 MB, so the PCA streams them
//! in chunks of 256, regenerating each chunk per pass (one small GEMM): subspace iteration
//! with 16 vectors for the top 8, then a Rayleigh–Ritz step for exact eigenpairs within that
//! subspace. Everything is seeded, so the same model file always gives the same directions;
//! they are cached on disk per model file's contents (about 2 s of work on two cores).

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::FacesError;
use super::latent::latent_for_seed;
use crate::models::dcgan::{Generator, LATENT_DIM, sgemm_strided};

/// Directions offered as sliders.
pub const DIRECTION_COUNT: usize = 8;
/// Random samples the PCA runs over.
pub const PCA_SAMPLES: usize = 4096;
/// Samples j use the latents of seeds `PCA_SEED_BASE + j`, away from the seeds users browse.
const PCA_SEED_BASE: u64 = 0x4741_4E53_5041_4345; // "GANSPACE"
/// Subspace size: the wanted 8 plus 8 spare vectors so the 8th converges as fast as the 1st.
const SUBSPACE: usize = 16;
/// Subspace iterations; with 8 spare vectors the top 8 settle well before this.
const ITERATIONS: usize = 8;
/// Samples per chunk of streamed activations.
const CHUNK: usize = 256;
/// Bumped whenever the algorithm or its constants change, so old caches are recomputed.
const ALGORITHM_VERSION: u32 = 1;

/// Latent-space directions, strongest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Directions {
    /// Unit vectors of 100 values. An offset of α moves a latent by α standard deviations of
    /// the prior along the direction, so sliders in [-3, 3] cover what random faces show.
    pub vectors: Vec<Vec<f32>>,
    /// Fraction of the first layer's activation variance each principal component explains.
    pub explained: Vec<f32>,
    /// Samples the PCA ran over.
    pub samples: usize,
}

impl Directions {
    /// Adds `Σ offsets[k] · vectors[k]` to `z` in place. More offsets than directions is an
    /// error; fewer leaves the rest at zero.
    pub fn apply(&self, z: &mut [f32], offsets: &[f32]) -> Result<(), FacesError> {
        if offsets.len() > self.vectors.len() {
            return Err(FacesError::BadOffsets(format!(
                "{} direction offsets given, the model has {} directions",
                offsets.len(),
                self.vectors.len()
            )));
        }
        for (alpha, v) in offsets.iter().zip(&self.vectors) {
            if !alpha.is_finite() {
                return Err(FacesError::BadOffsets(
                    "an offset is not a finite number".into(),
                ));
            }
            for (zi, vi) in z.iter_mut().zip(v) {
                *zi += alpha * vi;
            }
        }
        Ok(())
    }
}

/// Where the PCA gets features for latents: the generator's first layer in the app, a known
/// linear map in the unit tests.
pub trait FeatureSource {
    /// Features per sample.
    fn feature_dim(&self) -> usize;
    /// Features of `latents` (`count × 100`), as `count × feature_dim` values.
    fn features(&mut self, latents: &[f32]) -> Result<Vec<f32>, FacesError>;
}

impl FeatureSource for Generator {
    fn feature_dim(&self) -> usize {
        crate::models::dcgan::FIRST_LAYER_FEATURES
    }

    fn features(&mut self, latents: &[f32]) -> Result<Vec<f32>, FacesError> {
        Ok(self.first_layer(latents)?)
    }
}

/// Computes the top `keep` directions from `samples` seeded random latents. `progress(done,
/// total)` is called after every chunk; returning `false` cancels (`Ok(None)`).
pub fn compute(
    source: &mut dyn FeatureSource,
    samples: usize,
    keep: usize,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Option<Directions>, FacesError> {
    let d = source.feature_dim();
    let s = SUBSPACE.max(keep).min(d).min(samples);
    let keep = keep.min(s);
    if samples < 2 || keep == 0 {
        return Err(FacesError::BadOffsets(
            "PCA needs at least 2 samples and 1 direction".into(),
        ));
    }
    let latents: Vec<f32> = (0..samples as u64)
        .flat_map(|j| latent_for_seed(PCA_SEED_BASE.wrapping_add(j)))
        .collect();
    let chunks = samples.div_ceil(CHUNK);
    let total = chunks * (ITERATIONS + 2);
    let mut done = 0;
    let mut tick = |done: &mut usize| {
        *done += 1;
        progress(*done, total)
    };

    // Pass 1: mean and total variance.
    let mut mean = vec![0f64; d];
    let mut sumsq = 0f64;
    for c in 0..chunks {
        let (_, y) = chunk(source, &latents, samples, c)?;
        for row in y.chunks_exact(d) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += *v as f64;
                sumsq += (*v as f64) * (*v as f64);
            }
        }
        if !tick(&mut done) {
            return Ok(None);
        }
    }
    mean.iter_mut().for_each(|m| *m /= samples as f64);
    let total_var = sumsq / samples as f64 - mean.iter().map(|m| m * m).sum::<f64>();
    let mean32: Vec<f32> = mean.iter().map(|m| *m as f32).collect();

    // Subspace iteration: Q ← orth(C·Q), C the covariance, Q stored [d][s] row-major.
    let mut rng = ChaCha8Rng::seed_from_u64(PCA_SEED_BASE);
    let mut q: Vec<f32> = (0..d * s).map(|_| normal(&mut rng)).collect();
    orthonormalize(&mut q, d, s);
    let mut p = vec![0f32; CHUNK * s];
    let mut w_part = vec![0f32; d * s];
    for _ in 0..ITERATIONS {
        let mut w = vec![0f32; d * s];
        for c in 0..chunks {
            let (_, mut y) = chunk(source, &latents, samples, c)?;
            let rows = y.len() / d;
            center(&mut y, &mean32);
            // P = Yc·Q  [rows × s]
            sgemm_strided(rows, s, d, (&y, d, 1), (&q, s, 1), &mut p);
            // W += Ycᵀ·P  [d × s]
            sgemm_strided(d, s, rows, (&y, 1, d), (&p, s, 1), &mut w_part);
            w.iter_mut().zip(&w_part).for_each(|(a, b)| *a += b);
            if !tick(&mut done) {
                return Ok(None);
            }
        }
        q = w;
        orthonormalize(&mut q, d, s);
    }

    // Final pass: the projected covariance QᵀCQ and the latent/coordinate cross moments.
    let mut ptp = vec![0f64; s * s];
    let mut zp = vec![0f64; LATENT_DIM * s];
    for c in 0..chunks {
        let (z, mut y) = chunk(source, &latents, samples, c)?;
        let rows = y.len() / d;
        center(&mut y, &mean32);
        sgemm_strided(rows, s, d, (&y, d, 1), (&q, s, 1), &mut p);
        for r in 0..rows {
            let pr = &p[r * s..(r + 1) * s];
            let zr = &z[r * LATENT_DIM..(r + 1) * LATENT_DIM];
            for i in 0..s {
                for j in 0..s {
                    ptp[i * s + j] += pr[i] as f64 * pr[j] as f64;
                }
                for (l, zl) in zr.iter().enumerate() {
                    zp[l * s + i] += *zl as f64 * pr[i] as f64;
                }
            }
        }
        if !tick(&mut done) {
            return Ok(None);
        }
    }
    ptp.iter_mut().for_each(|v| *v /= samples as f64);
    let (eigvals, eigvecs) = jacobi_eigen(&ptp, s);
    let mut order: Vec<usize> = (0..s).collect();
    order.sort_by(|&a, &b| eigvals[b].total_cmp(&eigvals[a]));

    // Regression z ≈ U·x with x = Eᵀ·p the principal coordinates. Those are uncorrelated
    // (ΣxxT is diagonal, N·λ), so the least-squares solution is column-wise:
    // U_k = (Σ z·pᵀ)·E_k / (N·λ_k). Only the direction matters: normalise it.
    let mut vectors = Vec::with_capacity(keep);
    let mut explained = Vec::with_capacity(keep);
    for &k in order.iter().take(keep) {
        let lambda = eigvals[k].max(f64::MIN_POSITIVE);
        let mut u: Vec<f64> = (0..LATENT_DIM)
            .map(|l| {
                (0..s)
                    .map(|i| zp[l * s + i] * eigvecs[i * s + k])
                    .sum::<f64>()
                    / (samples as f64 * lambda)
            })
            .collect();
        let norm = u.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            u.iter_mut().for_each(|x| *x /= norm);
        }
        // Eigenvectors have no inherent sign: make the largest component positive so the
        // sliders point the same way on every run.
        let big = u
            .iter()
            .copied()
            .max_by(|a, b| a.abs().total_cmp(&b.abs()))
            .unwrap_or(0.0);
        if big < 0.0 {
            u.iter_mut().for_each(|x| *x = -*x);
        }
        vectors.push(u.iter().map(|x| *x as f32).collect());
        explained.push((eigvals[k] / total_var.max(f64::MIN_POSITIVE)) as f32);
    }
    Ok(Some(Directions {
        vectors,
        explained,
        samples,
    }))
}

/// Latents and features of chunk `c`.
fn chunk(
    source: &mut dyn FeatureSource,
    latents: &[f32],
    samples: usize,
    c: usize,
) -> Result<(Vec<f32>, Vec<f32>), FacesError> {
    let start = c * CHUNK;
    let end = (start + CHUNK).min(samples);
    let z = latents[start * LATENT_DIM..end * LATENT_DIM].to_vec();
    let y = source.features(&z)?;
    Ok((z, y))
}

fn center(y: &mut [f32], mean: &[f32]) {
    for row in y.chunks_exact_mut(mean.len()) {
        row.iter_mut().zip(mean).for_each(|(v, m)| *v -= m);
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    use rand::RngCore;
    let u1 = 1.0 - (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Modified Gram–Schmidt (twice, for stability in f32) on the `s` columns of a row-major
/// `d × s` matrix. A column that collapses is replaced by a unit basis vector.
fn orthonormalize(q: &mut [f32], d: usize, s: usize) {
    for _ in 0..2 {
        for j in 0..s {
            for i in 0..j {
                let dot: f64 = (0..d)
                    .map(|r| q[r * s + i] as f64 * q[r * s + j] as f64)
                    .sum();
                for r in 0..d {
                    q[r * s + j] -= (dot * q[r * s + i] as f64) as f32;
                }
            }
            let norm = (0..d)
                .map(|r| (q[r * s + j] as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            if norm > 1e-20 {
                for r in 0..d {
                    q[r * s + j] = (q[r * s + j] as f64 / norm) as f32;
                }
            } else {
                for r in 0..d {
                    q[r * s + j] = if r == j % d { 1.0 } else { 0.0 };
                }
            }
        }
    }
}

/// Eigen-decomposition of a small symmetric `n × n` matrix (cyclic Jacobi). Returns the
/// eigenvalues and the eigenvectors as the columns of a row-major `n × n` matrix.
pub fn jacobi_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        let scale: f64 = (0..n).map(|i| a[i * n + i].powi(2)).sum::<f64>();
        if off <= 1e-30 * scale.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let sn = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - sn * akq;
                    a[k * n + q] = sn * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - sn * aqk;
                    a[q * n + k] = sn * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - sn * vkq;
                    v[k * n + q] = sn * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// Directions cached on disk, one JSON file per model, keyed by the file's size and a hash of
/// its contents: directions depend on the weights alone, so a file retrained or replaced at
/// the same path (a generator re-exported by Train has the same size, and a copy may keep its
/// modification time) gets new directions, and the same weights anywhere share them.
#[derive(Clone, Debug)]
pub struct DirectionsCache {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    /// Where the model was when the cache was written (for people reading the file).
    model_path: String,
    model_size: u64,
    /// [`content_hash`] of the model file (absent in caches from before it: recomputed).
    #[serde(default)]
    model_hash: u64,
    directions: Directions,
}

struct ModelKey {
    path: String,
    size: u64,
    hash: u64,
}

/// A 64-bit hash of a file's bytes (FNV-1a over 8-byte words, then the tail bytes): stable
/// across Rust versions and platforms, and fast enough for a 14 MB model (a few
/// milliseconds). Not cryptographic: it tells versions of a model apart, nothing more.
fn content_hash(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(a)).wrapping_mul(PRIME);
        h ^= h >> 29;
    }
    for &b in words.remainder() {
        h = (h ^ b as u64).wrapping_mul(PRIME);
    }
    h
}

impl DirectionsCache {
    /// A cache in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The app's cache: `<data dir>/faces/`.
    pub fn in_data_dir() -> Self {
        Self::new(crate::paths::data_dir().join("faces"))
    }

    fn key(model: &Path) -> Result<ModelKey, FacesError> {
        let io = |source| FacesError::Io {
            path: model.to_path_buf(),
            source,
        };
        let canonical = std::fs::canonicalize(model).map_err(io)?;
        let bytes = std::fs::read(&canonical).map_err(io)?;
        Ok(ModelKey {
            path: canonical.to_string_lossy().into_owned(),
            size: bytes.len() as u64,
            hash: content_hash(&bytes),
        })
    }

    /// The cache file for a model (whether or not it exists yet).
    pub fn file_for(&self, model: &Path) -> Result<PathBuf, FacesError> {
        let k = Self::key(model)?;
        Ok(self.file_for_key(&k))
    }

    fn file_for_key(&self, k: &ModelKey) -> PathBuf {
        // FNV-1a: stable across Rust versions, unlike DefaultHasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let key = format!("{}\0{:016x}", k.size, k.hash);
        for b in key.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.dir.join(format!("directions-{h:016x}.json"))
    }

    /// The cached directions for `model`, if a valid cache for this exact file exists. A
    /// missing, stale or unreadable cache is `None` (it is simply recomputed).
    pub fn load(&self, model: &Path) -> Option<Directions> {
        let k = Self::key(model).ok()?;
        let bytes = std::fs::read(self.file_for_key(&k)).ok()?;
        let f: CacheFile = match serde_json::from_slice(&bytes) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("ignoring an unreadable directions cache: {e}");
                return None;
            }
        };
        let valid = f.version == ALGORITHM_VERSION
            && f.model_size == k.size
            && f.model_hash == k.hash
            && !f.directions.vectors.is_empty()
            && f.directions.vectors.len() == f.directions.explained.len()
            && f.directions
                .vectors
                .iter()
                .all(|v| v.len() == LATENT_DIM && v.iter().all(|x| x.is_finite()));
        valid.then_some(f.directions)
    }

    /// Saves directions for `model` atomically.
    pub fn save(&self, model: &Path, directions: &Directions) -> Result<PathBuf, FacesError> {
        let k = Self::key(model)?;
        let path = self.file_for_key(&k);
        let file = CacheFile {
            version: ALGORITHM_VERSION,
            model_path: k.path,
            model_size: k.size,
            model_hash: k.hash,
            directions: directions.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| FacesError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        crate::fsutil::atomic_write(&path, &bytes).map_err(|source| FacesError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Features = A·z with A scaling three known orthonormal latent directions by 10, 5 and
    /// 2 (plus a weak random part): PCA + regression must find those directions, in order.
    struct Linear {
        a: Vec<f32>, // [dim][100]
        dim: usize,
        truth: Vec<Vec<f32>>,
    }

    impl Linear {
        fn new() -> Self {
            let dim = 40;
            let mut truth = Vec::new();
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let mut basis: Vec<f32> = (0..LATENT_DIM * 3).map(|_| normal(&mut rng)).collect();
            orthonormalize(&mut basis, LATENT_DIM, 3);
            for k in 0..3 {
                truth.push(
                    (0..LATENT_DIM)
                        .map(|r| basis[r * 3 + k])
                        .collect::<Vec<_>>(),
                );
            }
            let mut a = vec![0f32; dim * LATENT_DIM];
            for (k, (sigma, t)) in [10.0f32, 5.0, 2.0].iter().zip(&truth).enumerate() {
                for l in 0..LATENT_DIM {
                    // Feature row k (and a copy in row k+3) reads the k-th direction.
                    a[k * LATENT_DIM + l] += sigma * t[l];
                    a[(k + 3) * LATENT_DIM + l] += 0.5 * sigma * t[l];
                }
            }
            for v in a.iter_mut().skip(6 * LATENT_DIM) {
                *v += 0.01 * normal(&mut rng);
            }
            Self { a, dim, truth }
        }
    }

    impl FeatureSource for Linear {
        fn feature_dim(&self) -> usize {
            self.dim
        }
        fn features(&mut self, latents: &[f32]) -> Result<Vec<f32>, FacesError> {
            let rows = latents.len() / LATENT_DIM;
            let mut y = vec![0f32; rows * self.dim];
            sgemm_strided(
                rows,
                self.dim,
                LATENT_DIM,
                (latents, LATENT_DIM, 1),
                (&self.a, 1, LATENT_DIM),
                &mut y,
            );
            Ok(y)
        }
    }

    #[test]
    fn pca_recovers_known_directions_in_order() {
        let mut src = Linear::new();
        let dirs = compute(&mut src, 2000, 3, &mut |_, _| true)
            .unwrap()
            .unwrap();
        assert_eq!(dirs.vectors.len(), 3);
        // The regression estimates each direction from 2000 samples of a 100-dimensional
        // latent: sampling noise of about √(100/2000) ≈ 0.22 relative, i.e. |cos| ≈ 0.976.
        for (k, (found, truth)) in dirs.vectors.iter().zip(&src.truth).enumerate() {
            let cos: f32 = found.iter().zip(truth).map(|(a, b)| a * b).sum();
            assert!(cos.abs() > 0.95, "direction {k}: |cos| = {}", cos.abs());
        }
        // Variance shares fall in order: 100 : 25 : 4 (times 1.25 for the copies).
        assert!(dirs.explained[0] > dirs.explained[1] && dirs.explained[1] > dirs.explained[2]);
        assert!(
            (dirs.explained[0] - 100.0 / 129.0).abs() < 0.05,
            "{:?}",
            dirs.explained
        );
    }

    #[test]
    fn pca_is_deterministic_and_cancellable() {
        let a = compute(&mut Linear::new(), 600, 2, &mut |_, _| true).unwrap();
        let b = compute(&mut Linear::new(), 600, 2, &mut |_, _| true).unwrap();
        assert_eq!(a, b);
        let cancelled = compute(&mut Linear::new(), 600, 2, &mut |done, _| done < 3).unwrap();
        assert!(cancelled.is_none());
    }

    #[test]
    fn jacobi_diagonalises() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 1.0];
        let (vals, vecs) = jacobi_eigen(&a, 3);
        for k in 0..3 {
            for i in 0..3 {
                let av: f64 = (0..3).map(|j| a[i * 3 + j] * vecs[j * 3 + k]).sum();
                assert!((av - vals[k] * vecs[i * 3 + k]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn apply_adds_scaled_directions() {
        let mut e = vec![0f32; LATENT_DIM];
        e[3] = 1.0;
        let d = Directions {
            vectors: vec![e],
            explained: vec![0.5],
            samples: 1,
        };
        let mut z = vec![0f32; LATENT_DIM];
        d.apply(&mut z, &[2.0]).unwrap();
        assert_eq!(z[3], 2.0);
        assert!(d.apply(&mut z, &[1.0, 1.0]).is_err());
        assert!(d.apply(&mut z, &[f32::NAN]).is_err());
    }

    #[test]
    fn cache_round_trip_and_staleness() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.tar");
        std::fs::write(&model, b"weights").unwrap();
        let cache = DirectionsCache::new(dir.path().join("cache"));
        assert!(cache.load(&model).is_none());
        let d = Directions {
            vectors: vec![vec![0.1; LATENT_DIM]],
            explained: vec![0.2],
            samples: 3,
        };
        cache.save(&model, &d).unwrap();
        assert_eq!(cache.load(&model), Some(d.clone()));
        // A different file (size changes) does not reuse the cache.
        std::fs::write(&model, b"other weights").unwrap();
        assert!(cache.load(&model).is_none());
        // Nor does one of the same size with other contents and the same modification time
        // (a generator retrained and re-exported at the same path).
        let mtime = std::fs::metadata(&model).unwrap().modified().unwrap();
        cache.save(&model, &d).unwrap();
        assert_eq!(cache.load(&model), Some(d.clone()));
        std::fs::write(&model, b"other weighty").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&model)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert!(cache.load(&model).is_none());
        // The same weights at another path share the cache.
        let copy = dir.path().join("copy.safetensors");
        std::fs::copy(&model, &copy).unwrap();
        cache.save(&model, &d).unwrap();
        assert_eq!(cache.load(&copy), Some(d));
    }
}
