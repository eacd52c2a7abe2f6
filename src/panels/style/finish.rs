//! The result view: strength, preserve-colour and the before/after split applied on the
//! renderer's GPU in `shaders/style_finish.wgsl`, through an egui paint callback, so dragging a
//! slider costs one uniform write instead of a CPU pass over the image.
//!
//! The pipeline is built lazily in [`CallbackTrait::prepare`] and kept in egui_wgpu's
//! `callback_resources`; the two images are uploaded only when a new result arrives (its
//! generation differs from the uploaded one). Without a GPU context the view falls back to
//! [`colour::compose`] into an egui texture: the same formula, slower.

use std::sync::Arc;

use egui_wgpu::wgpu;
use egui_wgpu::wgpu::util::DeviceExt;
use image::RgbImage;

use crate::models::stylenet::colour::{self, Finish};

/// The finish shader (its formula is `colour::compose_pixel`'s, line for line).
pub const SHADER: &str = include_str!("../../../shaders/style_finish.wgsl");

/// A result to show: the content and the raw stylised image, at the same size.
#[derive(Clone)]
pub struct Images {
    /// Bumped for every new result, so the GPU uploads each one once.
    pub generation: u64,
    /// The "before": what strength blends towards.
    pub content: Arc<RgbImage>,
    /// The network's output, unfinished.
    pub stylised: Stylised,
    /// Both as RGBA8 for the upload, when made ahead off the UI thread ([`to_rgba`]);
    /// otherwise the upload converts them itself.
    pub rgba: Option<Arc<[Vec<u8>; 2]>>,
}

/// The network's output: pixels, or a texture the worker left on the renderer's device.
#[derive(Clone)]
pub enum Stylised {
    /// Pixels (CPU jobs, tiled results, full passes).
    Pixels(Arc<RgbImage>),
    /// RGBA8 on the renderer's own device (previews run there): bound as it is, never read
    /// back to be shown.
    Texture(wgpu::Texture),
}

/// RGB to RGBA8 (wgpu has no 3-channel 8-bit format).
pub fn to_rgba(img: &RgbImage) -> Vec<u8> {
    let mut rgba = Vec::with_capacity(img.as_raw().len() / 3 * 4);
    for p in img.as_raw().chunks_exact(3) {
        rgba.extend_from_slice(&[p[0], p[1], p[2], 255]);
    }
    rgba
}

/// The uniform block, laid out as the shader's `Finish` struct.
#[derive(Clone, Copy)]
struct Uniform {
    strength: f32,
    preserve: f32,
    split: f32,
    srgb_target: f32,
}

impl Uniform {
    fn bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        for (i, v) in [self.strength, self.preserve, self.split, self.srgb_target]
            .into_iter()
            .enumerate()
        {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

/// GPU objects kept between frames in egui_wgpu's callback resources.
struct Resources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    uniform: wgpu::Buffer,
    /// The uploaded result's generation and the bind group over its textures.
    bound: Option<(u64, wgpu::BindGroup)>,
}

impl Resources {
    fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("style-finish"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let texture_entry = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type: wgpu::TextureSampleType::Float { filterable: true },
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("style-finish"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                texture_entry(1),
                texture_entry(2),
                wgpu::BindGroupLayoutEntry {
                    binding: 3,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("style-finish"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("style-finish"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            // eframe's default (no multisampling) and kittest's renderer both draw 1 sample.
            multisample: wgpu::MultisampleState::default(),
            multiview_mask: None,
            cache: None,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("style-finish"),
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("style-finish"),
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            pipeline,
            layout,
            sampler,
            uniform,
            bound: None,
        }
    }

    fn upload(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, images: &Images) {
        let texture = |img: &RgbImage, rgba: Option<&Vec<u8>>, label| {
            let (w, h) = img.dimensions();
            let converted;
            let rgba = match rgba {
                Some(r) => r,
                None => {
                    converted = to_rgba(img);
                    &converted
                }
            };
            let t = device.create_texture_with_data(
                queue,
                &wgpu::TextureDescriptor {
                    label: Some(label),
                    size: wgpu::Extent3d {
                        width: w,
                        height: h,
                        depth_or_array_layers: 1,
                    },
                    mip_level_count: 1,
                    sample_count: 1,
                    dimension: wgpu::TextureDimension::D2,
                    // Not sRGB: the shader works on stored values, like the CPU reference.
                    format: wgpu::TextureFormat::Rgba8Unorm,
                    usage: wgpu::TextureUsages::TEXTURE_BINDING,
                    view_formats: &[],
                },
                wgpu::util::TextureDataOrder::LayerMajor,
                rgba,
            );
            t.create_view(&wgpu::TextureViewDescriptor::default())
        };
        let ready = images.rgba.as_deref();
        let original = texture(&images.content, ready.map(|r| &r[0]), "style-original");
        let stylised = match &images.stylised {
            Stylised::Pixels(img) => texture(img, ready.map(|r| &r[1]), "style-stylised"),
            Stylised::Texture(t) => t.create_view(&wgpu::TextureViewDescriptor::default()),
        };
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("style-finish"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: self.uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&original),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&stylised),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::Sampler(&self.sampler),
                },
            ],
        });
        self.bound = Some((images.generation, group));
    }
}

/// One frame's paint callback: which result, and the finish to apply.
struct FinishCallback {
    images: Images,
    uniform: Uniform,
    format: wgpu::TextureFormat,
}

impl egui_wgpu::CallbackTrait for FinishCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if resources.get::<Resources>().is_none() {
            resources.insert(Resources::new(device, self.format));
        }
        if let Some(r) = resources.get_mut::<Resources>() {
            if r.bound.as_ref().map(|(g, _)| *g) != Some(self.images.generation) {
                r.upload(device, queue, &self.images);
            }
            queue.write_buffer(&r.uniform, 0, &self.uniform.bytes());
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(r) = resources.get::<Resources>() else {
            return;
        };
        let Some((_, group)) = &r.bound else {
            return;
        };
        pass.set_pipeline(&r.pipeline);
        pass.set_bind_group(0, group, &[]);
        pass.draw(0..3, 0..1);
    }
}

/// Draws `images` finished with `finish` into `rect` on the GPU; `split` is the divider's
/// position across the rect (0..1), `None` for no split.
pub fn paint_gpu(
    ui: &egui::Ui,
    rect: egui::Rect,
    render_state: &egui_wgpu::RenderState,
    images: &Images,
    finish: Finish,
    split: Option<f32>,
) {
    let format = render_state.target_format;
    let callback = FinishCallback {
        images: images.clone(),
        uniform: Uniform {
            strength: finish.strength,
            preserve: if finish.preserve_colour { 1.0 } else { 0.0 },
            split: split.unwrap_or(-1.0),
            srgb_target: if format.is_srgb() { 1.0 } else { 0.0 },
        },
        format,
    };
    ui.painter()
        .add(egui_wgpu::Callback::new_paint_callback(rect, callback));
}

/// The CPU fallback: the finished image and the content as egui textures, recomposed only
/// when the result or the finish changes.
#[derive(Default)]
pub struct CpuView {
    pub(super) key: Option<(u64, u32, bool)>,
    pub(super) finished: Option<egui::TextureHandle>,
    pub(super) content: Option<(u64, egui::TextureHandle)>,
}

fn to_color_image(img: &RgbImage) -> egui::ColorImage {
    egui::ColorImage::from_rgb([img.width() as usize, img.height() as usize], img.as_raw())
}

impl CpuView {
    /// Draws `images` finished with `finish` into `rect` (with the content left of `split`).
    pub fn paint(
        &mut self,
        ui: &egui::Ui,
        rect: egui::Rect,
        images: &Images,
        finish: Finish,
        split: Option<f32>,
    ) {
        let key = (
            images.generation,
            finish.strength.to_bits(),
            finish.preserve_colour,
        );
        // Textures come only from jobs on the renderer's device, and this view is the one
        // without a renderer: there is nothing of one to draw.
        let Stylised::Pixels(stylised) = &images.stylised else {
            return;
        };
        if self.key != Some(key) {
            let img = colour::compose(&images.content, stylised, finish)
                .unwrap_or_else(|| (**stylised).clone());
            self.finished = Some(ui.ctx().load_texture(
                "style-finished",
                to_color_image(&img),
                egui::TextureOptions {
                    mipmap_mode: Some(egui::TextureFilter::Linear),
                    ..egui::TextureOptions::LINEAR
                },
            ));
            self.key = Some(key);
        }
        if self.content.as_ref().map(|(g, _)| *g) != Some(images.generation) {
            let t = ui.ctx().load_texture(
                "style-content",
                to_color_image(&images.content),
                egui::TextureOptions {
                    mipmap_mode: Some(egui::TextureFilter::Linear),
                    ..egui::TextureOptions::LINEAR
                },
            );
            self.content = Some((images.generation, t));
        }
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        if let Some(t) = &self.finished {
            ui.painter().image(t.id(), rect, uv, egui::Color32::WHITE);
        }
        if let (Some(s), Some((_, t))) = (split, &self.content) {
            let x = rect.left() + rect.width() * s.clamp(0.0, 1.0);
            let left = egui::Rect::from_min_max(rect.min, egui::pos2(x, rect.bottom()));
            ui.painter()
                .with_clip_rect(left)
                .image(t.id(), rect, uv, egui::Color32::WHITE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shader parses and validates (naga is what wgpu compiles it with), so a typo fails
    /// here rather than as a blank view on a user's machine. Its formula cannot run on the CPU;
    /// it is kept identical to `colour::compose_pixel` by hand (see the shader's header).
    #[test]
    fn shader_is_valid_wgsl() {
        use wgpu::naga;
        let module = naga::front::wgsl::parse_str(SHADER).expect("WGSL parses");
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .expect("WGSL validates");
    }

    #[test]
    fn uniform_is_four_little_endian_floats() {
        let u = Uniform {
            strength: 0.5,
            preserve: 1.0,
            split: -1.0,
            srgb_target: 0.0,
        };
        let b = u.bytes();
        assert_eq!(f32::from_le_bytes([b[0], b[1], b[2], b[3]]), 0.5);
        assert_eq!(f32::from_le_bytes([b[8], b[9], b[10], b[11]]), -1.0);
    }
}
