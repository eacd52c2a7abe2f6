//! Faces jobs: the requests and events of the Faces panel and `atelier faces`, and their
//! handling on the worker thread, which owns the loaded [`Generator`] (loaded on first use,
//! kept until another file is asked for) and its principal directions.
//!
//! Every job checks its cancel flag before each sample or frame. A render emits one
//! [`FacesEvent::Sample`] per face as soon as it exists, so a grid fills in progressively.
//! The live walk writes each frame straight into a texture on the renderer's wgpu device
//! (`Queue::write_texture`; the UI only repaints) and, without a GPU context, sends the pixels
//! in [`FacesEvent::WalkFrame`] instead.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::error::EngineError;
use crate::engine::family::{JobContext, JobFamily, Outcome};
use crate::engine::job::JobHandle;
use crate::engine::messages::Event;
use crate::engine::outbox::Outbox;
use crate::features::faces::directions::{
    self, DIRECTION_COUNT, Directions, DirectionsCache, PCA_SAMPLES,
};
use crate::features::faces::latent::{walk_point, walk_positions};
use crate::features::faces::render::MAX_SIZE;
use crate::features::faces::walk::PacingMeter;
use crate::features::faces::{
    FaceGenerator, FaceImage, FaceSpec, FacesError, FacesEvent, FacesRequest, LiveWalkRequest,
    MAX_FACES, MAX_WALK_FRAMES, RENDER_BATCH, RenderRequest, WalkRequest, render_batch,
    render_latents,
};
use crate::fsutil::FileStamp;
use crate::gpu::dcgan::GpuGenerator;
use crate::gpu::{CPU_LABEL, GpuContext, GpuRuntime};
use crate::models::dcgan::{Generator, IMAGE_SIZE, LATENT_DIM};

/// The worker's Faces family: the loaded generator (kept until another file, or a new version
/// of the same file, is asked for) and its principal directions.
/// A job's network and the directions its faces use, ready to draw.
type Prepared<'a> = (Net<'a>, Option<Arc<Directions>>);

pub(crate) struct FacesFamily {
    loaded: Option<Loaded>,
    cache: DirectionsCache,
    /// The generator was (re)loaded since it was last uploaded to the GPU.
    gpu_stale: bool,
}

struct Loaded {
    /// Which version of which file it was loaded from.
    stamp: FileStamp,
    generator: Generator,
    directions: Option<Arc<Directions>>,
}

impl JobFamily for FacesFamily {
    type Request = FacesRequest;

    fn run(&mut self, req: FacesRequest, jcx: &mut JobContext<'_>) -> Result<Outcome, EngineError> {
        let (job, outbox, devices, backend) = (jcx.job, jcx.outbox, &mut *jcx.devices, jcx.backend);
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
                Outcome::Done
            }
            FacesRequest::Render(r) => self.render(&cx, r, rt)?,
            FacesRequest::Directions { model } => {
                self.ensure(&cx, &model)?;
                match self.directions(&cx, &model, true)? {
                    Some(_) => Outcome::Done,
                    None => Outcome::Cancelled,
                }
            }
            FacesRequest::Walk(r) => self.walk(&cx, r, rt)?,
            FacesRequest::LiveWalk(r) => self.live_walk(&cx, r, window.as_ref(), rt)?,
        };
        Ok(outcome)
    }

    fn reset(&mut self) {
        self.loaded = None;
        self.gpu_stale = true;
    }
}

impl FacesFamily {
    pub(crate) fn new() -> Self {
        Self {
            loaded: None,
            cache: DirectionsCache::in_data_dir(),
            gpu_stale: false,
        }
    }

    fn ensure(&mut self, cx: &Cx<'_>, model: &Path) -> Result<&mut Loaded, FacesError> {
        // A file rewritten in place (a generator trained again) is a new model.
        let stamp = FileStamp::of(model).map_err(|source| {
            FacesError::Model(crate::models::dcgan::DcganError::Weights(
                crate::models::state_dict::WeightsError::Io {
                    path: model.to_path_buf(),
                    source,
                },
            ))
        })?;
        let loaded = self.loaded.as_ref().is_some_and(|l| l.stamp == stamp);
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
                stamp,
                generator,
                directions: None,
            });
            self.gpu_stale = true;
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

    /// Loads the generator (if the file changed), the directions the faces need, and the net
    /// the job runs on (uploaded to the GPU when `rt` is given); `None` if the job was
    /// cancelled while directions were being computed.
    fn prepare<'a>(
        &'a mut self,
        cx: &Cx<'_>,
        model: &Path,
        faces: &[FaceSpec],
        rt: Option<&'a mut GpuRuntime>,
    ) -> Result<Option<Prepared<'a>>, FacesError> {
        self.ensure(cx, model)?;
        let dirs = match self.directions_for(cx, model, faces)? {
            NeededDirections::Cancelled => return Ok(None),
            NeededDirections::Ready(d) => Some(d),
            NeededDirections::NotNeeded => None,
        };
        let stale = std::mem::take(&mut self.gpu_stale);
        let loaded = self.ensure(cx, model)?;
        Ok(Some((generator(loaded, rt, stale)?, dirs)))
    }

    /// The directions the faces need: none when no face has offsets.
    fn directions_for(
        &mut self,
        cx: &Cx<'_>,
        model: &Path,
        faces: &[FaceSpec],
    ) -> Result<NeededDirections, FacesError> {
        if !faces.iter().any(FaceSpec::has_offsets) {
            return Ok(NeededDirections::NotNeeded);
        }
        Ok(match self.directions(cx, model, false)? {
            Some(d) => NeededDirections::Ready(d),
            None => NeededDirections::Cancelled,
        })
    }

    fn render(
        &mut self,
        cx: &Cx<'_>,
        r: RenderRequest,
        rt: Option<&mut GpuRuntime>,
    ) -> Result<Outcome, FacesError> {
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
        let Some((mut net, dirs)) = self.prepare(cx, &r.model, &r.faces, rt)? else {
            return Ok(Outcome::Cancelled);
        };
        for (c, batch) in r.faces.chunks(RENDER_BATCH).enumerate() {
            if cx.job.is_cancelled() {
                return Ok(Outcome::Cancelled);
            }
            let images = render_batch(net.as_dyn(), batch, dirs.as_deref())?;
            cx.send_samples(c * RENDER_BATCH, images, r.size);
        }
        Ok(Outcome::Done)
    }

    fn walk(
        &mut self,
        cx: &Cx<'_>,
        r: WalkRequest,
        rt: Option<&mut GpuRuntime>,
    ) -> Result<Outcome, FacesError> {
        check_size(r.size)?;
        check_keyframes(&r.keyframes)?;
        if r.frames == 0 || r.frames > MAX_WALK_FRAMES {
            return Err(FacesError::InvalidRequest(format!(
                "a walk needs 1 to {MAX_WALK_FRAMES} frames (got {})",
                r.frames
            )));
        }
        let Some((mut net, dirs)) = self.prepare(cx, &r.model, &r.keyframes, rt)? else {
            return Ok(Outcome::Cancelled);
        };
        let keys = effective_keys(&r.keyframes, dirs.as_deref())?;
        let positions = walk_positions(keys.len(), r.frames);
        for (c, batch) in positions.chunks(RENDER_BATCH).enumerate() {
            if cx.job.is_cancelled() {
                return Ok(Outcome::Cancelled);
            }
            let z: Vec<f32> = batch.iter().flat_map(|&p| walk_point(&keys, p)).collect();
            let images = render_latents(net.as_dyn(), &z)?;
            cx.send_samples(c * RENDER_BATCH, images, r.size);
        }
        Ok(Outcome::Done)
    }

    fn live_walk(
        &mut self,
        cx: &Cx<'_>,
        r: LiveWalkRequest,
        gpu: Option<&GpuContext>,
        rt: Option<&mut GpuRuntime>,
    ) -> Result<Outcome, FacesError> {
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
        // On the window's own device the frame never leaves the GPU: generated, resampled and
        // copied into the texture there.
        let straight_to_texture = target.is_some() && rt.as_ref().is_some_and(|r| r.is_window);
        let Some((mut net, dirs)) = self.prepare(cx, &r.model, &r.keyframes, rt)? else {
            return Ok(Outcome::Cancelled);
        };
        let keys = effective_keys(&r.keyframes, dirs.as_deref())?;

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
        Ok(Outcome::Cancelled)
    }
}

/// The principal directions a job needs.
enum NeededDirections {
    /// No face has direction offsets.
    NotNeeded,
    /// Loaded or computed.
    Ready(Arc<Directions>),
    /// The job was cancelled while they were being computed.
    Cancelled,
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
/// while the weights stay the same; `stale`: they were reloaded since), else the CPU generator.
fn generator<'a>(
    loaded: &'a mut Loaded,
    rt: Option<&'a mut GpuRuntime>,
    stale: bool,
) -> Result<Net<'a>, FacesError> {
    let Some(rt) = rt else {
        return Ok(Net::Cpu(&mut loaded.generator));
    };
    let path = &loaded.generator.info().path;
    if stale || rt.faces.as_ref().is_none_or(|g| g.path() != path) {
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

    /// Sends rendered faces as samples `first`, `first + 1`, …, upscaled to `size`.
    fn send_samples(&self, first: usize, images: Vec<FaceImage>, size: u32) {
        for (i, img) in images.into_iter().enumerate() {
            self.send(FacesEvent::Sample {
                index: first + i,
                image: img.upscaled(size),
            });
        }
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
