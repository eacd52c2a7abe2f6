//! Training the Faces DCGAN: the generator and its discriminator with every layer's backward
//! pass, Adam, DiffAugment and the non-saturating loss — the recipe of Radford et al. 2016
//! ("Unsupervised Representation Learning with Deep Convolutional Generative Adversarial
//! Networks", <https://arxiv.org/abs/1511.06434>) as the PyTorch DCGAN example runs it, with the
//! differentiable augmentation of Zhao et al. 2020 ("Differentiable Augmentation for
//! Data-Efficient GAN Training", <https://arxiv.org/abs/2006.10738>) for small picture sets.
//!
//! ```text
//! G: z [nz] -> ConvT(nz,8g,4,1,0) BN ReLU -> ConvT(8g,4g,4,2,1) BN ReLU -> ConvT(4g,2g) BN ReLU
//!           -> ConvT(2g,g) BN ReLU -> ConvT(g,3) Tanh -> [64][64][3]
//! D: x -> Conv(3,d,4,2,1) LReLU(0.2) -> Conv(d,2d) BN LReLU -> Conv(2d,4d) BN LReLU
//!      -> Conv(4d,8d) BN LReLU -> Conv(8d,1,4,1,0) -> logit
//! ```
//!
//! The widths ([`GanShape`]) are parameters so the PyTorch comparison fixture can use a tiny
//! network; the Faces model is [`GanShape::FACES`]. Activations are NHWC (`[N][H][W][C]`, the
//! layout the inference generator in [`super::dcgan`] uses) with the batch folded into the
//! matrix products: every convolution is an im2col/col2im ([`im2col`]) around one GEMM (the
//! `gemm` crate through [`super::dcgan::sgemm_strided`]). Nothing here reduces across threads
//! in an order that depends on the thread count's scheduling: for a given thread count a step
//! is bit-for-bit reproducible.
//!
//! [`GanTrainer::step`] is one iteration: one discriminator step, then one generator step.

mod activation;
mod adam;
pub mod augment;
mod batchnorm;
mod conv;
mod discriminator;
mod generator;
pub mod im2col;
mod loss;
pub mod rng;
pub mod stack;
mod trainer;

pub use adam::{Adam, AdamConfig};
pub use augment::{AugmentParams, Policy};
pub use batchnorm::BatchNorm;
pub use conv::{Conv, Conv2d, ConvTranspose2d, Direct, Direction, Transposed, WeightLayout};
pub use discriminator::Discriminator;
pub use generator::Generator;
pub use trainer::{GanTrainer, Interrupted, StepAugment, StepBatch, StepLosses, TrainerError};

/// Side of the images both networks work on.
pub const IMAGE_SIZE: usize = 64;
/// Values in one image (`[64][64][3]`).
pub const IMAGE_VALUES: usize = IMAGE_SIZE * IMAGE_SIZE * 3;
/// BatchNorm's epsilon (PyTorch's default, and the Faces checkpoint's).
pub const BN_EPS: f32 = 1e-5;
/// BatchNorm's running-statistics momentum (PyTorch's default).
pub const BN_MOMENTUM: f32 = 0.1;
/// LeakyReLU's slope for negative inputs in the discriminator.
pub const LEAKY_SLOPE: f32 = 0.2;
/// Standard deviation of the DCGAN weight initialisation.
pub const INIT_STD: f32 = 0.02;

/// The networks' widths: latent size, generator and discriminator base channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GanShape {
    /// Values per latent vector.
    pub nz: usize,
    /// Channels of the generator's last hidden layer (the first has 8×).
    pub ngf: usize,
    /// Channels of the discriminator's first layer (the last hidden has 8×).
    pub ndf: usize,
}

impl GanShape {
    /// The Faces generator's widths (`gan-face-generate`: 100, 64) with the standard
    /// discriminator (64).
    pub const FACES: GanShape = GanShape {
        nz: 100,
        ngf: 64,
        ndf: 64,
    };
}

impl Default for GanShape {
    fn default() -> Self {
        Self::FACES
    }
}

/// A learnable tensor in the layout this module computes with, and its gradient (same layout).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Param {
    /// The values.
    pub value: Vec<f32>,
    /// d(loss)/d(value), accumulated by the backward passes; zeroed by the trainer.
    pub grad: Vec<f32>,
}

impl Param {
    /// A parameter holding `value`, with a zero gradient.
    pub fn new(value: Vec<f32>) -> Self {
        let grad = vec![0.0; value.len()];
        Self { value, grad }
    }

    /// Sets the gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grad.iter_mut().for_each(|g| *g = 0.0);
    }
}

/// A named tensor as PyTorch lays it out, for state dicts, checkpoints and fixtures.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// PyTorch's name, e.g. `main.0.weight`.
    pub name: String,
    /// PyTorch's shape.
    pub shape: Vec<usize>,
    /// The values in PyTorch's (row-major) layout.
    pub values: Vec<f32>,
}

/// How one parameter is named and laid out in PyTorch (optimizer state in checkpoints).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamSpec {
    /// A (transposed) convolution's weight.
    Conv(String, WeightLayout),
    /// A BatchNorm's γ or β (`channels` values, the same layout everywhere).
    Vector(String, usize),
}

impl ParamSpec {
    /// PyTorch's name of the parameter.
    pub fn name(&self) -> &str {
        match self {
            Self::Conv(n, _) | Self::Vector(n, _) => n,
        }
    }

    /// PyTorch's shape.
    pub fn torch_shape(&self) -> Vec<usize> {
        match self {
            Self::Conv(_, l) => l.torch_shape(),
            Self::Vector(_, c) => vec![*c],
        }
    }

    /// Values shaped like the parameter, from this module's layout to PyTorch's.
    pub fn to_torch(&self, values: &[f32]) -> Vec<f32> {
        match self {
            Self::Conv(_, l) => l.to_torch(values),
            Self::Vector(..) => values.to_vec(),
        }
    }

    /// Values shaped like the parameter, from PyTorch's layout to this module's.
    pub fn from_torch(&self, values: &[f32]) -> Vec<f32> {
        match self {
            Self::Conv(_, l) => l.from_torch(values),
            Self::Vector(..) => values.to_vec(),
        }
    }
}

/// Why a network could not be built from tensors (a checkpoint or the Faces file).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShapeError {
    /// A tensor is missing.
    #[error("tensor {0} is missing")]
    Missing(String),
    /// A tensor has the wrong number of values for the network's widths.
    #[error("tensor {name} has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The tensor.
        name: String,
        /// What the widths need.
        expected: Vec<usize>,
        /// What was found.
        found: Vec<usize>,
    },
    /// A value is NaN or infinite.
    #[error("tensor {0} holds a non-finite value")]
    NonFinite(String),
}

/// Looks up `name` in `tensors`, checking its shape and that its values are finite.
pub fn take_tensor<'a>(
    tensors: &'a std::collections::BTreeMap<String, NamedTensor>,
    name: &str,
    shape: &[usize],
) -> Result<&'a [f32], ShapeError> {
    let t = tensors
        .get(name)
        .ok_or_else(|| ShapeError::Missing(name.to_owned()))?;
    if t.shape != shape || t.values.len() != shape.iter().product::<usize>() {
        return Err(ShapeError::Shape {
            name: name.to_owned(),
            expected: shape.to_vec(),
            found: t.shape.clone(),
        });
    }
    if t.values.iter().any(|v| !v.is_finite()) {
        return Err(ShapeError::NonFinite(name.to_owned()));
    }
    Ok(&t.values)
}

/// Resizes `buf` to `len` values (keeping its allocation across steps: a fresh buffer would be
/// page-faulted and zeroed on every step).
pub(crate) fn ensure_len(buf: &mut Vec<f32>, len: usize) {
    if buf.len() != len {
        buf.resize(len, 0.0);
    }
}

/// Rows per work item of the element-wise passes: big enough to amortise rayon's overhead,
/// fixed (never derived from the thread count) so reductions are reproducible.
pub(crate) const ROWS_PER_CHUNK: usize = 256;
