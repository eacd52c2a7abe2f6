//! The worker's GPU state: which device the image models run on for a given [`Backend`], the
//! compiled kernels, and the networks uploaded to it (once per model, kept until the model
//! changes or the GPU fails).

use std::sync::Arc;

use super::dcgan::GpuGenerator;
use super::kernels::Kernels;
use super::stylenet::{GpuMultistyle, GpuTransform};
use super::{Backend, GpuContext, GpuError};

/// A device ready to run networks, with the networks uploaded so far.
pub struct GpuRuntime {
    /// The device (the window's, or a headless one).
    pub ctx: GpuContext,
    /// Its compiled kernels.
    pub kernels: Arc<Kernels>,
    /// Whether `ctx` is the window's own device (so its textures can be written).
    pub is_window: bool,
    /// The face generator, keyed by its weights file ([`GpuGenerator::path`]).
    pub faces: Option<GpuGenerator>,
    /// multistyle26.
    pub multistyle: Option<GpuMultistyle>,
    /// The arbitrary-style transform.
    pub transform: Option<GpuTransform>,
}

impl GpuRuntime {
    /// What the status bar says about where a job ran.
    pub fn label(&self) -> String {
        format!("GPU · {}", self.ctx.adapter)
    }
}

/// What the CLI and the status bar say for the CPU kernels.
pub const CPU_LABEL: &str = "CPU";

/// The devices the worker may use and the one it uses now.
pub struct Devices {
    window: Option<GpuContext>,
    runtime: Option<GpuRuntime>,
    /// Why the GPU is unusable in this session (no adapter, or it failed); `Auto` stops trying.
    broken: Option<String>,
}

impl Devices {
    /// `window`: the renderer's device when the GUI runs.
    pub fn new(window: Option<GpuContext>) -> Self {
        Self {
            window,
            runtime: None,
            broken: None,
        }
    }

    /// The window's device, if there is a window.
    pub fn window(&self) -> Option<&GpuContext> {
        self.window.as_ref()
    }

    /// The GPU to run on for `backend`, or `None` for the CPU. Only [`Backend::Gpu`] turns a
    /// missing or failed GPU into an error; `Auto` quietly takes the CPU (and the CPU when the
    /// adapter is a software rasterizer, which is slower than the CPU kernels).
    pub fn select(&mut self, backend: Backend) -> Result<Option<&mut GpuRuntime>, GpuError> {
        if backend == Backend::Cpu {
            return Ok(None);
        }
        if self.runtime.is_none() {
            if backend == Backend::Auto && self.broken.is_some() {
                return Ok(None);
            }
            match self.open(backend) {
                Ok(Some(rt)) => self.runtime = Some(rt),
                Ok(None) => {
                    // Auto on a software adapter: remember, so it is not probed per job.
                    self.broken = Some("the adapter is a software rasterizer".into());
                    return Ok(None);
                }
                Err(e) if backend == Backend::Auto => {
                    tracing::warn!("GPU unavailable, image models run on the CPU: {e}");
                    self.broken = Some(e.to_string());
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        let rt = self.runtime.as_mut();
        Ok(rt.filter(|rt| backend.wants_gpu(Some(&rt.ctx))))
    }

    fn open(&self, backend: Backend) -> Result<Option<GpuRuntime>, GpuError> {
        let (ctx, is_window) = match &self.window {
            Some(w) => (w.clone(), true),
            None if backend == Backend::Auto => match GpuContext::headless_hardware()? {
                Some(ctx) => (ctx, false),
                None => return Ok(None),
            },
            None => (GpuContext::headless()?, false),
        };
        if !backend.wants_gpu(Some(&ctx)) {
            // Auto on a software adapter: not worth compiling anything.
            return Ok(None);
        }
        tracing::info!("image models on the GPU: {}", ctx.adapter);
        let kernels = Arc::new(Kernels::new(&ctx)?);
        Ok(Some(GpuRuntime {
            ctx,
            kernels,
            is_window,
            faces: None,
            multistyle: None,
            transform: None,
        }))
    }

    /// Drops the GPU after `error` (device lost, out of memory): `Auto` uses the CPU from now
    /// on; `Gpu` tries a fresh device on the next job.
    pub fn failed(&mut self, error: &GpuError) {
        tracing::warn!("the GPU failed; image models fall back to the CPU: {error}");
        self.runtime = None;
        self.broken = Some(error.to_string());
    }

    /// Drops the uploaded networks (after a panic they may be half-built).
    pub fn reset_models(&mut self) {
        if let Some(rt) = &mut self.runtime {
            rt.faces = None;
            rt.multistyle = None;
            rt.transform = None;
        }
    }
}
