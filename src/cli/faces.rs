//! `atelier faces …`: faces, grids and walks from the command line, through the same engine
//! jobs the Faces panel uses.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::features::faces::render::{compose_grid, save_gif, save_png};
use crate::features::faces::{FaceSpec, PSI_RANGE, latent::parse_latent};
use crate::features::faces::{RenderRequest, WalkRequest};

/// `atelier faces`
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    atelier faces --seed 42 --grid 4 --out grid.png --truncation 0.7 --size 256\n  \
    atelier faces --latent z.f32 --out face.png\n  \
    atelier faces --walk 1,7,42 --frames 120 --out walk.gif")]
pub struct FacesArgs {
    /// Seed of the face, or the first of a grid's consecutive seeds (default 0).
    #[arg(long, conflicts_with_all = ["latent", "walk"])]
    pub seed: Option<u64>,
    /// Render an N×N grid of consecutive seeds (N from 1 to 16).
    #[arg(long, value_name = "N", conflicts_with_all = ["latent", "walk"])]
    pub grid: Option<usize>,
    /// A latent file: 100 little-endian float32 values (400 bytes) or a JSON array of 100.
    #[arg(long, value_name = "FILE", conflicts_with = "walk")]
    pub latent: Option<PathBuf>,
    /// Keyframe seeds of a looping walk, comma-separated (2 to 8); writes an animated GIF.
    #[arg(long, value_name = "SEEDS", value_delimiter = ',')]
    pub walk: Option<Vec<u64>>,
    /// Frames over the whole walk loop.
    #[arg(long, default_value_t = 120)]
    pub frames: usize,
    /// Frame rate of the walk GIF (GIF stores hundredths of a second).
    #[arg(long, default_value_t = 25.0)]
    pub fps: f32,
    /// Truncation ψ from 0 (the mean face) to 1.5; 1 leaves faces as sampled.
    #[arg(long, default_value_t = 1.0)]
    pub truncation: f32,
    /// Offsets along the top principal directions (GANSpace), comma-separated, in standard
    /// deviations, e.g. `2,0,-1.5` (up to 8). The first use computes the directions (a few
    /// seconds) and caches them in the data folder.
    #[arg(
        long,
        value_name = "A,B,…",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub offsets: Vec<f32>,
    /// Side of each face in pixels: 64 is the model's own size, larger sizes are upscaled
    /// (Catmull-Rom).
    #[arg(long, default_value_t = 64)]
    pub size: u32,
    /// Generator weights: a PyTorch .tar/.pt/.pth checkpoint or a .safetensors file of the
    /// same architecture (default: the bundled DCGAN).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output file: .png for a face or a grid, .gif for a walk.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `atelier faces`.
pub fn run(a: FacesArgs) -> anyhow::Result<()> {
    if !(a.truncation.is_finite() && PSI_RANGE.contains(&a.truncation)) {
        bail!(
            "--truncation must be between 0 and 1.5 (got {})",
            a.truncation
        );
    }
    if a.offsets.len() > crate::features::faces::DIRECTION_COUNT {
        bail!(
            "--offsets takes at most {} values (got {})",
            crate::features::faces::DIRECTION_COUNT,
            a.offsets.len()
        );
    }
    let model = crate::headless::resolve_generator(a.model.as_deref())?;
    let edit = |mut f: FaceSpec| {
        f.offsets = a.offsets.clone();
        f
    };
    let engine = crate::headless::engine()?;
    if let Some(seeds) = &a.walk {
        expect_extension(&a.out, "gif")?;
        if !(2..=8).contains(&seeds.len()) {
            bail!(
                "--walk needs 2 to 8 comma-separated seeds (got {})",
                seeds.len()
            );
        }
        let job = engine.faces_walk(WalkRequest {
            model,
            keyframes: seeds
                .iter()
                .map(|&s| edit(FaceSpec::from_seed(s, a.truncation)))
                .collect(),
            frames: a.frames,
            size: a.size,
        });
        let frames = crate::headless::collect_faces(&engine, &job, a.frames)?;
        save_gif(&frames, a.fps, &a.out)?;
        eprintln!(
            "wrote {} ({} frames, {}×{} px, walk through seeds {})",
            a.out.display(),
            frames.len(),
            a.size,
            a.size,
            seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(());
    }
    expect_extension(&a.out, "png")?;
    let (faces, cols, what) = if let Some(file) = &a.latent {
        let bytes = std::fs::read(file)
            .with_context(|| format!("cannot read the latent file {}", file.display()))?;
        let z = parse_latent(&bytes).with_context(|| file.display().to_string())?;
        (
            vec![edit(FaceSpec::from_latent(z, a.truncation)?)],
            1,
            format!("the latent in {}", file.display()),
        )
    } else {
        let seed = a.seed.unwrap_or(0);
        match a.grid {
            Some(n) if !(1..=16).contains(&n) => bail!("--grid must be between 1 and 16 (got {n})"),
            Some(n) => {
                let last = seed
                    .checked_add((n * n - 1) as u64)
                    .context("--seed is too large for that grid")?;
                (
                    (seed..=last)
                        .map(|s| edit(FaceSpec::from_seed(s, a.truncation)))
                        .collect(),
                    n,
                    format!("{n}×{n} faces, seeds {seed}–{last}"),
                )
            }
            None => (
                vec![edit(FaceSpec::from_seed(seed, a.truncation))],
                1,
                format!("seed {seed}"),
            ),
        }
    };
    let n = faces.len();
    let job = engine.faces_render(RenderRequest {
        model,
        faces,
        size: a.size,
    });
    let images = crate::headless::collect_faces(&engine, &job, n)?;
    save_png(&compose_grid(&images, cols)?, &a.out)?;
    eprintln!(
        "wrote {} ({what}, {} px per face, ψ = {})",
        a.out.display(),
        a.size,
        a.truncation
    );
    Ok(())
}

fn expect_extension(out: &Path, ext: &str) -> anyhow::Result<()> {
    let ok = out.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext));
    if !ok {
        bail!("--out must name a .{ext} file (got {})", out.display());
    }
    Ok(())
}
