//! The element-wise activations and their gradients: ReLU and tanh (generator), LeakyReLU
//! (discriminator). Each backward needs only the forward's output, as PyTorch's in-place
//! versions do: ReLU and LeakyReLU keep the sign of their input, and tanh′ = 1 − tanh².

use rayon::prelude::*;

/// Values per parallel work item of these passes.
const CHUNK: usize = 1 << 14;

/// `x = max(x, slope·x)` in place (`slope` 0 is ReLU).
pub fn leaky_relu(x: &mut [f32], slope: f32) {
    x.par_chunks_mut(CHUNK).for_each(|c| {
        for v in c {
            *v = if *v > 0.0 { *v } else { *v * slope };
        }
    });
}

/// `dy = dy` where the forward output `y > 0`, `slope·dy` elsewhere, in place.
pub fn leaky_relu_backward(y: &[f32], dy: &mut [f32], slope: f32) {
    dy.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK))
        .for_each(|(d, y)| {
            for (d, y) in d.iter_mut().zip(y) {
                if *y <= 0.0 {
                    *d *= slope;
                }
            }
        });
}

/// `x = tanh(x)` in place.
pub fn tanh(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK).for_each(|c| {
        for v in c {
            *v = crate::models::dcgan::fast_tanh(*v);
        }
    });
}

/// `dy = dy·(1 − y²)` in place, `y` the forward output.
pub fn tanh_backward(y: &[f32], dy: &mut [f32]) {
    dy.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK))
        .for_each(|(d, y)| {
            for (d, y) in d.iter_mut().zip(y) {
                *d *= 1.0 - y * y;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences of `Σ r·f(x)` against the backward, away from ReLU's kink.
    #[test]
    fn gradients_match_finite_differences() {
        let x: Vec<f32> = (0..64)
            .map(|i| (i as f32 * 0.731).sin() * 2.0 + 0.013)
            .collect();
        let r: Vec<f32> = (0..64).map(|i| (i as f32 * 1.37).cos()).collect();
        let eps = 1e-3f32;
        for which in 0..3 {
            let f = |v: f32| -> f32 {
                let mut a = [v];
                match which {
                    0 => leaky_relu(&mut a, 0.0),
                    1 => leaky_relu(&mut a, 0.2),
                    _ => tanh(&mut a),
                }
                a[0]
            };
            let mut y = x.clone();
            let mut dy = r.clone();
            match which {
                0 => {
                    leaky_relu(&mut y, 0.0);
                    leaky_relu_backward(&y, &mut dy, 0.0);
                }
                1 => {
                    leaky_relu(&mut y, 0.2);
                    leaky_relu_backward(&y, &mut dy, 0.2);
                }
                _ => {
                    tanh(&mut y);
                    tanh_backward(&y, &mut dy);
                }
            }
            for i in 0..x.len() {
                let num = (f(x[i] + eps) - f(x[i] - eps)) as f64 / (2.0 * eps as f64) * r[i] as f64;
                assert!(
                    (num - dy[i] as f64).abs() < 2e-3,
                    "{which} {i}: {num} {}",
                    dy[i]
                );
            }
        }
    }
}
