//! `atelier style …`: restyle an image from the command line through the same engine job the
//! Style panel submits ([`crate::engine::Engine::style`], full pass), with progress and notes on
//! stderr and one `error:` line for anything wrong.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::engine::Engine;
use crate::features::style::StyleEvent;
use crate::features::style::{ImageSource, StyleChoice, StyleOutput, StylePass, StyleRequest};
use crate::models::stylenet::colour::Finish;
use crate::models::stylenet::tile_plan::{DEFAULT_BUDGET_MB, MIN_TILE};
use crate::models::stylenet::{STYLE_COUNT, StyleMix};

/// `atelier style`
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("which").required(true).args(["style", "mix", "style_image"])),
    after_help = "Styles are numbered 0 to 25, in the order of multistyle26's style weights.\n\n\
Examples:\n  \
    atelier style --in photo.jpg --style 19 --out out.png\n  \
    atelier style --in photo.jpg --mix 3:0.5,11:0.5 --strength 0.8 --out out.jpg --quality 90\n  \
    atelier style --in photo.jpg --style-image painting.png --preserve-color --max-size 2048 --out out.png"
)]
pub struct StyleArgs {
    /// The image to restyle (PNG, JPEG, GIF or WebP; EXIF orientation is applied).
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// One built-in style, 0 to 25.
    #[arg(long, value_name = "N")]
    pub style: Option<usize>,
    /// A blend of built-in styles as STYLE:WEIGHT pairs, e.g. `3:0.5,11:0.5` (styles 0 to 25;
    /// weights are normalised to sum to 1).
    #[arg(long, value_name = "N:W,…")]
    pub mix: Option<String>,
    /// Any image as the style (the arbitrary-style model; it is resized to 256×256, the content
    /// keeps its size unless --max-size says otherwise).
    #[arg(long, value_name = "FILE")]
    pub style_image: Option<PathBuf>,
    /// How much of the style to apply: 0 gives the input back, 1 the full style.
    #[arg(long, default_value_t = 1.0)]
    pub strength: f32,
    /// Keep the input's colours (chroma) and take only the stylised luminance.
    #[arg(long, alias = "preserve-colour")]
    pub preserve_color: bool,
    /// Longest side of the output in pixels; larger inputs are scaled down (never up).
    #[arg(long, value_name = "PIXELS")]
    pub max_size: Option<u32>,
    /// Square tiles of this side in pixels instead of the ones chosen from the memory budget
    /// (at least 128; images that fit one tile run whole; neighbouring tiles overlap by 128
    /// pixels, at most a third of the tile, and share normalisation statistics).
    #[arg(long, value_name = "PIXELS")]
    pub tile: Option<u32>,
    /// Working memory the network may use, in MB: the whole image runs at once while it fits,
    /// larger ones in the fewest tiles that fit (the pictures in and out come on top).
    #[arg(long, value_name = "MB", default_value_t = DEFAULT_BUDGET_MB)]
    pub memory_budget: u32,
    /// JPEG quality, 1 to 100 (only for .jpg/.jpeg output).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: Option<u8>,
    /// Output file; the format follows the extension: .png, .jpg or .jpeg.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// The smallest `--memory-budget`: multistyle26's tiles in 64 MB are about 550² on the CPU;
/// much smaller ones would run mostly overlap.
const MIN_BUDGET_MB: u32 = 64;

/// JPEG quality when `--quality` is not given.
const DEFAULT_QUALITY: u8 = 90;

/// Output formats `--out` can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutFormat {
    /// Lossless PNG.
    Png,
    /// JPEG at `--quality`.
    Jpeg,
}

fn out_format(out: &Path) -> anyhow::Result<OutFormat> {
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png") => Ok(OutFormat::Png),
        Some("jpg" | "jpeg") => Ok(OutFormat::Jpeg),
        _ => bail!(
            "--out must name a .png, .jpg or .jpeg file (got {})",
            out.display()
        ),
    }
}

impl StyleArgs {
    /// The style the arguments name (clap makes sure exactly one of the three is given).
    fn choice(&self) -> anyhow::Result<(StyleChoice, String)> {
        if let Some(i) = self.style {
            if i >= STYLE_COUNT {
                bail!(
                    "--style {i} does not exist: styles are numbered 0 to {}",
                    STYLE_COUNT - 1
                );
            }
            return Ok((
                StyleChoice::Preset(StyleMix::single(i)?),
                format!("style {i}"),
            ));
        }
        if let Some(m) = &self.mix {
            return Ok((StyleChoice::Preset(StyleMix::parse(m)?), format!("mix {m}")));
        }
        match &self.style_image {
            Some(p) => Ok((
                StyleChoice::Image(ImageSource::File(p.clone())),
                format!("style image {}", p.display()),
            )),
            None => bail!("give --style N, --mix N:W,… or --style-image FILE"),
        }
    }

    /// The engine request these arguments describe.
    fn request(&self) -> anyhow::Result<(StyleRequest, String)> {
        if !(self.strength.is_finite() && (0.0..=1.0).contains(&self.strength)) {
            bail!("--strength must be between 0 and 1 (got {})", self.strength);
        }
        if self.max_size == Some(0) {
            bail!("--max-size must be at least 1 pixel");
        }
        if let Some(tile) = self.tile.filter(|&t| t < MIN_TILE) {
            bail!("--tile must be at least {MIN_TILE} pixels (got {tile})");
        }
        if self.memory_budget < MIN_BUDGET_MB {
            bail!(
                "--memory-budget must be at least {MIN_BUDGET_MB} MB (got {})",
                self.memory_budget
            );
        }
        if !self.input.is_file() {
            bail!("the input image {} does not exist", self.input.display());
        }
        let (style, what) = self.choice()?;
        let mut req = StyleRequest::new(ImageSource::File(self.input.clone()), style);
        req.max_size = self.max_size;
        req.tiles.tile = self.tile;
        req.tiles.budget_mb = self.memory_budget;
        req.finish = Finish {
            strength: self.strength,
            preserve_colour: self.preserve_color,
        };
        Ok((req, what))
    }
}

/// Runs `atelier style`.
pub fn run(a: StyleArgs) -> anyhow::Result<()> {
    let format = out_format(&a.out)?;
    if format == OutFormat::Png && a.quality.is_some() {
        bail!("--quality applies to JPEG output only (--out names a .png file)");
    }
    let (req, what) = a.request()?;
    let engine = crate::headless::engine()?;
    let job = engine.style(req, StylePass::Full);
    let out = wait(&engine, job.id(), true)?;
    for note in &out.notes {
        eprintln!("note: {note}");
    }
    crate::models::stylenet::image::save(&out.image, &a.out, a.quality.unwrap_or(DEFAULT_QUALITY))?;
    let (w, h) = out.image.dimensions();
    // Peak resident memory of this process, so scripts and tests can check the bounded-memory
    // promise for large images.
    let peak = crate::measure::memory_kib("VmHWM:")
        .map(|k| format!(", peak memory {} MB", k / 1024))
        .unwrap_or_default();
    let tiles = match out.report.tile {
        Some((tw, th)) => format!("{} tiles of {tw}×{th}", out.report.tiles),
        None => "whole image".to_string(),
    };
    eprintln!(
        "wrote {} ({w}×{h}, {what}, {tiles}, {:.2} s{peak})",
        a.out.display(),
        out.seconds
    );
    Ok(())
}

/// Waits for the style job `job` and returns its output. With `show_progress`, progress goes to
/// stderr: rewritten in place on a terminal, one line per step otherwise; the model files being
/// loaded are named once loading has worked, so a failed job leaves only its one error line.
fn wait(
    engine: &Engine,
    job: crate::engine::JobId,
    show_progress: bool,
) -> anyhow::Result<StyleOutput> {
    let tty = std::io::stderr().is_terminal();
    let mut loading: Vec<PathBuf> = Vec::new();
    crate::headless::wait_style(engine, job, |event| match event {
        _ if !show_progress => {}
        StyleEvent::Loading { path } => loading.push(path.clone()),
        StyleEvent::Progress { done, total } => {
            for p in loading.drain(..) {
                eprintln!("loaded {}", p.display());
            }
            let line = progress_line(*done, *total);
            if tty {
                // Padded so a shorter line fully covers the previous one.
                eprint!("\r{line:<60}");
                if done == total {
                    eprintln!();
                }
                let _ = std::io::stderr().flush();
            } else {
                eprintln!("{line}");
            }
        }
        _ => {}
    })
}

/// What a progress step means: a job that fits one tile has one step; a tiled job reports the
/// normalisation-statistics pass first, then each tile (see [`StyleEvent::Progress`]).
fn progress_line(done: usize, total: usize) -> String {
    match (done, total) {
        (_, 1) => "stylising: whole image done".into(),
        (1, _) => format!(
            "stylising: normalisation statistics done, {} tiles to go",
            total - 1
        ),
        _ => format!("stylising: tile {}/{}", done - 1, total - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_names_the_statistics_pass_and_the_tiles() {
        assert_eq!(progress_line(1, 1), "stylising: whole image done");
        assert_eq!(
            progress_line(1, 10),
            "stylising: normalisation statistics done, 9 tiles to go"
        );
        assert_eq!(progress_line(10, 10), "stylising: tile 9/9");
    }

    #[test]
    fn the_output_format_follows_the_extension() {
        assert_eq!(out_format(Path::new("a.PNG")).unwrap(), OutFormat::Png);
        assert_eq!(out_format(Path::new("a.jpeg")).unwrap(), OutFormat::Jpeg);
        assert_eq!(out_format(Path::new("a.JPG")).unwrap(), OutFormat::Jpeg);
        assert!(out_format(Path::new("a.webp")).is_err());
        assert!(out_format(Path::new("a")).is_err());
    }
}
