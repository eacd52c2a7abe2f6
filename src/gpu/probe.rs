//! What an adapter's arithmetic does where WGSL leaves it open.

use super::{GpuContext, GpuError};

const FMA_PROBE: &str = include_str!("../../shaders/compute/fma_probe.wgsl");

impl GpuContext {
    /// Whether `fma` in WGSL is fused on this adapter (one rounding), which the arbitrary-style
    /// transform needs to match the CPU bit for bit. Real GPUs fuse it; mesa's software
    /// Vulkan driver computes a rounded product plus the addend.
    pub fn fma_is_fused(&self) -> Result<bool, GpuError> {
        self.checked(|| {
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some("fma probe"),
                    source: wgpu::ShaderSource::Wgsl(FMA_PROBE.into()),
                });
            let pipeline = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some("fma probe"),
                    layout: None,
                    module: &module,
                    entry_point: Some("fma_probe"),
                    compilation_options: Default::default(),
                    cache: None,
                });
            // Inputs come from a buffer so the compiler cannot fold the fma.
            let (a, b, c) = (1.0 + f32::EPSILON, 1.0 - f32::EPSILON, -1.0f32);
            let v = self.upload(&[a, b, c, 0.0], "fma probe")?;
            let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("fma probe"),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &[wgpu::BindGroupEntry {
                    binding: 0,
                    resource: v.buf.as_entire_binding(),
                }],
            });
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("fma probe"),
                });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("fma probe"),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind, &[]);
                pass.dispatch_workgroups(1, 1, 1);
            }
            let out = self.read_back(encoder, &[(&v, 3, 1)])?;
            Ok(out.first() == Some(&a.mul_add(b, c)))
        })
    }
}
