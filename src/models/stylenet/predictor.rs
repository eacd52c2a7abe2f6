//! The arbitrary-style predictor: MobileNetV2 on the 256×256 style image, global average
//! pool, 1×1 conv to the 100-value style bottleneck (`arbitrary_predict.onnx`).
//!
//! The file is quantised throughout (int8 weights, every activation on an int8 grid), and
//! onnxruntime runs most of its convolutions as integer `QLinearConv`s and the rest as float
//! convolutions on dequantised values (see [`super::arbitrary`]). The layers here keep the
//! activations as bytes in NHWC order (`mobilenet.rs`) and reproduce each layer's
//! arithmetic, so the bottleneck is bit-identical to onnxruntime's.

use std::path::Path;

use super::arbitrary::{Act, BOTTLENECK, QConv, act_before, fq, int8_parts};
use super::mobilenet::{self, Codes, Depthwise, Grid, Stem};
use super::ops::{FakeQuant, FeatureMap};
use super::pointwise::{PointwiseFloat, PointwiseInt8};
use super::{StyleError, check_cancel};
use crate::models::onnx::OnnxModel;

/// A 1×1 convolution on codes, integer or float as onnxruntime runs it.
#[derive(Clone, Debug)]
enum Pointwise {
    Int8(PointwiseInt8, Grid),
    Float(PointwiseFloat, Grid),
}

impl Pointwise {
    fn forward(&self, x: &Codes) -> Codes {
        let cout = self.channels().1;
        let mut data = vec![0u8; x.h * x.w * cout];
        match self {
            Pointwise::Int8(l, _) => l.forward(&x.data, &mut data),
            Pointwise::Float(l, _) => l.forward(&x.data, &mut data),
        }
        Codes {
            h: x.h,
            w: x.w,
            c: cout,
            data,
            grid: self.grid(),
        }
    }

    /// The output grid.
    fn grid(&self) -> Grid {
        match self {
            Pointwise::Int8(_, g) | Pointwise::Float(_, g) => *g,
        }
    }

    fn channels(&self) -> (usize, usize) {
        match self {
            Pointwise::Int8(l, _) => l.channels(),
            Pointwise::Float(l, _) => l.channels(),
        }
    }
}

/// One inverted-residual block.
#[derive(Clone, Debug)]
struct Block {
    expand: Option<Pointwise>,
    depthwise: Depthwise,
    project: Pointwise,
    /// The residual add's quantiser, when the block has a skip connection.
    add: Option<FakeQuant>,
}

/// MobileNetV2 → 100-value style bottleneck.
#[derive(Clone, Debug)]
pub struct StylePredictor {
    input: FakeQuant,
    stem: Stem,
    blocks: Vec<Block>,
    head: Pointwise,
    pool: FakeQuant,
    /// The 1×1 convolution of the pooled features (a float `Conv` in onnxruntime's graph).
    bottleneck: Pointwise,
}

/// Builds the layers, checking each against the grid of the tensor it reads.
struct Loader<'a> {
    m: &'a OnnxModel,
    path: &'a Path,
}

impl Loader<'_> {
    fn bad(&self, what: impl Into<String>) -> StyleError {
        StyleError::architecture(self.path, what.into())
    }

    /// An integer layer's activation must leave every grid value alone (a Relu6 whose grid
    /// spans exactly 0..6): the integers then carry on unchanged.
    fn check_act_on_grid(
        &self,
        name: &str,
        act: Act,
        lo: f32,
        hi: f32,
        scale: f32,
    ) -> Result<(), StyleError> {
        let (a, b) = act.bounds();
        let ok = (lo as i32..=hi as i32).all(|s| {
            let v = s as f32 * scale;
            v >= a && v <= b
        });
        if ok {
            Ok(())
        } else {
            Err(self.bad(format!(
                "{name}: activation clips its own quantisation grid"
            )))
        }
    }

    /// The 1×1 convolution `conv_output` → quantiser `q_output` reading a tensor on `input`.
    fn pointwise(
        &self,
        conv_output: &str,
        q_output: &str,
        input: Grid,
    ) -> Result<Pointwise, StyleError> {
        let q = QConv::load(self.m, conv_output, q_output, None)?;
        let c = &q.conv;
        if c.kh != 1 || c.kw != 1 || c.stride != 1 || c.pads != [0; 4] {
            return Err(self.bad(format!("{conv_output}: expected a 1×1 convolution")));
        }
        let out = Grid::of(q.out);
        let (k, cout) = (c.cin, c.cout);
        let layer = match &q.int8 {
            Some(i8) => {
                if i8.in_scale != input.scale {
                    return Err(self.bad(format!(
                        "{conv_output}: input scale differs from its producer's"
                    )));
                }
                self.check_act_on_grid(conv_output, q.act, i8.lo, i8.hi, i8.out_scale)?;
                let w: Vec<i32> = c.weights().iter().map(|&v| v as i32).collect();
                let bias: Vec<i32> = c.bias.iter().map(|&v| v as i32).collect();
                let l = PointwiseInt8::new(
                    &w,
                    k,
                    cout,
                    &bias,
                    input.offset,
                    &i8.mult,
                    (i8.lo as i32, i8.hi as i32),
                    out.offset,
                )
                .ok_or_else(|| self.bad(format!("{conv_output}: weights outside int8")))?;
                Pointwise::Int8(l, out)
            }
            None => {
                let l = PointwiseFloat::new(
                    c.weights(),
                    k,
                    cout,
                    &c.bias,
                    input.lut(),
                    q.act.bounds(),
                    q.out.params(),
                )
                .ok_or_else(|| self.bad(format!("{conv_output}: bad weights")))?;
                Pointwise::Float(l, out)
            }
        };
        Ok(layer)
    }

    /// The quantised depthwise convolution `conv_output` → `q_output` reading `input`.
    fn depthwise(
        &self,
        conv_output: &str,
        q_output: &str,
        input: Grid,
    ) -> Result<Depthwise, StyleError> {
        let dw = self.m.conv(conv_output)?;
        let c = dw.weights.dims.first().copied().unwrap_or(0);
        if dw.group != c || dw.strides[0] != dw.strides[1] {
            return Err(self.bad(format!("{conv_output}: expected a depthwise convolution")));
        }
        let Some((w, d, bias, i8)) = int8_parts(self.m, conv_output, q_output)? else {
            return Err(self.bad(format!(
                "{conv_output}: expected a quantised depthwise convolution"
            )));
        };
        let [_, one, kh, kw] = [d[0], d[1], d[2], d[3]];
        if one != 1 || kh != kw || w.len() != c * kh * kw || bias.len() != c {
            return Err(self.bad(format!("{conv_output}: bad depthwise weights")));
        }
        if i8.in_scale != input.scale {
            return Err(self.bad(format!(
                "{conv_output}: input scale differs from its producer's"
            )));
        }
        let act = act_before(self.m, q_output)?;
        self.check_act_on_grid(conv_output, act, i8.lo, i8.hi, i8.out_scale)?;
        let taps = kh * kw;
        let mut weights = vec![0f32; taps * c];
        for ch in 0..c {
            for t in 0..taps {
                weights[t * c + ch] = w[ch * taps + t];
            }
        }
        Ok(Depthwise {
            c,
            k: kh,
            stride: dw.strides[0],
            pads: dw.pads,
            weights,
            bias,
            mult: i8.mult,
            lo: i8.lo,
            hi: i8.hi,
            out: Grid::of(fq(self.m, q_output)?),
        })
    }
}

impl StylePredictor {
    /// Reads `arbitrary_predict.onnx`.
    pub fn load(path: &Path) -> Result<Self, StyleError> {
        let m = OnnxModel::open(path)?;
        let ld = Loader { m: &m, path };
        let input = fq(&m, "style_image_int8")?;
        let stem_q = QConv::load(
            &m,
            "MobilenetV2/Conv/Relu6_prequant",
            "MobilenetV2/Conv/Relu6",
            None,
        )?;
        if stem_q.int8.is_some() || stem_q.conv.cin != 3 || stem_q.conv.kh != stem_q.conv.kw {
            return Err(ld.bad("the stem is not a float 3-channel convolution"));
        }
        let stem = Stem {
            cin: stem_q.conv.cin,
            cout: stem_q.conv.cout,
            k: stem_q.conv.kh,
            stride: stem_q.conv.stride,
            pads: stem_q.conv.pads,
            weights: stem_q.conv.weights().to_vec(),
            bias: stem_q.conv.bias.clone(),
            act: stem_q.act.bounds(),
            out: stem_q.out,
        };
        let mut grid = Grid::of(stem.out);
        let mut channels = stem.cout;
        let mut blocks = Vec::new();
        for i in 0.. {
            let p = match i {
                0 => "MobilenetV2/expanded_conv".to_string(),
                _ => format!("MobilenetV2/expanded_conv_{i}"),
            };
            if !m.has_tensor(&format!("{p}/depthwise/Relu6")) {
                break;
            }
            let expand = if m.has_tensor(&format!("{p}/expand/Relu6")) {
                let e = ld.pointwise(
                    &format!("{p}/expand/Relu6_prequant"),
                    &format!("{p}/expand/Relu6"),
                    grid,
                )?;
                grid = e.grid();
                Some(e)
            } else {
                None
            };
            let depthwise = ld.depthwise(
                &format!("{p}/depthwise/Relu6_prequant"),
                &format!("{p}/depthwise/Relu6"),
                grid,
            )?;
            grid = depthwise.out;
            let project_q = format!("{p}/project/BatchNorm/FusedBatchNormV3");
            let project = ld.pointwise(&format!("{project_q}_prequant"), &project_q, grid)?;
            grid = project.grid();
            let add_q = format!("{p}/add");
            let add = if m.has_tensor(&add_q) {
                if project.channels().1 != channels {
                    return Err(ld.bad(format!("{p}: residual add of different widths")));
                }
                let a = fq(&m, &add_q)?;
                grid = Grid::of(a);
                Some(a)
            } else {
                None
            };
            let widths = [
                expand.as_ref().map(|e| e.channels()),
                Some(project.channels()),
            ];
            let dw_c = depthwise.c;
            let expanded = widths[0].map_or(channels, |(_, o)| o);
            if widths[0].is_some_and(|(i, _)| i != channels)
                || expanded != dw_c
                || project.channels().0 != dw_c
            {
                return Err(ld.bad(format!("{p}: layer widths do not chain")));
            }
            channels = project.channels().1;
            blocks.push(Block {
                expand,
                depthwise,
                project,
                add,
            });
        }
        if blocks.is_empty() {
            return Err(ld.bad("no MobileNetV2 blocks found"));
        }
        let head = ld.pointwise(
            "MobilenetV2/Conv_1/Relu6_prequant",
            "MobilenetV2/Conv_1/Relu6",
            grid,
        )?;
        if head.channels().0 != channels {
            return Err(ld.bad("the head's width does not chain"));
        }
        let pool = fq(&m, "bottleneck/Mean")?;
        let bottleneck = ld.pointwise(
            "mobilenet_conv/Conv/BiasAdd_int8_prequant",
            "mobilenet_conv/Conv/BiasAdd_int8",
            Grid::of(pool),
        )?;
        if bottleneck.channels() != (head.channels().1, BOTTLENECK) {
            return Err(ld.bad("the bottleneck is not 100 values"));
        }
        Ok(Self {
            input,
            stem,
            blocks,
            head,
            pool,
            bottleneck,
        })
    }

    /// The style bottleneck of an RGB image in 0..1 (the reference resizes styles to 256×256).
    pub fn predict(
        &self,
        style: &FeatureMap,
        cancel: &(dyn Fn() -> bool + Sync),
    ) -> Result<Vec<f32>, StyleError> {
        if style.c != 3 || style.h < 8 || style.w < 8 {
            return Err(StyleError::BadInput(
                "the style image must be RGB, at least 8×8".into(),
            ));
        }
        // Run on a pool thread: each layer's parallel loop is then a cheap local fork instead
        // of a job injected from outside and a wake-up (measured: ~30% of a 2-thread run).
        rayon::scope(|_| self.forward(style, cancel))
    }

    fn forward(
        &self,
        style: &FeatureMap,
        cancel: &(dyn Fn() -> bool + Sync),
    ) -> Result<Vec<f32>, StyleError> {
        let mut x = self.stem.forward(style, self.input);
        for b in &self.blocks {
            check_cancel(cancel)?;
            let expanded;
            let dw_in = match &b.expand {
                Some(e) => {
                    expanded = e.forward(&x);
                    &expanded
                }
                None => &x,
            };
            let mut h = b.project.forward(&b.depthwise.forward(dw_in));
            if let Some(q) = b.add {
                h = mobilenet::add(&h, &x, q);
            }
            x = h;
        }
        let x = self.head.forward(&x);
        // Pooled to one pixel, on the pool quantiser's grid.
        let pool = self.pool.params();
        let pooled = Codes {
            h: 1,
            w: 1,
            c: x.c,
            data: mobilenet::channel_mean_mlas(&x)
                .into_iter()
                .map(|v| mobilenet::quantise(v, pool))
                .collect(),
            grid: Grid::of(self.pool),
        };
        let out = self.bottleneck.forward(&pooled);
        let lut = out.grid.lut();
        Ok(out.data.iter().map(|&c| lut[c as usize]).collect())
    }
}
