//! The trainable part: LoRA pairs on the chosen projections of every layer, initialised as
//! PEFT does (A Kaiming-uniform, B zero; Hu et al. 2021), their gradients, and AdamW
//! (Loshchilov & Hutter 2019) on A and B only, step for step as `torch.optim.AdamW`.

use rand::Rng;

use super::TrainModel;
use crate::models::llm::lora::{LoraAdapter, LoraPair, LoraTarget};

/// Index of a target in [`LoraTarget::ALL`].
pub(crate) fn slot(target: LoraTarget) -> usize {
    match target {
        LoraTarget::Q => 0,
        LoraTarget::K => 1,
        LoraTarget::V => 2,
        LoraTarget::O => 3,
        LoraTarget::Gate => 4,
        LoraTarget::Up => 5,
        LoraTarget::Down => 6,
    }
}

/// An adapter being trained: the [`LoraAdapter`] itself plus where each (layer, target) pair
/// sits in it.
#[derive(Clone, Debug)]
pub struct Lora {
    adapter: LoraAdapter,
    rank: usize,
    /// Per layer, per target slot: the pair's index in `adapter.pairs`.
    index: Vec<[Option<usize>; 7]>,
}

/// Why an adapter does not fit a model.
#[derive(Debug, thiserror::Error)]
pub enum LoraShapeError {
    /// The rank is zero or the pairs disagree on it.
    #[error("the adapter's rank must be at least 1 and the same for every pair")]
    Rank,
    /// No projection is adapted.
    #[error("the adapter adapts no projection: choose at least one target")]
    Empty,
    /// A pair names a layer or shape the model does not have.
    #[error(
        "the adapter's {target} of layer {layer} is {n_out}×{n_in}, the model's is {want_out}×{want_in}: it was made for another model"
    )]
    Shape {
        layer: usize,
        target: &'static str,
        n_out: usize,
        n_in: usize,
        want_out: usize,
        want_in: usize,
    },
    /// The adapter was made for another architecture.
    #[error("the adapter is for {found} models, this model is {want}")]
    Architecture { found: String, want: String },
}

impl Lora {
    /// A fresh adapter of `rank` on `targets` of every layer: A uniform in ±1/sqrt(n_in) (PEFT's
    /// `kaiming_uniform_(a=sqrt(5))`), B zero, so training starts from the base model exactly.
    pub fn new(
        model: &TrainModel,
        rank: usize,
        alpha: f32,
        targets: &[LoraTarget],
        rng: &mut impl Rng,
    ) -> Result<Self, LoraShapeError> {
        if rank == 0 {
            return Err(LoraShapeError::Rank);
        }
        let mut pairs = Vec::new();
        for layer in 0..model.n_layer() {
            for &target in LoraTarget::ALL.iter().filter(|t| targets.contains(t)) {
                let (n_out, n_in) = model.target_shape(target);
                let bound = 1.0 / (n_in as f32).sqrt();
                let a = (0..rank * n_in)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                pairs.push(LoraPair {
                    layer,
                    target,
                    rank,
                    n_in,
                    n_out,
                    a,
                    b: vec![0.0; n_out * rank],
                });
            }
        }
        Self::from_adapter(
            model,
            LoraAdapter {
                architecture: model.architecture().gguf_name().to_string(),
                alpha,
                pairs,
            },
        )
    }

    /// Takes an existing adapter (a checkpoint, a test fixture), checking it fits `model`.
    pub fn from_adapter(model: &TrainModel, adapter: LoraAdapter) -> Result<Self, LoraShapeError> {
        let want = model.architecture().gguf_name();
        if adapter.architecture != want {
            return Err(LoraShapeError::Architecture {
                found: adapter.architecture,
                want: want.into(),
            });
        }
        let rank = adapter
            .pairs
            .first()
            .map(|p| p.rank)
            .ok_or(LoraShapeError::Empty)?;
        let mut index = vec![[None; 7]; model.n_layer()];
        for (i, p) in adapter.pairs.iter().enumerate() {
            if p.rank != rank || rank == 0 {
                return Err(LoraShapeError::Rank);
            }
            let (want_out, want_in) = model.target_shape(p.target);
            let fits = p.layer < model.n_layer()
                && (p.n_out, p.n_in) == (want_out, want_in)
                && p.a.len() == rank * p.n_in
                && p.b.len() == p.n_out * rank;
            if !fits {
                return Err(LoraShapeError::Shape {
                    layer: p.layer,
                    target: p.target.short_name(),
                    n_out: p.n_out,
                    n_in: p.n_in,
                    want_out,
                    want_in,
                });
            }
            index[p.layer][slot(p.target)] = Some(i);
        }
        Ok(Self {
            adapter,
            rank,
            index,
        })
    }

    /// The adapter as trained so far.
    pub fn adapter(&self) -> &LoraAdapter {
        &self.adapter
    }

    /// The rank r.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// `alpha / rank`: how much B·A adds to a weight.
    pub fn scale(&self) -> f32 {
        self.adapter.alpha / self.rank as f32
    }

    /// Trainable values (A and B of every pair).
    pub fn parameter_count(&self) -> usize {
        self.adapter
            .pairs
            .iter()
            .map(|p| p.a.len() + p.b.len())
            .sum()
    }

    /// The pair on `target` of `layer` and its index, if adapted.
    pub(crate) fn pair(&self, layer: usize, target: LoraTarget) -> Option<(usize, &LoraPair)> {
        let i = self.index.get(layer)?[slot(target)]?;
        Some((i, &self.adapter.pairs[i]))
    }

    /// Zeroed gradients shaped like this adapter.
    pub fn zero_grads(&self) -> Grads {
        Grads {
            a: self
                .adapter
                .pairs
                .iter()
                .map(|p| vec![0.0; p.a.len()])
                .collect(),
            b: self
                .adapter
                .pairs
                .iter()
                .map(|p| vec![0.0; p.b.len()])
                .collect(),
        }
    }

    /// Whether every value is finite (a diverged step leaves NaN or infinity behind).
    pub fn is_finite(&self) -> bool {
        self.adapter
            .pairs
            .iter()
            .all(|p| p.a.iter().chain(&p.b).all(|v| v.is_finite()))
    }
}

/// Gradients of the loss with respect to every A and B, in the adapter's pair order.
#[derive(Clone, Debug, PartialEq)]
pub struct Grads {
    /// dL/dA per pair (`rank × n_in`).
    pub a: Vec<Vec<f32>>,
    /// dL/dB per pair (`n_out × rank`).
    pub b: Vec<Vec<f32>>,
}

impl Grads {
    /// Sets every gradient to zero (before a step accumulates into them).
    pub fn clear(&mut self) {
        self.a
            .iter_mut()
            .chain(&mut self.b)
            .for_each(|g| g.fill(0.0));
    }
}

/// AdamW's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    /// The recipe: lr 1e-3, betas 0.9/0.999, eps 1e-8 (PyTorch's), decay 0.01.
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// AdamW's state: the step count and both moments of every A and B.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    /// Hyper-parameters (the learning rate may change between steps).
    pub config: AdamWConfig,
    /// Steps taken.
    pub step: u64,
    /// First moments, in [`Grads`]' layout.
    pub m: Grads,
    /// Second moments.
    pub v: Grads,
}

impl AdamW {
    /// Fresh state for `lora`.
    pub fn new(config: AdamWConfig, lora: &Lora) -> Self {
        Self {
            config,
            step: 0,
            m: lora.zero_grads(),
            v: lora.zero_grads(),
        }
    }

    /// Whether saved moments fit `lora` (a checkpoint of another adapter does not).
    pub fn fits(&self, lora: &Lora) -> bool {
        let shape = |g: &Grads| -> Vec<usize> { g.a.iter().chain(&g.b).map(Vec::len).collect() };
        let want = shape(&lora.zero_grads());
        shape(&self.m) == want && shape(&self.v) == want
    }

    /// One update of every A and B from `grads`, as `torch.optim.AdamW` (single-tensor form):
    /// decay, then the bias-corrected Adam step.
    pub fn update(&mut self, lora: &mut Lora, grads: &Grads) {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bc1 = 1.0 - (c.beta1 as f64).powi(t);
        let bc2 = 1.0 - (c.beta2 as f64).powi(t);
        let step_size = (c.lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let decay = 1.0 - c.lr * c.weight_decay;
        let params = lora
            .adapter
            .pairs
            .iter_mut()
            .flat_map(|p| [&mut p.a, &mut p.b]);
        let states = grads
            .a
            .iter()
            .zip(&grads.b)
            .zip(self.m.a.iter_mut().zip(&mut self.m.b))
            .zip(self.v.a.iter_mut().zip(&mut self.v.b))
            .flat_map(|(((ga, gb), (ma, mb)), (va, vb))| [(ga, ma, va), (gb, mb, vb)]);
        for (p, (g, m, v)) in params.zip(states) {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *p *= decay;
                *m += (g - *m) * (1.0 - c.beta1);
                *v = *v * c.beta2 + (1.0 - c.beta2) * g * g;
                let denom = v.sqrt() / bc2_sqrt + c.eps;
                *p -= step_size * *m / denom;
            }
        }
    }
}
