//! The live latent walk's shared controls (speed, pause, scrub) and its frame-pacing meter.
//!
//! The panel and the worker share one [`WalkControl`] (atomics, no locks): the panel writes
//! speed/pause/seek whenever a widget changes and reads the position for its scrub bar; the
//! worker advances the position by `speed × elapsed` before each frame. Controls are flags
//! rather than messages for the same reason cancellation is: a message would queue behind the
//! running walk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// Shared controls of a running walk. Clone it freely; all clones control the same walk.
#[derive(Clone, Debug)]
pub struct WalkControl {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// f64 bits: position in keyframes (0 = first key, 1 = second, …; wraps).
    position: AtomicU64,
    /// f32 bits: keyframes per second.
    speed: AtomicU32,
    paused: AtomicBool,
}

impl Default for WalkControl {
    fn default() -> Self {
        Self::new(0.5)
    }
}

impl WalkControl {
    /// Controls starting at the first keyframe, playing at `speed` keyframes per second.
    pub fn new(speed: f32) -> Self {
        Self {
            inner: Arc::new(Shared {
                position: AtomicU64::new(0f64.to_bits()),
                speed: AtomicU32::new(speed.to_bits()),
                paused: AtomicBool::new(false),
            }),
        }
    }

    /// Current position in keyframes (what the scrub bar shows).
    pub fn position(&self) -> f64 {
        f64::from_bits(self.inner.position.load(Ordering::Relaxed))
    }

    /// Jumps to a position (scrubbing); works while paused too.
    pub fn seek(&self, position: f64) {
        if position.is_finite() {
            self.inner
                .position
                .store(position.to_bits(), Ordering::Relaxed);
        }
    }

    /// Playback speed in keyframes per second (negative plays backwards).
    pub fn speed(&self) -> f32 {
        f32::from_bits(self.inner.speed.load(Ordering::Relaxed))
    }

    /// Sets the playback speed.
    pub fn set_speed(&self, speed: f32) {
        if speed.is_finite() {
            self.inner.speed.store(speed.to_bits(), Ordering::Relaxed);
        }
    }

    /// Whether playback is paused.
    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(Ordering::Relaxed)
    }

    /// Pauses or resumes.
    pub fn set_paused(&self, paused: bool) {
        self.inner.paused.store(paused, Ordering::Relaxed);
    }

    /// Advances by `dt` seconds (unless paused), wrapping into `[0, keys)`; returns the new
    /// position. A compare-and-swap loop, so a seek racing with it is never lost.
    pub fn advance(&self, dt: f64, keys: usize) -> f64 {
        let n = keys.max(1) as f64;
        let step = if self.is_paused() {
            0.0
        } else {
            self.speed() as f64 * dt
        };
        let mut cur = self.inner.position.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + step).rem_euclid(n);
            match self.inner.position.compare_exchange_weak(
                cur,
                next.to_bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(actual) => cur = actual,
            }
        }
    }
}

/// Frame pacing of a live walk: how evenly frames reached the texture.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PacingStats {
    /// Frames in this window.
    pub frames: usize,
    /// The interval aimed at (1000 / fps).
    pub target_ms: f64,
    /// Mean time between consecutive frames.
    pub mean_interval_ms: f64,
    /// Median interval.
    pub p50_interval_ms: f64,
    /// 95th-percentile interval.
    pub p95_interval_ms: f64,
    /// Longest interval (the worst hitch).
    pub max_interval_ms: f64,
    /// Intervals over 1.5 × target (a frame shown twice at that refresh rate).
    pub late_frames: usize,
    /// Mean time to render + upscale + upload one frame.
    pub mean_render_ms: f64,
}

/// Collects frame timestamps and render times.
#[derive(Debug)]
pub struct PacingMeter {
    target_ms: f64,
    last: Option<Instant>,
    intervals: Vec<f64>,
    renders: Vec<f64>,
}

impl PacingMeter {
    /// A meter aiming at `fps`.
    pub fn new(fps: f32) -> Self {
        Self {
            target_ms: 1000.0 / fps.max(1.0) as f64,
            last: None,
            intervals: Vec::new(),
            renders: Vec::new(),
        }
    }

    /// Records a frame delivered now that took `render_ms` to produce.
    pub fn frame(&mut self, at: Instant, render_ms: f64) {
        if let Some(prev) = self.last {
            self.intervals
                .push(at.duration_since(prev).as_secs_f64() * 1000.0);
        }
        self.last = Some(at);
        self.renders.push(render_ms);
    }

    /// Marks a pause in delivery (nothing to draw): the next frame starts a new interval
    /// instead of counting the idle time as a hitch.
    pub fn idle(&mut self) {
        self.last = None;
    }

    /// Frames recorded since the last [`Self::take`].
    pub fn len(&self) -> usize {
        self.renders.len()
    }

    /// Whether no frame was recorded since the last [`Self::take`].
    pub fn is_empty(&self) -> bool {
        self.renders.is_empty()
    }

    /// Statistics of the window so far, then starts a new window (the next interval is still
    /// measured from the last frame).
    pub fn take(&mut self) -> PacingStats {
        let mut iv = std::mem::take(&mut self.intervals);
        let renders = std::mem::take(&mut self.renders);
        iv.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            if iv.is_empty() {
                0.0
            } else {
                iv[((iv.len() - 1) as f64 * p).round() as usize]
            }
        };
        let mean = |v: &[f64]| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        PacingStats {
            frames: renders.len(),
            target_ms: self.target_ms,
            mean_interval_ms: mean(&iv),
            p50_interval_ms: pct(0.5),
            p95_interval_ms: pct(0.95),
            max_interval_ms: iv.last().copied().unwrap_or(0.0),
            late_frames: iv.iter().filter(|&&x| x > 1.5 * self.target_ms).count(),
            mean_render_ms: mean(&renders),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn advance_wraps_pauses_and_keeps_seeks() {
        let c = WalkControl::new(1.0);
        assert!((c.advance(0.5, 3) - 0.5).abs() < 1e-12);
        assert!(
            (c.advance(3.0, 3) - 0.5).abs() < 1e-12,
            "wraps around 3 keys"
        );
        c.set_paused(true);
        assert!((c.advance(1.0, 3) - 0.5).abs() < 1e-12);
        c.seek(2.25);
        assert!((c.advance(1.0, 3) - 2.25).abs() < 1e-12);
        c.set_paused(false);
        c.set_speed(-1.0);
        assert!(
            (c.advance(2.5, 3) - 2.75).abs() < 1e-12,
            "backwards wraps too"
        );
    }

    #[test]
    fn pacing_statistics() {
        let mut m = PacingMeter::new(50.0);
        let t0 = Instant::now();
        for (i, ms) in [0u64, 20, 40, 100, 120].iter().enumerate() {
            m.frame(t0 + Duration::from_millis(*ms), i as f64);
        }
        let s = m.take();
        assert_eq!(s.frames, 5);
        assert_eq!(s.late_frames, 1);
        assert!((s.max_interval_ms - 60.0).abs() < 1e-6);
        assert!((s.p50_interval_ms - 20.0).abs() < 1e-6);
        assert!((s.mean_render_ms - 2.0).abs() < 1e-9);
        assert!(m.is_empty());
    }
}
