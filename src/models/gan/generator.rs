//! The trainable DCGAN generator: the Faces architecture (see [`crate::models::dcgan`]) with
//! BatchNorm in training mode, its backward pass, and an evaluation-mode forward (running
//! statistics, what the Faces panel draws).

use std::collections::BTreeMap;

use super::activation::{leaky_relu, leaky_relu_backward, tanh, tanh_backward};
use super::rng::{Rng, fill_normal};
use super::{
    BatchNorm, ConvTranspose2d, GanShape, IMAGE_SIZE, INIT_STD, NamedTensor, Param, ParamSpec,
    ShapeError, ensure_len, take_tensor,
};

/// Layers (transposed convolutions); every one but the last is followed by BatchNorm + ReLU.
const LAYERS: usize = 5;

/// The generator.
#[derive(Clone, Debug)]
pub struct Generator {
    /// Its widths.
    pub shape: GanShape,
    /// The transposed convolutions, first to last.
    pub convs: Vec<ConvTranspose2d>,
    /// The BatchNorms after the first four.
    pub bns: Vec<BatchNorm>,
    /// The last training forward: `acts[0]` the latents, `acts[l + 1]` layer `l`'s output
    /// (after ReLU; after tanh for the last: the images).
    acts: Vec<Vec<f32>>,
    pre: Vec<f32>,
    grads: [Vec<f32>; 2],
    batch: usize,
}

/// Input side of each layer.
const SIDES: [usize; LAYERS] = [1, 4, 8, 16, 32];

fn channels(shape: &GanShape) -> [usize; LAYERS + 1] {
    let g = shape.ngf;
    [shape.nz, 8 * g, 4 * g, 2 * g, g, 3]
}

/// PyTorch's strides and paddings per layer.
fn stride_pad(l: usize) -> (usize, usize) {
    if l == 0 { (1, 0) } else { (2, 1) }
}

/// Draws `n` values from N(mean, std²).
pub(super) fn normal_init(rng: &mut Rng, n: usize, mean: f32, std: f32) -> Vec<f32> {
    let mut v = vec![0f32; n];
    fill_normal(rng, &mut v);
    v.iter_mut().for_each(|x| *x = mean + std * *x);
    v
}

impl Generator {
    /// A new generator initialised as the DCGAN paper does: conv weights N(0, 0.02²),
    /// BatchNorm γ N(1, 0.02²), β 0.
    pub fn random(shape: GanShape, rng: &mut Rng) -> Self {
        let ch = channels(&shape);
        let mut convs = Vec::with_capacity(LAYERS);
        let mut bns = Vec::with_capacity(LAYERS - 1);
        for l in 0..LAYERS {
            let (s, p) = stride_pad(l);
            let w = normal_init(rng, ch[l] * ch[l + 1] * 16, 0.0, INIT_STD);
            convs.push(ConvTranspose2d::from_torch(ch[l], ch[l + 1], 4, s, p, &w));
            if l + 1 < LAYERS {
                let gamma = normal_init(rng, ch[l + 1], 1.0, INIT_STD);
                bns.push(BatchNorm::new(gamma, vec![0.0; ch[l + 1]]));
            }
        }
        Self::assemble(shape, convs, bns)
    }

    fn assemble(shape: GanShape, convs: Vec<ConvTranspose2d>, bns: Vec<BatchNorm>) -> Self {
        Self {
            shape,
            convs,
            bns,
            acts: vec![Vec::new(); LAYERS + 1],
            pre: Vec::new(),
            grads: [Vec::new(), Vec::new()],
            batch: 0,
        }
    }

    /// The name of layer `l`'s transposed convolution and of its BatchNorm, as PyTorch's
    /// `nn.Sequential` named them (`main.0`, `main.1`; `main.3`, `main.4`; …).
    fn names(l: usize) -> (String, String) {
        (format!("main.{}", 3 * l), format!("main.{}", 3 * l + 1))
    }

    /// Builds the generator from PyTorch-named tensors (a Faces file or a checkpoint). BatchNorm
    /// running statistics are taken when present (else mean 0, variance 1); `batches` gives
    /// each BatchNorm's `num_batches_tracked` (absent: 0).
    pub fn from_tensors(
        shape: GanShape,
        tensors: &BTreeMap<String, NamedTensor>,
        batches: &BTreeMap<String, i64>,
    ) -> Result<Self, ShapeError> {
        let ch = channels(&shape);
        let mut convs = Vec::with_capacity(LAYERS);
        let mut bns = Vec::with_capacity(LAYERS - 1);
        for l in 0..LAYERS {
            let (conv, bn) = Self::names(l);
            let (s, p) = stride_pad(l);
            let w = take_tensor(
                tensors,
                &format!("{conv}.weight"),
                &[ch[l], ch[l + 1], 4, 4],
            )?;
            convs.push(ConvTranspose2d::from_torch(ch[l], ch[l + 1], 4, s, p, w));
            if l + 1 < LAYERS {
                let c = [ch[l + 1]];
                let mut b = BatchNorm::new(
                    take_tensor(tensors, &format!("{bn}.weight"), &c)?.to_vec(),
                    take_tensor(tensors, &format!("{bn}.bias"), &c)?.to_vec(),
                );
                if tensors.contains_key(&format!("{bn}.running_mean")) {
                    b.running_mean =
                        take_tensor(tensors, &format!("{bn}.running_mean"), &c)?.to_vec();
                    let var = take_tensor(tensors, &format!("{bn}.running_var"), &c)?;
                    if var.iter().any(|v| *v < 0.0) {
                        return Err(ShapeError::NonFinite(format!("{bn}.running_var")));
                    }
                    b.running_var = var.to_vec();
                }
                b.batches_tracked = batches
                    .get(&format!("{bn}.num_batches_tracked"))
                    .copied()
                    .unwrap_or(0);
                bns.push(b);
            }
        }
        Ok(Self::assemble(shape, convs, bns))
    }

    /// Every tensor of the state dict in PyTorch's names and layouts (running statistics
    /// included), with each BatchNorm's `num_batches_tracked` apart (an integer).
    pub fn tensors(&self) -> (Vec<NamedTensor>, BTreeMap<String, i64>) {
        let mut out = Vec::new();
        let mut batches = BTreeMap::new();
        for (l, conv) in self.convs.iter().enumerate() {
            let (cn, bn) = Self::names(l);
            out.push(NamedTensor {
                name: format!("{cn}.weight"),
                shape: conv.torch_shape(),
                values: conv.to_torch(&conv.weight.value),
            });
            if let Some(b) = self.bns.get(l) {
                let c = vec![b.channels];
                for (p, v) in [
                    ("weight", &b.gamma.value),
                    ("bias", &b.beta.value),
                    ("running_mean", &b.running_mean),
                    ("running_var", &b.running_var),
                ] {
                    out.push(NamedTensor {
                        name: format!("{bn}.{p}"),
                        shape: c.clone(),
                        values: v.clone(),
                    });
                }
                batches.insert(format!("{bn}.num_batches_tracked"), b.batches_tracked);
            }
        }
        (out, batches)
    }

    /// The learnable parameters in PyTorch's `parameters()` order.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut out: Vec<&mut Param> = Vec::with_capacity(3 * LAYERS);
        let mut bns = self.bns.iter_mut();
        for conv in &mut self.convs {
            out.push(&mut conv.weight);
            if let Some(b) = bns.next() {
                out.push(&mut b.gamma);
                out.push(&mut b.beta);
            }
        }
        out
    }

    /// Names, PyTorch shapes, and layout converters of the parameters, in
    /// [`Self::params_mut`]'s order (for optimizer state in checkpoints).
    pub fn param_specs(&self) -> Vec<ParamSpec<'_>> {
        let mut out = Vec::new();
        for (l, conv) in self.convs.iter().enumerate() {
            let (cn, bn) = Self::names(l);
            out.push(ParamSpec::ConvT(format!("{cn}.weight"), conv));
            if let Some(b) = self.bns.get(l) {
                out.push(ParamSpec::Vector(format!("{bn}.weight"), b.channels));
                out.push(ParamSpec::Vector(format!("{bn}.bias"), b.channels));
            }
        }
        out
    }

    /// Zeroes every gradient.
    pub fn zero_grad(&mut self) {
        self.params_mut().into_iter().for_each(Param::zero_grad);
    }

    /// Running statistics and batch counters, to undo a step's forward passes.
    pub(super) fn running_stats(&self) -> Vec<(Vec<f32>, Vec<f32>, i64)> {
        self.bns
            .iter()
            .map(|b| {
                (
                    b.running_mean.clone(),
                    b.running_var.clone(),
                    b.batches_tracked,
                )
            })
            .collect()
    }

    pub(super) fn restore_running_stats(&mut self, saved: Vec<(Vec<f32>, Vec<f32>, i64)>) {
        for (b, (m, v, n)) in self.bns.iter_mut().zip(saved) {
            b.running_mean = m;
            b.running_var = v;
            b.batches_tracked = n;
        }
    }

    /// Training-mode forward of `latents` (`batch × nz`): returns the images
    /// (`[batch][64][64][3]`, in [-1, 1]) and keeps what [`Self::backward`] needs. `pause` is
    /// called between layers.
    pub fn forward_train(&mut self, latents: &[f32], pause: &mut dyn FnMut() -> bool) -> &[f32] {
        let batch = latents.len() / self.shape.nz;
        self.batch = batch;
        self.acts[0].clear();
        self.acts[0].extend_from_slice(latents);
        for l in 0..LAYERS {
            let Some(g) = self.convs[l].geom(batch, SIDES[l]) else {
                continue;
            };
            let (done, rest) = self.acts.split_at_mut(l + 1);
            let out = &mut rest[0];
            ensure_len(out, g.image_len());
            if l + 1 < LAYERS {
                ensure_len(&mut self.pre, g.image_len());
                self.convs[l].forward(&g, &done[l], &mut self.pre);
                self.bns[l].forward_train(&self.pre, 1, out);
                leaky_relu(out, 0.0);
            } else {
                self.convs[l].forward(&g, &done[l], out);
                tanh(out);
            }
            pause();
        }
        &self.acts[LAYERS]
    }

    /// The images of the last [`Self::forward_train`].
    pub fn forward_output(&self) -> &[f32] {
        &self.acts[LAYERS]
    }

    /// Evaluation-mode forward (BatchNorm with its running statistics): the images Faces
    /// would draw for `latents`, `[batch][64][64][3]` in [-1, 1]. Leaves the training cache
    /// alone.
    pub fn forward_eval(&self, latents: &[f32]) -> Vec<f32> {
        let batch = latents.len() / self.shape.nz;
        let mut x = latents.to_vec();
        let mut col = Vec::new();
        for l in 0..LAYERS {
            let conv = &self.convs[l];
            let Some(g) = conv.geom(batch, SIDES[l]) else {
                return Vec::new();
            };
            let mut y = vec![0f32; g.image_len()];
            conv.forward_with(&g, &x, &mut y, &mut col);
            if let Some(bn) = self.bns.get(l) {
                let mut z = vec![0f32; y.len()];
                bn.forward_eval(&y, &mut z);
                leaky_relu(&mut z, 0.0);
                x = z;
            } else {
                tanh(&mut y);
                x = y;
            }
        }
        debug_assert_eq!(x.len(), batch * IMAGE_SIZE * IMAGE_SIZE * 3);
        x
    }

    /// Backward of the last [`Self::forward_train`] for `d_images` (d loss / d output;
    /// consumed): adds every parameter's gradient. `pause` is called between layers.
    pub fn backward(&mut self, d_images: &mut [f32], pause: &mut dyn FnMut() -> bool) {
        let batch = self.batch;
        tanh_backward(&self.acts[LAYERS], d_images);
        let [ga, gb] = &mut self.grads;
        // `cur` holds d loss / d (layer l's pre-activation output) when layer l's conv runs.
        let mut cur: &mut Vec<f32> = ga;
        let mut next: &mut Vec<f32> = gb;
        ensure_len(cur, d_images.len());
        cur.copy_from_slice(d_images);
        for l in (0..LAYERS).rev() {
            let Some(g) = self.convs[l].geom(batch, SIDES[l]) else {
                continue;
            };
            if l + 1 < LAYERS {
                // cur is d/d(ReLU output): through ReLU, then BatchNorm.
                leaky_relu_backward(&self.acts[l + 1], cur, 0.0);
                ensure_len(next, cur.len());
                self.bns[l].backward(cur, true, next);
                std::mem::swap(&mut cur, &mut next);
            }
            let in_len = g.rows() * self.convs[l].c_in;
            let dx = if l > 0 {
                ensure_len(next, in_len);
                Some(&mut next[..])
            } else {
                None
            };
            self.convs[l].backward(&g, &self.acts[l], cur, true, dx);
            std::mem::swap(&mut cur, &mut next);
            pause();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generator_round_trips_through_its_tensors() {
        let shape = GanShape {
            nz: 4,
            ngf: 2,
            ndf: 2,
        };
        let g = Generator::random(shape, &mut Rng::from_seed(1));
        let (t, b) = g.tensors();
        let map: BTreeMap<_, _> = t.into_iter().map(|t| (t.name.clone(), t)).collect();
        assert_eq!(map["main.0.weight"].shape, vec![4, 16, 4, 4]);
        assert_eq!(map["main.12.weight"].shape, vec![2, 3, 4, 4]);
        let g2 = Generator::from_tensors(shape, &map, &b).unwrap();
        assert_eq!(g2.tensors().0, g.tensors().0);
        let z = vec![0.3f32; 8];
        assert_eq!(g.forward_eval(&z), g2.forward_eval(&z));
        let wrong = GanShape { ngf: 3, ..shape };
        assert!(matches!(
            Generator::from_tensors(wrong, &map, &b),
            Err(ShapeError::Shape { .. })
        ));
    }
}
