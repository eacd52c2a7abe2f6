//! Faces jobs: the requests and events of the Faces panel and `atelier faces`, and their
//! handling on the worker thread, which owns the loaded [`Generator`] (loaded on first use,
//! kept until another file is asked for) and its principal directions.
//!
//! Every job checks its cancel flag before each sample or frame. A render emits one
//! [`FacesEvent::Sample`] per face as soon as it exists, so a grid fills in progressively.
//! The live walk writes each frame straight into a texture on the renderer's wgpu device
//! (`Queue::write_texture`; the UI only repaints) and, without a GPU context, sends the pixels
//! in [`FacesEvent::WalkFrame`] instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::messages::{EngineError, Event};
use super::{JobHandle, Outbox};
use crate::faces::directions::{self, DIRECTION_COUNT, Directions, DirectionsCache, PCA_SAMPLES};
use crate::faces::latent::{walk_point, walk_positions};
use crate::faces::render::MAX_SIZE;
use crate::faces::walk::{PacingMeter, PacingStats, WalkControl};
use crate::faces::{FaceGenerator, FaceImage, FaceSpec, FacesError, render_batch, render_latents};
use crate::gpu::dcgan::GpuGenerator;
use crate::gpu::{Backend, CPU_LABEL, Devices, GpuContext, GpuRuntime};
use crate::models::dcgan::{Generator, GeneratorInfo, IMAGE_SIZE, LATENT_DIM};

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
    /// the worker with [`crate::faces::PREVIEW_FILTER`].
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

/// How a Faces job ended.
pub(crate) enum FacesOutcome {
    /// Ran to the end.
    Done,
    /// Stopped by its cancel flag.
    Cancelled,
}

/// The worker's Faces state.
pub(crate) struct FacesWorker {
    loaded: Option<Loaded>,
    cache: DirectionsCache,
}

struct Loaded {
    generator: Generator,
    directions: Option<Arc<Directions>>,
}

impl FacesWorker {
    pub(crate) fn new() -> Self {
        Self {
            loaded: None,
            cache: DirectionsCache::in_data_dir(),
        }
    }

    /// Drops the generator (after a panic it may be mid-update; the next job reloads).
    pub(crate) fn reset(&mut self) {
        self.loaded = None;
    }

    pub(crate) fn handle(
        &mut self,
        job: &JobHandle,
        req: FacesRequest,
        outbox: &Outbox,
        devices: &mut Devices,
        backend: Backend,
    ) -> Result<FacesOutcome, EngineError> {
        let cx = Cx { job, outbox };
        let window = devices.window().cloned();
        let runs_model = matches!(
            req,
            FacesRequest::Render(_) | FacesRequest::Walk(_) | FacesRequest::LiveWalk(_)
        );
        // Bad sizes fail before a GPU device is opened (probing one costs time and can print
        // driver noise on machines without a display).
        match &req {
            FacesRequest::Render(r) => check_size(r.size)?,
            FacesRequest::Walk(r) => {
                check_size(r.size)?;
                check_keyframes(&r.keyframes)?;
            }
            _ => {}
        }
        let rt = if runs_model {
            let rt = devices.select(backend).map_err(FacesError::from)?;
            outbox.send(Event::Backend {
                job: job.id(),
                device: rt.as_ref().map_or(CPU_LABEL.into(), |r| r.label()),
            });
            rt
        } else {
            None
        };
        let outcome = match req {
            FacesRequest::Load { model } => {
                self.ensure(&cx, &model)?;
                FacesOutcome::Done
            }
            FacesRequest::Render(r) => self.render(&cx, r, rt)?,
            FacesRequest::Directions { model } => {
                self.ensure(&cx, &model)?;
                match self.directions(&cx, &model, true)? {
                    Some(_) => FacesOutcome::Done,
                    None => FacesOutcome::Cancelled,
                }
            }
            FacesRequest::Walk(r) => self.walk(&cx, r, rt)?,
            FacesRequest::LiveWalk(r) => self.live_walk(&cx, r, window.as_ref(), rt)?,
        };
        Ok(outcome)
    }

    fn ensure(&mut self, cx: &Cx<'_>, model: &Path) -> Result<&mut Loaded, FacesError> {
        let loaded = self
            .loaded
            .as_ref()
            .is_some_and(|l| l.generator.info().path == model);
        if !loaded {
            self.loaded = None; // free the old weights first
            cx.outbox.send(Event::ModelLoading {
                job: cx.job.id(),
                path: model.to_path_buf(),
            });
            let generator = Generator::load(model)?;
            tracing::info!(
                "loaded face generator {} in {:.2}s",
                model.display(),
                generator.info().load_seconds
            );
            cx.send(FacesEvent::Loaded(Box::new(generator.info().clone())));
            self.loaded = Some(Loaded {
                generator,
                directions: None,
            });
        }
        self.loaded
            .as_mut()
            .ok_or_else(|| FacesError::InvalidRequest("the face generator is not loaded".into()))
    }

    /// The loaded generator's directions: from memory, the disk cache, or computed now.
    /// `announce` sends [`FacesEvent::Directions`] even when they were already in memory.
    /// `None` if the job was cancelled while computing.
    fn directions(
        &mut self,
        cx: &Cx<'_>,
        model: &Path,
        announce: bool,
    ) -> Result<Option<Arc<Directions>>, FacesError> {
        let cache = self.cache.clone();
        let loaded = self.ensure(cx, model)?;
        if let Some(d) = &loaded.directions {
            if announce {
                cx.send(FacesEvent::Directions {
                    directions: d.clone(),
                    from_cache: true,
                });
            }
            return Ok(Some(d.clone()));
        }
        let (d, from_cache) = match cache.load(model) {
            Some(d) => (d, true),
            None => {
                let started = Instant::now();
                let computed = directions::compute(
                    &mut loaded.generator,
                    PCA_SAMPLES,
                    DIRECTION_COUNT,
                    &mut |done, total| {
                        cx.send(FacesEvent::Progress { done, total });
                        !cx.job.is_cancelled()
                    },
                )?;
                let Some(d) = computed else {
                    return Ok(None);
                };
                tracing::info!(
                    "computed face directions in {:.2}s",
                    started.elapsed().as_secs_f64()
                );
                // A cache that cannot be written only costs a recomputation next time.
                if let Err(e) = cache.save(model, &d) {
                    tracing::warn!("could not cache the face directions: {e}");
                }
                (d, false)
            }
        };
        let d = Arc::new(d);
        loaded.directions = Some(d.clone());
        cx.send(FacesEvent::Directions {
            directions: d.clone(),
            from_cache,
        });
        Ok(Some(d))
    }

    /// The directions if any face has offsets (`Ok(None)` if none does); the inner `Err(())`
    /// means the job was cancelled while they were being computed.
    fn directions_for(
        &mut self,
        cx: &Cx<'_>,
        model: &Path,
        faces: &[FaceSpec],
    ) -> Result<Result<Option<Arc<Directions>>, ()>, FacesError> {
        if faces.iter().any(FaceSpec::has_offsets) {
            match self.directions(cx, model, false)? {
                Some(d) => Ok(Ok(Some(d))),
                None => Ok(Err(())),
            }
        } else {
            Ok(Ok(None))
        }
    }

    fn render(
        &mut self,
        cx: &Cx<'_>,
        r: RenderRequest,
        rt: Option<&mut GpuRuntime>,
    ) -> Result<FacesOutcome, FacesError> {
        check_size(r.size)?;
        if r.faces.is_empty() || r.faces.len() > MAX_FACES {
            return Err(FacesError::InvalidRequest(format!(
                "a render needs 1 to {MAX_FACES} faces (got {})",
                r.faces.len()
            )));
        }
        for f in &r.faces {
            f.validate()?;
        }
        self.ensure(cx, &r.model)?;
        let Ok(dirs) = self.directions_for(cx, &r.model, &r.faces)? else {
            return Ok(FacesOutcome::Cancelled);
        };
        let loaded = self.ensure(cx, &r.model)?;
        let mut net = generator(loaded, rt)?;
        for (c, batch) in r.faces.chunks(RENDER_BATCH).enumerate() {
            if cx.job.is_cancelled() {
                return Ok(FacesOutcome::Cancelled);
            }
            let images = render_batch(net.as_dyn(), batch, dirs.as_deref())?;
            for (i, img) in images.into_iter().enumerate() {
                cx.send(FacesEvent::Sample {
                    index: c * RENDER_BATCH + i,
                    image: img.upscaled(r.size),
                });
            }
        }
        Ok(FacesOutcome::Done)
    }

    fn walk(
        &mut self,
        cx: &Cx<'_>,
        r: WalkRequest,
        rt: Option<&mut GpuRuntime>,
    ) -> Result<FacesOutcome, FacesError> {
        check_size(r.size)?;
        check_keyframes(&r.keyframes)?;
        if r.frames == 0 || r.frames > MAX_WALK_FRAMES {
            return Err(FacesError::InvalidRequest(format!(
                "a walk needs 1 to {MAX_WALK_FRAMES} frames (got {})",
                r.frames
            )));
        }
        self.ensure(cx, &r.model)?;
        let Ok(dirs) = self.directions_for(cx, &r.model, &r.keyframes)? else {
            return Ok(FacesOutcome::Cancelled);
        };
        let keys = effective_keys(&r.keyframes, dirs.as_deref())?;
        let loaded = self.ensure(cx, &r.model)?;
        let mut net = generator(loaded, rt)?;
        let positions = walk_positions(keys.len(), r.frames);
        for (c, batch) in positions.chunks(RENDER_BATCH).enumerate() {
            if cx.job.is_cancelled() {
                return Ok(FacesOutcome::Cancelled);
            }
            let z: Vec<f32> = batch.iter().flat_map(|&p| walk_point(&keys, p)).collect();
            let images = render_latents(net.as_dyn(), &z)?;
            for (i, img) in images.into_iter().enumerate() {
                cx.send(FacesEvent::Sample {
                    index: c * RENDER_BATCH + i,
                    image: img.upscaled(r.size),
                });
            }
        }
        Ok(FacesOutcome::Done)
    }

    fn live_walk(
        &mut self,
        cx: &Cx<'_>,
        r: LiveWalkRequest,
        gpu: Option<&GpuContext>,
        rt: Option<&mut GpuRuntime>,
    ) -> Result<FacesOutcome, FacesError> {
        check_keyframes(&r.keyframes)?;
        if !(r.fps.is_finite() && (1.0..=240.0).contains(&r.fps)) {
            return Err(FacesError::InvalidRequest(format!(
                "the walk's frame rate must be between 1 and 240 (got {})",
                r.fps
            )));
        }
        let target = match (&r.texture, gpu) {
            (Some(t), Some(g)) => {
                check_texture(t)?;
                Some((t, g))
            }
            _ => {
                check_size(r.size)?;
                None
            }
        };
        let (w, h) = match target {
            Some((t, _)) => (t.width(), t.height()),
            None => (r.size, r.size),
        };
        self.ensure(cx, &r.model)?;
        let Ok(dirs) = self.directions_for(cx, &r.model, &r.keyframes)? else {
            return Ok(FacesOutcome::Cancelled);
        };
        let keys = effective_keys(&r.keyframes, dirs.as_deref())?;
        let loaded = self.ensure(cx, &r.model)?;
        // On the window's own device the frame never leaves the GPU: generated, resampled and
        // copied into the texture there.
        let straight_to_texture = target.is_some() && rt.as_ref().is_some_and(|r| r.is_window);
        let mut net = generator(loaded, rt)?;

        let interval = Duration::from_secs_f64(1.0 / r.fps as f64);
        let mut meter = PacingMeter::new(r.fps);
        let mut last_tick = Instant::now();
        let mut deadline = last_tick;
        let mut shown: Option<f64> = None;
        let mut frame = 0u64;
        let report_every = r.fps.round().max(1.0) as usize;
        while !cx.job.is_cancelled() {
            let now = Instant::now();
            let position = r
                .control
                .advance(now.duration_since(last_tick).as_secs_f64(), keys.len());
            last_tick = now;
            if shown == Some(position) {
                // Paused and not scrubbed: nothing new to draw; idle time is not a hitch.
                meter.idle();
            } else {
                let z = walk_point(&keys, position);
                frame += 1;
                let pixels = match (target, &mut net) {
                    (Some((texture, _)), Net::Gpu(g)) if straight_to_texture => {
                        g.render_to_texture(&z, texture)?;
                        // Pace on finished frames, not on queued ones.
                        g.wait()?;
                        None
                    }
                    (target, net) => {
                        let image = render_latents(net.as_dyn(), &z)?
                            .pop()
                            .ok_or_else(|| FacesError::InvalidRequest("no frame rendered".into()))?
                            .resized(w, h);
                        match target {
                            Some((texture, g)) => {
                                write_texture(g, texture, &image);
                                None
                            }
                            None => Some(image),
                        }
                    }
                };
                let delivered = Instant::now();
                cx.send(FacesEvent::WalkFrame {
                    frame,
                    position,
                    pixels,
                });
                meter.frame(
                    delivered,
                    delivered.duration_since(now).as_secs_f64() * 1000.0,
                );
                shown = Some(position);
                if meter.len() >= report_every {
                    cx.send(FacesEvent::Pacing(meter.take()));
                }
            }
            // Aim at a fixed cadence; when late, restart it from now instead of bursting to
            // catch up (a burst of frames would only be shown as one anyway).
            deadline += interval;
            let after = Instant::now();
            if deadline <= after {
                deadline = after;
            } else {
                std::thread::sleep(deadline - after);
            }
        }
        if !meter.is_empty() {
            cx.send(FacesEvent::Pacing(meter.take()));
        }
        Ok(FacesOutcome::Cancelled)
    }
}

/// The generator a job runs: the loaded CPU one, or its upload to the GPU.
enum Net<'a> {
    Cpu(&'a mut Generator),
    Gpu(&'a mut GpuGenerator),
}

impl Net<'_> {
    fn as_dyn(&mut self) -> &mut dyn FaceGenerator {
        match self {
            Net::Cpu(g) => *g,
            Net::Gpu(g) => *g,
        }
    }
}

/// The GPU upload of `loaded`'s generator when `rt` is given (uploaded on first use and kept
/// while the weights file stays the same), else the CPU generator.
fn generator<'a>(
    loaded: &'a mut Loaded,
    rt: Option<&'a mut GpuRuntime>,
) -> Result<Net<'a>, FacesError> {
    let Some(rt) = rt else {
        return Ok(Net::Cpu(&mut loaded.generator));
    };
    let path = &loaded.generator.info().path;
    if rt.faces.as_ref().is_none_or(|g| g.path() != path) {
        rt.faces = None;
        rt.faces = Some(GpuGenerator::new(
            &rt.ctx,
            rt.kernels.clone(),
            &loaded.generator,
        )?);
    }
    rt.faces
        .as_mut()
        .map(Net::Gpu)
        .ok_or_else(|| FacesError::InvalidRequest("the GPU generator is not loaded".into()))
}

/// The job and where its events go.
struct Cx<'a> {
    job: &'a JobHandle,
    outbox: &'a Outbox,
}

impl Cx<'_> {
    fn send(&self, event: FacesEvent) {
        self.outbox.send(Event::Faces {
            job: self.job.id(),
            event,
        });
    }
}

fn check_size(size: u32) -> Result<(), FacesError> {
    if (IMAGE_SIZE as u32..=MAX_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(FacesError::InvalidRequest(format!(
            "image size must be between {IMAGE_SIZE} and {MAX_SIZE} pixels (got {size})"
        )))
    }
}

fn check_keyframes(keys: &[FaceSpec]) -> Result<(), FacesError> {
    if !(2..=8).contains(&keys.len()) {
        return Err(FacesError::InvalidRequest(format!(
            "a walk needs 2 to 8 keyframes (got {})",
            keys.len()
        )));
    }
    keys.iter().try_for_each(FaceSpec::validate)
}

fn effective_keys(
    keys: &[FaceSpec],
    dirs: Option<&Directions>,
) -> Result<Vec<Vec<f32>>, FacesError> {
    keys.iter()
        .map(|k| {
            let z = k.effective_latent(dirs)?;
            debug_assert_eq!(z.len(), LATENT_DIM);
            Ok(z)
        })
        .collect()
}

fn check_texture(t: &wgpu::Texture) -> Result<(), FacesError> {
    let ok_format = matches!(
        t.format(),
        wgpu::TextureFormat::Rgba8UnormSrgb | wgpu::TextureFormat::Rgba8Unorm
    );
    if !ok_format
        || t.dimension() != wgpu::TextureDimension::D2
        || !t.usage().contains(wgpu::TextureUsages::COPY_DST)
    {
        return Err(FacesError::InvalidRequest(format!(
            "the walk texture must be a 2D Rgba8UnormSrgb/Rgba8Unorm texture with COPY_DST \
             usage (got {:?} {:?} {:?})",
            t.dimension(),
            t.format(),
            t.usage()
        )));
    }
    if t.width() == 0 || t.height() == 0 || t.width() > MAX_SIZE || t.height() > MAX_SIZE {
        return Err(FacesError::InvalidRequest(format!(
            "the walk texture must be 1 to {MAX_SIZE} pixels a side (got {}×{})",
            t.width(),
            t.height()
        )));
    }
    Ok(())
}

/// Uploads a frame and submits, so it lands even if the UI does not render a frame soon.
fn write_texture(gpu: &GpuContext, texture: &wgpu::Texture, image: &FaceImage) {
    gpu.queue.write_texture(
        texture.as_image_copy(),
        &image.rgba,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(4 * image.width),
            rows_per_image: Some(image.height),
        },
        wgpu::Extent3d {
            width: image.width,
            height: image.height,
            depth_or_array_layers: 1,
        },
    );
    gpu.queue.submit(std::iter::empty());
}
