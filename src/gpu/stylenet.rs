//! The style networks on the GPU: multistyle26 and the arbitrary-style transform, built from
//! the CPU ports' loaded weights (uploaded once per model) and run with the kernels of
//! [`super::kernels`]. The style predictor (MobileNetV2, run once per style image at 256²)
//! stays on the CPU.
//!
//! Both follow their CPU twins ([`crate::models::stylenet::multistyle`],
//! [`crate::models::stylenet::arbitrary`]) step for step, including the arbitrary transform's
//! fake quantisation and its convolutions' summation order, so the two backends agree within
//! 1e-3 (`tests/gpu.rs`). They implement [`TiledNet`], so tiling, shared statistics and the
//! rest of the Style job are the same code for both.

use std::sync::Arc;

use super::kernels::{
    Kernel, Kernels, Params, Recorder, STATS_CHUNK, Tensor, linear_groups, pack_vec4,
};
use super::{GpuContext, GpuError};
use crate::models::stylenet::arbitrary::{
    Act as QAct, QConv, QNorm, StyleTransform, TransformStats, TransformStyle,
};
use crate::models::stylenet::multistyle::{
    Act as MsAct, MixedStyle, Multistyle26, MultistyleStats,
};
use crate::models::stylenet::ops::{Conv, FeatureMap, PadMode};
use crate::models::stylenet::tiling::{MapFloats, TileCost, TiledNet};
use crate::models::stylenet::{StyleError, check_cancel};

/// multistyle26's instance-norm epsilon (as in the CPU port).
const MULTISTYLE_EPS: f32 = 1e-5;

/// The conv epilogues of `conv2d.wgsl`.
#[derive(Clone, Copy, Debug)]
enum Epilogue {
    /// sum + bias.
    Raw,
    /// fq(act(sum + bias)).
    Quant { act: (u32, f32, f32), q: [f32; 4] },
    /// act(round(clamp((sum + bias)·mult, lo, hi))·os), inputs already integers.
    Int8 {
        act: (u32, f32, f32),
        lo: f32,
        hi: f32,
        os: f32,
        in_scale: f32,
    },
}

/// One convolution's weights on the GPU.
struct GpuConv {
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    reflect: bool,
    /// `[cout/4][K]` vec4s.
    weights: Tensor,
    /// `conv2d.wgsl` for this kernel size and arithmetic.
    pipeline: wgpu::ComputePipeline,
    /// `[bias; cout]`, then `[int8 multiplier; cout]`.
    chan: Tensor,
    epilogue: Epilogue,
    /// For the summation order ([`Conv::run_length`]).
    cpu: Conv,
}

impl GpuConv {
    fn new(
        ctx: &GpuContext,
        kernels: &Kernels,
        conv: &Conv,
        epilogue: Epilogue,
        mult: &[f32],
    ) -> Result<Self, GpuError> {
        let [t, l, b, r] = conv.pads;
        if conv.kh != conv.kw || t != l || t != b || t != r {
            return Err(GpuError::Validation(
                "only square kernels with equal padding on all sides run on the GPU".into(),
            ));
        }
        let k = conv.cin * conv.kh * conv.kw;
        let w = conv.weights();
        let packed = pack_vec4(k, conv.cout, |kk, co| w[kk * conv.cout + co]);
        let mut chan = conv.bias.clone();
        chan.resize(conv.cout, 0.0);
        chan.extend_from_slice(mult);
        chan.resize(2 * conv.cout, 0.0);
        // A quantised layer rounds to a grid, where a last-bit difference moves a value a
        // whole step: it needs the CPU's exact arithmetic. A float layer only needs to be close.
        let exact = !matches!(epilogue, Epilogue::Raw);
        Ok(Self {
            pipeline: kernels.conv2d(ctx, conv.kh, exact)?,
            cin: conv.cin,
            cout: conv.cout,
            k: conv.kh,
            stride: conv.stride,
            pad: t,
            reflect: conv.mode == PadMode::Reflect,
            weights: ctx.upload(&packed, "conv weights")?,
            chan: ctx.upload(&chan, "conv bias")?,
            epilogue,
            cpu: conv.clone(),
        })
    }

    fn out_size(&self, h: usize, w: usize, up: usize) -> (usize, usize) {
        self.cpu.out_size(h, w, up)
    }

    /// Records the convolution of `x` (`cin × h × w`, upsampled `up`×); returns the output.
    fn record(
        &self,
        rec: &mut Recorder<'_>,
        x: &Tensor,
        (h, w): (usize, usize),
        up: usize,
    ) -> Result<(Tensor, usize, usize), GpuError> {
        let (oh, ow) = self.out_size(h, w, up);
        let input = match self.epilogue {
            Epilogue::Int8 { in_scale, .. } => {
                // The integer inputs of an int8 convolution, in a copy (x may be a skip).
                let xi = rec.ctx.tensor(x.len, "int8 input")?;
                rec.encoder
                    .copy_buffer_to_buffer(&x.buf, 0, &xi.buf, 0, (x.len * 4) as u64);
                pointwise(rec, &xi, 1, [in_scale, 0.0, 0.0, 0.0]);
                xi
            }
            _ => x.clone(),
        };
        let y = rec.ctx.tensor(self.cout * oh * ow, "conv output")?;
        let (epi, act, i8, q) = match self.epilogue {
            Epilogue::Raw => (0, (0, 0.0, 0.0), (0.0, 0.0, 0.0), [0.0; 4]),
            Epilogue::Quant { act, q } => (1, act, (0.0, 0.0, 0.0), q),
            Epilogue::Int8 {
                act, lo, hi, os, ..
            } => (2, act, (lo, hi, os), [0.0; 4]),
        };
        let params = Params::new()
            .u(self.cin)
            .u(h)
            .u(w)
            .u(self.cout)
            .u(oh)
            .u(ow)
            .u(self.k)
            .u(self.stride)
            .u(self.pad)
            .u(up)
            .u(self.cpu.run_length(oh * ow))
            .u(self.reflect as usize)
            .u(epi)
            .u(act.0 as usize)
            .u(self.cout.div_ceil(4))
            .u(0)
            .f(act.1)
            .f(act.2)
            .f(i8.0)
            .f(i8.1)
            .f(i8.2)
            .f(0.0)
            .f(0.0)
            .f(0.0)
            .v4(q);
        rec.dispatch_pipeline(
            &self.pipeline,
            &params,
            &[
                (1, &input.buf),
                (2, &self.weights.buf),
                (3, &self.chan.buf),
                (4, &y.buf),
            ],
            // Eight output channels per invocation.
            linear_groups(oh * ow, self.cout.div_ceil(8)),
        );
        Ok((y, oh, ow))
    }
}

/// `elementwise.wgsl`'s `pointwise` in place on `x`.
fn pointwise(rec: &mut Recorder<'_>, x: &Tensor, mode: usize, q: [f32; 4]) {
    let params = Params::new()
        .u(x.len)
        .u(mode)
        .u(0)
        .u(0)
        .u(0)
        .u(0)
        .u(0)
        .u(0)
        .v4(q);
    rec.dispatch(
        Kernel::Pointwise,
        &params,
        &[(1, &x.buf)],
        linear_groups(x.len, 1),
    );
}

/// How a layer normalises (the non-shape fields of `NormParams` in `instance_norm.wgsl`).
#[derive(Clone, Copy, Debug)]
struct NormSpec {
    /// 0 multistyle26, 1 the arbitrary transform.
    kind: usize,
    relu: bool,
    residual: bool,
    /// multistyle26: 0 ReLU, 1 residual, 2 sigmoid.
    act: usize,
    eps: f32,
    /// mean, sq, var, var_eps, rsqrt, mul, mean_mul, shift, x_mul, out, res.
    q: [[f32; 4]; 11],
}

impl NormSpec {
    fn params(&self, c: usize, hw: usize, chunks: usize, pass_var: bool) -> Params {
        let mut p = Params::new()
            .u(c)
            .u(hw)
            .u(chunks)
            .u(pass_var as usize)
            .u(self.kind)
            .u(self.relu as usize)
            .u(self.residual as usize)
            .u(self.act)
            .f(self.eps)
            .f(0.0)
            .f(0.0)
            .f(0.0);
        for q in self.q {
            p = p.v4(q);
        }
        p
    }
}

/// Records the statistics (or uses `fixed`), the scale and shift, and the normalisation of
/// `y` (`c × hw`) in place. Returns the statistics tensor (`[mean; c][var; c]`).
#[allow(clippy::too_many_arguments)]
fn record_norm(
    rec: &mut Recorder<'_>,
    spec: &NormSpec,
    y: &Tensor,
    c: usize,
    hw: usize,
    (gamma, beta): (&[f32], &[f32]),
    fixed: Option<&(Vec<f32>, Vec<f32>)>,
    skip: Option<&Tensor>,
) -> Result<Tensor, GpuError> {
    let ctx = rec.ctx;
    let chunks = hw.div_ceil(STATS_CHUNK);
    let gb = ctx.upload(&[gamma, beta].concat(), "norm gamma/beta")?;
    let affine = ctx.tensor(2 * c, "norm affine")?;
    let stats = match fixed {
        Some((mean, var)) => {
            let stats = ctx.upload(&[mean.as_slice(), var.as_slice()].concat(), "norm stats")?;
            rec.dispatch(
                Kernel::AffineFromStats,
                &spec.params(c, hw, chunks, true),
                &[(3, &stats.buf), (4, &gb.buf), (5, &affine.buf)],
                [c.div_ceil(64) as u32, 1, 1],
            );
            stats
        }
        None => {
            let stats = ctx.tensor(2 * c, "norm stats")?;
            let partial = ctx.tensor(c * chunks, "norm partial sums")?;
            for pass_var in [false, true] {
                let params = spec.params(c, hw, chunks, pass_var);
                rec.dispatch(
                    Kernel::ChunkSums,
                    &params,
                    &[(1, &y.buf), (2, &partial.buf), (3, &stats.buf)],
                    linear_groups(c * chunks, 1),
                );
                rec.dispatch(
                    Kernel::Reduce,
                    &params,
                    &[
                        (2, &partial.buf),
                        (3, &stats.buf),
                        (4, &gb.buf),
                        (5, &affine.buf),
                    ],
                    [c as u32, 1, 1],
                );
            }
            stats
        }
    };
    let dummy;
    let skip = match skip {
        Some(s) => s,
        None => {
            dummy = ctx.tensor(1, "no skip")?;
            &dummy
        }
    };
    rec.dispatch(
        Kernel::NormApply,
        &spec.params(c, hw, chunks, false),
        &[(1, &y.buf), (5, &affine.buf), (6, &skip.buf)],
        linear_groups(c * hw, 1),
    );
    Ok(stats)
}

/// Uploads an RGB feature map.
fn upload_map(ctx: &GpuContext, x: &FeatureMap) -> Result<Tensor, GpuError> {
    ctx.upload(&x.data, "style input")
}

/// One layer's per-channel `(mean, variance)`.
type MeanVar = (Vec<f32>, Vec<f32>);

/// Reads back the RGB output (`3 x pixels`) and every layer's statistics (`2 x channels`) in
/// one copy: what both style networks return.
fn read_image_and_stats(
    rec: Recorder<'_>,
    image: &Tensor,
    pixels: usize,
    stats: &[Tensor],
    channels: &[usize],
) -> Result<(Vec<f32>, Vec<MeanVar>), GpuError> {
    let mut ranges = vec![(image, 0, 3 * pixels)];
    for (st, &c) in stats.iter().zip(channels) {
        ranges.push((st, 0, 2 * c));
    }
    let values = rec.read_back(&ranges)?;
    Ok(split_stats(values, 3 * pixels, channels))
}

/// Checks a style network's input and that the style (and statistics, if any) have one entry
/// per normalised layer.
fn check_input(
    x: &FeatureMap,
    network: &str,
    layers: usize,
    norms: usize,
    stats_layers: Option<usize>,
) -> Result<(), StyleError> {
    if x.c != 3 || x.h < 4 || x.w < 4 {
        return Err(StyleError::BadInput(format!(
            "{network} needs an RGB image of at least 4×4 pixels (got {}×{}×{})",
            x.w, x.h, x.c
        )));
    }
    if stats_layers.is_some_and(|n| n != layers) || norms != layers {
        return Err(StyleError::BadInput(
            "statistics or style from another network".into(),
        ));
    }
    Ok(())
}

/// Runs `record` and reads its output and every layer's statistics back, in one copy.
fn read_result<'a>(
    ctx: &'a GpuContext,
    channels: &[usize],
    record: impl FnOnce() -> Result<Recorded<'a>, GpuError>,
) -> Result<(FeatureMap, Vec<MeanVar>), StyleError> {
    let (image, layers, h, w) = ctx.checked(|| {
        let (rec, cur, all_stats, h, w) = record()?;
        let (image, layers) = read_image_and_stats(rec, &cur, h * w, &all_stats, channels)?;
        Ok((image, layers, h, w))
    })?;
    Ok((image_map(image, h, w)?, layers))
}

/// A recorded network: the recorder (not yet submitted), the output tensor, each layer's
/// statistics tensor, and the output's height and width.
type Recorded<'a> = (Recorder<'a>, Tensor, Vec<Tensor>, usize, usize);

/// Submits `rec` with the output `cur` (`3 × h × w`, values 0..1) cropped to `width × height`
/// and rounded into a new RGBA8 texture, which it returns: no read-back.
pub(super) fn rgba_texture(
    mut rec: Recorder<'_>,
    cur: &Tensor,
    (h, w): (usize, usize),
    (width, height): (u32, u32),
) -> Result<wgpu::Texture, GpuError> {
    if width == 0 || height == 0 || width as usize > w || height as usize > h {
        return Err(GpuError::Validation(format!(
            "cannot crop a {w}×{h} result to {width}×{height}"
        )));
    }
    let ctx = rec.ctx;
    let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("style result"),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        // Not sRGB: the finish shader works on stored values, like the CPU reference.
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::TEXTURE_BINDING
            | wgpu::TextureUsages::COPY_DST
            | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let params = |row_texels| {
        Params::new()
            .u(h * w)
            .u(0)
            .u(width as usize)
            .u(height as usize)
            .u(row_texels)
            .u(w)
            .u(0)
            .u(0)
            .v4([0.0; 4])
    };
    rec.write_rgba(Kernel::StyleRgba, cur, params, &texture)?;
    rec.submit();
    Ok(texture)
}

/// The read-back RGB values as a feature map.
fn image_map(image: Vec<f32>, h: usize, w: usize) -> Result<FeatureMap, StyleError> {
    FeatureMap::from_vec(3, h, w, image)
        .ok_or_else(|| StyleError::BadInput("GPU output has the wrong size".into()))
}

/// Splits the read-back values into the image and each layer's `(mean, var)`.
fn split_stats(values: Vec<f32>, image: usize, channels: &[usize]) -> (Vec<f32>, Vec<MeanVar>) {
    let mut rest = values;
    let tail = rest.split_off(image);
    let mut at = 0;
    let stats = channels
        .iter()
        .map(|&c| {
            let s = (tail[at..at + c].to_vec(), tail[at + c..at + 2 * c].to_vec());
            at += 2 * c;
            s
        })
        .collect();
    (rest, stats)
}

/// What the two GPU style networks share, for `$net` (the CPU's `$cpu` on the GPU) and
/// `$wrapper` (it bound to a `$style`), whose statistics are `$stats` and whose errors call it
/// `$name`: `forward`, `forward_to_texture`, and the tiling's [`TiledNet`] and
/// [`GpuTiledNet`]. Each network has its own `record`.
macro_rules! gpu_style_net {
    ($net:ident, $cpu:ident, $wrapper:ident, $style:ty, $stats:ident, $name:literal) => {
        impl $net {
            #[doc = concat!("As [`", stringify!($cpu), "::forward`]: stylises `x` (RGB, 0..1), with")]
            /// the given statistics or the image's own; returns the output and the statistics
            /// used.
            pub fn forward(
                &self,
                x: &FeatureMap,
                style: &$style,
                stats: Option<&$stats>,
            ) -> Result<(FeatureMap, $stats), StyleError> {
                self.check(x, style, stats.map(|s| s.layers.len()))?;
                let channels: Vec<usize> = self.layers.iter().map(|l| l.conv.cout).collect();
                let (map, layers) =
                    read_result(&self.ctx, &channels, || self.record(x, style, stats))?;
                Ok((map, $stats { layers }))
            }

            /// Stylises `x` with its own statistics into a new RGBA8 texture of its top-left
            /// `width × height` pixels, rounded as on the CPU: the result never leaves the GPU.
            pub fn forward_to_texture(
                &self,
                x: &FeatureMap,
                style: &$style,
                (width, height): (u32, u32),
            ) -> Result<wgpu::Texture, StyleError> {
                self.check(x, style, None)?;
                Ok(self.ctx.checked(|| {
                    let (rec, cur, _, h, w) = self.record(x, style, None)?;
                    rgba_texture(rec, &cur, (h, w), (width, height))
                })?)
            }

            /// What one run costs here: every map of a run stays on the device until it is
            /// submitted, the largest must fit one storage binding and the result one texture.
            pub fn cost(&self) -> TileCost {
                let side = self.ctx.device.limits().max_texture_dimension_2d;
                self.maps.gpu_cost(self.ctx.max_binding(), side)
            }

            /// [`check_input`] for this network.
            fn check(
                &self,
                x: &FeatureMap,
                style: &$style,
                stats_layers: Option<usize>,
            ) -> Result<(), StyleError> {
                check_input(
                    x,
                    $name,
                    self.layers.len(),
                    style.norms.len(),
                    stats_layers,
                )
            }
        }

        impl TiledNet for $wrapper<'_> {
            type Stats = $stats;
            fn run(
                &self,
                x: &FeatureMap,
                stats: Option<&$stats>,
                cancel: &(dyn Fn() -> bool + Sync),
            ) -> Result<(FeatureMap, $stats), StyleError> {
                check_cancel(cancel)?;
                self.net.forward(x, &self.style, stats)
            }

            fn cost(&self) -> TileCost {
                self.net.cost()
            }
        }

        impl GpuTiledNet for $wrapper<'_> {
            fn ctx(&self) -> &GpuContext {
                &self.net.ctx
            }
            fn kernels(&self) -> &Kernels {
                &self.net.kernels
            }
            fn record_tile(
                &self,
                x: &FeatureMap,
                stats: &$stats,
            ) -> Result<(Recorder<'_>, Tensor, usize, usize), GpuError> {
                self.net
                    .check(x, &self.style, Some(stats.layers.len()))
                    .map_err(|e| GpuError::Validation(e.to_string()))?;
                let (rec, cur, _, h, w) = self.net.record(x, &self.style, Some(stats))?;
                Ok((rec, cur, h, w))
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// multistyle26

struct MsLayer {
    conv: GpuConv,
    upsample: usize,
    act: MsAct,
    /// The first conv of a residual block (its input is the block's skip).
    starts_block: bool,
}

/// multistyle26 on the GPU.
pub struct GpuMultistyle {
    ctx: GpuContext,
    kernels: Arc<Kernels>,
    layers: Vec<MsLayer>,
    maps: MapFloats,
}

impl GpuMultistyle {
    /// Uploads `net`'s weights.
    pub fn new(
        ctx: &GpuContext,
        kernels: Arc<Kernels>,
        net: &Multistyle26,
    ) -> Result<Self, GpuError> {
        let layers = ctx.checked(|| {
            net.layers
                .iter()
                .map(|l| {
                    Ok(MsLayer {
                        conv: GpuConv::new(ctx, &kernels, &l.conv, Epilogue::Raw, &[])?,
                        upsample: l.upsample,
                        act: l.act,
                        starts_block: l.name.starts_with("res.") && l.name.ends_with(".0"),
                    })
                })
                .collect::<Result<Vec<_>, GpuError>>()
        })?;
        Ok(Self {
            ctx: ctx.clone(),
            kernels,
            layers,
            maps: net.map_floats(),
        })
    }

    /// Records the whole network on `x`: the recorder, the output tensor, every layer's
    /// statistics tensor and the output size.
    fn record(
        &self,
        x: &FeatureMap,
        style: &MixedStyle,
        stats: Option<&MultistyleStats>,
    ) -> Result<Recorded<'_>, GpuError> {
        let ctx = &self.ctx;
        let mut rec = Recorder::new(ctx, &self.kernels);
        let mut cur = upload_map(ctx, x)?;
        let (mut h, mut w) = (x.h, x.w);
        let mut skip: Option<Tensor> = None;
        let mut all_stats = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let residual = match l.act {
                MsAct::Residual => skip.take(),
                _ => None,
            };
            if l.starts_block {
                skip = Some(cur.clone());
            }
            let (y, oh, ow) = l.conv.record(&mut rec, &cur, (h, w), l.upsample)?;
            let spec = NormSpec {
                kind: 0,
                relu: false,
                residual: residual.is_some(),
                act: match l.act {
                    MsAct::Relu => 0,
                    MsAct::Residual => 1,
                    MsAct::Sigmoid => 2,
                },
                eps: MULTISTYLE_EPS,
                q: [[0.0; 4]; 11],
            };
            let (g, b) = &style.norms[i];
            let st = record_norm(
                &mut rec,
                &spec,
                &y,
                l.conv.cout,
                oh * ow,
                (g, b),
                stats.map(|s| &s.layers[i]),
                residual.as_ref(),
            )?;
            all_stats.push(st);
            (cur, h, w) = (y, oh, ow);
        }
        Ok((rec, cur, all_stats, h, w))
    }
}

/// A style network on the GPU, bound to its style, that can leave a tile's output on the
/// device for [`super::blend`] to blend.
pub trait GpuTiledNet: TiledNet {
    /// The device the weights are on.
    fn ctx(&self) -> &GpuContext;
    /// Its compiled kernels.
    fn kernels(&self) -> &Kernels;
    /// Records the network on `x` normalised with `stats`: the recorder (not submitted), the
    /// output (`3 × h × w`, values 0..1), `h` and `w`.
    fn record_tile(
        &self,
        x: &FeatureMap,
        stats: &Self::Stats,
    ) -> Result<(Recorder<'_>, Tensor, usize, usize), GpuError>;
}

/// multistyle26 on the GPU with a blend's norm parameters, for [`crate::models::stylenet::tiling`].
pub struct GpuMultistyleNet<'a> {
    /// The network.
    pub net: &'a GpuMultistyle,
    /// The blended norm parameters.
    pub style: MixedStyle,
}

gpu_style_net!(
    GpuMultistyle,
    Multistyle26,
    GpuMultistyleNet,
    MixedStyle,
    MultistyleStats,
    "multistyle26"
);

// ---------------------------------------------------------------------------------------------
// The arbitrary-style transform

fn qact(a: QAct) -> (u32, f32, f32) {
    match a {
        QAct::None => (0, 0.0, 0.0),
        QAct::Relu => (1, 0.0, 0.0),
        QAct::Clip(lo, hi) => (2, lo, hi),
    }
}

fn gpu_qconv(ctx: &GpuContext, kernels: &Kernels, q: &QConv) -> Result<GpuConv, GpuError> {
    match &q.int8 {
        Some(i8) => GpuConv::new(
            ctx,
            kernels,
            &q.conv,
            Epilogue::Int8 {
                act: qact(q.act),
                lo: i8.lo,
                hi: i8.hi,
                os: i8.out_scale,
                in_scale: i8.in_scale,
            },
            &i8.mult,
        ),
        None => GpuConv::new(
            ctx,
            kernels,
            &q.conv,
            Epilogue::Quant {
                act: qact(q.act),
                q: q.out.params(),
            },
            &[],
        ),
    }
}

struct TLayer {
    conv: GpuConv,
    spec: NormSpec,
    upsample: usize,
    starts_block: bool,
}

fn norm_spec(n: &QNorm, residual: Option<[f32; 4]>) -> NormSpec {
    NormSpec {
        kind: 1,
        relu: n.relu,
        residual: residual.is_some(),
        act: 0,
        eps: n.eps,
        q: [
            n.mean.params(),
            n.sq_diff.params(),
            n.var.params(),
            n.var_eps.params(),
            n.rsqrt.params(),
            n.mul.params(),
            n.mean_mul.params(),
            n.shift.params(),
            n.x_mul.params(),
            n.out.params(),
            residual.unwrap_or([0.0; 4]),
        ],
    }
}

/// The arbitrary-style transform on the GPU (fake quantisation included).
pub struct GpuTransform {
    ctx: GpuContext,
    kernels: Arc<Kernels>,
    input: [f32; 4],
    output: [f32; 4],
    contract: Vec<GpuConv>,
    layers: Vec<TLayer>,
    maps: MapFloats,
}

impl GpuTransform {
    /// Uploads `net`'s weights.
    pub fn new(
        ctx: &GpuContext,
        kernels: Arc<Kernels>,
        net: &StyleTransform,
    ) -> Result<Self, GpuError> {
        let (contract, layers) = ctx.checked(|| {
            let contract = net
                .contract
                .iter()
                .map(|q| gpu_qconv(ctx, &kernels, q))
                .collect::<Result<Vec<_>, GpuError>>()?;
            let layers = net
                .layers
                .iter()
                .map(|l| {
                    Ok(TLayer {
                        conv: gpu_qconv(ctx, &kernels, &l.conv)?,
                        spec: norm_spec(&l.norm, l.residual.map(|q| q.params())),
                        upsample: l.upsample,
                        starts_block: l.name.ends_with("/conv1") && l.name.contains("/residual/"),
                    })
                })
                .collect::<Result<Vec<_>, GpuError>>()?;
            Ok((contract, layers))
        })?;
        Ok(Self {
            ctx: ctx.clone(),
            kernels,
            input: net.input.params(),
            output: net.output.params(),
            contract,
            layers,
            maps: net.map_floats(),
        })
    }

    /// Records the whole network on `x`, output quantised sigmoid included (see
    /// [`GpuMultistyle::record`]).
    fn record(
        &self,
        x: &FeatureMap,
        style: &TransformStyle,
        stats: Option<&TransformStats>,
    ) -> Result<Recorded<'_>, GpuError> {
        let ctx = &self.ctx;
        let mut rec = Recorder::new(ctx, &self.kernels);
        let mut cur = upload_map(ctx, x)?;
        pointwise(&mut rec, &cur, 0, self.input);
        let (mut h, mut w) = (x.h, x.w);
        for c in &self.contract {
            let (y, oh, ow) = c.record(&mut rec, &cur, (h, w), 1)?;
            (cur, h, w) = (y, oh, ow);
        }
        let mut skip: Option<Tensor> = None;
        let mut all_stats = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let residual = if l.spec.residual { skip.take() } else { None };
            if l.starts_block {
                skip = Some(cur.clone());
            }
            let (y, oh, ow) = l.conv.record(&mut rec, &cur, (h, w), l.upsample)?;
            let (g, b) = &style.norms[i];
            let st = record_norm(
                &mut rec,
                &l.spec,
                &y,
                l.conv.cout,
                oh * ow,
                (g, b),
                stats.map(|s| &s.layers[i]),
                residual.as_ref(),
            )?;
            all_stats.push(st);
            (cur, h, w) = (y, oh, ow);
        }
        pointwise(&mut rec, &cur, 2, self.output);
        Ok((rec, cur, all_stats, h, w))
    }
}

/// The transform on the GPU with one style's norm parameters, for the tiling.
pub struct GpuTransformNet<'a> {
    /// The network.
    pub net: &'a GpuTransform,
    /// Norm parameters from the style bottleneck.
    pub style: TransformStyle,
}

gpu_style_net!(
    GpuTransform,
    StyleTransform,
    GpuTransformNet,
    TransformStyle,
    TransformStats,
    "the style transform"
);
