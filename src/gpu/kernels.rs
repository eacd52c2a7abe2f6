//! The compute pipelines every GPU network is built from (WGSL in `shaders/compute/`, one file
//! per kernel family, each prefixed with `common.wgsl`), and the buffers they work on.
//!
//! - `conv2d.wgsl`: direct convolution with reflect/zero padding and nearest 2× upsampling
//!   folded into the input indexing, the epilogue (bias, ReLU/clip, fake quantisation or an
//!   int8 requantisation) fused in. One pipeline per kernel size and arithmetic
//!   ([`Kernels::conv2d`]), compiled when a network first needs it.
//! - `conv_transpose.wgsl`: the DCGAN's transposed convolution as a gather, folded BatchNorm
//!   shift, ReLU or tanh.
//! - `instance_norm.wgsl`: per-channel statistics by a two-stage parallel reduction, the
//!   (conditional) instance norm's scale and shift, and its application with ReLU, sigmoid or
//!   the residual add.
//! - `elementwise.wgsl`: quantisation, int8 inputs, quantised sigmoid, model output to RGBA8.
//! - `blend.wgsl`: the feathered blend of a large picture's tiles ([`super::blend`]).
//!
//! Pipelines are compiled once per device ([`Kernels::new`]); the networks in
//! [`super::dcgan`] and [`super::stylenet`] upload their weights once and record their passes
//! into one command encoder per forward pass through a [`Recorder`].

use std::collections::HashMap;
use std::sync::Mutex;

use wgpu::util::DeviceExt;

use super::{GpuContext, GpuError};

const COMMON: &str = include_str!("../../shaders/compute/common.wgsl");
const CONV2D: &str = include_str!("../../shaders/compute/conv2d.wgsl");
const CONV_TRANSPOSE: &str = include_str!("../../shaders/compute/conv_transpose.wgsl");
const INSTANCE_NORM: &str = include_str!("../../shaders/compute/instance_norm.wgsl");
const ELEMENTWISE: &str = include_str!("../../shaders/compute/elementwise.wgsl");
const BLEND: &str = include_str!("../../shaders/compute/blend.wgsl");

/// Workgroup size of the 1-D kernels (must match `@workgroup_size(64)` in the WGSL).
const WG: u32 = 64;
/// Workgroups along x before a dispatch folds into y (below the 65,535 limit).
const MAX_X_GROUPS: u32 = 32_768;
/// Values per run in the statistics' first stage (`CHUNK` in `instance_norm.wgsl`).
pub const STATS_CHUNK: usize = 256;
/// The largest convolution kernel side `conv2d.wgsl` takes (`MAX_K` there).
pub const CONV_MAX_K: usize = 9;

/// The compiled pipelines of one device.
#[derive(Debug)]
pub struct Kernels {
    /// Whether the adapter's `fma` is fused ([`GpuContext::fma_is_fused`]).
    fused_fma: bool,
    conv_module: wgpu::ShaderModule,
    /// `conv2d` pipelines by kernel side and whether they emulate a fused multiply-add.
    convs: Mutex<HashMap<(usize, bool), wgpu::ComputePipeline>>,
    conv_transpose: wgpu::ComputePipeline,
    chunk_sums: wgpu::ComputePipeline,
    reduce: wgpu::ComputePipeline,
    affine_from_stats: wgpu::ComputePipeline,
    norm_apply: wgpu::ComputePipeline,
    pointwise: wgpu::ComputePipeline,
    face_rgba: wgpu::ComputePipeline,
    style_rgba: wgpu::ComputePipeline,
    blend_tile: wgpu::ComputePipeline,
    blend_finish: wgpu::ComputePipeline,
}

/// `entry` of `module` compiled with the pipeline constants `constants`.
fn compile(
    ctx: &GpuContext,
    module: &wgpu::ShaderModule,
    entry: &str,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    ctx.device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                ..Default::default()
            },
            cache: None,
        })
}

impl Kernels {
    /// Compiles every kernel on `ctx`'s device (the convolutions as networks ask for them,
    /// [`Kernels::conv2d`]); a shader that the driver refuses is an error.
    pub fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        // Where the adapter's fma is not fused the exact pipelines emulate one (`fma_x` in
        // common.wgsl), so the quantised networks still sum exactly like the CPU.
        let fused_fma = ctx.fma_is_fused()?;
        if !fused_fma {
            tracing::info!(
                "{}: fma is not fused; the quantised network's kernels emulate it",
                ctx.adapter
            );
        }
        ctx.checked(|| {
            let module = |label: &str, body: &str| {
                ctx.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(label),
                        source: wgpu::ShaderSource::Wgsl(format!("{COMMON}\n{body}").into()),
                    })
            };
            let convt = module("conv_transpose.wgsl", CONV_TRANSPOSE);
            let norm = module("instance_norm.wgsl", INSTANCE_NORM);
            let elem = module("elementwise.wgsl", ELEMENTWISE);
            let blend = module("blend.wgsl", BLEND);
            // These run per channel or per element, so they always take the exact path.
            let constants = [("EMULATE_FMA", if fused_fma { 0.0 } else { 1.0 })];
            let pipeline =
                |module: &wgpu::ShaderModule, entry: &str| compile(ctx, module, entry, &constants);
            Ok(Self {
                fused_fma,
                conv_module: module("conv2d.wgsl", CONV2D),
                convs: Mutex::new(HashMap::new()),
                conv_transpose: pipeline(&convt, "conv_transpose"),
                chunk_sums: pipeline(&norm, "chunk_sums"),
                reduce: pipeline(&norm, "reduce"),
                affine_from_stats: pipeline(&norm, "affine_from_stats"),
                norm_apply: pipeline(&norm, "norm_apply"),
                pointwise: pipeline(&elem, "pointwise"),
                face_rgba: pipeline(&elem, "face_rgba"),
                style_rgba: pipeline(&elem, "style_rgba"),
                blend_tile: pipeline(&blend, "blend_tile"),
                blend_finish: pipeline(&blend, "blend_finish"),
            })
        })
    }

    /// The `conv2d` pipeline for `k`×`k` kernels, compiled on first use. `exact`: the
    /// network rounds to quantisation grids, so on an adapter whose `fma` is not fused the
    /// pipeline emulates a fused one (many times slower there; the same code on real GPUs).
    pub fn conv2d(
        &self,
        ctx: &GpuContext,
        k: usize,
        exact: bool,
    ) -> Result<wgpu::ComputePipeline, GpuError> {
        if k == 0 || k > CONV_MAX_K {
            return Err(GpuError::Validation(format!(
                "{k}×{k} convolutions do not run on the GPU (at most {CONV_MAX_K}×{CONV_MAX_K})"
            )));
        }
        let emulate = exact && !self.fused_fma;
        // A panic elsewhere while the lock was held leaves the cache itself consistent.
        let mut convs = self.convs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = convs.get(&(k, emulate)) {
            return Ok(p.clone());
        }
        let constants = [
            ("KS", k as f64),
            ("EMULATE_FMA", if emulate { 1.0 } else { 0.0 }),
        ];
        let p = ctx.checked(|| Ok(compile(ctx, &self.conv_module, "conv2d", &constants)))?;
        convs.insert((k, emulate), p.clone());
        Ok(p)
    }
}

/// Which kernel a [`Recorder::dispatch`] runs (convolutions: [`Recorder::dispatch_pipeline`]).
#[derive(Clone, Copy, Debug)]
pub enum Kernel {
    /// `conv_transpose.wgsl`.
    ConvTranspose,
    /// `instance_norm.wgsl`, first stage of the statistics.
    ChunkSums,
    /// `instance_norm.wgsl`, second stage (one workgroup per channel) and the affine.
    Reduce,
    /// `instance_norm.wgsl`, the affine from given statistics.
    AffineFromStats,
    /// `instance_norm.wgsl`, the normalisation itself.
    NormApply,
    /// `elementwise.wgsl`, quantisation and the quantised sigmoid.
    Pointwise,
    /// `elementwise.wgsl`, generator output to RGBA8.
    FaceRgba,
    /// `elementwise.wgsl`, a style network's output to RGBA8.
    StyleRgba,
    /// `blend.wgsl`, one tile added into the weighted sums.
    BlendTile,
    /// `blend.wgsl`, the sums divided by their weights.
    BlendFinish,
}

impl Kernels {
    fn pipeline(&self, k: Kernel) -> &wgpu::ComputePipeline {
        match k {
            Kernel::ConvTranspose => &self.conv_transpose,
            Kernel::ChunkSums => &self.chunk_sums,
            Kernel::Reduce => &self.reduce,
            Kernel::AffineFromStats => &self.affine_from_stats,
            Kernel::NormApply => &self.norm_apply,
            Kernel::Pointwise => &self.pointwise,
            Kernel::FaceRgba => &self.face_rgba,
            Kernel::StyleRgba => &self.style_rgba,
            Kernel::BlendTile => &self.blend_tile,
            Kernel::BlendFinish => &self.blend_finish,
        }
    }
}

/// A kernel's uniform block, built field by field in WGSL declaration order (every field is
/// 4 bytes; `vec4` fields start on a 16-byte boundary, which the WGSL structs keep).
#[derive(Clone, Debug, Default)]
pub struct Params(Vec<u32>);

impl Params {
    /// An empty block.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends a `u32`.
    pub fn u(mut self, v: usize) -> Self {
        self.0.push(v as u32);
        self
    }
    /// Appends an `f32`.
    pub fn f(mut self, v: f32) -> Self {
        self.0.push(v.to_bits());
        self
    }
    /// Appends a `vec4<f32>` (checks the 16-byte alignment in debug builds).
    pub fn v4(mut self, v: [f32; 4]) -> Self {
        debug_assert!(self.0.len().is_multiple_of(4), "vec4 misaligned");
        self.0.extend(v.iter().map(|x| x.to_bits()));
        self
    }
    fn bytes(&self) -> Vec<u8> {
        let mut b: Vec<u8> = self.0.iter().flat_map(|v| v.to_le_bytes()).collect();
        // Uniform blocks are sized in multiples of 16 bytes.
        b.resize(b.len().div_ceil(16).max(1) * 16, 0);
        b
    }
}

/// A storage buffer of `f32`s.
#[derive(Clone, Debug)]
pub struct Tensor {
    /// The buffer (STORAGE | COPY_SRC | COPY_DST).
    pub buf: wgpu::Buffer,
    /// Values it holds.
    pub len: usize,
}

/// `f32`s as little-endian bytes.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl GpuContext {
    /// A zero-filled tensor of `len` values (at least one, as WebGPU forbids empty bindings).
    pub fn tensor(&self, len: usize, label: &str) -> Result<Tensor, GpuError> {
        let bytes = (len.max(1) * 4) as u64;
        if bytes > self.max_binding() {
            return Err(GpuError::TooLarge {
                what: label.to_string(),
                bytes,
                limit: self.max_binding(),
            });
        }
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Tensor { buf, len })
    }

    /// A tensor holding `data` (weights are uploaded once per model with this).
    pub fn upload(&self, data: &[f32], label: &str) -> Result<Tensor, GpuError> {
        let bytes = (data.len().max(1) * 4) as u64;
        if bytes > self.max_binding() {
            return Err(GpuError::TooLarge {
                what: label.to_string(),
                bytes,
                limit: self.max_binding(),
            });
        }
        let mut contents = f32_bytes(data);
        contents.resize(bytes as usize, 0);
        let buf = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: &contents,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            });
        Ok(Tensor {
            buf,
            len: data.len(),
        })
    }

    /// The largest storage binding this device accepts, in bytes.
    pub fn max_binding(&self) -> u64 {
        let l = self.device.limits();
        l.max_storage_buffer_binding_size.min(l.max_buffer_size)
    }

    /// Copies `ranges` (`(tensor, first value, values)`) back to the CPU with one submission
    /// and one wait; the values come back concatenated. Exports and tests read back this way;
    /// previews never do.
    pub fn read_back(
        &self,
        encoder: wgpu::CommandEncoder,
        ranges: &[(&Tensor, usize, usize)],
    ) -> Result<Vec<f32>, GpuError> {
        let mut encoder = encoder;
        let total: usize = ranges.iter().map(|r| r.2).sum();
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read back"),
            size: (total.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut at = 0u64;
        for (t, first, n) in ranges {
            encoder.copy_buffer_to_buffer(
                &t.buf,
                (*first * 4) as u64,
                &staging,
                at,
                (*n * 4) as u64,
            );
            at += (*n * 4) as u64;
        }
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| GpuError::Lost("the read-back was dropped".into()))?
            .map_err(|e| GpuError::Lost(format!("cannot read the result back: {e}")))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Lost(format!("cannot read the result back: {e}")))?;
        let out = view
            .chunks_exact(4)
            .take(total)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Blocks until the queue is idle; a lost device or a hung queue is an error.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Lost(e.to_string()))
    }
}

/// Records dispatches into one command encoder.
pub struct Recorder<'a> {
    /// The device.
    pub ctx: &'a GpuContext,
    kernels: &'a Kernels,
    /// The encoder the passes go into (submit with [`Recorder::submit`] or read back).
    pub encoder: wgpu::CommandEncoder,
}

impl<'a> Recorder<'a> {
    /// A fresh encoder on `ctx`.
    pub fn new(ctx: &'a GpuContext, kernels: &'a Kernels) -> Self {
        let encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("atelier inference"),
            });
        Self {
            ctx,
            kernels,
            encoder,
        }
    }

    /// Dispatches `kernel` with uniform `params` (binding 0) and `buffers` at the given binding
    /// numbers, on `groups` workgroups.
    pub fn dispatch(
        &mut self,
        kernel: Kernel,
        params: &Params,
        buffers: &[(u32, &wgpu::Buffer)],
        groups: [u32; 3],
    ) {
        let kernels = self.kernels;
        self.dispatch_pipeline(kernels.pipeline(kernel), params, buffers, groups);
    }

    /// [`Recorder::dispatch`] with a pipeline of the caller's (a [`Kernels::conv2d`]).
    pub fn dispatch_pipeline(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        params: &Params,
        buffers: &[(u32, &wgpu::Buffer)],
        groups: [u32; 3],
    ) {
        let uniform = self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: &params.bytes(),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(buffers.iter().map(|(b, buf)| wgpu::BindGroupEntry {
            binding: *b,
            resource: buf.as_entire_binding(),
        }));
        let bind = self
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
        let mut pass = self
            .encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }

    /// Records `kernel` (8×8 workgroups over `texture`) turning `input` into RGBA8 rows in a
    /// buffer, then the copy of those rows into `texture`. `params(row_texels)` builds the
    /// kernel's uniform block; rows are padded to `row_texels` texels because
    /// copy_buffer_to_texture wants multiples of 256 bytes.
    pub fn write_rgba(
        &mut self,
        kernel: Kernel,
        input: &Tensor,
        params: impl FnOnce(usize) -> Params,
        texture: &wgpu::Texture,
    ) -> Result<(), GpuError> {
        let (w, h) = (texture.width(), texture.height());
        let row_texels = (w as usize).div_ceil(64) * 64;
        let rgba = self.ctx.tensor(row_texels * h as usize, "rgba rows")?;
        self.dispatch(
            kernel,
            &params(row_texels),
            &[(1, &input.buf), (2, &rgba.buf)],
            [w.div_ceil(8), h.div_ceil(8), 1],
        );
        self.encoder.copy_buffer_to_texture(
            wgpu::TexelCopyBufferInfo {
                buffer: &rgba.buf,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(4 * row_texels as u32),
                    rows_per_image: Some(h),
                },
            },
            texture.as_image_copy(),
            wgpu::Extent3d {
                width: w,
                height: h,
                depth_or_array_layers: 1,
            },
        );
        Ok(())
    }

    /// Submits what was recorded (without waiting).
    pub fn submit(self) {
        self.ctx.queue.submit([self.encoder.finish()]);
    }

    /// Submits and reads `ranges` back (see [`GpuContext::read_back`]).
    pub fn read_back(self, ranges: &[(&Tensor, usize, usize)]) -> Result<Vec<f32>, GpuError> {
        self.ctx.read_back(self.encoder, ranges)
    }
}

/// Workgroups for `items` invocations of a 64-wide 1-D kernel, `z` deep (x folded into y past
/// `MAX_X_GROUPS`; the kernels rebuild the flat index with `flat_index`).
pub fn linear_groups(items: usize, z: usize) -> [u32; 3] {
    let total = (items as u32).div_ceil(WG).max(1);
    let x = total.min(MAX_X_GROUPS);
    [x, total.div_ceil(x), z.max(1) as u32]
}

/// Packs `[k][cout]` (or any `[k][cout]`-indexable) weights as `[cout/4][k]` vec4s, output
/// channels padded with zeros to a multiple of 4: the layout the 4-channel kernels read.
pub fn pack_vec4(k: usize, cout: usize, at: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let cout4 = cout.div_ceil(4);
    let mut out = vec![0.0; cout4 * k * 4];
    for cb in 0..cout4 {
        for kk in 0..k {
            for j in 0..4 {
                let co = cb * 4 + j;
                if co < cout {
                    out[(cb * k + kk) * 4 + j] = at(kk, co);
                }
            }
        }
    }
    out
}
