//! The vocabulary of Faces jobs: what the panel, the CLI, `serve` and the tests ask the
//! engine for, and what a Faces job reports back. The engine's Faces family
//! (`engine::families::faces`) runs them.

use std::path::PathBuf;
use std::sync::Arc;

use super::FaceSpec;
use super::directions::Directions;
use super::render::FaceImage;
use super::walk::{PacingStats, WalkControl};
use crate::models::dcgan::GeneratorInfo;

/// Faces rendered per generator call in a grid or an exported walk. Batches of 4 run ~1.3×
/// faster per face than single samples on two cores, and a grid cell still appears within a
/// few milliseconds of the previous one; the cancel flag is checked between batches.
pub const RENDER_BATCH: usize = 4;

/// Most faces one render request may ask for.
pub const MAX_FACES: usize = 1024;

/// Most frames an exported walk may have.
pub const MAX_WALK_FRAMES: usize = 10_000;

/// Render some faces (a grid of seeds, the selected face at preview size, a strip of
/// direction examples, …).
#[derive(Clone, Debug, PartialEq)]
pub struct RenderRequest {
    /// The generator weights (loaded on first use, then kept).
    pub model: PathBuf,
    /// The faces, in the order [`FacesEvent::Sample::index`] refers to.
    pub faces: Vec<FaceSpec>,
    /// Side of each returned image: 64 is the model's own size; larger sizes are upscaled on
    /// the worker with [`crate::features::faces::PREVIEW_FILTER`].
    pub size: u32,
}

/// Render a looping walk through keyframes as a fixed number of frames (GIF export, CLI).
#[derive(Clone, Debug, PartialEq)]
pub struct WalkRequest {
    /// The generator weights.
    pub model: PathBuf,
    /// 2–8 keyframes; the walk slerps between consecutive ones and back to the first.
    pub keyframes: Vec<FaceSpec>,
    /// Frames over one whole loop.
    pub frames: usize,
    /// Side of each frame (64 = native; larger is upscaled).
    pub size: u32,
}

/// Play a walk live until cancelled: frames are rendered on the worker at `fps`, following the
/// shared [`WalkControl`] (speed, pause, scrub).
#[derive(Clone, Debug)]
pub struct LiveWalkRequest {
    /// The generator weights.
    pub model: PathBuf,
    /// 2–8 keyframes.
    pub keyframes: Vec<FaceSpec>,
    /// Shared controls; the panel keeps a clone.
    pub control: WalkControl,
    /// Where frames go: a 2D `Rgba8UnormSrgb` (or `Rgba8Unorm`) texture with `COPY_DST` usage,
    /// created on the renderer's device (the one in the engine's [`GpuContext`]) and
    /// registered with egui once; each frame is upscaled to the texture's size and written
    /// into it. `None`, or an engine without a GPU context, sends pixels in events instead.
    pub texture: Option<wgpu::Texture>,
    /// Side of the frames sent as pixels when there is no texture target.
    pub size: u32,
    /// Frames per second to aim for (1–240).
    pub fps: f32,
}

/// A Faces job.
#[derive(Clone, Debug)]
pub enum FacesRequest {
    /// Load (or switch to) a generator without rendering (e.g. when the panel opens).
    Load {
        /// The weights file.
        model: PathBuf,
    },
    /// Render faces, one [`FacesEvent::Sample`] each.
    Render(RenderRequest),
    /// Load the principal directions from the cache, or compute and cache them
    /// ([`FacesEvent::Progress`] while computing), then [`FacesEvent::Directions`].
    Directions {
        /// The weights file.
        model: PathBuf,
    },
    /// Render a walk's frames, one [`FacesEvent::Sample`] per frame.
    Walk(WalkRequest),
    /// Play a walk live until cancelled ([`FacesEvent::WalkFrame`], [`FacesEvent::Pacing`]).
    LiveWalk(LiveWalkRequest),
}

/// What a Faces job reports.
#[derive(Debug)]
pub enum FacesEvent {
    /// The generator was loaded for this job (first use or a different file).
    Loaded(Box<GeneratorInfo>),
    /// Face (or walk frame) `index` of the request is ready.
    Sample {
        /// Position in the request's `faces` (or frame number of a walk).
        index: usize,
        /// The pixels, at the request's size.
        image: FaceImage,
    },
    /// A long step (computing directions) has done `done` of `total` units.
    Progress {
        /// Units done.
        done: usize,
        /// Units in all.
        total: usize,
    },
    /// The principal directions of the loaded generator.
    Directions {
        /// The directions, strongest first.
        directions: Arc<Directions>,
        /// Whether they came from the disk cache (else they were just computed).
        from_cache: bool,
    },
    /// A live walk frame is out: written into the texture (`pixels: None`; repaint to show
    /// it) or carried here (`pixels: Some`) when there is no GPU target.
    WalkFrame {
        /// Frames rendered by this job so far, this one included.
        frame: u64,
        /// Where in the walk it is, in keyframes (for the scrub bar).
        position: f64,
        /// The frame's pixels when not written to a texture.
        pixels: Option<FaceImage>,
    },
    /// Frame pacing of the live walk, about once per second and when it stops.
    Pacing(PacingStats),
}
