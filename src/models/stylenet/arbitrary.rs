//! The Magenta arbitrary-style pair: any image as the style.
//!
//! Ghiasi et al., [Exploring the structure of a real-time, arbitrary neural artistic
//! stylization network](https://arxiv.org/abs/1705.06830), as shipped quantised for TFLite and
//! converted to ONNX:
//!
//! - [`StylePredictor`](super::predictor::StylePredictor): MobileNetV2 on the 256×256 style image, global average pool, 1×1 conv
//!   to a 100-value style bottleneck.
//! - [`StyleTransform`]: a transformer net (9×9 3→8, 3×3/2 8→16, 3×3/2 16→32, five residual
//!   blocks of 32, 2× up 32→16, 2× up 16→8, 9×9 8→3, sigmoid) whose instance norms take their
//!   scale and shift from 1×1 convolutions of the bottleneck.
//!
//! Both files store int8 weights (dequantised once, here, at load) and *fake-quantise* their
//! activations: almost every intermediate tensor passes through `QuantizeLinear` →
//! `DequantizeLinear`, including the instance-norm statistics (mean, squared difference,
//! variance, rsqrt, ...). The network was trained with those steps, and the reference outputs
//! include them, so the port reproduces each one ([`FakeQuant`]) with the scale and zero point
//! read from the graph by the exporter's tensor names. Quantise/dequantise pairs that cannot
//! change a value (around `Pad`, `Transpose`, `Reshape`) are skipped.

use std::path::Path;

use rayon::prelude::*;

use super::ops::{
    Conv, FakeQuant, FeatureMap, PadMode, SumOrder, channel_mean, clamp, exp_portable, map_planes,
};
use super::tile_plan::MapFloats;
use super::{StyleError, check_cancel};
use crate::models::onnx::{OnnxError, OnnxModel};

/// Length of the style bottleneck.
pub const BOTTLENECK: usize = 100;

/// The activation between a convolution and its output quantiser.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Act {
    None,
    Relu,
    Clip(f32, f32),
}

impl Act {
    /// The activation as `(lo, hi)` bounds (±∞ where it has none).
    pub(crate) fn bounds(self) -> (f32, f32) {
        match self {
            Act::None => (f32::NEG_INFINITY, f32::INFINITY),
            Act::Relu => (0.0, f32::INFINITY),
            Act::Clip(lo, hi) => (lo, hi),
        }
    }

    #[inline(always)]
    fn apply(self, v: f32) -> f32 {
        match self {
            Act::None => v,
            Act::Relu => clamp(v, 0.0, f32::INFINITY),
            Act::Clip(lo, hi) => clamp(v, lo, hi),
        }
    }
}

/// The activation feeding the `QuantizeLinear` that produces `q_output`.
pub(crate) fn act_before(model: &OnnxModel, q_output: &str) -> Result<Act, StyleError> {
    let q = model.producer_of_type(q_output, "QuantizeLinear")?;
    let input = q.input.first().map(String::as_str).unwrap_or("");
    let Ok(node) = model.producer(input) else {
        return Ok(Act::None);
    };
    Ok(match node.op_type.as_str() {
        "Relu" => Act::Relu,
        "Clip" => {
            let lo = node.input.get(1).map(|n| model.scalar(n)).transpose()?;
            let hi = node.input.get(2).map(|n| model.scalar(n)).transpose()?;
            Act::Clip(lo.unwrap_or(f32::NEG_INFINITY), hi.unwrap_or(f32::INFINITY))
        }
        _ => Act::None,
    })
}

pub(crate) fn fq(model: &OnnxModel, q_output: &str) -> Result<FakeQuant, OnnxError> {
    Ok(FakeQuant::new(model.quant_params(q_output)?))
}

/// How onnxruntime runs a quantised convolution it fuses into `QLinearConv`: integer inputs
/// `q - zp`, int8 weights, int32 bias, exact integer sums, then one float multiply by
/// `s_x · s_w / s_y`, saturation and round-half-to-even. Emulated because float arithmetic
/// lands on the other side of a rounding boundary often enough (a third of the style
/// bottleneck's values, one step each) to move the arbitrary model's output far outside the
/// tolerance. The convolution's weights and bias are then the stored integers.
#[derive(Clone, Debug)]
pub(crate) struct Int8 {
    pub(crate) in_scale: f32,
    /// `s_x · s_w[c] / s_y`, evaluated in that order as onnxruntime does.
    pub(crate) mult: Vec<f32>,
    /// Saturation bounds in steps from the zero point: `qmin - zp`, `qmax - zp`.
    pub(crate) lo: f32,
    pub(crate) hi: f32,
    pub(crate) out_scale: f32,
}

impl Int8 {
    fn to_integers(&self, x: &FeatureMap) -> FeatureMap {
        let s = self.in_scale;
        let mut xi = x.clone();
        xi.data
            .par_iter_mut()
            .for_each(|v| *v = (*v / s).round_ties_even());
        xi
    }
}

/// Whether onnxruntime's QDQ fusion turns this `Conv` into `QLinearConv`: its input is a
/// `DequantizeLinear` of a `QuantizeLinear` read by this conv alone, and its output (through an
/// optional Relu/Clip) goes to a `QuantizeLinear` whose only reader is a `DequantizeLinear`
/// with a single reader. (Checked against the optimised graphs onnxruntime 1.23 writes for
/// both files: it picks exactly these convolutions.)
fn fused_by_onnxruntime(m: &OnnxModel, conv_output: &str) -> bool {
    let Ok(conv) = m.producer_of_type(conv_output, "Conv") else {
        return false;
    };
    let input = conv.input.first().map(String::as_str).unwrap_or("");
    let input_ok = m
        .producer_of_type(input, "DequantizeLinear")
        .is_ok_and(|dq| {
            m.consumers(input).len() == 1
                && dq
                    .input
                    .first()
                    .is_some_and(|x| m.producer_of_type(x, "QuantizeLinear").is_ok())
        });
    let single = |t: &str| -> Option<&crate::models::onnx::NodeProto> {
        match m.consumers(t).as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    };
    let mut next = single(conv_output);
    if let Some(n) = next
        && (n.op_type == "Relu" || n.op_type == "Clip")
    {
        next = n.output.first().and_then(|o| single(o));
    }
    let output_ok = next.is_some_and(|q| {
        q.op_type == "QuantizeLinear"
            && q.output.first().and_then(|o| single(o)).is_some_and(|dq| {
                dq.op_type == "DequantizeLinear"
                    && dq.output.first().is_some_and(|o| m.consumers(o).len() == 1)
            })
    });
    input_ok && output_ok
}

/// An ONNX-fused int8 convolution: weights, their dims, bias and the integer rescaling.
pub(crate) type Int8Parts = (Vec<f32>, Vec<usize>, Vec<f32>, Int8);

/// Integer weights, bias and requantisation of a conv onnxruntime fuses, or `None` to run it
/// in float like the graph says.
#[allow(clippy::type_complexity)] // the four parts go straight into one constructor
pub(crate) fn int8_parts(
    m: &OnnxModel,
    conv_output: &str,
    q_output: &str,
) -> Result<Option<Int8Parts>, StyleError> {
    if !fused_by_onnxruntime(m, conv_output) {
        return Ok(None);
    }
    let node = m.conv(conv_output)?;
    let (in_scale, in_zp) = m.dequant_params(&node.inputs[0])?;
    let w = m.quantized(&node.inputs[1])?;
    let cout = w.dims[0];
    let bias = match node.inputs.get(2).filter(|b| !b.is_empty()) {
        Some(b) => {
            let b = m.quantized(b)?;
            if b.zero_point.iter().any(|&z| z != 0.0) || b.q.len() != cout {
                return Ok(None);
            }
            b.q
        }
        None => vec![0.0; cout],
    };
    let out = m.quant_params(q_output)?;
    if w.zero_point.iter().any(|&z| z != 0.0) {
        return Ok(None);
    }
    // Integer sums must stay exact in f32 (below 2^24) for every possible input.
    let x_max = (out.qmin as f32 - in_zp)
        .abs()
        .max((out.qmax as f32 - in_zp).abs())
        .max(255.0);
    let per_out = w.q.len() / cout.max(1);
    let exact = (0..cout).all(|c| {
        let s: f32 = w.q[c * per_out..(c + 1) * per_out]
            .iter()
            .map(|v| v.abs())
            .sum();
        s * x_max + bias[c].abs() < (1 << 24) as f32
    });
    if !exact {
        return Ok(None);
    }
    let scale_of = |c: usize| {
        if w.scale.len() == 1 {
            w.scale[0]
        } else {
            w.scale[c]
        }
    };
    let int8 = Int8 {
        in_scale,
        mult: (0..cout)
            .map(|c| in_scale * scale_of(c) / out.scale)
            .collect(),
        lo: (out.qmin - out.zero_point) as f32,
        hi: (out.qmax - out.zero_point) as f32,
        out_scale: out.scale,
    };
    Ok(Some((w.q, w.dims, bias, int8)))
}

/// A dense convolution followed by bias, activation and the output quantiser.
#[derive(Clone, Debug)]
pub(crate) struct QConv {
    pub(crate) conv: Conv,
    pub(crate) act: Act,
    pub(crate) out: FakeQuant,
    pub(crate) int8: Option<Int8>,
}

impl QConv {
    /// `conv_output`: the Conv node's output; `q_output`: the quantiser after it.
    pub(crate) fn load(
        model: &OnnxModel,
        conv_output: &str,
        q_output: &str,
        pads: Option<(usize, PadMode)>,
    ) -> Result<Self, StyleError> {
        let node = model.conv(conv_output)?;
        if node.group != 1 || node.strides[0] != node.strides[1] {
            return Err(StyleError::architecture(
                model.path(),
                format!("{conv_output}: unexpected convolution"),
            ));
        }
        // Transform convs pad with a separate reflect `Pad`; predictor convs pad with zeros.
        let (pads, mode) = match pads {
            Some((p, mode)) => ([p; 4], mode),
            None => (node.pads, PadMode::Zero),
        };
        let (weights, dims, bias, int8) = match int8_parts(model, conv_output, q_output)? {
            Some((w, dims, b, i)) => (w, dims, Some(b), Some(i)),
            None => (node.weights.data, node.weights.dims, node.bias, None),
        };
        let mut conv = Conv::from_oihw(
            &weights,
            [dims[0], dims[1], dims[2], dims[3]],
            bias,
            node.strides[0],
            pads,
            mode,
        )
        .ok_or_else(|| {
            StyleError::architecture(model.path(), format!("{conv_output}: bad weights"))
        })?;
        if int8.is_none() {
            // Float convs: sum like onnxruntime so last-bit differences cannot flip a rounding.
            conv = conv.with_order(SumOrder::Mlas);
        }
        // No im2col where the CPU runs the direct kernel (it sums in either order).
        conv = conv.with_direct();
        Ok(Self {
            conv,
            act: act_before(model, q_output)?,
            out: fq(model, q_output)?,
            int8,
        })
    }

    pub(crate) fn forward(&self, x: &FeatureMap, up: usize) -> FeatureMap {
        let (bias, act, out_q) = (&self.conv.bias, self.act, self.out);
        match &self.int8 {
            Some(i8) => {
                let xi = i8.to_integers(x);
                self.conv
                    .forward(&xi, up, |ch, _, seg| {
                        let (b, m, lo, hi, os) =
                            (bias[ch], i8.mult[ch], i8.lo, i8.hi, i8.out_scale);
                        seg.iter_mut().for_each(|v| {
                            *v = act.apply(clamp((*v + b) * m, lo, hi).round_ties_even() * os)
                        })
                    })
                    .0
            }
            None => {
                self.conv
                    .forward(x, up, |ch, _, seg| {
                        seg.iter_mut()
                            .for_each(|v| *v = out_q.apply(act.apply(*v + bias[ch])))
                    })
                    .0
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Style transform

/// Quantisers of one conditional instance norm, in the order the graph applies them.
#[derive(Clone, Debug)]
pub(crate) struct QNorm {
    /// 1×1 convs of the bottleneck giving γ (`Conv_1`) and β (`Conv`), each quantised.
    pub(crate) gamma: QConv,
    pub(crate) beta: QConv,
    pub(crate) mean: FakeQuant,
    pub(crate) sq_diff: FakeQuant,
    pub(crate) var: FakeQuant,
    pub(crate) eps: f32,
    pub(crate) var_eps: FakeQuant,
    pub(crate) rsqrt: FakeQuant,
    pub(crate) mul: FakeQuant,
    pub(crate) mean_mul: FakeQuant,
    pub(crate) shift: FakeQuant,
    pub(crate) x_mul: FakeQuant,
    pub(crate) relu: bool,
    pub(crate) out: FakeQuant,
}

impl QNorm {
    fn load(m: &OnnxModel, p: &str) -> Result<Self, StyleError> {
        let n = |s: &str| format!("{p}/StyleNorm/{s}");
        let relu_q = format!("{p}/Relu");
        let relu = m.has_tensor(&relu_q);
        let out_q = if relu { relu_q } else { n("batchnorm/add_1") };
        let eps_add = m.producer_of_type(&n("batchnorm/add_prequant"), "Add")?;
        let eps_name = eps_add.input.get(1).cloned().unwrap_or_default();
        let sp = |s: &str| format!("style_params/{p}/StyleNorm/{s}");
        Ok(Self {
            gamma: QConv::load(
                m,
                &sp("Conv_1/BiasAdd_prequant"),
                &sp("Conv_1/BiasAdd"),
                None,
            )?,
            beta: QConv::load(m, &sp("Conv/BiasAdd_prequant"), &sp("Conv/BiasAdd"), None)?,
            mean: fq(m, &n("moments/mean"))?,
            sq_diff: fq(m, &n("moments/SquaredDifference_int8"))?,
            var: fq(m, &n("moments/variance"))?,
            eps: m.scalar(&eps_name)?,
            var_eps: fq(m, &n("batchnorm/add"))?,
            rsqrt: fq(m, &n("batchnorm/Rsqrt_int8"))?,
            mul: fq(m, &n("batchnorm/mul"))?,
            mean_mul: fq(m, &n("batchnorm/mul_2"))?,
            shift: fq(m, &n("batchnorm/sub"))?,
            x_mul: fq(m, &n("batchnorm/mul_1"))?,
            relu,
            out: fq(m, &out_q)?,
        })
    }

    /// The quantised statistics of `x`: `(mean, variance)` per channel, as the graph computes
    /// them (the squared differences are quantised before they are averaged).
    fn stats(&self, x: &FeatureMap) -> (Vec<f32>, Vec<f32>) {
        let hw = x.pixels();
        let mean: Vec<f32> = channel_mean(x)
            .into_iter()
            .map(|v| self.mean.apply(v))
            .collect();
        let sq = self.sq_diff;
        let var = x
            .data
            .par_chunks(hw.max(1))
            .zip(mean.par_iter())
            .map(|(plane, &m)| {
                let s: f64 = plane
                    .chunks(256)
                    .map(|c| {
                        c.iter()
                            .map(|&v| {
                                let d = v - m;
                                sq.apply(d * d)
                            })
                            .sum::<f32>() as f64
                    })
                    .sum();
                self.var.apply((s / hw.max(1) as f64) as f32)
            })
            .collect();
        (mean, var)
    }

    /// Per-channel `(scale, shift)` the graph derives from the statistics and the style.
    fn affine(
        &self,
        gamma: &[f32],
        beta: &[f32],
        mean: &[f32],
        var: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        (0..mean.len())
            .map(|c| {
                let ve = self.var_eps.apply(var[c] + self.eps);
                let rs = self.rsqrt.apply(1.0 / ve.sqrt());
                let mul = self.mul.apply(rs * gamma[c]);
                let mm = self.mean_mul.apply(mean[c] * mul);
                (mul, self.shift.apply(beta[c] - mm))
            })
            .unzip()
    }

    /// One normalised value (before the residual add, if any).
    #[inline(always)]
    fn apply(&self, v: f32, mul: f32, shift: f32) -> f32 {
        let o = self.x_mul.apply(v * mul) + shift;
        self.out.apply(if self.relu && o < 0.0 { 0.0 } else { o })
    }
}

/// A convolution with its conditional instance norm (and the block's residual quantiser).
#[derive(Clone, Debug)]
pub(crate) struct NormConv {
    pub(crate) name: String,
    pub(crate) conv: QConv,
    pub(crate) norm: QNorm,
    pub(crate) upsample: usize,
    /// For the second conv of a residual block: the quantiser of `input + output`.
    pub(crate) residual: Option<FakeQuant>,
}

/// Per-norm statistics of the transform (quantised mean and variance), in layer order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TransformStats {
    /// `(mean, var)` per normalised layer.
    pub layers: Vec<(Vec<f32>, Vec<f32>)>,
}

/// The per-style `(γ, β)` of every norm, computed once per bottleneck.
#[derive(Clone, Debug)]
pub struct TransformStyle {
    pub(crate) norms: Vec<(Vec<f32>, Vec<f32>)>,
}

/// The content network of the arbitrary-style pair.
#[derive(Clone, Debug)]
pub struct StyleTransform {
    pub(crate) input: FakeQuant,
    pub(crate) bottleneck_in: FakeQuant,
    pub(crate) contract: Vec<QConv>,
    pub(crate) layers: Vec<NormConv>,
    pub(crate) output: FakeQuant,
}

impl StyleTransform {
    /// Its feature maps per input pixel (what a GPU run of it holds).
    pub fn map_floats(&self) -> MapFloats {
        let contract = self
            .contract
            .iter()
            .map(|q| (q.conv.cout, q.conv.stride, 1));
        let layers = self
            .layers
            .iter()
            .map(|l| (l.conv.conv.cout, l.conv.conv.stride, l.upsample));
        MapFloats::of(contract.chain(layers))
    }

    /// Reads `arbitrary_transform.onnx`.
    pub fn load(path: &Path) -> Result<Self, StyleError> {
        let m = OnnxModel::open(path)?;
        let mut contract = Vec::new();
        for (i, pad_name) in [(1, "MirrorPad"), (2, "MirrorPad_1"), (3, "MirrorPad_2")] {
            let pad = reflect_pad_amount(&m, &format!("transformer/contract/{pad_name}"), i == 1)?;
            let p = format!("transformer/contract/conv{i}");
            contract.push(QConv::load(
                &m,
                &format!("{p}/Relu_prequant"),
                &format!("{p}/Relu"),
                Some((pad, PadMode::Reflect)),
            )?);
        }
        let mut layers = Vec::new();
        for r in 1..=5 {
            for (cv, pad_name) in [(1, "MirrorPad"), (2, "MirrorPad_1")] {
                let p = format!("transformer/residual/residual{r}/conv{cv}");
                let pad = reflect_pad_amount(
                    &m,
                    &format!("transformer/residual/residual{r}/{pad_name}"),
                    false,
                )?;
                let residual = if cv == 2 {
                    Some(fq(&m, &format!("transformer/residual/residual{r}/add"))?)
                } else {
                    None
                };
                layers.push(NormConv {
                    conv: QConv::load(
                        &m,
                        &format!("{p}/Conv2D_prequant"),
                        &format!("{p}/Conv2D"),
                        Some((pad, PadMode::Reflect)),
                    )?,
                    norm: QNorm::load(&m, &p)?,
                    upsample: 1,
                    residual,
                    name: p,
                });
            }
        }
        for (e, up) in [(1, 2), (2, 2), (3, 1)] {
            let p = format!("transformer/expand/conv{e}/conv");
            let pad =
                reflect_pad_amount(&m, &format!("transformer/expand/conv{e}/MirrorPad"), false)?;
            layers.push(NormConv {
                conv: QConv::load(
                    &m,
                    &format!("{p}/Conv2D_prequant"),
                    &format!("{p}/Conv2D"),
                    Some((pad, PadMode::Reflect)),
                )?,
                norm: QNorm::load(&m, &p)?,
                upsample: up,
                residual: None,
                name: p,
            });
        }
        let mut c = 3;
        for (name, conv) in contract
            .iter()
            .map(|q| ("contract", &q.conv))
            .chain(layers.iter().map(|l| (l.name.as_str(), &l.conv.conv)))
        {
            if conv.cin != c {
                return Err(StyleError::architecture(
                    path,
                    format!("{name}: takes {} channels, gets {c}", conv.cin),
                ));
            }
            c = conv.cout;
        }
        if c != 3 {
            return Err(StyleError::architecture(path, "the output is not RGB"));
        }
        Ok(Self {
            input: fq(&m, "transformer/contract/MirrorPad_int8")?,
            bottleneck_in: fq(&m, "mobilenet_conv/Conv/BiasAdd_int8")?,
            contract,
            layers,
            output: fq(&m, "transformer/expand/conv3/conv/Sigmoid_int8")?,
        })
    }

    /// The per-norm `(γ, β)` for a style bottleneck (100 values).
    pub fn style(&self, bottleneck: &[f32]) -> Result<TransformStyle, StyleError> {
        if bottleneck.len() != BOTTLENECK || bottleneck.iter().any(|v| !v.is_finite()) {
            return Err(StyleError::BadInput(format!(
                "the style bottleneck must be {BOTTLENECK} finite values (got {})",
                bottleneck.len()
            )));
        }
        let q: Vec<f32> = bottleneck
            .iter()
            .map(|&v| self.bottleneck_in.apply(v))
            .collect();
        let b = FeatureMap::from_vec(BOTTLENECK, 1, 1, q)
            .ok_or_else(|| StyleError::BadInput("bottleneck".into()))?;
        let norms = self
            .layers
            .iter()
            .map(|l| {
                (
                    l.norm.gamma.forward(&b, 1).data,
                    l.norm.beta.forward(&b, 1).data,
                )
            })
            .collect();
        Ok(TransformStyle { norms })
    }

    /// Stylises an RGB image in 0..1 (sides multiples of 4 keep the size). With `stats`, the
    /// norms use those statistics instead of the image's own (tiles); the statistics used are
    /// returned.
    pub fn forward(
        &self,
        x: &FeatureMap,
        style: &TransformStyle,
        stats: Option<&TransformStats>,
        cancel: &(dyn Fn() -> bool + Sync),
    ) -> Result<(FeatureMap, TransformStats), StyleError> {
        // On a pool thread, each layer's parallel loops fork locally instead of being injected
        // from outside and waking a worker every time.
        rayon::scope(|_| self.forward_in_pool(x, style, stats, cancel))
    }

    fn forward_in_pool(
        &self,
        x: &FeatureMap,
        style: &TransformStyle,
        stats: Option<&TransformStats>,
        cancel: &(dyn Fn() -> bool + Sync),
    ) -> Result<(FeatureMap, TransformStats), StyleError> {
        if x.c != 3 || x.h < 4 || x.w < 4 {
            return Err(StyleError::BadInput(format!(
                "the style transform needs an RGB image of at least 4×4 pixels (got {}×{}×{})",
                x.w, x.h, x.c
            )));
        }
        if stats.is_some_and(|s| s.layers.len() != self.layers.len())
            || style.norms.len() != self.layers.len()
        {
            return Err(StyleError::BadInput(
                "statistics or style from another network".into(),
            ));
        }
        let mut cur = x.clone();
        let input = self.input;
        cur.data.par_iter_mut().for_each(|v| *v = input.apply(*v));
        for c in &self.contract {
            check_cancel(cancel)?;
            cur = c.forward(&cur, 1);
        }
        let mut used = TransformStats::default();
        let mut skip: Option<FeatureMap> = None;
        for (i, l) in self.layers.iter().enumerate() {
            check_cancel(cancel)?;
            let residual = if l.residual.is_some() {
                skip.take()
            } else {
                None
            };
            if l.name.ends_with("/conv1") && l.name.contains("/residual/") {
                skip = Some(cur.clone());
            }
            let (gamma, beta) = &style.norms[i];
            let fixed = stats.map(|s| &s.layers[i]);
            let (next, st) = run_norm_conv(l, gamma, beta, &cur, fixed, residual.as_ref());
            used.layers.push(st);
            cur = next;
        }
        let out_q = self.output;
        cur.data
            .par_iter_mut()
            .for_each(|v| *v = out_q.apply(1.0 / (1.0 + exp_portable(-*v))));
        Ok((cur, used))
    }
}

fn run_norm_conv(
    l: &NormConv,
    gamma: &[f32],
    beta: &[f32],
    x: &FeatureMap,
    fixed: Option<&(Vec<f32>, Vec<f32>)>,
    residual: Option<&FeatureMap>,
) -> (FeatureMap, (Vec<f32>, Vec<f32>)) {
    let conv = &l.conv;
    let (bias, conv_q) = (&conv.conv.bias, conv.out);
    let norm = &l.norm;
    let res_q = l.residual;
    let finish = |v: f32, mul: f32, shift: f32, skip: f32| -> f32 {
        let o = norm.apply(v, mul, shift);
        match res_q {
            Some(q) => q.apply(skip + o),
            None => o,
        }
    };
    if let Some((mean, var)) = fixed {
        let (mul, shift) = norm.affine(gamma, beta, mean, var);
        let (oh, ow) = conv.conv.out_size(x.h, x.w, l.upsample);
        let hw = oh * ow;
        let (out, _) = conv.conv.forward(x, l.upsample, |ch, p0, seg| {
            let (m, sh, b) = (mul[ch], shift[ch], bias[ch]);
            match residual {
                Some(r) => {
                    let skip = &r.data[ch * hw + p0..ch * hw + p0 + seg.len()];
                    seg.iter_mut()
                        .zip(skip)
                        .for_each(|(v, &s)| *v = finish(conv_q.apply(*v + b), m, sh, s));
                }
                None => seg
                    .iter_mut()
                    .for_each(|v| *v = finish(conv_q.apply(*v + b), m, sh, 0.0)),
            }
        });
        return (out, (mean.clone(), var.clone()));
    }
    let mut out = conv.forward(x, l.upsample);
    let (mean, var) = norm.stats(&out);
    let (mul, shift) = norm.affine(gamma, beta, &mean, &var);
    let hw = out.pixels();
    map_planes(&mut out.data, hw, |ch, plane| {
        let (m, sh) = (mul[ch], shift[ch]);
        match residual {
            Some(r) => plane
                .iter_mut()
                .zip(r.plane(ch))
                .for_each(|(v, &s)| *v = finish(*v, m, sh, s)),
            None => plane.iter_mut().for_each(|v| *v = finish(*v, m, sh, 0.0)),
        }
    });
    (out, (mean, var))
}

/// The spatial amount of a reflect `Pad` node (the same on all four sides), read from its
/// constant pads input (`[b0, b1, b2, b3, e0, e1, e2, e3]`, NHWC or NCHW order).
fn reflect_pad_amount(m: &OnnxModel, pad_output: &str, nhwc: bool) -> Result<usize, StyleError> {
    let node = m.producer_of_type(pad_output, "Pad")?;
    let mode = node
        .attribute
        .iter()
        .find(|a| a.name == "mode")
        .map(|a| a.s.as_slice());
    if mode != Some(b"reflect".as_slice()) {
        return Err(StyleError::architecture(
            m.path(),
            format!("{pad_output}: expected reflect padding"),
        ));
    }
    let pads = m
        .constant(node.input.get(1).map(String::as_str).unwrap_or(""))?
        .data;
    let (h, w) = if nhwc { (1, 2) } else { (2, 3) };
    let spatial = [pads.get(h), pads.get(w), pads.get(h + 4), pads.get(w + 4)];
    let first = spatial[0].copied().unwrap_or(-1.0);
    let others_zero = pads
        .iter()
        .enumerate()
        .all(|(i, &v)| [h, w, h + 4, w + 4].contains(&i) || v == 0.0);
    if pads.len() != 8
        || !others_zero
        || spatial.iter().any(|v| v.copied() != Some(first))
        || !(0.0..=16.0).contains(&first)
    {
        return Err(StyleError::architecture(
            m.path(),
            format!("{pad_output}: unexpected pads {pads:?}"),
        ));
    }
    Ok(first as usize)
}
