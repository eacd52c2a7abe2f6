//! `atelier bench faces`: the DCGAN's single-sample latency and batch throughput on exactly the
//! code the worker runs ([`Generator::forward`]), the same through the engine's job queue, and
//! the live walk's frame pacing (through a headless wgpu texture when an adapter exists,
//! otherwise the pixel fallback). `benches/faces.sh` runs it beside onnxruntime
//! (`benches/onnx_peer.py`) on the same weights and latents.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::engine::{Engine, Event};
use crate::features::faces::walk::PacingMeter;
use crate::features::faces::{FaceGenerator, FaceSpec, WalkControl, latent_for_seed};
use crate::features::faces::{FacesEvent, LiveWalkRequest, RenderRequest};
use crate::gpu::GpuContext;
use crate::measure::median;
use crate::models::dcgan::Generator;

/// What `atelier bench faces` measures.
#[derive(Clone, Debug, PartialEq, clap::Args)]
pub struct FacesBenchArgs {
    /// Generator weights (default: the bundled DCGAN).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Timed single-sample runs (after 10 warm-up runs); the median is reported.
    #[arg(long, default_value_t = 200)]
    pub single: usize,
    /// Timed batch runs (after 3 warm-up runs); the median is reported.
    #[arg(long, default_value_t = 30)]
    pub batches: usize,
    /// Samples per batch.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Seconds of live walk to measure frame pacing (0 skips it).
    #[arg(long, default_value_t = 5.0)]
    pub walk_seconds: f64,
    /// Side of the walk's frames (the preview texture size).
    #[arg(long, default_value_t = 256)]
    pub walk_size: u32,
    /// Frame rate the walk aims at.
    #[arg(long, default_value_t = 60.0)]
    pub walk_fps: f32,
    /// Print one JSON object instead of a text summary.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmark; returns `{"bench": "faces", "engine": "atelier", ...}` with
/// `single_ms` (median latency of one sample), `batch_ms` and `batch_samples_per_s` (median
/// over batches of `batch`), `engine_*` (the same through the job queue, RGBA conversion
/// included) and `walk` (pacing as the receiving side saw it).
pub fn run_faces_bench(args: &FacesBenchArgs) -> anyhow::Result<Value> {
    if args.single == 0 || args.batches == 0 || args.batch == 0 {
        bail!("--single, --batches and --batch must be at least 1");
    }
    let model = crate::headless::resolve_generator(args.model.as_deref())?;
    let started = Instant::now();
    let cpu =
        Generator::load(&model).with_context(|| format!("cannot load {}", model.display()))?;
    let load_s = started.elapsed().as_secs_f64();
    // `--backend`: the GPU kernels on a headless device, or the CPU generator.
    let backend = crate::headless::backend();
    let gpu = match backend {
        crate::gpu::Backend::Cpu => None,
        _ => match GpuContext::headless() {
            Ok(ctx) if backend.wants_gpu(Some(&ctx)) => Some(ctx),
            Ok(_) => None,
            Err(e) if backend == crate::gpu::Backend::Gpu => return Err(e.into()),
            Err(_) => None,
        },
    };
    let device = gpu.as_ref().map_or(crate::gpu::CPU_LABEL.to_string(), |g| {
        format!("GPU · {}", g.adapter)
    });
    let mut g: Box<dyn FaceGenerator> = match &gpu {
        Some(ctx) => {
            let kernels = std::sync::Arc::new(crate::gpu::kernels::Kernels::new(ctx)?);
            Box::new(crate::gpu::dcgan::GpuGenerator::new(ctx, kernels, &cpu)?)
        }
        None => Box::new(cpu),
    };

    // The same latents the peer uses: seeds 0.. through latent_for_seed.
    let z1 = latent_for_seed(0);
    let zb: Vec<f32> = (0..args.batch as u64).flat_map(latent_for_seed).collect();
    let time = |g: &mut dyn FaceGenerator,
                z: &[f32],
                warm: usize,
                runs: usize|
     -> anyhow::Result<Vec<f64>> {
        for _ in 0..warm {
            g.generate(z)?;
        }
        let mut ms = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            std::hint::black_box(g.generate(z)?);
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(ms)
    };
    let single = time(g.as_mut(), &z1, 10, args.single)?;
    let batch = time(g.as_mut(), &zb, 3, args.batches)?;
    let single_ms = median(&single);
    let batch_ms = median(&batch);
    let checksum: f64 = g.generate(&z1)?.iter().map(|v| *v as f64).sum();
    drop(g);

    // Through the engine: a 16-face grid job, as the panel submits it.
    let engine = crate::headless::engine()?;
    let faces: Vec<FaceSpec> = (0..args.batch as u64)
        .map(|s| FaceSpec::from_seed(s, 1.0))
        .collect();
    let mut engine_ms = Vec::new();
    for _ in 0..6 {
        let t = Instant::now();
        let job = engine.faces_render(RenderRequest {
            model: model.clone(),
            faces: faces.clone(),
            size: 64,
        });
        crate::headless::collect_faces(&engine, &job, faces.len())?;
        engine_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // The first job loads the model: leave it out.
    let engine_grid_ms = median(&engine_ms[1..]);
    drop(engine);

    let walk = if args.walk_seconds > 0.0 {
        Some(walk_pacing(&model, args)?)
    } else {
        None
    };

    Ok(json!({
        "bench": "faces",
        "engine": "atelier",
        "version": env!("CARGO_PKG_VERSION"),
        "model": model.file_name().map(|f| f.to_string_lossy().into_owned()),
        "threads": rayon::current_num_threads(),
        "load_s": load_s,
        "single_ms": single_ms,
        "single_ms_p10": percentile(&single, 0.1),
        "single_ms_p90": percentile(&single, 0.9),
        "batch": args.batch,
        "batch_ms": batch_ms,
        "batch_samples_per_s": args.batch as f64 / (batch_ms / 1000.0),
        "engine_grid_ms": engine_grid_ms,
        "engine_samples_per_s": args.batch as f64 / (engine_grid_ms / 1000.0),
        "checksum_seed0": checksum,
        "backend": backend.name(),
        "device": device,
        "walk": walk,
    }))
}

/// Plays a live walk for `walk_seconds` and measures when frames arrive at the receiving end
/// (where the UI would repaint), next to the worker's own pacing report.
fn walk_pacing(model: &std::path::Path, args: &FacesBenchArgs) -> anyhow::Result<Value> {
    let gpu = headless_gpu();
    let target = gpu.as_ref().map(|g| {
        g.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("bench walk"),
            size: wgpu::Extent3d {
                width: args.walk_size,
                height: args.walk_size,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8UnormSrgb,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        })
    });
    let adapter = gpu.as_ref().map(|g| g.adapter.clone());
    let engine = Engine::spawn(gpu, None)?;
    engine.set_backend(crate::headless::backend());
    // Load first so loading is not part of the pacing.
    let load = engine.load_faces(model.to_path_buf());
    wait_done(&engine, load.id())?;
    let control = WalkControl::new(0.5);
    let job = engine.faces_live_walk(LiveWalkRequest {
        model: model.to_path_buf(),
        keyframes: [1u64, 7, 42]
            .iter()
            .map(|&s| FaceSpec::from_seed(s, 1.0))
            .collect(),
        control,
        texture: target.clone(),
        size: args.walk_size,
        fps: args.walk_fps,
    });
    let mut receiver = PacingMeter::new(args.walk_fps);
    let mut worker_render = Vec::new();
    let mut worker_p95 = Vec::new();
    let deadline = Instant::now() + Duration::from_secs_f64(args.walk_seconds);
    let mut skipped_first = false;
    loop {
        if Instant::now() >= deadline {
            job.cancel();
        }
        let Some(ev) = engine.recv_timeout(Duration::from_secs(30)) else {
            bail!("the live walk stopped answering");
        };
        if ev.job() != job.id() {
            continue;
        }
        match ev {
            Event::Faces {
                event: FacesEvent::WalkFrame { .. },
                ..
            } => {
                // The first frame includes starting up; measure from the second.
                if skipped_first {
                    receiver.frame(Instant::now(), 0.0);
                } else {
                    skipped_first = true;
                }
            }
            Event::Faces {
                event: FacesEvent::Pacing(p),
                ..
            } => {
                worker_render.push(p.mean_render_ms);
                worker_p95.push(p.p95_interval_ms);
            }
            Event::Failed { error, .. } => return Err(error.into()),
            Event::Finished { .. } | Event::Cancelled { .. } => break,
            _ => {}
        }
    }
    let s = receiver.take();
    Ok(json!({
        "target": if target.is_some() { "wgpu texture" } else { "pixels in events" },
        "adapter": adapter,
        "size": args.walk_size,
        "fps_target": args.walk_fps,
        "frames": s.frames,
        "fps": if s.mean_interval_ms > 0.0 { 1000.0 / s.mean_interval_ms } else { 0.0 },
        "mean_interval_ms": s.mean_interval_ms,
        "p50_interval_ms": s.p50_interval_ms,
        "p95_interval_ms": s.p95_interval_ms,
        "max_interval_ms": s.max_interval_ms,
        "late_frames": s.late_frames,
        "worker_render_ms": median(&worker_render),
        "worker_p95_interval_ms": median(&worker_p95),
    }))
}

fn wait_done(engine: &Engine, id: crate::engine::JobId) -> anyhow::Result<()> {
    engine.wait(id, Duration::from_secs(120), |_| anyhow::Ok(()))?;
    Ok(())
}

/// A wgpu device without a window (any adapter, software included), for benchmarks and
/// tests of the texture path; `None` where no adapter exists.
pub fn headless_gpu() -> Option<GpuContext> {
    GpuContext::headless().ok()
}

fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// A human summary of [`run_faces_bench`]'s result.
pub fn summary_text(v: &Value) -> String {
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let mut s = format!(
        "DCGAN {} ({} threads) on {}\n  load                {:8.3} s\n  single sample       {:8.3} ms  (p10 {:.3}, p90 {:.3})\n  batch of {:<3}        {:8.3} ms  = {:.0} samples/s\n  engine grid of {:<3}  {:8.3} ms  = {:.0} samples/s\n",
        v["model"].as_str().unwrap_or("?"),
        v["threads"],
        v["device"].as_str().unwrap_or("?"),
        f("load_s"),
        f("single_ms"),
        f("single_ms_p10"),
        f("single_ms_p90"),
        v["batch"],
        f("batch_ms"),
        f("batch_samples_per_s"),
        v["batch"],
        f("engine_grid_ms"),
        f("engine_samples_per_s"),
    );
    let w = &v["walk"];
    if w.is_object() {
        let g = |k: &str| w[k].as_f64().unwrap_or(f64::NAN);
        s.push_str(&format!(
            "  live walk ({}, {} px, target {} fps): {:.1} fps, interval p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms, {} late of {}; render {:.2} ms/frame\n",
            w["target"].as_str().unwrap_or("?"),
            w["size"],
            w["fps_target"],
            g("fps"),
            g("p50_interval_ms"),
            g("p95_interval_ms"),
            g("max_interval_ms"),
            w["late_frames"],
            w["frames"],
            g("worker_render_ms"),
        ));
    }
    s
}
