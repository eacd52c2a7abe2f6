//! How long frames take: the UI thread's CPU time per frame, overall and while a job runs,
//! as percentiles (the "< 16 ms" budget; `ATELIER_FRAME_STATS=1` writes them to the log).

use std::time::Instant;

/// CPU time spent building each frame, for the "< 16 ms while a job runs" budget.
#[derive(Default)]
pub struct FrameStats {
    all: Vec<f32>,
    working: Vec<f32>,
    /// Whole frames as eframe measures them (UI + tessellation + rendering), while working.
    full_working: Vec<f32>,
    /// When the statistics were last written to the log.
    pub(crate) last_report: Option<Instant>,
}

/// Percentiles of frame times in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FrameSummary {
    /// How many frames.
    pub frames: usize,
    /// Median.
    pub p50_ms: f32,
    /// 95th percentile.
    pub p95_ms: f32,
    /// Slowest.
    pub max_ms: f32,
}

impl std::fmt::Display for FrameSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} frames: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
            self.frames, self.p50_ms, self.p95_ms, self.max_ms
        )
    }
}

impl FrameStats {
    const KEEP: usize = 20_000;

    /// Records one frame's UI time; `working`: a panel had a job queued or running.
    pub(crate) fn record(&mut self, ms: f32, working: bool) {
        for (v, take) in [(&mut self.all, true), (&mut self.working, working)] {
            if take {
                if v.len() == Self::KEEP {
                    v.remove(0);
                }
                v.push(ms);
            }
        }
    }

    /// Records one whole frame (eframe's figure) while working.
    pub(crate) fn record_full(&mut self, ms: f32) {
        if self.full_working.len() == Self::KEEP {
            self.full_working.remove(0);
        }
        self.full_working.push(ms);
    }

    fn summarize(samples: &[f32]) -> FrameSummary {
        if samples.is_empty() {
            return FrameSummary::default();
        }
        let mut s = samples.to_vec();
        s.sort_by(f32::total_cmp);
        let at = |q: f32| s[((s.len() - 1) as f32 * q).round() as usize];
        FrameSummary {
            frames: s.len(),
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            max_ms: s[s.len() - 1],
        }
    }

    /// All frames so far.
    pub fn overall(&self) -> FrameSummary {
        Self::summarize(&self.all)
    }

    /// Frames drawn while a job of any panel (a generation, a render, training) was queued
    /// or running (the UI code's CPU time).
    pub fn while_working(&self) -> FrameSummary {
        Self::summarize(&self.working)
    }

    /// Whole frames (UI, tessellation and rendering, as eframe reports them) while working;
    /// empty in the test harness, which has no eframe.
    pub fn full_while_working(&self) -> FrameSummary {
        Self::summarize(&self.full_working)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_percentiles() {
        let mut s = FrameStats::default();
        for i in 1..=100 {
            s.record(i as f32, i > 50);
        }
        let all = s.overall();
        assert_eq!(all.frames, 100);
        assert_eq!(all.max_ms, 100.0);
        assert!((all.p50_ms - 50.0).abs() <= 1.0);
        assert!((all.p95_ms - 95.0).abs() <= 1.0);
        assert_eq!(s.while_working().frames, 50);
    }
}
