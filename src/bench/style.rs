//! `atelier bench style`: latency of the style networks on exactly the code the worker runs for
//! a whole image ([`run_whole`]: 8-bit pixels in, network, 8-bit pixels out), and full engine
//! jobs ([`crate::engine::Engine::style`], tiled only beyond the memory budget, as the panel's
//! full pass runs them).
//!
//! Cases, each the median over `--repeats` runs after `--warmup` runs:
//! - `multistyle_512` / `multistyle_1024`: multistyle26 (style 0) on astronaut.png scaled to
//!   512² and 1024², whole.
//! - `transform_384`: the arbitrary-style transform on the content scaled to 384² (its ONNX
//!   file's fixed size), with the bottleneck of coffee.png.
//! - `predict_256`: the style predictor on coffee.png scaled to 256².
//!
//! With `--engine-size N` it times only the panel's path at N²: after one preview-sized job
//! (the models load, as the panel's previews load them), `--repeats` full engine jobs on the
//! content scaled to N², each its own 8-bit picture in and out; the process's peak RSS is
//! reported with them (one size per process, so the peak is that size's).
//!
//! `benches/style.sh` runs this beside onnxruntime (`benches/style_onnx_peer.py`) on the same
//! input images, written by `--save-inputs` (which also writes `photo_N.png` for the
//! whole-process comparison of `atelier style`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use image::RgbImage;
use serde_json::{Value, json};

use crate::features::style::{ImageSource, StyleChoice, StylePass, StyleRequest};
use crate::gpu::stylenet::{GpuMultistyle, GpuMultistyleNet, GpuTransform, GpuTransformNet};
use crate::measure::median;
use crate::models::stylenet::image::{load, resize, to_feature_map};
use crate::models::stylenet::tiling::{MultistyleNet, TileReport, TransformNet, run_whole};
use crate::models::stylenet::{
    self as models, Multistyle26, STYLE_IMAGE_SIZE, StyleMix, StylePredictor, StyleTransform,
};

/// What `atelier bench style` measures.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct StyleBenchArgs {
    /// Timed runs per case; the median is reported.
    #[arg(long, default_value_t = 7)]
    pub repeats: usize,
    /// Untimed runs per case first (first-touch allocations, caches).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Content image (default: models/images/astronaut.png), scaled to each case's size.
    #[arg(long, value_name = "FILE")]
    pub content: Option<PathBuf>,
    /// Style image for the arbitrary-style cases (default: models/images/coffee.png).
    #[arg(long, value_name = "FILE")]
    pub style_image: Option<PathBuf>,
    /// Write the exact input images of every case to DIR (`NAME.rgb`: raw 8-bit RGB, rows top
    /// to bottom, for the onnxruntime peer; `NAME.png` to look at) and exit without timing.
    #[arg(long, value_name = "DIR")]
    pub save_inputs: Option<PathBuf>,
    /// Time only the cases whose names contain this, or one of these comma-separated texts
    /// (e.g. `predict`, for profiling); the engine job is then left out too.
    #[arg(long, value_name = "TEXT[,TEXT…]")]
    pub only: Option<String>,
    /// Time only full engine jobs on the content scaled to this side (see the module docs).
    #[arg(long, value_name = "PIXELS")]
    pub engine_size: Option<u32>,
    /// Print one JSON object instead of a text summary.
    #[arg(long)]
    pub json: bool,
}

/// The benchmark's inputs, all RGB: content at 512², 1024², 384²; style at 256².
struct Inputs {
    content_512: RgbImage,
    content_1024: RgbImage,
    content_384: RgbImage,
    style_256: RgbImage,
}

fn inputs(args: &StyleBenchArgs, dir: &Path) -> anyhow::Result<Inputs> {
    let images = dir.join("images");
    let content = args
        .content
        .clone()
        .unwrap_or_else(|| images.join("astronaut.png"));
    let style = args
        .style_image
        .clone()
        .unwrap_or_else(|| images.join("coffee.png"));
    let c = load(&content)?.image;
    let s = load(&style)?.image;
    let sq = |img: &RgbImage, n: u32| resize(img, n, n);
    Ok(Inputs {
        content_512: sq(&c, 512),
        content_1024: sq(&c, 1024),
        content_384: sq(&c, 384),
        style_256: sq(&s, STYLE_IMAGE_SIZE),
    })
}

/// The sides of the user-path comparison (`photo_N.png`, `content_N.rgb`).
pub const USER_PATH_SIZES: [u32; 3] = [1024, 2048, 4096];

/// Writes `photo_N.png` (the content scaled to N², for `atelier style --in`) and
/// `content_N.rgb` (its raw pixels, for the peer) for each of [`USER_PATH_SIZES`].
fn save_user_path_inputs(args: &StyleBenchArgs, dir: &Path, out: &Path) -> anyhow::Result<()> {
    let content = args
        .content
        .clone()
        .unwrap_or_else(|| dir.join("images").join("astronaut.png"));
    let c = load(&content)?.image;
    for n in USER_PATH_SIZES {
        let img = resize(&c, n, n);
        let raw = out.join(format!("content_{n}.rgb"));
        std::fs::write(&raw, img.as_raw())
            .with_context(|| format!("cannot write {}", raw.display()))?;
        models::image::save(&img, &out.join(format!("photo_{n}.png")), 100)?;
    }
    Ok(())
}

/// Full engine jobs at `n`², as the panel's full pass runs them (see the module docs).
fn engine_jobs(args: &StyleBenchArgs, dir: &Path, n: u32) -> anyhow::Result<Value> {
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let content = args
        .content
        .clone()
        .unwrap_or_else(|| dir.join("images").join("astronaut.png"));
    let c = load(&content)?.image;
    let engine = crate::headless::engine()?;
    let job = |img: RgbImage| -> anyhow::Result<(f64, TileReport)> {
        let req = StyleRequest::new(
            ImageSource::Pixels(std::sync::Arc::new(img)),
            StyleChoice::Preset(StyleMix::single(0)?),
        );
        let t = Instant::now();
        let job = engine.style(req, StylePass::Full);
        let out = crate::headless::wait_style(&engine, job.id(), |_| {})?;
        Ok((t.elapsed().as_secs_f64() * 1000.0, out.report))
    };
    // The panel's previews load the model and start the pool before any full pass.
    job(resize(
        &c,
        crate::features::style::PREVIEW_SIZE,
        crate::features::style::PREVIEW_SIZE,
    ))?;
    let mut ms = Vec::new();
    let mut report = TileReport::default();
    for _ in 0..args.repeats {
        let (t, r) = job(resize(&c, n, n))?;
        ms.push(t);
        report = r;
    }
    let (lo, hi) = ms.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    let peak_mb = crate::measure::memory_kib("VmHWM:").map(crate::measure::kib_to_mb);
    Ok(json!({
        "bench": "style",
        "engine": "atelier",
        "threads": rayon::current_num_threads(),
        "backend": crate::headless::backend().name(),
        "engine_job": {
            "size": n,
            "median_ms": median(&ms),
            "min_ms": lo,
            "max_ms": hi,
            "runs": ms.len(),
            "tiles": report.tiles,
            "tile": report.tile,
            "peak_rss_mb": peak_mb,
        },
    }))
}

/// Median and spread of `runs` timed calls after `warmup` untimed ones, in milliseconds.
fn time(
    warmup: usize,
    runs: usize,
    f: &mut dyn FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Value> {
    for _ in 0..warmup {
        f()?;
    }
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (lo, hi) = ms.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    Ok(json!({ "median_ms": median(&ms), "min_ms": lo, "max_ms": hi, "runs": runs }))
}

/// Runs the benchmark and prints the report (JSON with `--json`).
pub fn run(args: &StyleBenchArgs) -> anyhow::Result<()> {
    let report = run_style_bench(args)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if let Some(job) = report["engine_job"].as_object() {
        println!(
            "engine job at {}²: {:.1} ms (median), {} tile(s), peak RSS {:.1} MB",
            job["size"],
            job["median_ms"].as_f64().unwrap_or(f64::NAN),
            job["tiles"],
            job["peak_rss_mb"].as_f64().unwrap_or(f64::NAN)
        );
    } else if let Some(cases) = report["cases"].as_object() {
        println!("on {}", report["device"].as_str().unwrap_or("?"));
        for (name, v) in cases {
            println!(
                "{name:16} {:8.1} ms",
                v["median_ms"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}

/// Measures the four cases; returns `{"bench": "style", "engine": "atelier", "cases": {...}}`
/// with `median_ms` per case (see the module docs), or `{"saved": DIR}` with `--save-inputs`.
pub fn run_style_bench(args: &StyleBenchArgs) -> anyhow::Result<Value> {
    let dir = crate::paths::models_dir();
    if let Some(n) = args.engine_size {
        return engine_jobs(args, &dir, n);
    }
    let inp = inputs(args, &dir)?;
    if let Some(out) = &args.save_inputs {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        for (name, img) in [
            ("content_512", &inp.content_512),
            ("content_1024", &inp.content_1024),
            ("content_384", &inp.content_384),
            ("style_256", &inp.style_256),
        ] {
            // Raw interleaved 8-bit RGB for the peer (numpy reads it without an image
            // library), a PNG of the same pixels to look at.
            let raw = out.join(format!("{name}.rgb"));
            std::fs::write(&raw, img.as_raw())
                .with_context(|| format!("cannot write {}", raw.display()))?;
            models::image::save(img, &out.join(format!("{name}.png")), 100)?;
        }
        save_user_path_inputs(args, &dir, out)?;
        return Ok(json!({ "saved": out }));
    }
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let model = |f: &str| {
        let p = dir.join(f);
        if p.is_file() {
            Ok(p)
        } else {
            Err(models::StyleError::MissingModel { path: p })
        }
    };
    let never = || false;
    let (w, r) = (args.warmup, args.repeats);
    let wanted = |case: &str| {
        args.only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|t| case.contains(t)))
    };
    // A case left out by --only reports null.
    let time = |case: &str, f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<Value> {
        if wanted(case) {
            time(w, r, f)
        } else {
            Ok(Value::Null)
        }
    };

    let t = Instant::now();
    let multi = Multistyle26::load(&model(models::MULTISTYLE_FILE)?)?;
    let predictor = StylePredictor::load(&model(models::PREDICT_FILE)?)?;
    let transform = StyleTransform::load(&model(models::TRANSFORM_FILE)?)?;
    let load_s = t.elapsed().as_secs_f64();

    // `--backend`: the networks on a headless GPU device, or on the CPU. The predictor always
    // runs on the CPU.
    let backend = crate::headless::backend();
    let mut devices = crate::gpu::Devices::new(None);
    let gpu = devices.select(backend)?;
    let device = gpu
        .as_ref()
        .map_or(crate::gpu::CPU_LABEL.to_string(), |g| g.label());
    let gpu_nets = match &gpu {
        Some(rt) => Some((
            GpuMultistyle::new(&rt.ctx, rt.kernels.clone(), &multi)?,
            GpuTransform::new(&rt.ctx, rt.kernels.clone(), &transform)?,
        )),
        None => None,
    };
    let mix = multi.mix(&StyleMix::single(0)?);
    let multistyle = |img: &RgbImage| -> anyhow::Result<()> {
        match &gpu_nets {
            Some((g, _)) => {
                let net = GpuMultistyleNet {
                    net: g,
                    style: mix.clone(),
                };
                std::hint::black_box(run_whole(&net, img, &never)?);
            }
            None => {
                let net = MultistyleNet {
                    net: &multi,
                    style: mix.clone(),
                };
                std::hint::black_box(run_whole(&net, img, &never)?);
            }
        }
        Ok(())
    };
    let multistyle_512 = time("multistyle_512", &mut || multistyle(&inp.content_512))?;
    let multistyle_1024 = time("multistyle_1024", &mut || multistyle(&inp.content_1024))?;
    let style_map = to_feature_map(&inp.style_256);
    let predict_256 = time("predict_256", &mut || {
        std::hint::black_box(predictor.predict(&style_map, &never)?);
        Ok(())
    })?;
    let bottleneck = predictor.predict(&style_map, &never)?;
    let tstyle = transform.style(&bottleneck)?;
    let transform_384 = time("transform_384", &mut || {
        match &gpu_nets {
            Some((_, g)) => {
                let net = GpuTransformNet {
                    net: g,
                    style: tstyle.clone(),
                };
                std::hint::black_box(run_whole(&net, &inp.content_384, &never)?);
            }
            None => {
                let net = TransformNet {
                    net: &transform,
                    style: tstyle.clone(),
                };
                std::hint::black_box(run_whole(&net, &inp.content_384, &never)?);
            }
        }
        Ok(())
    })?;
    drop(gpu_nets);
    drop((multi, predictor, transform));

    // The whole job as the panel's full pass submits it: 1024² with the default tiling (whole,
    // within the budget), finish and all. The first job loads the model: left out.
    let engine = crate::headless::engine()?;
    let pixels = std::sync::Arc::new(inp.content_1024.clone());
    let mut engine_ms = Vec::new();
    let engine_runs = if args.only.is_some() { 0 } else { 3 };
    for _ in 0..engine_runs {
        let req = StyleRequest::new(
            ImageSource::Pixels(pixels.clone()),
            StyleChoice::Preset(StyleMix::single(0)?),
        );
        let t = Instant::now();
        let job = engine.style(req, StylePass::Full);
        crate::headless::wait_style(&engine, job.id(), |_| {})?;
        engine_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    Ok(json!({
        "bench": "style",
        "engine": "atelier",
        "version": env!("CARGO_PKG_VERSION"),
        "threads": rayon::current_num_threads(),
        "backend": backend.name(),
        "device": device,
        "load_s": load_s,
        "warmup": w,
        "cases": {
            "multistyle_512": multistyle_512,
            "multistyle_1024": multistyle_1024,
            "transform_384": transform_384,
            "predict_256": predict_256,
        },
        "engine_job_1024_ms": median(engine_ms.get(1..).unwrap_or_default()),
    }))
}
