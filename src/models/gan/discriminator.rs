//! The standard 64×64 DCGAN discriminator (as in PyTorch's DCGAN example): four strided
//! convolutions with LeakyReLU(0.2) (BatchNorm on all but the first), then a 4×4
//! convolution to one logit per image.

use std::collections::BTreeMap;

use super::activation::{leaky_relu, leaky_relu_backward};
use super::rng::Rng;
use super::stack::{LayerSpec, Stack};
use super::{Direct, GanShape, IMAGE_SIZE, LEAKY_SLOPE, NamedTensor, ShapeError, ensure_len};

const LAYERS: usize = 5;
/// Input side of each layer.
const SIDES: [usize; LAYERS] = [IMAGE_SIZE, 32, 16, 8, 4];

/// The architecture: `Conv2d(3, d, 4, 2, 1)`, `(d, 2d)`, `(2d, 4d)`, `(4d, 8d)` with
/// stride 2 and padding 1, each followed by LeakyReLU (BatchNorm before it on the middle
/// three), then `Conv2d(8d, 1, 4, 1, 0)`; `nn.Sequential` positions 0, 2, 5, 8, 11.
fn specs(shape: &GanShape) -> Vec<LayerSpec> {
    let d = shape.ndf;
    let ch = [3, d, 2 * d, 4 * d, 8 * d, 1];
    const INDEX: [usize; LAYERS] = [0, 2, 5, 8, 11];
    (0..LAYERS)
        .map(|l| LayerSpec {
            c_in: ch[l],
            c_out: ch[l + 1],
            stride: if l + 1 == LAYERS { 1 } else { 2 },
            pad: if l + 1 == LAYERS { 0 } else { 1 },
            index: INDEX[l],
            bn: (1..4).contains(&l),
        })
        .collect()
}

/// The discriminator.
#[derive(Clone, Debug)]
pub struct Discriminator {
    /// Its widths.
    pub shape: GanShape,
    /// The convolutions and the BatchNorms after convolutions 1, 2 and 3.
    pub layers: Stack<Direct>,
    /// The last forward: `acts[l]` is layer `l − 1`'s output after LeakyReLU (`acts[0]`
    /// unused: the input's columns live in the first convolution).
    acts: Vec<Vec<f32>>,
    logits: Vec<f32>,
    pre: Vec<f32>,
    grads: [Vec<f32>; 2],
    batch: usize,
}

impl Discriminator {
    /// A new discriminator initialised as the DCGAN paper does (see [`Stack::random`]).
    pub fn random(shape: GanShape, rng: &mut Rng) -> Self {
        Self::assemble(shape, Stack::random(&specs(&shape), rng))
    }

    fn assemble(shape: GanShape, layers: Stack<Direct>) -> Self {
        Self {
            shape,
            layers,
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
        let layers = Stack::from_tensors(&specs(&shape), tensors, batches, true)?;
        Ok(Self::assemble(shape, layers))
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
            let conv = &mut self.layers.convs[l];
            let Some(g) = conv.geom(batch, SIDES[l]) else {
                continue;
            };
            let out_len = g.rows() * conv.c_out;
            let (done, rest) = self.acts.split_at_mut(l + 1);
            let input: &[f32] = if l == 0 { images } else { &done[l] };
            if l + 1 == LAYERS {
                ensure_len(&mut self.logits, out_len);
                conv.forward(&g, input, &mut self.logits);
            } else {
                let out = &mut rest[0];
                ensure_len(out, out_len);
                if let Some(bn) = &mut self.layers.bns[l] {
                    ensure_len(&mut self.pre, out_len);
                    conv.forward(&g, input, &mut self.pre);
                    bn.forward_train(&self.pre, groups, out);
                } else {
                    conv.forward(&g, input, out);
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
            let conv = &mut self.layers.convs[l];
            let Some(g) = conv.geom(batch, SIDES[l]) else {
                continue;
            };
            if l + 1 < LAYERS {
                // cur is d/d(this layer's LeakyReLU output).
                leaky_relu_backward(&self.acts[l + 1], cur, LEAKY_SLOPE);
                if let Some(bn) = &mut self.layers.bns[l] {
                    ensure_len(next, cur.len());
                    bn.backward(cur, param_grads, next);
                    std::mem::swap(&mut cur, &mut next);
                }
            }
            let dx = if l > 0 {
                ensure_len(next, g.image_len());
                Some(&mut next[..])
            } else {
                d_images.take()
            };
            conv.backward(&g, cur, param_grads, dx);
            std::mem::swap(&mut cur, &mut next);
            pause();
        }
    }
}
