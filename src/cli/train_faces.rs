//! `atelier train faces …`: a run on the engine's long-job lane, as the Train panel starts it
//! ([`super::train_job`]), with a progress bar on stderr and a report at the end (`--json`: one
//! JSON object on stdout). Ctrl+C stops it with a checkpoint.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::ValueEnum;

use crate::features::train::faces::pictures::{PictureSource, parse_colour};
use crate::features::train::faces::runs::{self, RunRecord};
use crate::features::train::faces::{
    StartFrom, TrainFacesConfig, TrainFacesEvent, TrainFacesReport, TrainSettings,
};
use crate::features::train::{TrainEvent, TrainRequest};
use crate::models::gan::GanShape;

/// Where the generator starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FromArg {
    /// Fine-tune the face model.
    Faces,
    /// A new generator of the same architecture, trained from scratch.
    Scratch,
}

/// On or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// `atelier train faces`
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    atelier train faces --images ~/emoji --out emoji.safetensors --steps 600\n  \
    atelier train faces --resume ~/.local/share/atelier/train/runs/20261207-131500 --steps 1200\n  \
    atelier faces --model emoji.safetensors --grid 4 --out grid.png\n\
    Pictures are centre-cropped and resized to 64x64; transparency is composited onto \
    --background.")]
pub struct TrainFacesArgs {
    /// Folder of pictures (PNG, JPEG, WebP; any size). At least 16 usable ones.
    #[arg(long, value_name = "DIR", required_unless_present = "resume")]
    pub images: Option<PathBuf>,
    /// Write the trained generator here at the end: a .safetensors file with the tensor names
    /// Faces reads (`atelier faces --model FILE`; PyTorch's load_state_dict reads it too).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// faces: fine-tune the face model; scratch: pre-train a new generator.
    #[arg(long, value_enum, default_value_t = FromArg::Faces)]
    pub from: FromArg,
    /// The generator to fine-tune (default: the bundled face model).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Train until this step (default 500; when resuming, the run's own target).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Pictures per step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Adam's learning rate for both networks.
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// Differentiable augmentation (colour, translation, cutout) for small sets.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub augment: OnOff,
    /// Seed: the same seed, settings, pictures and thread count give the same weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Colour transparency is composited onto: white, black or #rrggbb.
    #[arg(long, default_value = "white")]
    pub background: String,
    /// Write a checkpoint every N steps (and at the end).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub checkpoint_every: u64,
    /// Save the sample grid (samples.png in the run folder) every N steps.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub samples_every: u64,
    /// Continue the run in DIR from its last checkpoint (its settings and pictures).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["images", "model", "run_dir"])]
    pub resume: Option<PathBuf>,
    /// Folder of a new run (default: a new folder under <data>/train/runs).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Threads to train with (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Measure the sliced Wasserstein distance of the samples to the pictures every N steps
    /// (and before the first and after the last); in the report. Benchmarks use it.
    #[arg(long, value_name = "N")]
    pub swd_every: Option<u64>,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Network widths `nz,ngf,ndf` (tests use tiny networks; needs --from scratch).
    #[arg(long, hide = true, value_delimiter = ',')]
    pub widths: Option<Vec<usize>>,
}

/// The run's configuration from the arguments.
fn config(a: &TrainFacesArgs) -> anyhow::Result<TrainFacesConfig> {
    let shape = match a.widths.as_deref() {
        Some(&[nz, ngf, ndf]) if nz > 0 && ngf > 0 && ndf > 0 => GanShape { nz, ngf, ndf },
        Some(_) => bail!("--widths takes three positive numbers: nz,ngf,ndf"),
        None => GanShape::FACES,
    };
    let (settings, run_dir, resume, steps) = match &a.resume {
        Some(dir) => {
            let record = RunRecord::load(dir)?;
            let steps = a.steps.unwrap_or(record.target);
            (record.settings, dir.clone(), true, steps)
        }
        None => {
            let Some(images) = &a.images else {
                bail!("give the pictures with --images DIR (or --resume a run)");
            };
            let background = parse_colour(&a.background).with_context(|| {
                format!(
                    "--background must be white, black or #rrggbb (got {:?})",
                    a.background
                )
            })?;
            let start = match a.from {
                FromArg::Scratch => StartFrom::Scratch,
                FromArg::Faces => {
                    let model = a
                        .model
                        .clone()
                        .unwrap_or_else(crate::features::faces::default_model);
                    if !model.is_file() {
                        bail!(
                            "the face model {} is missing: run {} faces, or give --model FILE \
                             (or --from scratch)",
                            model.display(),
                            crate::paths::FETCH_COMMAND
                        );
                    }
                    StartFrom::Faces(model)
                }
            };
            let settings = TrainSettings {
                source: PictureSource::Folder(images.clone()),
                background,
                start,
                batch: a.batch,
                lr: a.lr,
                augment: a.augment == OnOff::On,
                seed: a.seed,
                shape,
            };
            let run_dir = a
                .run_dir
                .clone()
                .unwrap_or_else(|| runs::new_run_dir(&runs::default_root()));
            (settings, run_dir, false, a.steps.unwrap_or(500))
        }
    };
    let mut c = TrainFacesConfig::new(settings, run_dir, steps);
    c.resume = resume;
    c.checkpoint_every = a.checkpoint_every;
    c.samples_every = a.samples_every;
    c.export = a.out.clone();
    c.swd_every = a.swd_every;
    Ok(c)
}

/// Runs `atelier train faces`.
pub fn run_cli(a: TrainFacesArgs) -> anyhow::Result<()> {
    let config = config(&a)?;
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    let bar = indicatif::ProgressBar::new(config.steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} step {pos}/{len} [{bar:30}] {msg} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    let on_event = |ev: TrainFacesEvent| match ev {
        TrainFacesEvent::Started {
            run_dir,
            pictures,
            skipped,
            step,
            ..
        } => {
            bar.set_position(step);
            bar.println(format!(
                "training on {pictures} pictures (centre-cropped and resized to 64x64) in {}",
                run_dir.display()
            ));
            for s in &skipped {
                bar.println(format!("skipped: {}", s.reason));
            }
        }
        TrainFacesEvent::Step {
            step,
            losses,
            samples_per_s,
            ..
        } => {
            bar.set_position(step);
            bar.set_message(format!(
                "D {:.3} G {:.3}, {samples_per_s:.1} pictures/s",
                losses.d(),
                losses.g
            ));
        }
        TrainFacesEvent::Swd { step, value } => {
            bar.println(format!("step {step}: SWD {value:.4}"));
        }
        TrainFacesEvent::Checkpoint { .. }
        | TrainFacesEvent::Samples { .. }
        | TrainFacesEvent::Exported { .. } => {}
    };
    let mut report = None;
    let ran = super::train_job::run(
        TrainRequest::Faces(Box::new(config)),
        threads,
        |e| match e {
            TrainEvent::Faces(e) => on_event(e),
            TrainEvent::FacesDone(r) => report = Some(r),
            TrainEvent::Write(_) | TrainEvent::WriteDone(_) => {}
        },
    );
    bar.finish_and_clear();
    ran?;
    let report = report.context("the run ended without a report")?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprintln!("{}", summary(&report));
    }
    Ok(())
}

/// One paragraph for people.
pub fn summary(r: &TrainFacesReport) -> String {
    let mut s = format!(
        "{} step {} ({} this time) in {:.0} s: {:.1} pictures/s on {} thread(s)",
        if r.stopped { "stopped at" } else { "reached" },
        r.step,
        r.steps_run,
        r.seconds,
        r.samples_per_s,
        r.threads
    );
    if let Some(l) = r.final_losses {
        s.push_str(&format!("; losses D {:.3}, G {:.3}", l.d(), l.g));
    }
    s.push_str(&format!("\nrun folder: {}", r.run_dir.display()));
    if let Some(p) = &r.exported {
        s.push_str(&format!(
            "\ngenerator: {} (atelier faces --model {} …)",
            p.display(),
            p.display()
        ));
    }
    s
}

/// `atelier bench swd`
#[derive(Debug, clap::Args)]
pub struct SwdArgs {
    /// A generator file (.safetensors or a PyTorch checkpoint with the tensor names Faces
    /// reads); repeat for several.
    #[arg(long = "model", value_name = "FILE", required = true)]
    pub models: Vec<PathBuf>,
    /// The pictures to compare with, loaded as training loads them.
    #[arg(long, value_name = "DIR")]
    pub images: PathBuf,
    /// Colour transparency is composited onto: white, black or #rrggbb.
    #[arg(long, default_value = "white")]
    pub background: String,
    /// Also score the even-numbered pictures against the odd-numbered ones (the floor a
    /// perfect generator would reach with this many pictures).
    #[arg(long)]
    pub halves: bool,
    /// Threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `atelier bench swd`: each generator's samples (the fixed latents of seeds 0…511,
/// BatchNorm's running statistics) against the pictures.
pub fn swd_cli(a: &SwdArgs) -> anyhow::Result<()> {
    use crate::features::train::faces::model_file::load_generator;
    use crate::features::train::faces::swd::{SwdConfig, SwdReference};
    let background = parse_colour(&a.background).with_context(|| {
        format!(
            "--background must be white, black or #rrggbb (got {:?})",
            a.background
        )
    })?;
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("swd-{i}"))
        .build()?;
    pool.install(|| {
        let set = crate::features::train::faces::pictures::PictureSet::load(
            &PictureSource::Folder(a.images.clone()),
            background,
        )?;
        let mut all = Vec::new();
        set.batch(&(0..set.len()).collect::<Vec<_>>(), &mut all);
        let cfg = SwdConfig::default();
        let reference = SwdReference::new(&all, cfg);
        let latents = crate::features::train::faces::swd_latents(GanShape::FACES.nz);
        let mut models = Vec::new();
        for path in &a.models {
            let g = load_generator(path, GanShape::FACES)?;
            let (swd, levels) = reference.distance(&g.forward_eval(&latents));
            if !a.json {
                println!("{:.4}  {}", swd, path.display());
            }
            models.push(serde_json::json!({"path": path, "swd": swd, "levels": levels}));
        }
        let mut out = serde_json::json!({"images": set.len(), "models": models, "config": cfg});
        if a.halves {
            let (mut even, mut odd) = (Vec::new(), Vec::new());
            let idx: Vec<usize> = (0..set.len()).collect();
            set.batch(
                &idx.iter()
                    .copied()
                    .filter(|i| i % 2 == 0)
                    .collect::<Vec<_>>(),
                &mut even,
            );
            set.batch(
                &idx.iter()
                    .copied()
                    .filter(|i| i % 2 == 1)
                    .collect::<Vec<_>>(),
                &mut odd,
            );
            let (swd, _) = SwdReference::new(&even, cfg).distance(&odd);
            if !a.json {
                println!("{swd:.4}  (odd pictures against even ones)");
            }
            out["halves"] = swd.into();
        }
        if a.json {
            println!("{}", serde_json::to_string(&out)?);
        }
        Ok(())
    })
}
