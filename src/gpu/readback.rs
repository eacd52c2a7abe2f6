//! Reading an RGBA8 texture back into an RGB image: what an export of a result that lives on
//! the GPU does, once.

use image::RgbImage;

use super::GpuError;

/// Copies `texture` (RGBA8, single level) to the CPU as RGB, waiting for the device.
pub fn texture_to_rgb(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
) -> Result<RgbImage, GpuError> {
    let (w, h) = (texture.width(), texture.height());
    // copy_texture_to_buffer wants rows in multiples of 256 bytes.
    let row = (w as usize * 4).div_ceil(256) * 256;
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("texture read back"),
        size: (row * h as usize).max(4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("texture read back"),
    });
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &staging,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row as u32),
                rows_per_image: Some(h),
            },
        },
        wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
    );
    queue.submit([encoder.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| GpuError::Lost(e.to_string()))?;
    rx.recv()
        .map_err(|_| GpuError::Lost("the read-back was dropped".into()))?
        .map_err(|e| GpuError::Lost(format!("cannot read the texture back: {e}")))?;
    let view = staging
        .get_mapped_range(..)
        .map_err(|e| GpuError::Lost(format!("cannot read the texture back: {e}")))?;
    let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
    for y in 0..h as usize {
        for px in view[y * row..][..w as usize * 4].chunks_exact(4) {
            rgb.extend_from_slice(&px[..3]);
        }
    }
    RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| GpuError::Validation("read-back size mismatch".into()))
}
