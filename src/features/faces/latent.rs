//! Points in the generator's latent space: seeds, truncation, spherical interpolation and
//! looping walks. Pure functions, so the panel, the CLI and the worker agree exactly.

use super::FacesError;
use crate::models::dcgan::LATENT_DIM;
use crate::models::gan::rng::{Rng, fill_normal};

/// The latent for `seed`: 100 independent standard normal values.
///
/// Deterministic by construction, independent of any distribution crate's algorithm:
/// `ChaCha8Rng::seed_from_u64(seed)` (rand_chacha 0.9), then for each pair of outputs two
/// `next_u64` draws become uniforms `u = (x >> 11) · 2⁻⁵³` and Box–Muller turns
/// `(1 − u₁, u₂)` into `r·cos θ, r·sin θ` with `r = √(−2 ln(1 − u₁))`, `θ = 2π u₂`, computed
/// in f64 and rounded to f32. The same seed gives the same face on every machine and run.
pub fn latent_for_seed(seed: u64) -> Vec<f32> {
    let mut out = vec![0f32; LATENT_DIM];
    fill_normal(&mut Rng::from_seed(seed), &mut out);
    out
}

/// The truncation trick: scale `z` toward the mean latent by `psi`. The prior is N(0, I), whose
/// mean is the zero vector, so this is `ψ·z`: ψ = 1 leaves the face as sampled, ψ < 1 trades
/// variety for typicality, ψ = 0 gives the mean face (the same for every seed), ψ > 1 is
/// more unusual.
pub fn truncate(z: &[f32], psi: f32) -> Vec<f32> {
    z.iter().map(|v| v * psi).collect()
}

/// Spherical interpolation from `a` (t = 0) to `b` (t = 1) along the great circle between their
/// directions, with the norm interpolated along with it (the usual GAN practice: a Gaussian
/// latent's mass lies on a shell, which a straight line would cut through). Falls back to a
/// straight line when the vectors are (anti)parallel or one is zero, where the arc is undefined.
pub fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let t = t as f64;
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let lerp = || {
        a.iter()
            .zip(b)
            .map(|(x, y)| ((1.0 - t) * *x as f64 + t * *y as f64) as f32)
            .collect()
    };
    if na < 1e-12 || nb < 1e-12 {
        return lerp();
    }
    let cos = (dot / (na * nb)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    let sin = omega.sin();
    if sin.abs() < 1e-6 {
        return lerp();
    }
    let wa = ((1.0 - t) * omega).sin() / sin;
    let wb = (t * omega).sin() / sin;
    a.iter()
        .zip(b)
        .map(|(x, y)| (wa * *x as f64 + wb * *y as f64) as f32)
        .collect()
}

/// The point of a looping walk through `keys` at `position`, measured in keyframes: 0 is the
/// first key, 1 the second, …, `keys.len()` the first again (the walk wraps around; negative
/// positions wrap too). Between keys it slerps.
pub fn walk_point(keys: &[Vec<f32>], position: f64) -> Vec<f32> {
    match keys {
        [] => vec![0.0; LATENT_DIM],
        [only] => only.clone(),
        _ => {
            let n = keys.len() as f64;
            let p = position.rem_euclid(n);
            let i = (p.floor() as usize).min(keys.len() - 1);
            let t = (p - i as f64) as f32;
            slerp(&keys[i], &keys[(i + 1) % keys.len()], t)
        }
    }
}

/// Positions of `frames` evenly spaced frames covering one loop through `keys` keyframes, the
/// last frame one step before the first key again (so a looping GIF does not stutter).
pub fn walk_positions(keys: usize, frames: usize) -> Vec<f64> {
    (0..frames)
        .map(|i| i as f64 * keys as f64 / frames.max(1) as f64)
        .collect()
}

/// Reads a latent file: exactly 100 little-endian f32 values (400 bytes), or a JSON array of
/// 100 numbers. All values must be finite.
pub fn parse_latent(bytes: &[u8]) -> Result<Vec<f32>, FacesError> {
    let text_start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let z: Vec<f32> = if text_start.is_some_and(|i| bytes[i] == b'[') {
        serde_json::from_slice::<Vec<f32>>(bytes)
            .map_err(|e| FacesError::BadLatent(format!("not a JSON array of numbers: {e}")))?
    } else if bytes.len() == LATENT_DIM * 4 {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        return Err(FacesError::BadLatent(format!(
            "expected {} bytes ({LATENT_DIM} little-endian float32) or a JSON array, got {} bytes",
            LATENT_DIM * 4,
            bytes.len()
        )));
    };
    check_latent(&z)?;
    Ok(z)
}

/// A latent must have exactly 100 finite values.
pub fn check_latent(z: &[f32]) -> Result<(), FacesError> {
    if z.len() != LATENT_DIM {
        return Err(FacesError::BadLatent(format!(
            "expected {LATENT_DIM} values, got {}",
            z.len()
        )));
    }
    if let Some(i) = z.iter().position(|v| !v.is_finite()) {
        return Err(FacesError::BadLatent(format!(
            "value {i} is not a finite number"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &[f32]) -> f64 {
        v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt()
    }

    #[test]
    fn seeds_are_deterministic_and_standard_normal() {
        assert_eq!(latent_for_seed(42), latent_for_seed(42));
        assert_ne!(latent_for_seed(42), latent_for_seed(43));
        // Moments over many values: mean ≈ 0, variance ≈ 1.
        let all: Vec<f64> = (0..200u64)
            .flat_map(latent_for_seed)
            .map(|v| v as f64)
            .collect();
        let mean = all.iter().sum::<f64>() / all.len() as f64;
        let var = all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / all.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
    }

    #[test]
    fn truncation_scales_toward_zero() {
        let z = latent_for_seed(7);
        assert!(truncate(&z, 0.0).iter().all(|v| *v == 0.0));
        assert_eq!(truncate(&z, 1.0), z);
        let half = truncate(&z, 0.5);
        assert!((norm(&half) - norm(&z) / 2.0).abs() < 1e-4);
    }

    #[test]
    fn slerp_endpoints_midpoint_and_norm() {
        let a = latent_for_seed(1);
        let b = latent_for_seed(2);
        let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-5);
        assert!(close(&slerp(&a, &b, 0.0), &a));
        assert!(close(&slerp(&a, &b, 1.0), &b));
        // Orthogonal unit vectors: the midpoint is at 45° and keeps unit norm (a lerp would
        // shrink it to 1/√2).
        let mut e1 = vec![0f32; 100];
        let mut e2 = vec![0f32; 100];
        e1[0] = 1.0;
        e2[1] = 1.0;
        let m = slerp(&e1, &e2, 0.5);
        assert!((m[0] - m[1]).abs() < 1e-6);
        assert!((norm(&m) - 1.0).abs() < 1e-6);
        // Degenerate cases fall back to a straight line.
        let zero = vec![0f32; 100];
        assert!(close(&slerp(&zero, &a, 0.25), &truncate(&a, 0.25)));
        assert!(close(&slerp(&a, &a, 0.3), &a));
    }

    #[test]
    fn walks_loop() {
        let keys = vec![latent_for_seed(1), latent_for_seed(2), latent_for_seed(3)];
        let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-5);
        assert!(close(&walk_point(&keys, 0.0), &keys[0]));
        assert!(close(&walk_point(&keys, 2.0), &keys[2]));
        assert!(close(&walk_point(&keys, 3.0), &keys[0]));
        assert!(close(&walk_point(&keys, -1.0), &keys[2]));
        assert!(close(
            &walk_point(&keys, 2.5),
            &slerp(&keys[2], &keys[0], 0.5)
        ));
        assert_eq!(walk_positions(3, 6), vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
    }

    #[test]
    fn latent_files_raw_and_json() {
        let z = latent_for_seed(5);
        let raw: Vec<u8> = z.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse_latent(&raw).unwrap(), z);
        let json = serde_json::to_vec(&z).unwrap();
        assert_eq!(parse_latent(&json).unwrap(), z);
        assert!(parse_latent(&raw[..396]).is_err());
        assert!(parse_latent(b"[1, 2, 3]").is_err());
        assert!(parse_latent(b"[1, \"x\"]").is_err());
        let mut nan = raw.clone();
        nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(parse_latent(&nan).is_err());
    }
}
