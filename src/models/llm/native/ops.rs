//! The elementwise and per-row pieces of a decoder layer, written so the compiler vectorizes
//! them (no libm calls in the hot loops: `exp` is a polynomial).

/// RMS normalisation of each `n`-value row of `x` in place, times `weight`.
pub fn rms_norm(x: &mut [f32], n: usize, weight: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(n) {
        let scale = rms_scale(row, eps);
        for (v, &w) in row.iter_mut().zip(weight) {
            *v = *v * scale * w;
        }
    }
}

/// `1 / sqrt(mean(row²) + eps)`: what RMS normalisation multiplies a row by. The sum is
/// f64, as ggml's: the rows are short and the mean square sets every output.
pub fn rms_scale(row: &[f32], eps: f32) -> f32 {
    let ss: f64 = row.iter().map(|&v| (v as f64) * (v as f64)).sum();
    (1.0 / (ss / row.len() as f64 + eps as f64).sqrt()) as f32
}

/// `e^x` for f32, vectorizable: Cody-Waite range reduction and a degree-6 polynomial
/// (relative error below 2e-7 over the float range; clamps to [-87.3, 88.3] outside it).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    let n = (x * std::f32::consts::LOG2_E).round();
    // ln 2 split in a part exact in f32 and the rest.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    let bits = ((n as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

/// `x * sigmoid(x)` (SiLU), in place over `gate`, then multiplied by `up` (SwiGLU).
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + exp(-*g)) * u;
    }
}

/// GELU with the tanh approximation (Gemma's `gelu_pytorch_tanh`), times `up` (GeGLU).
/// Uses `0.5 (1 + tanh z) = sigmoid(2z)`.
pub fn gelu_mul(gate: &mut [f32], up: &[f32]) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        let z = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
        *g = x / (1.0 + exp(-2.0 * z)) * u;
    }
}

/// Softmax in place.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = exp(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Rotary position embedding tables for positions `start..start + len`: `cos`, `sin`, each
/// `len x dims / 2`, computed in f64.
pub fn rope_tables(
    base: f32,
    dims: usize,
    pos_scale: f64,
    start: usize,
    len: usize,
) -> (Vec<f32>, Vec<f32>) {
    let half = dims / 2;
    let inv: Vec<f64> = (0..half)
        .map(|i| (base as f64).powf(-2.0 * i as f64 / dims as f64))
        .collect();
    let mut cos = Vec::with_capacity(len * half);
    let mut sin = Vec::with_capacity(len * half);
    for p in start..start + len {
        let p = p as f64 * pos_scale;
        for f in &inv {
            let (s, c) = (p * f).sin_cos();
            cos.push(c as f32);
            sin.push(s as f32);
        }
    }
    (cos, sin)
}

/// Rotates the first `dims` values of each `head_dim` head in `x` (`rows x heads*head_dim`):
/// adjacent pairs (llama's GGUF layout) or the two halves (NeoX: Gemma, Qwen).
pub fn rope(
    x: &mut [f32],
    heads: usize,
    head_dim: usize,
    dims: usize,
    neox: bool,
    cos: &[f32],
    sin: &[f32],
) {
    let half = dims / 2;
    for (r, row) in x.chunks_exact_mut(heads * head_dim).enumerate() {
        let (c, s) = (
            &cos[r * half..(r + 1) * half],
            &sin[r * half..(r + 1) * half],
        );
        for head in row.chunks_exact_mut(head_dim) {
            for i in 0..half {
                let (a, b) = if neox {
                    (i, i + half)
                } else {
                    (2 * i, 2 * i + 1)
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * c[i] - x1 * s[i];
                head[b] = x0 * s[i] + x1 * c[i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.013;
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp(-1000.0), exp(-87.3));
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn gelu_matches_tanh_form() {
        for i in -60..60 {
            let x = i as f32 * 0.1;
            let want = 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh());
            let mut g = [x];
            gelu_mul(&mut g, &[1.0]);
            assert!((g[0] - want).abs() < 1e-6, "{x}: {} vs {want}", g[0]);
        }
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut v = vec![1.0, 2.0, 3.0, f32::NEG_INFINITY];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[3] < 1e-30);
    }
}
