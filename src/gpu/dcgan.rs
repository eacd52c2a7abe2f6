//! The DCGAN face generator on the GPU: the CPU generator's folded layers
//! ([`crate::models::dcgan::Generator::folded_layers`]) uploaded once, five transposed
//! convolutions (`conv_transpose.wgsl`), and either a read-back of the `[B][3][64][64]` output
//! (grids, exports, tests) or the frame resampled to RGBA8 and copied straight into a texture
//! on the same device (the live walk: no read-back).

use std::path::PathBuf;
use std::sync::Arc;

use super::kernels::{Kernel, Kernels, Params, Recorder, Tensor, linear_groups, pack_vec4};
use super::{GpuContext, GpuError};
use crate::models::dcgan::{Generator, IMAGE_SIZE, IMAGE_VALUES, LATENT_DIM};

struct Layer {
    c_in: usize,
    c_out: usize,
    h_in: usize,
    h_out: usize,
    stride: usize,
    pad: usize,
    tanh: bool,
    /// `[c_out/4][16][c_in]` vec4s.
    weight: Tensor,
    /// `[c_out/4]` vec4s.
    shift: Tensor,
}

/// A generator's weights on the GPU, with activation buffers reused across calls.
pub struct GpuGenerator {
    ctx: GpuContext,
    kernels: Arc<Kernels>,
    layers: Vec<Layer>,
    /// The weights file (the worker keys its cache on it).
    path: PathBuf,
    /// `(batch, latents, activations ping, pong)`, grown on demand.
    scratch: Option<(usize, Tensor, Tensor, Tensor)>,
}

impl std::fmt::Debug for GpuGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuGenerator")
            .field("path", &self.path)
            .field("adapter", &self.ctx.adapter)
            .finish()
    }
}

impl GpuGenerator {
    /// Uploads `generator`'s folded weights to `ctx`'s device.
    pub fn new(
        ctx: &GpuContext,
        kernels: Arc<Kernels>,
        generator: &Generator,
    ) -> Result<Self, GpuError> {
        let layers = ctx.checked(|| {
            generator
                .folded_layers()
                .iter()
                .map(|l| {
                    let k = 16 * l.c_in;
                    // kk = tap·c_in + ci; CPU layout [tap][c_out][c_in].
                    let w = pack_vec4(k, l.c_out, |kk, co| {
                        let (t, ci) = (kk / l.c_in, kk % l.c_in);
                        l.weight[(t * l.c_out + co) * l.c_in + ci]
                    });
                    let shift = pack_vec4(1, l.c_out, |_, co| l.shift[co]);
                    Ok(Layer {
                        c_in: l.c_in,
                        c_out: l.c_out,
                        h_in: l.h_in,
                        h_out: l.h_out,
                        stride: l.stride,
                        pad: l.pad,
                        tanh: l.tanh,
                        weight: ctx.upload(&w, "dcgan weights")?,
                        shift: ctx.upload(&shift, "dcgan shift")?,
                    })
                })
                .collect::<Result<Vec<_>, GpuError>>()
        })?;
        Ok(Self {
            ctx: ctx.clone(),
            kernels,
            layers,
            path: generator.info().path.clone(),
            scratch: None,
        })
    }

    /// The weights file these came from.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Records the forward pass of `latents` (`B × 100`, checked by the caller); the output
    /// `[B][3][64][64]` is in the returned tensor.
    fn record(&mut self, rec: &mut Recorder<'_>, latents: &[f32]) -> Result<Tensor, GpuError> {
        let batch = latents.len() / LATENT_DIM;
        let largest = self
            .layers
            .iter()
            .map(|l| l.c_out * l.h_out * l.h_out)
            .max()
            .unwrap_or(0);
        let fits = self.scratch.as_ref().is_some_and(|s| s.0 >= batch);
        if !fits {
            self.scratch = Some((
                batch,
                self.ctx.tensor(batch * LATENT_DIM, "latents")?,
                self.ctx.tensor(batch * largest, "dcgan activations")?,
                self.ctx.tensor(batch * largest, "dcgan activations")?,
            ));
        }
        let Some((_, z, a, b)) = self.scratch.as_ref() else {
            return Err(GpuError::Validation("scratch buffers missing".into()));
        };
        self.ctx
            .queue
            .write_buffer(&z.buf, 0, &super::kernels::f32_bytes(latents));
        let (mut input, mut output) = (z, a);
        for l in &self.layers {
            let params = Params::new()
                .u(l.c_in)
                .u(l.c_out)
                .u(l.h_in)
                .u(l.h_out)
                .u(l.stride)
                .u(l.pad)
                .u(l.tanh as usize)
                .u(batch);
            rec.dispatch(
                Kernel::ConvTranspose,
                &params,
                &[
                    (1, &input.buf),
                    (2, &l.weight.buf),
                    (3, &l.shift.buf),
                    (4, &output.buf),
                ],
                linear_groups(batch * l.h_out * l.h_out, l.c_out.div_ceil(4)),
            );
            input = output;
            output = if std::ptr::eq(output, a) { b } else { a };
        }
        Ok(input.clone())
    }

    /// Runs the generator and reads the images back: `B × [3][64][64]` values in [-1, 1], as
    /// [`Generator::forward`] returns them.
    pub fn forward(&mut self, latents: &[f32]) -> Result<Vec<f32>, GpuError> {
        let batch = latents.len() / LATENT_DIM;
        if batch == 0 {
            return Ok(Vec::new());
        }
        let ctx = self.ctx.clone();
        let kernels = self.kernels.clone();
        ctx.checked(|| {
            let mut rec = Recorder::new(&ctx, &kernels);
            let out = self.record(&mut rec, latents)?;
            rec.read_back(&[(&out, 0, batch * IMAGE_VALUES)])
        })
    }

    /// Renders one latent straight into `texture` (2D, `Rgba8Unorm`/`Rgba8UnormSrgb`,
    /// `COPY_DST`, on this device), resampled to its size with Catmull–Rom; nothing comes back
    /// to the CPU. The work is submitted; it lands before the next frame the renderer draws.
    pub fn render_to_texture(
        &mut self,
        latent: &[f32],
        texture: &wgpu::Texture,
    ) -> Result<(), GpuError> {
        let ctx = self.ctx.clone();
        let kernels = self.kernels.clone();
        ctx.checked(|| {
            let mut rec = Recorder::new(&ctx, &kernels);
            let out = self.record(&mut rec, latent)?;
            let (w, h) = (texture.width(), texture.height());
            let params = |row_texels| {
                Params::new()
                    .u(0)
                    .u(0)
                    .u(w as usize)
                    .u(h as usize)
                    .u(row_texels)
                    .u(IMAGE_SIZE)
                    .u(0)
                    .u(0)
                    .v4([0.0; 4])
            };
            rec.write_rgba(Kernel::FaceRgba, &out, params, texture)?;
            rec.submit();
            Ok(())
        })
    }

    /// Waits for the submitted work (the walk paces itself on finished frames).
    pub fn wait(&self) -> Result<(), GpuError> {
        self.ctx.wait()
    }
}
