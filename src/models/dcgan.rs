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
//! (measured in `tests/faces.rs`: ~10× slower than this file). Nor a GEMM library plus col2im
//! (this file's previous form): for one sample it spent a third of its time re-packing the same
//! weights on every call and a fifth in the col2im pass. Instead the layers with ReLU run as
//! gathered products (`gather`): each output parity class of a stride-2 transposed convolution
//! is a product whose rows are four neighbouring input pixels, with weights packed once here and
//! a register-tiled AVX-512 kernel (`tile`) that writes finished output pixels. The last
//! layer (3 channels, too few for a vector) computes each input pixel's 4×4×3 patch with the same
//! kernel and sums the overlapping patches in a col2im pass with tanh. Activations are
//! pixel-major with channels innermost (`[B][H][W][C]`) and a one-pixel zero border.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use self::gather::GatherConv;
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

mod gather;
mod tile;

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

/// One layer's folded weights as loaded (`[16][c_out][c_in]`, BN scale in) and BN shift,
/// kept for the GPU kernels, which gather from this layout.
struct Folded {
    weight: Vec<f32>,
    shift: Vec<f32>,
}

/// The generator. `forward` needs `&mut self` only for its reusable scratch buffers.
pub struct Generator {
    /// The four layers with BN + ReLU; each writes the next one's bordered input.
    hidden: Vec<GatherConv>,
    /// The last layer's per-pixel 4×4×3 patches, summed by [`Generator::col2im_tanh`].
    patches: GatherConv,
    /// For each output coordinate of the last layer, the `(k, i)` pairs with
    /// `o = 2i − 1 + k` (the same along x and y): precomputed so col2im does no division.
    cover: Vec<Cover>,
    info: GeneratorInfo,
    /// Each hidden layer's output, reused across calls: fresh buffers would be page-faulted
    /// and zeroed on every sample. Only interiors are ever written, so borders stay zero.
    acts: Vec<Vec<f32>>,
    /// The last layer's patches.
    cols: Vec<f32>,
    /// The output, pixel-major, before it is split into colour planes.
    image: Vec<f32>,
    /// The folded layers in their loaded layout, for the GPU ([`Generator::folded_layers`]).
    folded: Vec<Folded>,
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
        let mut folded = Vec::with_capacity(ARCH.len());
        for &(conv, bn, c_in, c_out, ..) in &ARCH {
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
            folded.push((weight, shift));
        }
        let last = ARCH.len() - 1;
        let hidden = (0..last)
            .map(|l| {
                let (_, _, c_in, c_out, _, _, h_in) = ARCH[l];
                let (w, shift) = &folded[l];
                if l == 0 {
                    GatherConv::first(w, shift, c_in, c_out)
                } else {
                    GatherConv::stride2(w, shift, c_in, c_out, h_in, l + 1 < last)
                }
            })
            .collect();
        let (_, _, c_in, c_out, stride, pad, h_in) = ARCH[last];
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
        Ok(Self {
            hidden,
            patches: GatherConv::patches(&folded[last].0, c_in, c_out, h_in),
            cover,
            info: GeneratorInfo {
                path: path.to_path_buf(),
                format,
                parameters,
                load_seconds: 0.0,
            },
            acts: vec![Vec::new(); last],
            cols: Vec::new(),
            image: Vec::new(),
            folded: folded
                .into_iter()
                .map(|(weight, shift)| Folded { weight, shift })
                .collect(),
        })
    }

    /// What was loaded.
    pub fn info(&self) -> &GeneratorInfo {
        &self.info
    }

    /// The folded layers, first to last, for the GPU kernels ([`crate::gpu::dcgan`]).
    pub fn folded_layers(&self) -> Vec<FoldedLayer<'_>> {
        self.folded
            .iter()
            .zip(&ARCH)
            .enumerate()
            .map(
                |(i, (f, &(_, _, c_in, c_out, stride, pad, h_in)))| FoldedLayer {
                    c_in,
                    c_out,
                    h_in,
                    h_out: (h_in - 1) * stride + KERNEL - 2 * pad,
                    stride,
                    pad,
                    weight: &f.weight,
                    shift: &f.shift,
                    tanh: i + 1 == ARCH.len(),
                },
            )
            .collect()
    }

    /// Runs the generator on `latents` (`B × 100` values, sample-major) and returns the images
    /// as `B × [3][64][64]` values in [-1, 1] (sample-major, channel-major within a sample).
    pub fn forward(&mut self, latents: &[f32]) -> Result<Vec<f32>, DcganError> {
        let batch = check_latents(latents)?;
        if batch == 0 {
            return Ok(Vec::new());
        }
        self.run_hidden(latents, batch, self.hidden.len());
        let input = &self.acts[self.hidden.len() - 1];
        self.cols.resize(batch * self.patches.out_stride(), 0.0);
        self.patches.run(input, batch, &mut self.cols);
        let mut image = std::mem::take(&mut self.image);
        image.resize(batch * IMAGE_VALUES, 0.0);
        let cols = &self.cols[..];
        image
            .par_chunks_mut(IMAGE_SIZE * 3)
            .enumerate()
            .for_each(|(r, row)| self.col2im_tanh(r / IMAGE_SIZE, r % IMAGE_SIZE, cols, row));
        // `image` is [B][64][64][3]; callers want [B][3][64][64].
        let plane = IMAGE_SIZE * IMAGE_SIZE;
        let mut out = vec![0f32; batch * IMAGE_VALUES];
        for (src, dst) in image
            .chunks_exact(IMAGE_VALUES)
            .zip(out.chunks_exact_mut(IMAGE_VALUES))
        {
            let (r, gb) = dst.split_at_mut(plane);
            let (g, b) = gb.split_at_mut(plane);
            for (i, px) in src.chunks_exact(3).enumerate() {
                r[i] = px[0];
                g[i] = px[1];
                b[i] = px[2];
            }
        }
        self.image = image;
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
        self.run_hidden(latents, batch, 1);
        let (c, side) = (FIRST_LAYER_FEATURES / 16, 4);
        let stride = gather::padded_len(side, c);
        let mut out = Vec::with_capacity(batch * FIRST_LAYER_FEATURES);
        for sample in self.acts[0][..batch * stride].chunks_exact(stride) {
            for y in 1..=side {
                let row = &sample[(y * (side + 2) + 1) * c..][..side * c];
                out.extend_from_slice(row);
            }
        }
        Ok(out)
    }

    /// Runs the first `n` hidden layers; layer `i`'s output is left in `acts[i]`.
    fn run_hidden(&mut self, latents: &[f32], batch: usize, n: usize) {
        for i in 0..n {
            let (done, rest) = self.acts.split_at_mut(i);
            let out = &mut rest[0];
            let len = batch * self.hidden[i].out_stride();
            if out.len() < len {
                out.resize(len, 0.0);
            }
            // The latents are already [B][100].
            let input = done.last().map_or(latents, Vec::as_slice);
            self.hidden[i].run(input, batch, out);
        }
    }

    /// Output row `oy` of sample `b` (`[64][3]`): the sum of the patches that overlap it,
    /// then tanh. Input pixel `(iy, ix)`'s patch row `ky` is 4 pixels × 3 channels, contiguous
    /// in `cols`, and lands on output pixels `2ix−1 .. 2ix+2` — also contiguous — so the sum
    /// is a run of 12-value vector adds (into a row with a one-pixel margin for the edges).
    fn col2im_tanh(&self, b: usize, oy: usize, cols: &[f32], out: &mut [f32]) {
        const C: usize = 3;
        let h_in = IMAGE_SIZE / 2;
        let mut row = [0f32; (IMAGE_SIZE + 2) * C];
        for &(ky, iy) in self.cover[oy].pairs() {
            let src = &cols[(b * h_in + iy) * h_in * TAPS * C..][..h_in * TAPS * C];
            for (ix, patch) in src.chunks_exact(TAPS * C).enumerate() {
                let patch_row = &patch[ky * KERNEL * C..][..KERNEL * C];
                // Output pixel 2ix−1 is at (2ix−1+1)·C in the margined row.
                let dst = &mut row[2 * ix * C..][..KERNEL * C];
                for (d, v) in dst.iter_mut().zip(patch_row) {
                    *d += v;
                }
            }
        }
        // Over the whole row at once, so it vectorizes.
        for (o, v) in out.iter_mut().zip(&row[C..]) {
            *o = fast_tanh(*v);
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

/// tanh as a rational function (Eigen's `generic_fast_tanh_float`): within a few float ulps of
/// `f32::tanh` (checked in the tests) and several times faster, which matters because the
/// last layer applies it to 12,288 values per sample.
// The coefficients are written as Eigen publishes them, so they can be checked against it.
#[allow(clippy::excessive_precision)]
pub(crate) fn fast_tanh(x: f32) -> f32 {
    let small = x.abs() < 4e-4;
    let x0 = x;
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
    // A select rather than an early return, so loops over rows vectorize.
    if small { x0 } else { x * p / q }
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
    sgemm_strided_into(m, n, k, a, b, c, false);
}

/// [`sgemm_strided`] that, when `accumulate`, adds the product to what `c` holds
/// (`c += A · B`: gradients that accumulate over several passes, `models::gan`).
pub fn sgemm_strided_into(
    m: usize,
    n: usize,
    k: usize,
    a: (&[f32], usize, usize),
    b: (&[f32], usize, usize),
    c: &mut [f32],
    accumulate: bool,
) {
    let c = &mut c[..m * n];
    if m == 0 || n == 0 || k == 0 {
        if !accumulate {
            c.iter_mut().for_each(|x| *x = 0.0);
        }
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
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
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
