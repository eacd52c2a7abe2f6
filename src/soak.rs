//! `atelier soak`: drives all three models through the engine in a loop — a short generation,
//! a batch of faces, a preset style and (every few rounds) an arbitrary style — and prints the
//! process's memory (RSS) and each kind of job's latency at regular intervals, then a summary
//! with the memory trend. The same engine calls as the studio, so a leak there shows here.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::engine::{Engine, JobHandle, Outcome, WriteRequest};
use crate::features::faces::FaceSpec;
use crate::features::faces::RenderRequest;
use crate::features::style::{ImageSource, StyleChoice, StylePass, StyleRequest};
use crate::models::llm::context::WriteTask;
use crate::models::llm::{GenerateParams, SamplingParams};

/// `atelier soak`
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// How long to run, in minutes.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Seconds between report lines.
    #[arg(long, default_value_t = 30.0)]
    pub report_seconds: f64,
    /// Tokens per generation.
    #[arg(long, default_value_t = 32)]
    pub max_tokens: usize,
    /// The language model: `smollm2`, `gemma3` or a GGUF path.
    #[arg(long, default_value = "smollm2")]
    pub model: String,
    /// Print each report as a JSON line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The kinds of job a round runs.
const KINDS: [&str; 4] = ["write", "faces", "style", "arbitrary"];

/// Latencies of one kind since the last report.
#[derive(Default, Clone)]
struct Window {
    count: usize,
    total: Duration,
    max: Duration,
}

impl Window {
    fn add(&mut self, d: Duration) {
        self.count += 1;
        self.total += d;
        self.max = self.max.max(d);
    }

    fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total.as_secs_f64() * 1000.0 / self.count as f64
        }
    }
}

/// Resident memory now, in MB (`None` off Linux).
pub fn rss_mb() -> Option<f64> {
    crate::measure::memory_kib("VmRSS:").map(|k| k as f64 / 1024.0)
}

/// Waits for `job`'s terminal event; returns how long it took or its error.
fn wait(engine: &Engine, job: &JobHandle, started: Instant) -> anyhow::Result<Duration> {
    match engine.wait(job.id(), crate::headless::IDLE, |_| anyhow::Ok(()))? {
        Outcome::Done => Ok(started.elapsed()),
        Outcome::Cancelled => bail!("job {} was cancelled", job.id()),
    }
}

/// Least-squares slope of `(minutes, mb)` points, in MB per hour.
pub fn slope_mb_per_hour(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx * 60.0 }
}

/// Runs the soak.
pub fn run(a: &SoakArgs) -> anyhow::Result<()> {
    if !(a.minutes > 0.0 && a.report_seconds > 0.0) {
        bail!("--minutes and --report-seconds must be more than 0");
    }
    let model = crate::headless::resolve_llm(&a.model)?;
    let faces_model = crate::features::faces::default_model();
    let content =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/style/chelsea_256.png");
    let style_image = crate::paths::models_dir().join("images/coffee.png");
    let style_image = if style_image.is_file() {
        style_image
    } else {
        content.clone()
    };
    let engine = crate::headless::engine()?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.minutes * 60.0);
    let every = Duration::from_secs_f64(a.report_seconds);
    let mut next_report = start + every;
    let mut windows: Vec<Window> = vec![Window::default(); KINDS.len()];
    let mut points: Vec<(f64, f64)> = Vec::new();
    let mut rounds = 0u64;
    let prompts = [
        "The old lighthouse keeper climbed the stairs one last time. At the top,",
        "In the city of glass, every window told a story.",
        "The recipe called for three ingredients nobody had heard of:",
    ];
    eprintln!(
        "soak: {} min, report every {} s, RSS at start {:.1} MB",
        a.minutes,
        a.report_seconds,
        rss_mb().unwrap_or(0.0)
    );
    while Instant::now() < deadline {
        let r = rounds as usize;
        // Write: a short sampled generation, a different prompt and seed each round.
        let t = Instant::now();
        let job = engine.write(WriteRequest {
            model: model.clone(),
            adapter: None,
            task: WriteTask::Continue {
                text: prompts[r % prompts.len()].into(),
            },
            params: GenerateParams {
                sampling: SamplingParams {
                    seed: rounds,
                    ..Default::default()
                },
                max_new_tokens: a.max_tokens,
                logprobs: 4,
            },
            candidates: 1,
            forced: Vec::new(),
            remote: None,
        });
        windows[0].add(wait(&engine, &job, t).context("write job")?);
        // Faces: four new seeds at the grid's cell size.
        let t = Instant::now();
        let job = engine.faces_render(RenderRequest {
            model: faces_model.clone(),
            faces: (0..4)
                .map(|i| FaceSpec::from_seed(rounds * 4 + i, 0.8))
                .collect(),
            size: 128,
        });
        windows[1].add(wait(&engine, &job, t).context("faces job")?);
        // Style: the next preset on the built-in cat.
        let t = Instant::now();
        let mut req = StyleRequest::new(
            ImageSource::File(content.clone()),
            StyleChoice::Preset(crate::models::stylenet::StyleMix::single(
                r % crate::models::stylenet::STYLE_COUNT,
            )?),
        );
        req.max_size = Some(256);
        let job = engine.style(req, StylePass::Full);
        windows[2].add(wait(&engine, &job, t).context("style job")?);
        // Arbitrary style every fourth round (it is the slowest).
        if r.is_multiple_of(4) {
            let t = Instant::now();
            let mut req = StyleRequest::new(
                ImageSource::File(content.clone()),
                StyleChoice::Image(ImageSource::File(style_image.clone())),
            );
            req.max_size = Some(256);
            let job = engine.style(req, StylePass::Full);
            windows[3].add(wait(&engine, &job, t).context("arbitrary style job")?);
        }
        rounds += 1;
        let now = Instant::now();
        if now >= next_report || now >= deadline {
            next_report = now + every;
            let minutes = start.elapsed().as_secs_f64() / 60.0;
            let rss = rss_mb().unwrap_or(0.0);
            points.push((minutes, rss));
            if a.json {
                let mut o = serde_json::json!({
                    "minutes": (minutes * 100.0).round() / 100.0,
                    "rounds": rounds,
                    "rss_mb": (rss * 10.0).round() / 10.0,
                });
                for (k, w) in KINDS.iter().zip(&windows) {
                    o[format!("{k}_mean_ms")] = (w.mean_ms().round()).into();
                    o[format!("{k}_max_ms")] = (w.max.as_millis() as u64).into();
                }
                println!("{o}");
            } else {
                let lat: Vec<String> = KINDS
                    .iter()
                    .zip(&windows)
                    .map(|(k, w)| format!("{k} {:.0}/{} ms", w.mean_ms(), w.max.as_millis()))
                    .collect();
                println!(
                    "{minutes:7.2} min  rounds {rounds:6}  RSS {rss:7.1} MB  latency mean/max: {}",
                    lat.join(", ")
                );
            }
            windows = vec![Window::default(); KINDS.len()];
        }
    }
    // The first report includes loading every model: the trend is measured after it.
    let steady = if points.len() > 2 {
        &points[1..]
    } else {
        &points[..]
    };
    let (lo, hi) = steady.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    println!(
        "soak done: {:.1} min, {rounds} rounds; RSS after warm-up {:.1} MB, at end {:.1} MB, \
         range {:.1}–{:.1} MB, trend {:+.1} MB/hour; peak {:.1} MB",
        start.elapsed().as_secs_f64() / 60.0,
        steady.first().map_or(0.0, |p| p.1),
        steady.last().map_or(0.0, |p| p.1),
        lo,
        hi,
        slope_mb_per_hour(steady),
        crate::measure::memory_kib("VmHWM:").map_or(0.0, |k| k as f64 / 1024.0)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_is_per_hour() {
        let flat = [(1.0, 100.0), (2.0, 100.0), (3.0, 100.0)];
        assert_eq!(slope_mb_per_hour(&flat), 0.0);
        let growing = [(0.0, 100.0), (1.0, 101.0), (2.0, 102.0)];
        assert!((slope_mb_per_hour(&growing) - 60.0).abs() < 1e-9);
    }
}
