//! The standard 64×64 DCGAN discriminator (as in PyTorch's DCGAN example): four strided
//! convolutions with LeakyReLU(0.2) (BatchNorm on all but the first), then a 4×4
//! convolution to one logit per image.

use std::collections::BTreeMap;

use super::activation::{leaky_relu, leaky_relu_backward};
use super::generator::normal_init;
use super::rng::Rng;
use super::{
    BatchNorm, Conv2d, GanShape, IMAGE_SIZE, INIT_STD, LEAKY_SLOPE, NamedTensor, Param, ParamSpec,
    ShapeError, ensure_len, take_tensor,
};

const LAYERS: usize = 5;
/// Input side of each layer.
const SIDES: [usize; LAYERS] = [IMAGE_SIZE, 32, 16, 8, 4];
/// `nn.Sequential` indices of the convolutions and of the BatchNorms after layers 1–3.
const CONV_INDEX: [usize; LAYERS] = [0, 2, 5, 8, 11];
const BN_INDEX: [usize; 3] = [3, 6, 9];

fn channels(shape: &GanShape) -> [usize; LAYERS + 1] {
    let d = shape.ndf;
    [3, d, 2 * d, 4 * d, 8 * d, 1]
}

fn stride_pad(l: usize) -> (usize, usize) {
    if l + 1 == LAYERS { (1, 0) } else { (2, 1) }
}

/// The discriminator.
#[derive(Clone, Debug)]
pub struct Discriminator {
    /// Its widths.
    pub shape: GanShape,
    /// The convolutions, first to last.
    pub convs: Vec<Conv2d>,
    /// The BatchNorms after convolutions 1, 2 and 3.
    pub bns: Vec<BatchNorm>,
    /// The last forward: `acts[l]` is layer `l − 1`'s output after LeakyReLU (`acts[0]`
    /// unused: the input's columns live in the first convolution).
    acts: Vec<Vec<f32>>,
    logits: Vec<f32>,
    pre: Vec<f32>,
    grads: [Vec<f32>; 2],
    batch: usize,
}

impl Discriminator {
    /// A new discriminator with the DCGAN initialisation (conv weights N(0, 0.02²),
    /// BatchNorm γ N(1, 0.02²), β 0).
    pub fn random(shape: GanShape, rng: &mut Rng) -> Self {
        let ch = channels(&shape);
        let mut convs = Vec::with_capacity(LAYERS);
        let mut bns = Vec::with_capacity(3);
        for l in 0..LAYERS {
            let (s, p) = stride_pad(l);
            let w = normal_init(rng, ch[l] * ch[l + 1] * 16, 0.0, INIT_STD);
            convs.push(Conv2d::from_torch(ch[l], ch[l + 1], 4, s, p, &w));
            if (1..4).contains(&l) {
                let gamma = normal_init(rng, ch[l + 1], 1.0, INIT_STD);
                bns.push(BatchNorm::new(gamma, vec![0.0; ch[l + 1]]));
            }
        }
        Self::assemble(shape, convs, bns)
    }

    fn assemble(shape: GanShape, convs: Vec<Conv2d>, bns: Vec<BatchNorm>) -> Self {
        Self {
            shape,
            convs,
            bns,
            acts: vec![Vec::new(); LAYERS],
            logits: Vec::new(),
            pre: Vec::new(),
            grads: [Vec::new(), Vec::new()],
            batch: 0,
        }
    }

    /// Builds the discriminator from PyTorch-named tensors (`main.0.weight`, …, running
    /// statistics required) and the BatchNorms' `num_batches_tracked`.
    pub fn from_tensors(
        shape: GanShape,
        tensors: &BTreeMap<String, NamedTensor>,
        batches: &BTreeMap<String, i64>,
    ) -> Result<Self, ShapeError> {
        let ch = channels(&shape);
        let mut convs = Vec::with_capacity(LAYERS);
        let mut bns = Vec::with_capacity(3);
        for l in 0..LAYERS {
            let (s, p) = stride_pad(l);
            let name = format!("main.{}.weight", CONV_INDEX[l]);
            let w = take_tensor(tensors, &name, &[ch[l + 1], ch[l], 4, 4])?;
            convs.push(Conv2d::from_torch(ch[l], ch[l + 1], 4, s, p, w));
            if (1..4).contains(&l) {
                let bn = format!("main.{}", BN_INDEX[l - 1]);
                let c = [ch[l + 1]];
                let mut b = BatchNorm::new(
                    take_tensor(tensors, &format!("{bn}.weight"), &c)?.to_vec(),
                    take_tensor(tensors, &format!("{bn}.bias"), &c)?.to_vec(),
                );
                b.running_mean = take_tensor(tensors, &format!("{bn}.running_mean"), &c)?.to_vec();
                b.running_var = take_tensor(tensors, &format!("{bn}.running_var"), &c)?.to_vec();
                b.batches_tracked = batches
                    .get(&format!("{bn}.num_batches_tracked"))
                    .copied()
                    .unwrap_or(0);
                bns.push(b);
            }
        }
        Ok(Self::assemble(shape, convs, bns))
    }

    /// The state dict in PyTorch's names and layouts, with the BatchNorms' counters apart.
    pub fn tensors(&self) -> (Vec<NamedTensor>, BTreeMap<String, i64>) {
        let mut out = Vec::new();
        let mut batches = BTreeMap::new();
        for (l, conv) in self.convs.iter().enumerate() {
            out.push(NamedTensor {
                name: format!("main.{}.weight", CONV_INDEX[l]),
                shape: conv.torch_shape(),
                values: conv.to_torch(&conv.weight.value),
            });
            if (1..4).contains(&l) {
                let b = &self.bns[l - 1];
                let bn = format!("main.{}", BN_INDEX[l - 1]);
                for (p, v) in [
                    ("weight", &b.gamma.value),
                    ("bias", &b.beta.value),
                    ("running_mean", &b.running_mean),
                    ("running_var", &b.running_var),
                ] {
                    out.push(NamedTensor {
                        name: format!("{bn}.{p}"),
                        shape: vec![b.channels],
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
        for (l, conv) in self.convs.iter_mut().enumerate() {
            out.push(&mut conv.weight);
            if (1..4).contains(&l)
                && let Some(b) = bns.next()
            {
                out.push(&mut b.gamma);
                out.push(&mut b.beta);
            }
        }
        out
    }

    /// Names, shapes and layouts of the parameters, in [`Self::params_mut`]'s order.
    pub fn param_specs(&self) -> Vec<ParamSpec<'_>> {
        let mut out = Vec::new();
        for (l, conv) in self.convs.iter().enumerate() {
            out.push(ParamSpec::Conv(
                format!("main.{}.weight", CONV_INDEX[l]),
                conv,
            ));
            if (1..4).contains(&l) {
                let (bn, c) = (BN_INDEX[l - 1], self.bns[l - 1].channels);
                out.push(ParamSpec::Vector(format!("main.{bn}.weight"), c));
                out.push(ParamSpec::Vector(format!("main.{bn}.bias"), c));
            }
        }
        out
    }

    /// Zeroes every gradient.
    pub fn zero_grad(&mut self) {
        self.params_mut().into_iter().for_each(Param::zero_grad);
    }

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

    /// Training-mode forward of `images` (`[n][64][64][3]`): one logit per image. BatchNorm
    /// normalises each of `groups` equal parts of the batch alone (the real and the generated
    /// half of a discriminator step). `pause` is called between layers.
    pub fn forward_train(
        &mut self,
        images: &[f32],
        groups: usize,
        pause: &mut dyn FnMut() -> bool,
    ) -> &[f32] {
        let batch = images.len() / (IMAGE_SIZE * IMAGE_SIZE * 3);
        self.batch = batch;
        for l in 0..LAYERS {
            let Some(g) = self.convs[l].geom(batch, SIDES[l]) else {
                continue;
            };
            let out_len = g.rows() * self.convs[l].c_out;
            let (done, rest) = self.acts.split_at_mut(l + 1);
            let input: &[f32] = if l == 0 { images } else { &done[l] };
            if l + 1 == LAYERS {
                ensure_len(&mut self.logits, out_len);
                self.convs[l].forward(&g, input, &mut self.logits);
            } else {
                let out = &mut rest[0];
                ensure_len(out, out_len);
                if l == 0 {
                    self.convs[l].forward(&g, input, out);
                } else {
                    ensure_len(&mut self.pre, out_len);
                    self.convs[l].forward(&g, input, &mut self.pre);
                    self.bns[l - 1].forward_train(&self.pre, groups, out);
                }
                leaky_relu(out, LEAKY_SLOPE);
            }
            pause();
        }
        &self.logits
    }

    /// Backward of the last [`Self::forward_train`] for `d_logits`: adds the parameters'
    /// gradients when `param_grads` (the discriminator's own step; the generator's step only
    /// needs the images' gradient), and writes d loss / d images into `d_images` when given.
    pub fn backward(
        &mut self,
        d_logits: &[f32],
        param_grads: bool,
        d_images: Option<&mut [f32]>,
        pause: &mut dyn FnMut() -> bool,
    ) {
        let batch = self.batch;
        let [ga, gb] = &mut self.grads;
        let mut cur: &mut Vec<f32> = ga;
        let mut next: &mut Vec<f32> = gb;
        ensure_len(cur, d_logits.len());
        cur.copy_from_slice(d_logits);
        let mut d_images = d_images;
        for l in (0..LAYERS).rev() {
            let Some(g) = self.convs[l].geom(batch, SIDES[l]) else {
                continue;
            };
            if l + 1 < LAYERS {
                // cur is d/d(this layer's LeakyReLU output).
                leaky_relu_backward(&self.acts[l + 1], cur, LEAKY_SLOPE);
                if l > 0 {
                    ensure_len(next, cur.len());
                    self.bns[l - 1].backward(cur, param_grads, next);
                    std::mem::swap(&mut cur, &mut next);
                }
            }
            let dx = if l > 0 {
                ensure_len(next, g.image_len());
                Some(&mut next[..])
            } else {
                d_images.take()
            };
            self.convs[l].backward(&g, cur, param_grads, dx);
            std::mem::swap(&mut cur, &mut next);
            pause();
        }
    }
}
