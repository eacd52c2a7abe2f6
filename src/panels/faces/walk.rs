//! The live latent walk: its keyframes, the shared playback controls, and where its frames land.
//!
//! In the window, frames go straight from the worker into one wgpu texture on the renderer's
//! device, registered with egui's renderer once ([`WalkOutput::Gpu`]); the UI only repaints.
//! Without a render state (the test harness) the worker sends pixels and they are `set` on one
//! egui texture ([`WalkOutput::Pixels`]), never a new texture per frame.

use crate::engine::JobHandle;
use crate::features::faces::{FaceImage, FaceSpec, PacingStats, WalkControl};

/// Side of the walk texture. The worker upscales 64 → 384 with the preview filter on every
/// frame; the renderer then scales it to the preview's on-screen size.
pub const WALK_TEXTURE: u32 = 384;

/// Side of the frames sent as pixels when there is no GPU target.
pub const WALK_PIXELS: u32 = 256;

/// Most keyframes a walk may have.
pub const MAX_KEYS: usize = 8;

/// Frame rates the walk can aim at.
pub const FPS_CHOICES: [f32; 2] = [30.0, 60.0];

/// Where walk frames are shown.
pub enum WalkOutput {
    /// A texture on the renderer's device that the worker writes into.
    Gpu {
        /// The texture the worker writes (clones go into each request).
        texture: wgpu::Texture,
        /// Its id in egui's renderer.
        id: egui::TextureId,
    },
    /// An egui texture updated with the pixels from each frame event.
    Pixels(egui::TextureHandle),
}

/// The walk's UI state.
pub struct Walk {
    /// 2–8 faces the walk passes through, in order, looping back to the first.
    pub keys: Vec<FaceSpec>,
    /// Speed, pause and scrub, shared with the worker.
    pub control: WalkControl,
    /// The playing job, if any.
    pub job: Option<JobHandle>,
    /// The frame rate asked for.
    pub fps: f32,
    /// Where frames are shown (made on first play).
    pub output: Option<WalkOutput>,
    /// Pixels that arrived since the last frame (no-GPU path).
    pub pending: Option<FaceImage>,
    /// Position of the latest frame, in keyframes.
    pub position: f64,
    /// Frames delivered by the playing job.
    pub frames: u64,
    /// The latest pacing report.
    pub pacing: Option<PacingStats>,
    /// Whether a frame of the current job has arrived (before that the preview stays).
    pub showing: bool,
}

impl Default for Walk {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            control: WalkControl::new(0.5),
            job: None,
            fps: 60.0,
            output: None,
            pending: None,
            position: 0.0,
            frames: 0,
            pacing: None,
            showing: false,
        }
    }
}

impl Walk {
    /// Whether a walk is playing (or queued to play).
    pub fn is_playing(&self) -> bool {
        self.job.is_some()
    }

    /// Stops the walk; the worker notices before its next frame.
    pub fn stop(&mut self) {
        if let Some(job) = self.job.take() {
            job.cancel();
        }
        self.showing = false;
    }

    /// The texture the worker should write into, creating and registering it on first use.
    pub fn gpu_texture(&mut self, rs: &egui_wgpu::RenderState) -> Option<wgpu::Texture> {
        if self.output.is_none() {
            let texture = rs.device.create_texture(&wgpu::TextureDescriptor {
                label: Some("atelier-faces-walk"),
                size: wgpu::Extent3d {
                    width: WALK_TEXTURE,
                    height: WALK_TEXTURE,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                // The format egui's own textures use, so colours match the other faces.
                format: wgpu::TextureFormat::Rgba8UnormSrgb,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            });
            let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
            let id = rs.renderer.write().register_native_texture(
                &rs.device,
                &view,
                wgpu::FilterMode::Linear,
            );
            self.output = Some(WalkOutput::Gpu { texture, id });
        }
        match &self.output {
            Some(WalkOutput::Gpu { texture, .. }) => Some(texture.clone()),
            _ => None,
        }
    }

    /// Uploads pixels that arrived (no-GPU path) into the one walk texture.
    pub fn upload(&mut self, ctx: &egui::Context) {
        let Some(image) = self.pending.take() else {
            return;
        };
        let color = super::thumbs::color_image(&image);
        match &mut self.output {
            Some(WalkOutput::Pixels(handle)) => handle.set(color, egui::TextureOptions::LINEAR),
            _ => {
                self.output = Some(WalkOutput::Pixels(ctx.load_texture(
                    "faces-walk",
                    color,
                    egui::TextureOptions::LINEAR,
                )));
            }
        }
    }

    /// The texture to draw while the walk shows.
    pub fn texture_id(&self) -> Option<egui::TextureId> {
        match &self.output {
            Some(WalkOutput::Gpu { id, .. }) => Some(*id),
            Some(WalkOutput::Pixels(h)) => Some(h.id()),
            None => None,
        }
    }
}

/// One line of pacing figures: delivered fps and frame intervals.
pub fn pacing_line(p: &PacingStats) -> String {
    let fps = if p.mean_interval_ms > 0.0 {
        1000.0 / p.mean_interval_ms
    } else {
        0.0
    };
    format!(
        "{fps:.1} fps (target {:.0}) · interval p50 {:.1} ms, p95 {:.1} ms, jitter {:.1} ms · \
         render {:.1} ms · {} late",
        1000.0 / p.target_ms.max(1e-3),
        p.p50_interval_ms,
        p.p95_interval_ms,
        (p.p95_interval_ms - p.p50_interval_ms).max(0.0),
        p.mean_render_ms,
        p.late_frames
    )
}
