//! One training iteration of the DCGAN recipe, as PyTorch's DCGAN example runs it:
//!
//! 1. the discriminator step: `fake = G(z)`; `errD = BCE(D(T(real)), 1) + BCE(D(T(fake)), 0)`
//!    (the generated batch detached), then Adam on D;
//! 2. the generator step: `errG = BCE(D(T(fake)), 1)` through the updated D, then Adam on G;
//!
//! with `T` DiffAugment (fresh draws for each of the three uses) or the identity. The two
//! halves of the discriminator step run as one batch through the convolutions (bigger
//! products) but with BatchNorm statistics per half, which is what two separate calls compute.
//! The generator step skips the discriminator's weight gradients: nothing uses them.

use super::augment::{self, AugmentParams};
use super::loss::bce_with_logits;
use super::{Adam, AdamConfig, Discriminator, Generator, IMAGE_SIZE, IMAGE_VALUES, ensure_len};

/// What a step was given that it cannot use.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrainerError {
    /// The real images, latents or augmentation draws do not describe the same batch.
    #[error(
        "a training batch needs {batch} real images ({} values), {batch} latents ({} values) \
         and as many augmentation draws; got {real} values, {latents} values, {augment} draws",
        batch * IMAGE_VALUES,
        batch * nz
    )]
    Batch {
        /// Images the latents describe.
        batch: usize,
        /// Latent size.
        nz: usize,
        /// Values of real images given.
        real: usize,
        /// Latent values given.
        latents: usize,
        /// Smallest number of augmentation draws given.
        augment: usize,
    },
    /// A loss became NaN or infinite: the run diverged.
    #[error(
        "the losses became non-finite (D {d}, G {g}): training diverged; try a lower learning rate"
    )]
    Diverged {
        /// The discriminator's loss.
        d: f32,
        /// The generator's loss.
        g: f32,
    },
}

/// DiffAugment draws for one step: one per image for each use.
#[derive(Clone, Debug, PartialEq)]
pub struct StepAugment {
    /// For the real images in the discriminator step.
    pub real: Vec<AugmentParams>,
    /// For the generated images in the discriminator step.
    pub fake: Vec<AugmentParams>,
    /// For the generated images in the generator step.
    pub generator: Vec<AugmentParams>,
}

/// One step's data.
#[derive(Clone, Copy, Debug)]
pub struct StepBatch<'a> {
    /// Real images, `[batch][64][64][3]` in [-1, 1].
    pub real: &'a [f32],
    /// Latents, `batch × nz`.
    pub latents: &'a [f32],
    /// DiffAugment's draws, or `None` for no augmentation.
    pub augment: Option<&'a StepAugment>,
}

/// The losses of one step (PyTorch's `errD_real`, `errD_fake`, `errG`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepLosses {
    /// The discriminator on real images (label 1).
    pub d_real: f32,
    /// The discriminator on generated images (label 0).
    pub d_fake: f32,
    /// The generator (its images labelled 1).
    pub g: f32,
}

impl StepLosses {
    /// `errD = errD_real + errD_fake`.
    pub fn d(&self) -> f32 {
        self.d_real + self.d_fake
    }
}

/// The networks, their optimizers, and the step's buffers.
#[derive(Clone, Debug)]
pub struct GanTrainer {
    /// The generator.
    pub g: Generator,
    /// The discriminator.
    pub d: Discriminator,
    /// The generator's Adam state.
    pub opt_g: Adam,
    /// The discriminator's Adam state.
    pub opt_d: Adam,
    d_input: Vec<f32>,
    d_logits: Vec<f32>,
    d_images: Vec<f32>,
}

/// The step was stopped before it changed anything (the networks are as before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupted;

impl GanTrainer {
    /// A trainer with fresh Adam state for `g` and `d`.
    pub fn new(g: Generator, d: Discriminator, opt: AdamConfig) -> Self {
        let mut g = g;
        let mut d = d;
        let lens = |p: Vec<&mut super::Param>| p.iter().map(|p| p.value.len()).collect::<Vec<_>>();
        let opt_g = Adam::new(opt, &lens(g.layers.params_mut()));
        let opt_d = Adam::new(opt, &lens(d.layers.params_mut()));
        Self {
            g,
            d,
            opt_g,
            opt_d,
            d_input: Vec::new(),
            d_logits: Vec::new(),
            d_images: Vec::new(),
        }
    }

    /// One iteration. `pause` is called between layers (it may block, e.g. while the user
    /// paused the job) and returns whether a stop was requested: a stop seen before the
    /// discriminator's update abandons the step with nothing changed (`Ok(Err(Interrupted))`);
    /// after it, the step completes so the two networks stay in step.
    pub fn step(
        &mut self,
        batch: &StepBatch<'_>,
        pause: &mut dyn FnMut() -> bool,
    ) -> Result<Result<StepLosses, Interrupted>, TrainerError> {
        let nz = self.g.shape.nz;
        let n = batch.latents.len() / nz.max(1);
        let draws = batch
            .augment
            .map_or(n, |a| a.real.len().min(a.fake.len()).min(a.generator.len()));
        if n == 0
            || batch.latents.len() != n * nz
            || batch.real.len() != n * IMAGE_VALUES
            || draws < n
        {
            return Err(TrainerError::Batch {
                batch: n,
                nz,
                real: batch.real.len(),
                latents: batch.latents.len(),
                augment: draws,
            });
        }
        let saved = (self.g.layers.running_stats(), self.d.layers.running_stats());
        let abandon = |t: &mut Self| {
            t.g.layers.restore_running_stats(saved.0.clone());
            t.d.layers.restore_running_stats(saved.1.clone());
            Ok(Err(Interrupted))
        };
        if pause() {
            return abandon(self);
        }

        // The discriminator step: real and generated images as one batch of two groups.
        self.d.layers.zero_grad();
        let fake = self.g.forward_train(batch.latents, pause);
        ensure_len(&mut self.d_input, 2 * n * IMAGE_VALUES);
        let (real_half, fake_half) = self.d_input.split_at_mut(n * IMAGE_VALUES);
        real_half.copy_from_slice(batch.real);
        fake_half.copy_from_slice(fake);
        if let Some(a) = batch.augment {
            augment::apply(real_half, IMAGE_SIZE, 3, &a.real[..n]);
            augment::apply(fake_half, IMAGE_SIZE, 3, &a.fake[..n]);
        }
        if pause() {
            return abandon(self);
        }
        let logits = self.d.forward_train(&self.d_input, 2, pause);
        ensure_len(&mut self.d_logits, 2 * n);
        let (gr, gf) = self.d_logits.split_at_mut(n);
        let d_real = bce_with_logits(&logits[..n], 1.0, gr);
        let d_fake = bce_with_logits(&logits[n..2 * n], 0.0, gf);
        self.d.backward(&self.d_logits, true, None, pause);
        if pause() {
            return abandon(self);
        }
        self.opt_d.update(&mut self.d.layers.params_mut());

        // The generator step, through the updated discriminator.
        self.g.layers.zero_grad();
        let fake = self.g.forward_output();
        self.d_input.truncate(n * IMAGE_VALUES);
        self.d_input.copy_from_slice(fake);
        if let Some(a) = batch.augment {
            augment::apply(&mut self.d_input, IMAGE_SIZE, 3, &a.generator[..n]);
        }
        let logits = self.d.forward_train(&self.d_input, 1, pause);
        ensure_len(&mut self.d_logits, n);
        let g_loss = bce_with_logits(logits, 1.0, &mut self.d_logits);
        ensure_len(&mut self.d_images, n * IMAGE_VALUES);
        self.d
            .backward(&self.d_logits, false, Some(&mut self.d_images), pause);
        if let Some(a) = batch.augment {
            augment::backward(&mut self.d_images, IMAGE_SIZE, 3, &a.generator[..n]);
        }
        self.g.backward(&mut self.d_images, pause);
        self.opt_g.update(&mut self.g.layers.params_mut());

        let losses = StepLosses {
            d_real,
            d_fake,
            g: g_loss,
        };
        if !(losses.d().is_finite() && losses.g.is_finite()) {
            return Err(TrainerError::Diverged {
                d: losses.d(),
                g: losses.g,
            });
        }
        Ok(Ok(losses))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::gan::rng::{Rng, fill_normal};
    use crate::models::gan::{GanShape, Policy};

    fn trainer(shape: GanShape) -> GanTrainer {
        let g = Generator::random(shape, &mut Rng::from_seed(1));
        let d = Discriminator::random(shape, &mut Rng::from_seed(2));
        GanTrainer::new(g, d, AdamConfig::default())
    }

    /// The Faces widths on two threads (where the products run in parallel): two identical
    /// trainers given the same step end bit-for-bit equal; a stop before the discriminator's
    /// update leaves everything as it was.
    #[test]
    fn steps_are_reproducible_and_an_early_stop_changes_nothing() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let shape = GanShape::FACES;
        let n = 2;
        let mut real = vec![0f32; n * IMAGE_VALUES];
        fill_normal(&mut Rng::from_seed(3), &mut real);
        real.iter_mut().for_each(|v| *v = v.tanh());
        let mut z = vec![0f32; n * shape.nz];
        fill_normal(&mut Rng::from_seed(4), &mut z);
        let mut rng = Rng::from_seed(5);
        let mut draw = || super::augment::AugmentParams::draw_batch(&mut rng, Policy::ALL, 64, n);
        let aug = StepAugment {
            real: draw(),
            fake: draw(),
            generator: draw(),
        };
        let batch = StepBatch {
            real: &real,
            latents: &z,
            augment: Some(&aug),
        };
        let (a, b) = pool.install(|| {
            let mut a = trainer(shape);
            let mut b = trainer(shape);
            let la = a.step(&batch, &mut || false).unwrap().unwrap();
            let lb = b.step(&batch, &mut || false).unwrap().unwrap();
            assert_eq!(la, lb);
            (a, b)
        });
        assert_eq!(a.g.layers.tensors(), b.g.layers.tensors());
        assert_eq!(a.d.layers.tensors(), b.d.layers.tensors());
        assert_eq!(a.opt_d, b.opt_d);

        // Stopped after the generator's forward: nothing changes, running statistics included.
        let mut c = a.clone();
        let mut calls = 0;
        let r = pool.install(|| {
            c.step(&batch, &mut || {
                calls += 1;
                calls > 3
            })
        });
        assert_eq!(r, Ok(Err(Interrupted)));
        assert_eq!(c.g.layers.tensors(), a.g.layers.tensors());
        assert_eq!(c.d.layers.tensors(), a.d.layers.tensors());
        assert_eq!(c.opt_g, a.opt_g);
        // A batch that does not add up is an error, not a panic.
        let bad = StepBatch {
            real: &real[..10],
            latents: &z,
            augment: None,
        };
        assert!(matches!(
            c.step(&bad, &mut || false),
            Err(TrainerError::Batch { .. })
        ));
    }
}
