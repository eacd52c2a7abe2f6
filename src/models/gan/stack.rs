//! What the generator and the discriminator share besides their passes: a stack of
//! convolutions, each optionally followed by a BatchNorm, described by an architecture table
//! ([`LayerSpec`]) and named as PyTorch's `nn.Sequential` names them (`main.<index>`), with
//! the initialisation, the state-dict conversions, the parameter list in PyTorch's order, and
//! the running statistics a stopped step restores.

use std::collections::BTreeMap;

use super::rng::{Rng, normal};
use super::{
    BatchNorm, Conv, Direction, INIT_STD, NamedTensor, Param, ParamSpec, ShapeError, take_tensor,
};

/// Kernel side of every DCGAN convolution.
pub const KERNEL: usize = 4;

/// A state-dict tensor's PyTorch name and where its values live.
pub type Named<'a, D> = (String, TensorSource<'a, D>);

/// One row of a network's architecture table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSpec {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Stride.
    pub stride: usize,
    /// Padding.
    pub pad: usize,
    /// The convolution's `nn.Sequential` index; its BatchNorm, if any, is the next.
    pub index: usize,
    /// Whether a BatchNorm follows.
    pub bn: bool,
}

/// Where a state-dict tensor's values live.
#[derive(Clone, Copy, Debug)]
pub enum TensorSource<'a, D> {
    /// A convolution's weight (in this module's layout: convert with its `layout()`).
    Conv(&'a Conv<D>),
    /// A BatchNorm vector (the same layout everywhere).
    Vector(&'a [f32]),
}

/// Running statistics and batch counters of every BatchNorm, in order.
pub type RunningStats = Vec<(Vec<f32>, Vec<f32>, i64)>;

/// The layers of one network.
#[derive(Clone, Debug)]
pub struct Stack<D> {
    /// The convolutions, first to last.
    pub convs: Vec<Conv<D>>,
    /// The BatchNorm after each convolution, if any.
    pub bns: Vec<Option<BatchNorm>>,
    /// `nn.Sequential` indices of each convolution and its BatchNorm.
    index: Vec<(usize, usize)>,
}

/// Reads the BatchNorm named `p` (`main.<index>`) with `channels` channels; its running
/// statistics are required when `require_running`, else taken when present (mean 0,
/// variance 1 otherwise).
fn bn_from_tensors(
    tensors: &BTreeMap<String, NamedTensor>,
    batches: &BTreeMap<String, i64>,
    p: &str,
    channels: usize,
    require_running: bool,
) -> Result<BatchNorm, ShapeError> {
    let c = [channels];
    let mut b = BatchNorm::new(
        take_tensor(tensors, &format!("{p}.weight"), &c)?.to_vec(),
        take_tensor(tensors, &format!("{p}.bias"), &c)?.to_vec(),
    );
    if require_running || tensors.contains_key(&format!("{p}.running_mean")) {
        b.running_mean = take_tensor(tensors, &format!("{p}.running_mean"), &c)?.to_vec();
        let var = take_tensor(tensors, &format!("{p}.running_var"), &c)?;
        if var.iter().any(|v| *v < 0.0) {
            return Err(ShapeError::NonFinite(format!("{p}.running_var")));
        }
        b.running_var = var.to_vec();
    }
    b.batches_tracked = batches
        .get(&format!("{p}.num_batches_tracked"))
        .copied()
        .unwrap_or(0);
    Ok(b)
}

impl<D: Direction> Stack<D> {
    fn assemble(specs: &[LayerSpec], convs: Vec<Conv<D>>, bns: Vec<Option<BatchNorm>>) -> Self {
        let index = specs.iter().map(|s| (s.index, s.index + 1)).collect();
        Self { convs, bns, index }
    }

    /// New layers initialised as the DCGAN paper does: conv weights N(0, 0.02²), BatchNorm
    /// γ N(1, 0.02²), β 0 (drawn layer by layer, the weight first).
    pub fn random(specs: &[LayerSpec], rng: &mut Rng) -> Self {
        let mut convs = Vec::with_capacity(specs.len());
        let mut bns = Vec::with_capacity(specs.len());
        for s in specs {
            let w = normal(rng, s.c_in * s.c_out * KERNEL * KERNEL, 0.0, INIT_STD);
            convs.push(Conv::from_torch(
                s.c_in, s.c_out, KERNEL, s.stride, s.pad, &w,
            ));
            bns.push(
                s.bn.then(|| {
                    BatchNorm::new(normal(rng, s.c_out, 1.0, INIT_STD), vec![0.0; s.c_out])
                }),
            );
        }
        Self::assemble(specs, convs, bns)
    }

    /// The layers from PyTorch-named tensors (`main.<index>.weight`, …); BatchNorm running
    /// statistics are required when `require_running`; `batches` gives each BatchNorm's
    /// `num_batches_tracked` (absent: 0).
    pub fn from_tensors(
        specs: &[LayerSpec],
        tensors: &BTreeMap<String, NamedTensor>,
        batches: &BTreeMap<String, i64>,
        require_running: bool,
    ) -> Result<Self, ShapeError> {
        let mut convs = Vec::with_capacity(specs.len());
        let mut bns = Vec::with_capacity(specs.len());
        for s in specs {
            let mut conv = Conv::<D>::without_weight(s.c_in, s.c_out, KERNEL, s.stride, s.pad);
            let layout = conv.layout();
            let name = format!("main.{}.weight", s.index);
            let w = take_tensor(tensors, &name, &layout.torch_shape())?;
            conv.weight = Param::new(layout.from_torch(w));
            convs.push(conv);
            bns.push(if s.bn {
                let p = format!("main.{}", s.index + 1);
                Some(bn_from_tensors(
                    tensors,
                    batches,
                    &p,
                    s.c_out,
                    require_running,
                )?)
            } else {
                None
            });
        }
        Ok(Self::assemble(specs, convs, bns))
    }

    /// Every state-dict tensor's PyTorch name and where its values live (running statistics
    /// included), with each BatchNorm's `num_batches_tracked` apart (an integer).
    pub fn tensor_names(&self) -> (Vec<Named<'_, D>>, BTreeMap<String, i64>) {
        let mut out = Vec::new();
        let mut batches = BTreeMap::new();
        for ((conv, bn), &(ci, bi)) in self.convs.iter().zip(&self.bns).zip(&self.index) {
            out.push((format!("main.{ci}.weight"), TensorSource::Conv(conv)));
            let Some(b) = bn else { continue };
            for (p, v) in [
                ("weight", &b.gamma.value),
                ("bias", &b.beta.value),
                ("running_mean", &b.running_mean),
                ("running_var", &b.running_var),
            ] {
                out.push((format!("main.{bi}.{p}"), TensorSource::Vector(v)));
            }
            batches.insert(format!("main.{bi}.num_batches_tracked"), b.batches_tracked);
        }
        (out, batches)
    }

    /// Every tensor in PyTorch's names and layouts (copies), with the counters apart.
    pub fn tensors(&self) -> (Vec<NamedTensor>, BTreeMap<String, i64>) {
        let (names, batches) = self.tensor_names();
        let tensors = names
            .into_iter()
            .map(|(name, source)| match source {
                TensorSource::Conv(conv) => {
                    let layout = conv.layout();
                    NamedTensor {
                        name,
                        shape: layout.torch_shape(),
                        values: layout.to_torch(&conv.weight.value),
                    }
                }
                TensorSource::Vector(v) => NamedTensor {
                    name,
                    shape: vec![v.len()],
                    values: v.to_vec(),
                },
            })
            .collect();
        (tensors, batches)
    }

    /// The learnable parameters in PyTorch's `parameters()` order.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut out: Vec<&mut Param> = Vec::with_capacity(3 * self.convs.len());
        for (conv, bn) in self.convs.iter_mut().zip(&mut self.bns) {
            out.push(&mut conv.weight);
            if let Some(b) = bn {
                out.push(&mut b.gamma);
                out.push(&mut b.beta);
            }
        }
        out
    }

    /// Names, shapes and layouts of the parameters, in [`Self::params_mut`]'s order.
    pub fn param_specs(&self) -> Vec<ParamSpec> {
        let mut out = Vec::new();
        for ((conv, bn), &(ci, bi)) in self.convs.iter().zip(&self.bns).zip(&self.index) {
            out.push(ParamSpec::Conv(format!("main.{ci}.weight"), conv.layout()));
            if let Some(b) = bn {
                out.push(ParamSpec::Vector(format!("main.{bi}.weight"), b.channels));
                out.push(ParamSpec::Vector(format!("main.{bi}.bias"), b.channels));
            }
        }
        out
    }

    /// Zeroes every gradient.
    pub fn zero_grad(&mut self) {
        self.params_mut().into_iter().for_each(Param::zero_grad);
    }

    /// The BatchNorms' running statistics and counters.
    pub fn running_stats(&self) -> RunningStats {
        self.bns
            .iter()
            .flatten()
            .map(|b| {
                (
                    b.running_mean.clone(),
                    b.running_var.clone(),
                    b.batches_tracked,
                )
            })
            .collect()
    }

    /// Puts back what [`Self::running_stats`] returned.
    pub fn restore_running_stats(&mut self, saved: RunningStats) {
        for (b, (m, v, n)) in self.bns.iter_mut().flatten().zip(saved) {
            b.running_mean = m;
            b.running_var = v;
            b.batches_tracked = n;
        }
    }
}
