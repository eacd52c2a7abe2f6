//! The shared wgpu context: the renderer's own `Device`/`Queue`, cloned for the worker so image
//! models can write previews straight into the textures the UI shows.

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
        let info = rs.adapter.get_info();
        Self {
            device: rs.device.clone(),
            queue: rs.queue.clone(),
            adapter: format!("{} · {:?}", info.name, info.backend),
            is_software: info.device_type == wgpu::DeviceType::Cpu,
        }
    }
}
