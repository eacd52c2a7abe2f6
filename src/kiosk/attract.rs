//! The attract loop's clock: when to start demos, which panel's demo runs, when to show the
//! next style, when to hand control back, and when to reset everything. Pure state driven by
//! the time the app passes in, so it is tested without a window; the app turns each
//! [`AttractAction`] into the same panel calls a visitor's clicks make.

use std::time::{Duration, Instant};

use super::KioskConfig;
use crate::app::page::Page;

/// What the app should do now.
#[derive(Clone, Debug, PartialEq)]
pub enum AttractAction {
    /// Nobody has touched the kiosk for the idle time: start the demo of `page` (open it).
    Start(Demo),
    /// The current demo's time is up: stop it and start this one.
    Next(Demo),
    /// Show the next picture/style pair on the Style demo.
    NextStyle {
        /// The picture to restyle.
        image: usize,
        /// The built-in style.
        style: usize,
    },
    /// A visitor touched something: stop the demo, control is theirs.
    Stop,
    /// Nobody has touched the kiosk for the reset time: back to a clean state.
    Reset,
}

/// One turn of the attract loop on one page.
#[derive(Clone, Debug, PartialEq)]
pub struct Demo {
    /// The page shown.
    pub page: Page,
    /// How many turns came before (picks the prompt, the first style…).
    pub turn: usize,
}

/// The attract loop's state.
#[derive(Debug)]
pub struct Attract {
    idle: Duration,
    demo: Duration,
    reset: Duration,
    style_every: Duration,
    panels: Vec<Page>,
    styles: usize,
    images: usize,
    last_input: Instant,
    /// The running demo and when it started; `None` while a visitor is in control.
    running: Option<(Demo, Instant)>,
    /// When the Style demo last changed picture/style, and how many changes so far.
    style_step: Option<(Instant, usize)>,
    turns: usize,
    /// Whether the reset for the current idle period happened.
    reset_done: bool,
}

impl Attract {
    /// A loop for `config`, with `images` pictures for the Style demo, idle from `now`.
    pub fn new(config: &KioskConfig, images: usize, now: Instant) -> Self {
        Self {
            idle: Duration::from_secs_f64(config.idle_seconds),
            demo: Duration::from_secs_f64(config.demo_seconds),
            reset: Duration::from_secs_f64(config.reset_seconds),
            style_every: Duration::from_secs_f64(config.style_seconds),
            panels: config.panels.clone(),
            styles: config.styles.len().max(1),
            images: images.max(1),
            last_input: now,
            running: None,
            style_step: None,
            turns: 0,
            reset_done: false,
        }
    }

    /// Whether a demo is running.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The running demo, if any.
    pub fn demo(&self) -> Option<&Demo> {
        self.running.as_ref().map(|(d, _)| d)
    }

    /// A visitor did something: returns [`AttractAction::Stop`] if a demo was running.
    pub fn input(&mut self, now: Instant) -> Option<AttractAction> {
        self.last_input = now;
        self.reset_done = false;
        self.style_step = None;
        self.running.take().map(|_| AttractAction::Stop)
    }

    /// Advances the clock; returns what is due (at most one action per call, the most
    /// important first).
    pub fn tick(&mut self, now: Instant) -> Option<AttractAction> {
        let idle_for = now.saturating_duration_since(self.last_input);
        if !self.reset_done && idle_for >= self.reset {
            self.reset_done = true;
            // The demo restarts on the clean state from the first panel.
            self.running = None;
            self.style_step = None;
            self.turns = 0;
            return Some(AttractAction::Reset);
        }
        match &self.running {
            None if idle_for >= self.idle => {
                let demo = self.next_demo(0);
                self.running = Some((demo.clone(), now));
                self.style_step = None;
                Some(AttractAction::Start(demo))
            }
            None => None,
            Some((demo, since)) if now.saturating_duration_since(*since) >= self.demo => {
                let at = self
                    .panels
                    .iter()
                    .position(|p| *p == demo.page)
                    .unwrap_or(0);
                let demo = self.next_demo(at + 1);
                self.running = Some((demo.clone(), now));
                self.style_step = None;
                Some(AttractAction::Next(demo))
            }
            Some((demo, _)) if demo.page == Page::Style => {
                let due = self
                    .style_step
                    .is_none_or(|(t, _)| now.saturating_duration_since(t) >= self.style_every);
                if !due {
                    return None;
                }
                let n = self.style_step.map_or(demo.turn, |(_, n)| n + 1);
                self.style_step = Some((now, n));
                Some(AttractAction::NextStyle {
                    image: (n / self.styles) % self.images,
                    style: n % self.styles,
                })
            }
            Some(_) => None,
        }
    }

    /// How long until [`Self::tick`] may have something to do (for the repaint timer).
    pub fn next_due(&self, now: Instant) -> Duration {
        let since_input = now.saturating_duration_since(self.last_input);
        let mut due = if self.reset_done {
            Duration::MAX
        } else {
            self.reset.saturating_sub(since_input)
        };
        match &self.running {
            None => due = due.min(self.idle.saturating_sub(since_input)),
            Some((demo, since)) => {
                due = due.min(
                    self.demo
                        .saturating_sub(now.saturating_duration_since(*since)),
                );
                if demo.page == Page::Style {
                    let style_due = self.style_step.map_or(Duration::ZERO, |(t, _)| {
                        self.style_every
                            .saturating_sub(now.saturating_duration_since(t))
                    });
                    due = due.min(style_due);
                }
            }
        }
        due
    }

    fn next_demo(&mut self, index: usize) -> Demo {
        let page = self.panels[index % self.panels.len()];
        let turn = self.turns;
        self.turns += 1;
        Demo { page, turn }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> KioskConfig {
        KioskConfig::parse(
            "panels = [\"faces\", \"style\"]\n[timing]\nidle_seconds = 10\ndemo_seconds = 20\n\
             reset_minutes = 2\n[style]\nstyles = [4, 7]\nseconds = 5",
            std::path::Path::new("k.toml"),
        )
        .unwrap()
    }

    #[test]
    fn starts_after_idle_cycles_panels_and_stops_on_input() {
        let t0 = Instant::now();
        let s = |secs: f64| t0 + Duration::from_secs_f64(secs);
        let mut a = Attract::new(&config(), 2, t0);
        assert_eq!(a.tick(s(9.9)), None);
        assert_eq!(a.next_due(s(9.0)), Duration::from_secs(1));
        let Some(AttractAction::Start(d)) = a.tick(s(10.0)) else {
            panic!("no start")
        };
        assert_eq!(d.page, Page::Faces);
        assert_eq!(a.tick(s(20.0)), None);
        let Some(AttractAction::Next(d)) = a.tick(s(30.0)) else {
            panic!("no next")
        };
        assert_eq!(d.page, Page::Style);
        // Style: a new pair right away, then every 5 s, styles first, then pictures.
        let pairs: Vec<_> = [30.0, 32.0, 35.0, 40.0, 45.0]
            .iter()
            .filter_map(|&t| a.tick(s(t)))
            .collect();
        assert_eq!(
            pairs,
            vec![
                AttractAction::NextStyle { image: 0, style: 1 },
                AttractAction::NextStyle { image: 1, style: 0 },
                AttractAction::NextStyle { image: 1, style: 1 },
                AttractAction::NextStyle { image: 0, style: 0 },
            ]
        );
        assert_eq!(a.input(s(46.0)), Some(AttractAction::Stop));
        assert!(!a.is_running());
        assert_eq!(a.input(s(47.0)), None);
        assert_eq!(a.tick(s(56.0)), None);
        assert!(matches!(a.tick(s(57.0)), Some(AttractAction::Start(_))));
    }

    #[test]
    fn resets_once_per_idle_period() {
        let t0 = Instant::now();
        let s = |secs: f64| t0 + Duration::from_secs_f64(secs);
        let mut a = Attract::new(&config(), 1, t0);
        assert!(matches!(a.tick(s(10.0)), Some(AttractAction::Start(_))));
        assert_eq!(a.tick(s(120.0)), Some(AttractAction::Reset));
        // The loop starts over on the clean state, and the reset is not repeated.
        let Some(AttractAction::Start(d)) = a.tick(s(120.1)) else {
            panic!("no restart")
        };
        assert_eq!((d.page, d.turn), (Page::Faces, 0));
        for t in 121..400 {
            assert_ne!(a.tick(s(t as f64)), Some(AttractAction::Reset));
        }
        a.input(s(400.0));
        assert_eq!(a.tick(s(520.0)), Some(AttractAction::Reset));
    }
}
