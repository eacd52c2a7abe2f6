//! The kiosk's part of every frame: the quit combination, refused close requests, the zoom,
//! the memory log, and the attract loop's clock, whose actions are played on the panels with
//! the same calls a visitor's clicks make (`Panel::demo`), or reset the whole session.

use std::time::{Duration, Instant};

use super::demo::Demo;
use super::{AttractAction, SESSION_DIR};
use crate::app::AtelierApp;
use crate::app::page::Page;
use crate::features::faces::FaceSpec;
use crate::store::Store;

/// The kiosk's scratch store in `base`/[`SESSION_DIR`], emptied first.
pub fn open_session(base: &std::path::Path) -> Store {
    fresh_store(&base.join(SESSION_DIR))
}

/// A store on an emptied folder.
fn fresh_store(dir: &std::path::Path) -> Store {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("kiosk: cannot clear {}: {e}", dir.display()),
    }
    Store::open(dir)
}

/// Kiosk mode, each frame: the quit combination, refused close requests, and the attract
/// loop's clock (visitor input stops a demo; idle time starts one, or resets everything).
pub(crate) fn frame(app: &mut AtelierApp, ctx: &egui::Context) {
    let now = Instant::now();
    let Some(kiosk) = &mut app.kiosk else {
        return;
    };
    if !kiosk.zoomed {
        kiosk.zoomed = true;
        // Large type, but never so large that the pages' fixed side panels overlap: keep
        // at least 1200×720 points on screen.
        let screen = ctx.content_rect().size();
        let fits = (screen.x / 1200.0).min(screen.y / 720.0).max(1.0);
        let zoom = kiosk.config.zoom.min(fits);
        if zoom < kiosk.config.zoom {
            tracing::info!(
                "kiosk: zoom {zoom:.2} instead of {} so the pages fit {:.0}×{:.0}",
                kiosk.config.zoom,
                screen.x,
                screen.y
            );
        }
        ctx.set_zoom_factor(zoom);
    }
    // The GUI soak: memory in the log once a minute while the kiosk runs.
    if kiosk
        .last_memory_log
        .is_none_or(|t| now - t >= Duration::from_secs(60))
    {
        kiosk.last_memory_log = Some(now);
        if let Some(mb) = crate::soak::rss_mb() {
            tracing::info!("kiosk: RSS {mb:.1} MB, {} resets so far", kiosk.resets);
        }
    }
    let combo = kiosk.config.quit_keys.0;
    if ctx.input_mut(|i| i.consume_shortcut(&combo)) {
        tracing::info!("kiosk: quit combination pressed");
        kiosk.quit_allowed = true;
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    }
    if ctx.input(|i| i.viewport().close_requested()) && !kiosk.quit_allowed {
        tracing::info!(
            "kiosk: close request refused (quit with {})",
            kiosk.config.quit_keys_text
        );
        ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
    }
    let input = super::visitor_input(ctx);
    let attract = kiosk.attract(now);
    let mut actions = Vec::new();
    if input {
        actions.extend(attract.input(now));
    }
    // Each tick returns at most one action and moves the clock past it.
    while actions.len() < 4
        && let Some(a) = attract.tick(now)
    {
        actions.push(a);
    }
    ctx.request_repaint_after(attract.next_due(now).min(Duration::from_secs(60)));
    for action in actions {
        apply(app, action);
    }
}

/// Does what the attract loop asked.
fn apply(app: &mut AtelierApp, action: AttractAction) {
    let Some(kiosk) = &mut app.kiosk else {
        return;
    };
    match action {
        AttractAction::Start(demo) | AttractAction::Next(demo) => {
            tracing::info!("kiosk: demo of {:?} (turn {})", demo.page, demo.turn);
            let config = kiosk.config.clone();
            let prompt = kiosk.prompt(demo.turn).to_string();
            let mut document = kiosk.demo_document.take();
            app.each_panel(|p, _| p.stop());
            app.show_page(demo.page);
            let step = match demo.page {
                Page::Faces => Demo::Faces {
                    keys: config
                        .seeds
                        .iter()
                        .map(|&s| FaceSpec::from_seed(s, config.psi))
                        .collect(),
                },
                Page::Write => Demo::Write {
                    prompt: &prompt,
                    max_tokens: config.max_tokens,
                    seed: demo.turn as u64,
                    document: &mut document,
                },
                // The picture/style pairs follow as NextStyle actions.
                Page::Style => Demo::StyleStart { max_side: 512 },
                // Pages without an attract demo (Train: refused by the kiosk configuration).
                _ => return,
            };
            app.on_page(demo.page, |p, cx| p.demo(step, cx));
            if let Some(kiosk) = &mut app.kiosk {
                kiosk.demo_document = document;
            }
        }
        AttractAction::NextStyle { image, style } => {
            let picture = (kiosk.shown_image != Some(image))
                .then(|| kiosk.images.get(image).cloned())
                .flatten();
            if picture.is_some() {
                kiosk.shown_image = Some(image);
            }
            let Some(&style) = kiosk.config.styles.get(style) else {
                return;
            };
            app.on_page(Page::Style, |p, cx| {
                p.demo(Demo::StylePair { picture, style }, cx)
            });
        }
        AttractAction::Stop => {
            tracing::info!("kiosk: a visitor took over");
            app.each_panel(|p, _| p.stop());
        }
        AttractAction::Reset => reset(app),
    }
}

/// Kiosk reset: stops every job, wipes the scratch folder and starts the pages afresh (the
/// engine and its loaded models stay).
fn reset(app: &mut AtelierApp) {
    let Some(first_page) = app.kiosk.as_ref().map(|k| k.config.panels[0]) else {
        return;
    };
    tracing::info!("kiosk: resetting to a clean state");
    app.each_panel(|p, cx| {
        p.stop();
        p.reset(cx);
    });
    // Queued autosaves land before the folder is wiped, not after.
    let _ = app.store.save_now();
    let dir = app.store.dir().to_path_buf();
    let backend = app.store.settings.backend;
    let model = app.store.settings.model.clone();
    app.store = fresh_store(&dir);
    app.store.settings.backend = backend;
    app.store.settings.model = model;
    app.store.settings.page = first_page;
    app.clear_toasts();
    if let Some(kiosk) = &mut app.kiosk {
        kiosk.demo_document = None;
        kiosk.shown_image = None;
        kiosk.resets += 1;
    }
}
