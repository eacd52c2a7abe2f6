//! multistyle26: a feed-forward style network with 26 styles in one set of weights.
//!
//! The architecture is Johnson et al.'s transformer net ([Perceptual Losses for Real-Time Style
//! Transfer](https://arxiv.org/abs/1603.08155)) with the conditional instance norm of Dumoulin
//! et al. ([A Learned Representation for Artistic Style](https://arxiv.org/abs/1610.07629)):
//! every normalisation has one (γ, β) row per style, and a blend of styles is the weighted mix
//! of those rows. Layers, all convolutions bias-free with reflect padding:
//!
//! ```text
//! contract  9×9 3→32, 3×3/2 32→32, 3×3/2 32→32           CIN + ReLU each
//! res ×6    x + CIN(conv(ReLU(CIN(conv(x)))))             3×3 32→32
//! expand    2× up, 3×3 32→8; 2× up, 3×3 8→4 (CIN + ReLU); 9×9 4→3, CIN, sigmoid
//! ```
//!
//! Weights and layer attributes are read from `multistyle26.onnx` by name
//! (`contract.0.w`, `contract.0.norm.gamma`, ...).

use std::path::Path;

use super::direct;
use super::ops::{Conv, FeatureMap, Moments, PadMode, clamp, map_planes, merge_moments};
use super::tile_plan::MapFloats;
use super::{STYLE_COUNT, StyleError, StyleMix, check_cancel};
use crate::models::onnx::OnnxModel;

/// Instance-norm epsilon in the exported graph.
const EPS: f32 = 1e-5;

/// What follows a layer's conditional instance norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Act {
    Relu,
    /// The second conv of a residual block: no activation, the block input is added.
    Residual,
    Sigmoid,
}

#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub(crate) name: String,
    pub(crate) conv: Conv,
    /// `[26, c]` per-style scales and shifts.
    pub(crate) gamma: Vec<f32>,
    pub(crate) beta: Vec<f32>,
    pub(crate) upsample: usize,
    pub(crate) act: Act,
}

/// Per-layer instance-norm statistics (mean and biased variance per channel of the
/// convolution's output), in layer order. Computed on one image and reused for the tiles of a
/// larger one so all tiles are normalised alike.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MultistyleStats {
    /// `(mean, var)` per normalised layer.
    pub layers: Vec<(Vec<f32>, Vec<f32>)>,
}

/// The loaded multistyle26 network.
#[derive(Clone, Debug)]
pub struct Multistyle26 {
    pub(crate) layers: Vec<Layer>,
}

/// The per-style parameters mixed for one blend: `(γ, β)` per layer.
#[derive(Clone, Debug)]
pub struct MixedStyle {
    pub(crate) norms: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Multistyle26 {
    /// Reads the weights from `multistyle26.onnx`.
    pub fn load(path: &Path) -> Result<Self, StyleError> {
        let model = OnnxModel::open(path)?;
        let mut names: Vec<(String, usize, Act)> = vec![
            ("contract.0".into(), 1, Act::Relu),
            ("contract.1".into(), 1, Act::Relu),
            ("contract.2".into(), 1, Act::Relu),
        ];
        for i in 0..6 {
            names.push((format!("res.{i}.0"), 1, Act::Relu));
            names.push((format!("res.{i}.1"), 1, Act::Residual));
        }
        names.push(("expand.0".into(), 2, Act::Relu));
        names.push(("expand.1".into(), 2, Act::Relu));
        names.push(("expand.2".into(), 1, Act::Sigmoid));
        let mut layers = Vec::with_capacity(names.len());
        for (name, upsample, act) in names {
            layers.push(load_layer(&model, &name, upsample, act)?);
        }
        // The chain must connect: each layer's input channels are the previous one's outputs.
        let mut c = 3;
        for l in &layers {
            if l.conv.cin != c {
                return Err(StyleError::architecture(
                    path,
                    format!(
                        "{} takes {} channels, the previous layer gives {c}",
                        l.name, l.conv.cin
                    ),
                ));
            }
            c = l.conv.cout;
        }
        if c != 3 {
            return Err(StyleError::architecture(path, "the output is not RGB"));
        }
        Ok(Self { layers })
    }

    /// Its feature maps per input pixel (what a GPU run of it holds).
    pub fn map_floats(&self) -> MapFloats {
        MapFloats::of(
            self.layers
                .iter()
                .map(|l| (l.conv.cout, l.conv.stride, l.upsample)),
        )
    }

    /// Mixes the 26 styles' norm parameters with `mix`'s weights (normalised to sum 1).
    pub fn mix(&self, mix: &StyleMix) -> MixedStyle {
        let w = mix.weights();
        let norms = self
            .layers
            .iter()
            .map(|l| {
                let c = l.conv.cout;
                let blend = |rows: &[f32]| -> Vec<f32> {
                    (0..c)
                        .map(|ch| (0..STYLE_COUNT).map(|s| w[s] * rows[s * c + ch]).sum())
                        .collect()
                };
                (blend(&l.gamma), blend(&l.beta))
            })
            .collect();
        MixedStyle { norms }
    }

    /// Runs the network on an RGB image in 0..1 (`h`, `w` multiples of 4 keep the size; the
    /// graph's own arithmetic otherwise). With `stats`, every instance norm uses the given
    /// statistics instead of the image's own (tiles of a larger image); the statistics used are
    /// returned either way.
    pub fn forward(
        &self,
        x: &FeatureMap,
        style: &MixedStyle,
        stats: Option<&MultistyleStats>,
        cancel: &(dyn Fn() -> bool + Sync),
    ) -> Result<(FeatureMap, MultistyleStats), StyleError> {
        // On a pool thread, each layer's parallel loops fork locally instead of being injected
        // from outside and waking a worker every time.
        rayon::scope(|_| self.forward_in_pool(x, style, stats, cancel))
    }

    fn forward_in_pool(
        &self,
        x: &FeatureMap,
        style: &MixedStyle,
        stats: Option<&MultistyleStats>,
        cancel: &(dyn Fn() -> bool + Sync),
    ) -> Result<(FeatureMap, MultistyleStats), StyleError> {
        if x.c != 3 || x.h < 4 || x.w < 4 {
            return Err(StyleError::BadInput(format!(
                "multistyle26 needs an RGB image of at least 4×4 pixels (got {}×{}×{})",
                x.w, x.h, x.c
            )));
        }
        if stats.is_some_and(|s| s.layers.len() != self.layers.len()) {
            return Err(StyleError::BadInput(
                "statistics from another network".into(),
            ));
        }
        direct::begin_run(x.pixels());
        let mut used = MultistyleStats::default();
        // The first layer reads the caller's map itself (a copy would cost 12 bytes a pixel).
        let mut cur: Option<FeatureMap> = None;
        let mut skip: Option<FeatureMap> = None;
        for (i, layer) in self.layers.iter().enumerate() {
            check_cancel(cancel)?;
            let input = cur.as_ref().unwrap_or(x);
            let residual = match layer.act {
                Act::Residual => skip.take(),
                _ => None,
            };
            if layer.name.starts_with("res.") && layer.name.ends_with(".0") {
                skip = Some(input.clone());
            }
            let fixed = stats.map(|s| &s.layers[i]);
            let (next, ms) = run_layer(layer, &style.norms[i], input, fixed, residual.as_ref());
            used.layers.push(ms);
            if let Some(done) = cur.replace(next) {
                direct::recycle(done.data);
            }
            if let Some(r) = residual {
                direct::recycle(r.data);
            }
        }
        Ok((cur.unwrap_or_else(|| x.clone()), used))
    }
}

/// One conv + conditional instance norm + activation. With `fixed` statistics the whole
/// normalisation runs in the convolution's epilogue (one pass); otherwise the epilogue
/// gathers the moments and a second pass normalises.
fn run_layer(
    layer: &Layer,
    (gamma, beta): &(Vec<f32>, Vec<f32>),
    x: &FeatureMap,
    fixed: Option<&(Vec<f32>, Vec<f32>)>,
    residual: Option<&FeatureMap>,
) -> (FeatureMap, (Vec<f32>, Vec<f32>)) {
    let c = layer.conv.cout;
    let affine = |mean: &[f32], var: &[f32]| -> (Vec<f32>, Vec<f32>) {
        (0..c)
            .map(|ch| {
                let a = gamma[ch] / (var[ch] + EPS).sqrt();
                (a, beta[ch] - mean[ch] * a)
            })
            .unzip()
    };
    let act = layer.act;
    // Normalise, activate (or add the block input) a run of one channel's values in place.
    let finish = move |seg: &mut [f32], a: f32, b: f32, skip: Option<&[f32]>| match (act, skip) {
        (Act::Relu, _) => seg
            .iter_mut()
            .for_each(|v| *v = clamp(*v * a + b, 0.0, f32::INFINITY)),
        (Act::Residual, Some(s)) => seg
            .iter_mut()
            .zip(s)
            .for_each(|(v, &r)| *v = *v * a + b + r),
        (Act::Residual, None) => seg.iter_mut().for_each(|v| *v = *v * a + b),
        (Act::Sigmoid, _) => seg
            .iter_mut()
            .for_each(|v| *v = 1.0 / (1.0 + (-(*v * a + b)).exp())),
    };
    let hw_out = |fm: &FeatureMap| fm.pixels();
    if let Some((mean, var)) = fixed {
        let (a, b) = affine(mean, var);
        let (oh, ow) = layer.conv.out_size(x.h, x.w, layer.upsample);
        let hw = oh * ow;
        let (out, _) = layer.conv.forward(x, layer.upsample, |ch, p0, seg| {
            let skip = residual.map(|r| &r.data[ch * hw + p0..ch * hw + p0 + seg.len()]);
            finish(seg, a[ch], b[ch], skip)
        });
        return (out, (mean.clone(), var.clone()));
    }
    let (mut out, parts) = layer
        .conv
        .forward(x, layer.upsample, |_, _, seg| Moments::of(seg));
    let (mean, var) = merge_moments(&parts, c);
    let (a, b) = affine(&mean, &var);
    let hw = hw_out(&out);
    map_planes(&mut out.data, hw, |ch, plane| {
        finish(plane, a[ch], b[ch], residual.map(|r| r.plane(ch)))
    });
    (out, (mean, var))
}

fn load_layer(
    model: &OnnxModel,
    name: &str,
    upsample: usize,
    act: Act,
) -> Result<Layer, StyleError> {
    let path = model.path();
    let conv_node = model.conv(&format!("/{name}/Conv_output_0"))?;
    let w = &conv_node.weights;
    let dims = [w.dims[0], w.dims[1], w.dims[2], w.dims[3]];
    if conv_node.group != 1 || dims[2] != dims[3] || dims[2] % 2 == 0 {
        return Err(StyleError::architecture(
            path,
            format!("{name}: unexpected convolution"),
        ));
    }
    // The graph pads explicitly (a reflect `Pad` node) and convolves unpadded.
    let pad = dims[2] / 2;
    let pad_node = model.producer_of_type(&format!("/{name}/Pad_output_0"), "Pad")?;
    if !String::from_utf8_lossy(
        &pad_node
            .attribute
            .iter()
            .find(|a| a.name == "mode")
            .map(|a| a.s.clone())
            .unwrap_or_default(),
    )
    .eq("reflect")
        || conv_node.pads != [0; 4]
    {
        return Err(StyleError::architecture(
            path,
            format!("{name}: expected reflect padding"),
        ));
    }
    let conv = Conv::from_oihw(
        &w.data,
        dims,
        conv_node.bias.clone(),
        conv_node.strides[0],
        [pad; 4],
        PadMode::Reflect,
    )
    .ok_or_else(|| StyleError::architecture(path, format!("{name}: bad weights")))?
    .with_direct();
    let gamma = model.constant(&format!("{name}.norm.gamma"))?;
    let beta = model.constant(&format!("{name}.norm.beta"))?;
    for t in [&gamma, &beta] {
        if t.dims != [STYLE_COUNT, dims[0]] {
            return Err(StyleError::architecture(
                path,
                format!(
                    "{name}: norm parameters {:?}, expected [26, {}]",
                    t.dims, dims[0]
                ),
            ));
        }
    }
    Ok(Layer {
        name: name.to_string(),
        conv,
        gamma: gamma.data,
        beta: beta.data,
        upsample,
        act,
    })
}
