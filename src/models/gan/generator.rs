//! The trainable DCGAN generator: the Faces architecture (see [`crate::models::dcgan`]) with
//! BatchNorm in training mode, its backward pass, and an evaluation-mode forward (running
//! statistics, what the Faces panel draws).

use std::collections::BTreeMap;

use super::activation::{leaky_relu, leaky_relu_backward, tanh, tanh_backward};
use super::rng::Rng;
use super::stack::{LayerSpec, Stack};
use super::{GanShape, IMAGE_SIZE, NamedTensor, ShapeError, Transposed, ensure_len};

/// Layers (transposed convolutions); every one but the last is followed by BatchNorm + ReLU.
const LAYERS: usize = 5;

/// The generator.
#[derive(Clone, Debug)]
pub struct Generator {
    /// Its widths.
    pub shape: GanShape,
    /// The transposed convolutions and the BatchNorms after the first four.
    pub layers: Stack<Transposed>,
    /// The last training forward: `acts[0]` the latents, `acts[l + 1]` layer `l`'s output
    /// (after ReLU; after tanh for the last: the images).
    acts: Vec<Vec<f32>>,
    pre: Vec<f32>,
    grads: [Vec<f32>; 2],
    batch: usize,
}

/// Input side of each layer.
const SIDES: [usize; LAYERS] = [1, 4, 8, 16, 32];

/// The architecture: `ConvTranspose2d(nz, 8g, 4, 1, 0)`, then `(8g, 4g)`, `(4g, 2g)`, `(2g, g)`,
/// `(g, 3)` with stride 2 and padding 1; BatchNorm + ReLU after all but the last
/// (`nn.Sequential` positions `3l` and `3l + 1`).
fn specs(shape: &GanShape) -> Vec<LayerSpec> {
    let g = shape.ngf;
    let ch = [shape.nz, 8 * g, 4 * g, 2 * g, g, 3];
    (0..LAYERS)
        .map(|l| LayerSpec {
            c_in: ch[l],
            c_out: ch[l + 1],
            stride: if l == 0 { 1 } else { 2 },
            pad: if l == 0 { 0 } else { 1 },
            index: 3 * l,
            bn: l + 1 < LAYERS,
        })
        .collect()
}

impl Generator {
    /// A new generator initialised as the DCGAN paper does (see [`Stack::random`]).
    pub fn random(shape: GanShape, rng: &mut Rng) -> Self {
        Self::assemble(shape, Stack::random(&specs(&shape), rng))
    }

    fn assemble(shape: GanShape, layers: Stack<Transposed>) -> Self {
        Self {
            shape,
            layers,
            acts: vec![Vec::new(); LAYERS + 1],
            pre: Vec::new(),
            grads: [Vec::new(), Vec::new()],
            batch: 0,
        }
    }

    /// Builds the generator from PyTorch-named tensors (a Faces file or a checkpoint).
    /// BatchNorm running statistics are taken when present (else mean 0, variance 1);
    /// `batches` gives each BatchNorm's `num_batches_tracked` (absent: 0).
    pub fn from_tensors(
        shape: GanShape,
        tensors: &BTreeMap<String, NamedTensor>,
        batches: &BTreeMap<String, i64>,
    ) -> Result<Self, ShapeError> {
        let layers = Stack::from_tensors(&specs(&shape), tensors, batches, false)?;
        Ok(Self::assemble(shape, layers))
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
            let conv = &mut self.layers.convs[l];
            let Some(g) = conv.geom(batch, SIDES[l]) else {
                continue;
            };
            let (done, rest) = self.acts.split_at_mut(l + 1);
            let out = &mut rest[0];
            ensure_len(out, g.image_len());
            if let Some(bn) = &mut self.layers.bns[l] {
                ensure_len(&mut self.pre, g.image_len());
                conv.forward(&g, &done[l], &mut self.pre);
                bn.forward_train(&self.pre, 1, out);
                leaky_relu(out, 0.0);
            } else {
                conv.forward(&g, &done[l], out);
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
        for (l, conv) in self.layers.convs.iter().enumerate() {
            let Some(g) = conv.geom(batch, SIDES[l]) else {
                return Vec::new();
            };
            let mut y = vec![0f32; g.image_len()];
            conv.forward_with(&g, &x, &mut y, &mut col);
            if let Some(bn) = &self.layers.bns[l] {
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
            let conv = &mut self.layers.convs[l];
            let Some(g) = conv.geom(batch, SIDES[l]) else {
                continue;
            };
            if let Some(bn) = &mut self.layers.bns[l] {
                // cur is d/d(ReLU output): through ReLU, then BatchNorm.
                leaky_relu_backward(&self.acts[l + 1], cur, 0.0);
                ensure_len(next, cur.len());
                bn.backward(cur, true, next);
                std::mem::swap(&mut cur, &mut next);
            }
            let in_len = g.rows() * conv.c_in;
            let dx = if l > 0 {
                ensure_len(next, in_len);
                Some(&mut next[..])
            } else {
                None
            };
            conv.backward(&g, &self.acts[l], cur, true, dx);
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
        let (t, b) = g.layers.tensors();
        let map: BTreeMap<_, _> = t.into_iter().map(|t| (t.name.clone(), t)).collect();
        assert_eq!(map["main.0.weight"].shape, vec![4, 16, 4, 4]);
        assert_eq!(map["main.12.weight"].shape, vec![2, 3, 4, 4]);
        let g2 = Generator::from_tensors(shape, &map, &b).unwrap();
        assert_eq!(g2.layers.tensors().0, g.layers.tensors().0);
        let z = vec![0.3f32; 8];
        assert_eq!(g.forward_eval(&z), g2.forward_eval(&z));
        let wrong = GanShape { ngf: 3, ..shape };
        assert!(matches!(
            Generator::from_tensors(wrong, &map, &b),
            Err(ShapeError::Shape { .. })
        ));
    }
}
