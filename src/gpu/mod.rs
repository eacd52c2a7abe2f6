//! The GPU side of Atelier: the renderer's own `Device`/`Queue`, cloned for the worker so image
//! models run where their previews are shown, and the WGSL compute kernels the Faces and Style
//! networks run on there.
//!
//! - [`GpuContext`]: the device (the window's, or one made headless for the CLI and tests).
//! - [`kernels`]: the compute pipelines and buffers; [`dcgan`] and [`style`]: the networks
//!   built from them, weights uploaded once per model.
//! - [`Backend`]: the user's choice of CPU or GPU for the image models (the language model
//!   always runs on candle, on the CPU unless built with `cuda`/`metal`).

pub mod blend;
pub mod dcgan;
pub mod kernels;
mod probe;
pub mod readback;
pub mod runtime;
pub mod stylenet;

pub use runtime::{CPU_LABEL, Devices, GpuRuntime};

/// Why the GPU could not run a model; [`Backend::Auto`] falls back to the CPU on any of them.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No wgpu adapter (Vulkan, Metal, DX12 or GL) exists on this machine.
    #[error(
        "no GPU adapter found (wgpu saw none: install a Vulkan driver, e.g. mesa-vulkan-drivers, \
         or choose --backend cpu)"
    )]
    NoAdapter,
    /// The adapter refused to open a device.
    #[error("cannot open the GPU device {adapter}: {reason}")]
    RequestDevice {
        /// The adapter.
        adapter: String,
        /// wgpu's explanation.
        reason: String,
    },
    /// The device ran out of memory.
    #[error("the GPU ran out of memory ({0}); try a smaller size or --backend cpu")]
    OutOfMemory(String),
    /// The device was lost (driver reset, GPU removed) or stopped answering.
    #[error("the GPU device was lost: {0}")]
    Lost(String),
    /// wgpu rejected a shader or a command (a bug in Atelier; the message says where).
    #[error("GPU validation error: {0}")]
    Validation(String),
    /// A tensor is larger than the device's largest storage buffer.
    #[error(
        "{what} needs {bytes} bytes on the GPU, more than its {limit}-byte buffer limit; use a \
         smaller size or tile, or --backend cpu"
    )]
    TooLarge {
        /// What was being allocated.
        what: String,
        /// Bytes needed.
        bytes: u64,
        /// The device's limit.
        limit: u64,
    },
}

impl From<GpuError> for crate::models::stylenet::StyleError {
    fn from(e: GpuError) -> Self {
        Self::Device(Box::new(e))
    }
}

/// The GPU failure behind a style network's error, if the GPU is what failed.
pub fn style_gpu_failure(e: &crate::models::stylenet::StyleError) -> Option<&GpuError> {
    match e {
        crate::models::stylenet::StyleError::Device(d) => d.downcast_ref::<GpuError>(),
        _ => None,
    }
}

/// Where the image models (Faces, Style) run.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The GPU when the adapter is a real GPU; the CPU when it is a software rasterizer (which
    /// is slower than the CPU kernels) or when there is none.
    #[default]
    Auto,
    /// Always the CPU kernels.
    Cpu,
    /// Always the GPU (a software adapter too); fails when there is no adapter.
    Gpu,
}

impl Backend {
    /// All choices, in the order the settings show them.
    pub const ALL: [Backend; 3] = [Backend::Auto, Backend::Cpu, Backend::Gpu];

    /// The name the CLI and the settings use.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Cpu => "cpu",
            Backend::Gpu => "gpu",
        }
    }

    /// A small integer for sharing the choice across threads ([`Backend::from_index`]).
    pub fn index(self) -> u8 {
        match self {
            Backend::Auto => 0,
            Backend::Cpu => 1,
            Backend::Gpu => 2,
        }
    }

    /// The choice [`Backend::index`] gave (`Auto` for anything else).
    pub fn from_index(i: u8) -> Self {
        match i {
            1 => Backend::Cpu,
            2 => Backend::Gpu,
            _ => Backend::Auto,
        }
    }

    /// Whether this choice runs on `ctx` (`None`: no adapter could be opened).
    pub fn wants_gpu(self, ctx: Option<&GpuContext>) -> bool {
        match self {
            Backend::Cpu => false,
            Backend::Gpu => true,
            Backend::Auto => ctx.is_some_and(|c| !c.is_software),
        }
    }
}

/// Cheap clones of the renderer's wgpu handles plus what the status bar shows about them.
#[derive(Clone, Debug)]
pub struct GpuContext {
    /// The renderer's device (a cheap handle: clone freely).
    pub device: wgpu::Device,
    /// The renderer's queue; `write_texture` lands at the next submit.
    pub queue: wgpu::Queue,
    /// Human-readable adapter name and backend, e.g. "llvmpipe (LLVM 15) · Vulkan".
    pub adapter: String,
    /// Whether the adapter is a software rasterizer (llvmpipe, lavapipe, WARP).
    pub is_software: bool,
}

impl GpuContext {
    /// Builds the context from eframe's wgpu render state.
    pub fn from_render_state(rs: &egui_wgpu::RenderState) -> Self {
        Self::from_parts(rs.device.clone(), rs.queue.clone(), &rs.adapter.get_info())
    }

    fn from_parts(device: wgpu::Device, queue: wgpu::Queue, info: &wgpu::AdapterInfo) -> Self {
        Self {
            device,
            queue,
            adapter: format!("{} · {:?}", info.name, info.backend),
            is_software: info.device_type == wgpu::DeviceType::Cpu,
        }
    }

    /// Opens a device of its own when there is no window (CLI, tests, benchmarks): the best
    /// adapter wgpu finds (a discrete GPU before an integrated one before a software one;
    /// Vulkan, Metal or DX12 before GL), with that adapter's own limits.
    pub fn headless() -> Result<Self, GpuError> {
        Self::headless_if(|_| true)?.ok_or(GpuError::NoAdapter)
    }

    /// [`GpuContext::headless`], but only when the best adapter is a real GPU: a software
    /// rasterizer's device is never opened (for `--backend auto`, which would not use it;
    /// opening lavapipe's cost a cold `atelier style` 60 ms and 56 MB).
    pub fn headless_hardware() -> Result<Option<Self>, GpuError> {
        Self::headless_if(|info| info.device_type != wgpu::DeviceType::Cpu)
    }

    /// The best adapter's device when `wanted` accepts the adapter.
    fn headless_if(wanted: impl Fn(&wgpu::AdapterInfo) -> bool) -> Result<Option<Self>, GpuError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if std::env::var_os("WGPU_BACKEND").is_none() {
            // Vulkan, Metal, DX12: compute needs one of them, and skipping GL keeps EGL from
            // printing driver errors on machines without a display.
            desc.backends = wgpu::Backends::PRIMARY;
        }
        let instance = wgpu::Instance::new(desc);
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let rank = |a: &wgpu::Adapter| {
            let info = a.get_info();
            let kind = match info.device_type {
                wgpu::DeviceType::DiscreteGpu => 0,
                wgpu::DeviceType::IntegratedGpu => 1,
                wgpu::DeviceType::VirtualGpu | wgpu::DeviceType::Other => 2,
                wgpu::DeviceType::Cpu => 3,
            };
            let api = match info.backend {
                wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
                _ => 1,
            };
            (kind, api)
        };
        let adapter = adapters
            .into_iter()
            .filter(|a| a.get_info().backend != wgpu::Backend::Noop)
            .min_by_key(rank)
            .ok_or(GpuError::NoAdapter)?;
        let info = adapter.get_info();
        if !wanted(&info) {
            return Ok(None);
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("atelier headless"),
            required_features: wgpu::Features::empty(),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::RequestDevice {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        Ok(Some(Self::from_parts(device, queue, &info)))
    }

    /// Runs `f` inside out-of-memory and validation error scopes, so a failure inside wgpu
    /// becomes a [`GpuError`] instead of the default handler's panic.
    pub fn checked<T>(&self, f: impl FnOnce() -> Result<T, GpuError>) -> Result<T, GpuError> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            return Err(GpuError::OutOfMemory(e.to_string()));
        }
        if let Some(e) = v {
            return Err(GpuError::Validation(e.to_string()));
        }
        out
    }
}
