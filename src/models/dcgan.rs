//! The DCGAN face generator of `gan-face-generate` 1.1.1: a latent vector of 100 values to a
//! 64×64 RGB face (Radford et al. 2016, "Unsupervised Representation Learning with Deep
//! Convolutional Generative Adversarial Networks", <https://arxiv.org/abs/1511.06434>).
//!
//! ```text
//! z [100,1,1] -> ConvT(100,512,4,1,0) BN ReLU -> [512,4,4]
//!             -> ConvT(512,256,4,2,1) BN ReLU -> [256,8,8]
//!             -> ConvT(256,128,4,2,1) BN ReLU -> [128,16,16]
//!             -> ConvT(128, 64,4,2,1) BN ReLU -> [64,32,32]
//!             -> ConvT( 64,  3,4,2,1) Tanh    -> [3,64,64] in [-1, 1]
//! ```
//!
//! Loading validates every tensor (name, shape, dtype, finite values) and folds each eval-mode
//! BatchNorm into the transposed convolution before it: `BN(W*x) = (s·W)*x + (β − μ·s)` with
//! `s = γ/√(σ²+ε)`, so a layer is one matrix product plus a per-channel shift.
//!
//! Why not candle's `conv_transpose2d`: on the CPU it is a per-output-pixel dot-product loop
//! (measured in `tests/faces.rs`: ~10× slower than this file). Here each transposed convolution
//! is one GEMM (`gemm`, the kernel candle's own matmul uses) giving every input pixel's 4×4
//! output patch for all channels, followed by a col2im gather that sums the (at most four)
//! overlapping patch entries of each output pixel and applies shift + ReLU/tanh in the same
//! pass. Activations are pixel-major with channels innermost over the whole batch
//! (`[B][H][W][C]`): a batch only lengthens the GEMM, and col2im adds contiguous channel
//! vectors (measured: 2.5× faster than a channel-major col2im, whose stride-2 scatters cost a
//! fifth of the forward pass).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use super::pickle::StorageDType;
use super::state_dict::{self, RawTensor, StateDict, WeightsError};

/// Values in one latent vector.
pub const LATENT_DIM: usize = 100;
/// Width and height of a generated image.
pub const IMAGE_SIZE: usize = 64;
/// Values in one generated image (`[3][64][64]`).
pub const IMAGE_VALUES: usize = 3 * IMAGE_SIZE * IMAGE_SIZE;
/// Features in the first layer's output (`[512][4][4]`), the space GANSpace runs PCA in.
pub const FIRST_LAYER_FEATURES: usize = 512 * 16;
/// The dict inside the package's checkpoint that holds the generator.
pub const CHECKPOINT_KEY: &str = "netG_state_dict";

const BN_EPS: f64 = 1e-5;
const KERNEL: usize = 4;
const TAPS: usize = KERNEL * KERNEL;

/// (conv index, BN index or none, c_in, c_out, stride, padding, input size)
type ArchRow = (usize, Option<usize>, usize, usize, usize, usize, usize);

/// The generator's layers, one [`ArchRow`] each.
const ARCH: [ArchRow; 5] = [
    (0, Some(1), 100, 512, 1, 0, 1),
    (3, Some(4), 512, 256, 2, 1, 4),
    (6, Some(7), 256, 128, 2, 1, 8),
    (9, Some(10), 128, 64, 2, 1, 16),
    (12, None, 64, 3, 2, 1, 32),
];

/// Why a generator could not be loaded or run. Load errors name the file and the tensor.
#[derive(Debug, thiserror::Error)]
pub enum DcganError {
    /// The file could not be read as a checkpoint (I/O, refused pickle, damaged zip/header).
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A tensor the architecture needs is absent.
    #[error(
        "{}: tensor {name} is missing; expected the DCGAN generator of gan-face-generate \
         (tensors main.0.weight … main.12.weight)",
        path.display()
    )]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The missing tensor.
        name: String,
    },
    /// A tensor exists with the wrong shape.
    #[error("{}: tensor {name} has shape {found:?}, expected {expected:?}", path.display())]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The shape the architecture needs.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor the architecture does not have (a different model).
    #[error(
        "{}: tensor {name} is not part of the DCGAN generator architecture (a different model?)",
        path.display()
    )]
    UnexpectedTensor {
        /// The file.
        path: PathBuf,
        /// The extra tensor.
        name: String,
    },
    /// A weight tensor is stored as integers.
    #[error("{}: tensor {name} is {dtype:?}, expected floating point", path.display())]
    WrongDType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// What it holds.
        dtype: StorageDType,
    },
    /// A weight is NaN or infinite (a diverged or damaged checkpoint).
    #[error(
        "{}: tensor {name} holds a non-finite value (NaN or infinity) at element {index}",
        path.display()
    )]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Flat index of the first bad element.
        index: usize,
    },
    /// A BatchNorm running variance below zero.
    #[error("{}: tensor {name} has a negative variance at element {index}", path.display())]
    NegativeVariance {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Flat index of the first bad element.
        index: usize,
    },
    /// Latents passed to [`Generator::forward`] are not whole 100-value vectors.
    #[error("latents must be whole vectors of {LATENT_DIM} values; got {0} values")]
    LatentLength(usize),
    /// A latent value is NaN or infinite.
    #[error("latent vector {0} holds a non-finite value")]
    LatentNotFinite(usize),
}

/// Which file format the weights came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum WeightsFormat {
    /// A PyTorch zip checkpoint read by the restricted unpickler.
    TorchZip,
    /// A safetensors file.
    Safetensors,
}

/// What the UI shows about a loaded generator.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GeneratorInfo {
    /// The weights file.
    pub path: PathBuf,
    /// Its format.
    pub format: WeightsFormat,
    /// Parameters in the file's generator (BatchNorm included).
    pub parameters: usize,
    /// Read + validate + fold time.
    pub load_seconds: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Activation {
    Relu,
    Tanh,
}

/// One folded `ConvTranspose2d(k=4) + BN + activation`.
struct Layer {
    c_in: usize,
    c_out: usize,
    h_in: usize,
    h_out: usize,
    /// `[16][c_out][c_in]` (tap `ky*4 + kx`), BN scale folded in.
    weight: Vec<f32>,
    /// Per output channel: BN shift (zero for the last layer).
    shift: Vec<f32>,
    /// For each output coordinate `o`, the `(k, i)` pairs with `o = i·stride − pad + k`
    /// (the same along x and y): precomputed so col2im does no integer division per pixel.
    cover: Vec<Cover>,
    act: Activation,
}

/// One `ConvTranspose2d(k=4)` with its BatchNorm folded in, as loaded.
#[derive(Clone, Copy, Debug)]
pub struct FoldedLayer<'a> {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Input side.
    pub h_in: usize,
    /// Output side.
    pub h_out: usize,
    /// Stride.
    pub stride: usize,
    /// Padding.
    pub pad: usize,
    /// `[16][c_out][c_in]` (tap `ky*4 + kx`), BN scale folded in.
    pub weight: &'a [f32],
    /// Per output channel: the BN shift (zero for the last layer).
    pub shift: &'a [f32],
    /// tanh (the last layer) rather than ReLU.
    pub tanh: bool,
}

/// The loaded generator. `forward` needs `&mut self` only for its reusable scratch buffers.
pub struct Generator {
    layers: Vec<Layer>,
    info: GeneratorInfo,
    /// Scratch reused across calls: fresh multi-megabyte buffers would be page-faulted and
    /// zeroed on every sample.
    cols: Vec<f32>,
    act_a: Vec<f32>,
    act_b: Vec<f32>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("info", &self.info)
            .finish()
    }
}

impl Generator {
    /// Loads a PyTorch zip checkpoint (`netG_state_dict`, or a bare state dict) or a
    /// safetensors file with the same tensor names.
    pub fn load(path: &Path) -> Result<Self, DcganError> {
        let started = Instant::now();
        let sd = state_dict::load(path, Some(CHECKPOINT_KEY))?;
        let is_st = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
            || !is_zip(path);
        let format = if is_st {
            WeightsFormat::Safetensors
        } else {
            WeightsFormat::TorchZip
        };
        let mut g = Self::from_state_dict(&sd, path, format)?;
        g.info.load_seconds = started.elapsed().as_secs_f64();
        Ok(g)
    }

    /// Builds the generator from tensors already read; `path` is only for error messages.
    pub fn from_state_dict(
        sd: &StateDict,
        path: &Path,
        format: WeightsFormat,
    ) -> Result<Self, DcganError> {
        let expected = expected_tensors();
        for name in sd.keys() {
            let known = expected.iter().any(|(n, _)| n == name) || is_batch_counter(name);
            if !known {
                return Err(DcganError::UnexpectedTensor {
                    path: path.to_path_buf(),
                    name: name.clone(),
                });
            }
        }
        let mut values = std::collections::HashMap::new();
        for (name, shape) in &expected {
            let t = sd.get(name).ok_or_else(|| DcganError::MissingTensor {
                path: path.to_path_buf(),
                name: name.clone(),
            })?;
            values.insert(name.clone(), checked_values(path, name, shape, t)?);
        }
        let parameters = values.values().map(Vec::len).sum();
        let get = |n: String| values.get(&n).map(Vec::as_slice).unwrap_or(&[]);
        let mut layers = Vec::with_capacity(ARCH.len());
        for &(conv, bn, c_in, c_out, stride, pad, h_in) in &ARCH {
            let w = get(format!("main.{conv}.weight"));
            let (scale, shift) = match bn {
                Some(b) => {
                    let gamma = get(format!("main.{b}.weight"));
                    let beta = get(format!("main.{b}.bias"));
                    let mean = get(format!("main.{b}.running_mean"));
                    let var_name = format!("main.{b}.running_var");
                    let var = get(var_name.clone());
                    if let Some(index) = var.iter().position(|&v| v < 0.0) {
                        return Err(DcganError::NegativeVariance {
                            path: path.to_path_buf(),
                            name: var_name,
                            index,
                        });
                    }
                    // Fold in f64: the reference is a float64 forward pass.
                    let scale: Vec<f64> = (0..c_out)
                        .map(|c| gamma[c] as f64 / (var[c] as f64 + BN_EPS).sqrt())
                        .collect();
                    let shift = (0..c_out)
                        .map(|c| (beta[c] as f64 - mean[c] as f64 * scale[c]) as f32)
                        .collect();
                    (scale, shift)
                }
                None => (vec![1.0; c_out], vec![0.0; c_out]),
            };
            // PyTorch stores ConvTranspose2d weights as [c_in][c_out][ky][kx].
            let mut weight = vec![0f32; c_out * TAPS * c_in];
            for ci in 0..c_in {
                for co in 0..c_out {
                    for t in 0..TAPS {
                        let v = w[(ci * c_out + co) * TAPS + t] as f64 * scale[co];
                        weight[(t * c_out + co) * c_in + ci] = v as f32;
                    }
                }
            }
            let h_out = (h_in - 1) * stride + KERNEL - 2 * pad;
            let cover = (0..h_out)
                .map(|o| {
                    let mut c = Cover::default();
                    for k in 0..KERNEL {
                        let t = o + pad;
                        if t >= k && (t - k) % stride == 0 && (t - k) / stride < h_in {
                            c.pairs[c.len] = (k, (t - k) / stride);
                            c.len += 1;
                        }
                    }
                    c
                })
                .collect();
            layers.push(Layer {
                cover,
                c_in,
                c_out,
                h_in,
                h_out,
                weight,
                shift,
                act: if bn.is_some() {
                    Activation::Relu
                } else {
                    Activation::Tanh
                },
            });
        }
        Ok(Self {
            layers,
            info: GeneratorInfo {
                path: path.to_path_buf(),
                format,
                parameters,
                load_seconds: 0.0,
            },
            cols: Vec::new(),
            act_a: Vec::new(),
            act_b: Vec::new(),
        })
    }

    /// What was loaded.
    pub fn info(&self) -> &GeneratorInfo {
        &self.info
    }

    /// The folded layers, first to last, for the GPU kernels ([`crate::gpu::dcgan`]).
    pub fn folded_layers(&self) -> Vec<FoldedLayer<'_>> {
        self.layers
            .iter()
            .zip(&ARCH)
            .map(|(l, &(_, _, _, _, stride, pad, _))| FoldedLayer {
                c_in: l.c_in,
                c_out: l.c_out,
                h_in: l.h_in,
                h_out: l.h_out,
                stride,
                pad,
                weight: &l.weight,
                shift: &l.shift,
                tanh: l.act == Activation::Tanh,
            })
            .collect()
    }

    /// Runs the generator on `latents` (`B × 100` values, sample-major) and returns the images
    /// as `B × [3][64][64]` values in [-1, 1] (sample-major, channel-major within a sample).
    pub fn forward(&mut self, latents: &[f32]) -> Result<Vec<f32>, DcganError> {
        let batch = check_latents(latents)?;
        if batch == 0 {
            return Ok(Vec::new());
        }
        self.run_layers(latents, batch, self.layers.len());
        // act_b holds [B][64][64][3]; callers want [B][3][64][64].
        let plane = IMAGE_SIZE * IMAGE_SIZE;
        let mut out = vec![0f32; batch * IMAGE_VALUES];
        for b in 0..batch {
            let src = &self.act_b[b * IMAGE_VALUES..][..IMAGE_VALUES];
            let dst = &mut out[b * IMAGE_VALUES..][..IMAGE_VALUES];
            for (i, px) in src.chunks_exact(3).enumerate() {
                dst[i] = px[0];
                dst[plane + i] = px[1];
                dst[2 * plane + i] = px[2];
            }
        }
        Ok(out)
    }

    /// The first layer's output (after BN and ReLU), `B × 8192` values sample-major, each
    /// sample's features in `[4][4][512]` (pixel-major) order: the features GANSpace runs PCA
    /// on (any fixed feature order gives the same principal directions in latent space).
    pub fn first_layer(&mut self, latents: &[f32]) -> Result<Vec<f32>, DcganError> {
        let batch = check_latents(latents)?;
        if batch == 0 {
            return Ok(Vec::new());
        }
        self.run_layers(latents, batch, 1);
        Ok(self.act_b[..batch * FIRST_LAYER_FEATURES].to_vec())
    }

    /// Runs the first `n` layers; the result is left in `act_b` as `[B][H][W][C]`.
    fn run_layers(&mut self, latents: &[f32], batch: usize, n: usize) {
        // The latents are already [B][1][1][100].
        let mut input = std::mem::take(&mut self.act_a);
        input.clear();
        input.extend_from_slice(latents);
        let mut output = std::mem::take(&mut self.act_b);
        for layer in &self.layers[..n] {
            layer.forward(&input, batch, &mut self.cols, &mut output);
            std::mem::swap(&mut input, &mut output);
        }
        // The last layer's result is in `input` after the final swap.
        self.act_a = output;
        self.act_b = input;
    }
}

impl Layer {
    /// `input` is `[B][h_in][h_in][c_in]`; `output` becomes `[B][h_out][h_out][c_out]`.
    fn forward(&self, input: &[f32], batch: usize, cols: &mut Vec<f32>, output: &mut Vec<f32>) {
        let n = TAPS * self.c_out;
        let (px_in, px_out) = (self.h_in * self.h_in, self.h_out * self.h_out);
        output.resize(batch * px_out * self.c_out, 0.0);
        // Samples per GEMM: as many as keep the GEMM output within COLS_BUDGET, so col2im
        // reads it from cache instead of memory (at batch 16 the 32×32 layer's would be 16 MB).
        let chunk = (COLS_BUDGET / (px_in * n * 4)).clamp(1, batch);
        for s0 in (0..batch).step_by(chunk) {
            let b = chunk.min(batch - s0);
            let inp = &input[s0 * px_in * self.c_in..(s0 + b) * px_in * self.c_in];
            let out = &mut output[s0 * px_out * self.c_out..(s0 + b) * px_out * self.c_out];
            self.forward_chunk(inp, b, cols, out);
        }
    }

    /// One GEMM + col2im over `batch` samples.
    fn forward_chunk(&self, input: &[f32], batch: usize, cols: &mut Vec<f32>, output: &mut [f32]) {
        // cols(pixel, tap, co) = Σ_ci input[pixel][ci] · weight[tap][co][ci]
        let m = batch * self.h_in * self.h_in;
        let n = TAPS * self.c_out;
        let k = self.c_in;
        cols.resize(m * n, 0.0);
        // Which way round: with few pixels (a single sample's early layers) the GEMM runs up to
        // 2× faster writing cols channel-major ([tap][co][pixel]); with many, pixel-major
        // ([pixel][tap][co]) is as fast or faster and lets col2im add contiguous vectors.
        let strides = if m <= CHANNEL_MAJOR_MAX_PIXELS {
            sgemm_strided(n, m, k, (&self.weight, k, 1), (input, 1, k), cols);
            Strides {
                pixel: 1,
                channel: m,
            }
        } else {
            sgemm_strided(m, n, k, (input, k, 1), (&self.weight, 1, k), cols);
            Strides {
                pixel: n,
                channel: 1,
            }
        };
        let row = self.h_out * self.c_out;
        let cols = &cols[..];
        output.par_chunks_mut(row).enumerate().for_each(|(r, out)| {
            self.col2im_row(r / self.h_out, r % self.h_out, cols, strides, out)
        });
    }

    /// Output row `oy` of sample `b` (`[h_out][c_out]`): for each output pixel, the shift plus
    /// the patch entries of the input pixels that cover it (`o = i·stride − pad + k`), then the
    /// activation.
    fn col2im_row(&self, b: usize, oy: usize, cols: &[f32], st: Strides, out: &mut [f32]) {
        let (hi, c) = (self.h_in, self.c_out);
        let ys = &self.cover[oy];
        for (ox, dst) in out.chunks_exact_mut(c).enumerate() {
            dst.copy_from_slice(&self.shift);
            let xs = &self.cover[ox];
            for &(kx, ix) in xs.pairs() {
                for &(ky, iy) in ys.pairs() {
                    let pixel = (b * hi + iy) * hi + ix;
                    let at = pixel * st.pixel + (ky * KERNEL + kx) * c * st.channel;
                    match (st.channel, c) {
                        // The RGB layer: a fixed-size add the compiler unrolls.
                        (1, 3) => {
                            let v = &cols[at..at + 3];
                            dst[0] += v[0];
                            dst[1] += v[1];
                            dst[2] += v[2];
                        }
                        (1, _) => {
                            for (d, v) in dst.iter_mut().zip(&cols[at..at + c]) {
                                *d += v;
                            }
                        }
                        (cs, _) => {
                            for (co, d) in dst.iter_mut().enumerate() {
                                *d += cols[at + co * cs];
                            }
                        }
                    }
                }
            }
        }
        // The activation over the whole row at once, so it vectorizes even for 3 channels.
        match self.act {
            Activation::Relu => out.iter_mut().for_each(|d| *d = d.max(0.0)),
            Activation::Tanh => out.iter_mut().for_each(|d| *d = fast_tanh(*d)),
        }
    }
}

/// The kernel taps covering one output coordinate: up to 4 `(k, i)` pairs.
#[derive(Clone, Copy, Default)]
struct Cover {
    pairs: [(usize, usize); KERNEL],
    len: usize,
}

impl Cover {
    fn pairs(&self) -> &[(usize, usize)] {
        &self.pairs[..self.len]
    }
}

/// Where `(pixel, tap·c_out + co)` lives in the GEMM output.
#[derive(Clone, Copy)]
struct Strides {
    pixel: usize,
    channel: usize,
}

/// Up to this many input pixels per layer call the GEMM writes its output channel-major.
const CHANNEL_MAJOR_MAX_PIXELS: usize = 128;

/// Bytes of GEMM output per layer call: about an L2 cache (2 MB per core on the dev machine).
const COLS_BUDGET: usize = 2 << 20;

/// tanh as a rational function (Eigen's `generic_fast_tanh_float`): within a few float ulps of
/// `f32::tanh` (checked in the tests) and several times faster, which matters because the
/// last layer applies it to 12,288 values per sample.
// The coefficients are written as Eigen publishes them, so they can be checked against it.
#[allow(clippy::excessive_precision)]
fn fast_tanh(x: f32) -> f32 {
    if x.abs() < 4e-4 {
        return x;
    }
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let mut p = x2.mul_add(-2.760_768_5e-16, 2.000_187_9e-13);
    p = p.mul_add(x2, -8.604_671_5e-11);
    p = p.mul_add(x2, 5.122_297e-8);
    p = p.mul_add(x2, 1.485_722_4e-5);
    p = p.mul_add(x2, 6.372_619_3e-4);
    p = p.mul_add(x2, 4.893_524_6e-3);
    let mut q = x2.mul_add(1.198_258_4e-6, 1.185_347_1e-4);
    q = q.mul_add(x2, 2.268_434_6e-3);
    q = q.mul_add(x2, 4.893_525_2e-3);
    x * p / q
}

/// `c[m×n] = A · B` where `A` is `m×k` and `B` is `k×n`, each given as `(data, row stride,
/// column stride)` (so a transpose is free), and `c` is row-major contiguous. Runs on the rayon
/// pool for products big enough to gain from it.
pub fn sgemm_strided(
    m: usize,
    n: usize,
    k: usize,
    a: (&[f32], usize, usize),
    b: (&[f32], usize, usize),
    c: &mut [f32],
) {
    let c = &mut c[..m * n];
    if m == 0 || n == 0 || k == 0 {
        c.iter_mut().for_each(|x| *x = 0.0);
        return;
    }
    // The furthest element each operand's strides reach must lie inside its slice: checked
    // here (a violation panics inside the worker's catch_unwind) so the unsafe call below
    // never reads out of bounds.
    let reach = |rows: usize, cols: usize, rs: usize, cs: usize| {
        (rows - 1)
            .checked_mul(rs)
            .and_then(|x| (cols - 1).checked_mul(cs).and_then(|y| x.checked_add(y)))
    };
    let (a, a_rs, a_cs) = a;
    let (b, b_rs, b_cs) = b;
    let fits = |last: Option<usize>, len: usize| last.is_some_and(|l| l < len);
    assert!(
        fits(reach(m, k, a_rs, a_cs), a.len()) && fits(reach(k, n, b_rs, b_cs), b.len()),
        "sgemm operands smaller than their shapes"
    );
    let threads = rayon::current_num_threads();
    let par = if threads > 1 && m * n * k >= 1 << 16 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assert above proves every element the strides address lies inside `a` and
    // `b`; `c` is exclusively borrowed, holds exactly m×n elements addressed with row stride n
    // and column stride 1, and cannot alias the shared borrows `a` and `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

fn check_latents(latents: &[f32]) -> Result<usize, DcganError> {
    if !latents.len().is_multiple_of(LATENT_DIM) {
        return Err(DcganError::LatentLength(latents.len()));
    }
    if let Some(i) = latents.iter().position(|v| !v.is_finite()) {
        return Err(DcganError::LatentNotFinite(i / LATENT_DIM));
    }
    Ok(latents.len() / LATENT_DIM)
}

/// Every tensor the architecture has, with its shape (`num_batches_tracked` aside).
pub fn expected_tensors() -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    for &(conv, bn, c_in, c_out, ..) in &ARCH {
        v.push((
            format!("main.{conv}.weight"),
            vec![c_in, c_out, KERNEL, KERNEL],
        ));
        if let Some(b) = bn {
            for p in ["weight", "bias", "running_mean", "running_var"] {
                v.push((format!("main.{b}.{p}"), vec![c_out]));
            }
        }
    }
    v
}

/// BatchNorm's training step counter: present in torch checkpoints, unused in eval mode.
fn is_batch_counter(name: &str) -> bool {
    name.ends_with(".num_batches_tracked")
        && ARCH
            .iter()
            .filter_map(|a| a.1)
            .any(|b| name == format!("main.{b}.num_batches_tracked"))
}

fn checked_values(
    path: &Path,
    name: &str,
    shape: &[usize],
    t: &RawTensor,
) -> Result<Vec<f32>, DcganError> {
    if t.shape != shape {
        return Err(DcganError::ShapeMismatch {
            path: path.to_path_buf(),
            name: name.to_owned(),
            expected: shape.to_vec(),
            found: t.shape.clone(),
        });
    }
    let values = t.to_f32().ok_or_else(|| DcganError::WrongDType {
        path: path.to_path_buf(),
        name: name.to_owned(),
        dtype: t.dtype,
    })?;
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(DcganError::NonFinite {
            path: path.to_path_buf(),
            name: name.to_owned(),
            index,
        });
    }
    Ok(values)
}

fn is_zip(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"PK\x03\x04"
}

/// Converts one image (`[3][64][64]` in [-1, 1]) to RGBA8, row-major, opaque:
/// `round((x + 1) / 2 · 255)` clamped, as torchvision's `save_image` does.
pub fn to_rgba8(chw: &[f32]) -> Vec<u8> {
    let plane = IMAGE_SIZE * IMAGE_SIZE;
    let mut out = vec![255u8; plane * 4];
    for c in 0..3 {
        for (i, &v) in chw[c * plane..][..plane].iter().enumerate() {
            out[i * 4 + c] = ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architecture_shapes_chain() {
        let mut h = 1;
        for &(_, _, _, _, s, p, h_in) in &ARCH {
            assert_eq!(h, h_in);
            h = (h_in - 1) * s + KERNEL - 2 * p;
        }
        assert_eq!(h, IMAGE_SIZE);
        let params: usize = expected_tensors()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(params, 3_578_624); // "3.58M params" (MODELS.md)
    }

    #[test]
    fn fast_tanh_matches_std() {
        let mut worst = 0f32;
        for i in -20_000..=20_000 {
            let x = i as f32 * 5e-4;
            worst = worst.max((fast_tanh(x) - x.tanh()).abs());
        }
        assert!(worst < 1e-6, "max |fast_tanh - tanh| = {worst}");
        assert_eq!(fast_tanh(100.0), fast_tanh(7.905_311));
        assert!((fast_tanh(100.0) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn rgba_conversion_clamps_and_rounds() {
        let mut chw = vec![0f32; IMAGE_VALUES];
        chw[0] = -1.0;
        chw[1] = 1.0;
        chw[2] = 5.0;
        let rgba = to_rgba8(&chw);
        assert_eq!(&rgba[0..4], &[0, 128, 128, 255]);
        assert_eq!(rgba[4], 255);
        assert_eq!(rgba[8], 255);
    }
}
