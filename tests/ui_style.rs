//! Drives the real app (`AtelierApp::frame`, as eframe calls it) on the Style page with
//! egui_kittest and the real style networks (`models/multistyle26.onnx`, the arbitrary pair):
//! an opened picture gets a preview then the full-size result, the gallery renders and caches
//! its thumbnails, strength changes nothing on the worker, exports match the CPU reference,
//! a broken file and missing networks are explained inline.
//!
//! The harness renders with wgpu, and the app is given the same render state, so the snapshot
//! shows the WGSL finish shader's output through the paint callback (on llvmpipe here).
//!
//! Bounded: every wait polls with a deadline and fails with what it was waiting for.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use atelier::app::page::Page;
use atelier::app::{AtelierApp, GuiOptions};
use atelier::panels::style::StyleExport;
use common::Pages;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// The UI tests share two CPU cores with the model: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

type H = Harness<'static, AtelierApp>;

fn picture(name: &str) -> PathBuf {
    atelier::paths::models_dir().join("images").join(name)
}

/// The app on `data`, opened on the Style page, rendering with the harness's own wgpu state.
/// The language model is pointed at a file that does not exist so it does not load.
fn app_on(data: &Path) -> H {
    app_with(data, true)
}

/// As [`app_on`]; without `gpu` the app has no render state and draws with the CPU fallback.
fn app_with(data: &Path, gpu: bool) -> H {
    app_with_backend(data, gpu, None)
}

/// As [`app_with`], with `--backend` given.
fn app_with_backend(data: &Path, gpu: bool, backend: Option<atelier::gpu::Backend>) -> H {
    let multistyle = atelier::paths::models_dir().join("multistyle26.onnx");
    assert!(
        multistyle.is_file(),
        "the style network is missing at {}; fetch it with models/fetch.sh style",
        multistyle.display()
    );
    // As eframe does: the renderer's device goes to the engine too (the worker writes into
    // its textures) and its render state to the app.
    let render_state = gpu.then(|| {
        egui_kittest::wgpu::create_render_state(
            egui_kittest::wgpu::default_wgpu_setup(),
            egui_wgpu::RendererOptions::PREDICTABLE,
        )
    });
    let mut app = AtelierApp::new(
        GuiOptions {
            backend,
            model: Some(data.join("no-language-model.gguf")),
            data_dir: Some(data.to_path_buf()),
            kiosk: None,
        },
        render_state
            .as_ref()
            .map(atelier::gpu::GpuContext::from_render_state),
    );
    app.store_mut().settings.page = Page::Style;
    let builder = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .with_context_setup(AtelierApp::setup_context);
    let builder = match render_state {
        Some(render_state) => {
            app.set_render_state(render_state.clone());
            builder.renderer(egui_kittest::wgpu::WgpuTestRenderer::from_render_state(
                render_state,
            ))
        }
        None => builder,
    };
    builder.build_ui_state(|ui, app: &mut AtelierApp| app.frame(ui), app)
}

/// Steps frames until `done` holds, or fails after `timeout` saying what it waited for.
fn wait_for(h: &mut H, what: &str, timeout: Duration, done: impl Fn(&AtelierApp) -> bool) {
    common::wait_for(h, what, timeout, done, |app| {
        let s = app.style_panel();
        format!(
            "result {:?}, previews {}, full {}, thumbnails {}, status {:?}, error {:?}",
            s.result(),
            s.previews_received(),
            s.fulls_received(),
            s.thumbnails_ready(),
            s.status_text(),
            s.error()
        )
    });
}

fn shows(h: &H, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

/// The largest difference between two images' 8-bit values.
fn max_level_diff(a: &image::RgbImage, b: &image::RgbImage) -> Option<u8> {
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
}

/// Exports at `strength` and reads the PNG back.
fn export_at(h: &mut H, dir: &Path, strength: f32) -> image::RgbImage {
    h.state_mut().style_panel_mut().set_strength(strength);
    let out = dir.join(format!("out-{}.png", (strength * 100.0) as u32));
    // The app hands the save dialog's path to the panel the same way.
    h.state_mut()
        .style_panel_mut()
        .export_to(StyleExport::Png, out.clone());
    wait_for(h, "the export", Duration::from_secs(60), |app| {
        !app.style_panel().is_exporting()
    });
    image::open(&out)
        .unwrap_or_else(|e| panic!("{} should be a PNG: {e}", out.display()))
        .to_rgb8()
}

#[test]
fn a_picture_gets_a_preview_then_full_size_and_exports_match_the_reference() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut h = app_on(data.path());
    h.step();
    assert!(
        shows(&h, "Drop a picture here"),
        "the empty state invites a picture"
    );

    // 451×300: larger than the 384-pixel preview, smaller than the 1024 output.
    let cat = picture("chelsea.png");
    h.state_mut()
        .style_panel_mut()
        .set_content_path(cat.clone());
    h.state_mut().style_panel_mut().select_style(3);
    wait_for(&mut h, "the preview", Duration::from_secs(120), |app| {
        app.style_panel().previews_received() >= 1
    });
    let latency = h.state().style_panel().last_latency();
    eprintln!("change to first preview: {latency:?} (includes loading the network)");
    wait_for(
        &mut h,
        "the full-size result",
        Duration::from_secs(120),
        |app| app.style_panel().fulls_received() >= 1 && !app.style_panel().is_busy(),
    );
    assert_eq!(
        h.state().style_panel().result(),
        Some(((451, 300), false)),
        "full size is the picture's own"
    );
    assert!(shows(&h, "Full size · 451×300"));

    // A second change, with the network loaded: the debounced preview's latency.
    h.state_mut().style_panel_mut().select_style(11);
    let previews = h.state().style_panel().previews_received();
    wait_for(
        &mut h,
        "the second preview",
        Duration::from_secs(60),
        |app| app.style_panel().previews_received() > previews,
    );
    eprintln!(
        "change to preview, network loaded: {:?}",
        h.state().style_panel().last_latency()
    );
    wait_for(
        &mut h,
        "the second full result",
        Duration::from_secs(60),
        |app| !app.style_panel().is_busy(),
    );

    // Strength and preserve-colour are the shader's: no job, no new result.
    let (previews, fulls) = {
        let s = h.state().style_panel();
        (s.previews_received(), s.fulls_received())
    };
    h.state_mut().style_panel_mut().set_strength(0.5);
    h.state_mut().style_panel_mut().set_preserve_colour(true);
    for _ in 0..20 {
        h.step();
    }
    let s = h.state().style_panel();
    assert!(!s.is_busy(), "strength does not run the network");
    assert_eq!(
        (s.previews_received(), s.fulls_received()),
        (previews, fulls)
    );
    assert!(s.finish().preserve_colour);
    h.state_mut().style_panel_mut().set_preserve_colour(false);

    // Exports are the CPU reference: strength 0 is the picture, 1 the stylised, ½ between.
    let original = image::open(&cat).unwrap().to_rgb8();
    let none = export_at(&mut h, data.path(), 0.0);
    assert_eq!(none.dimensions(), (451, 300));
    assert!(
        none.as_raw() == original.as_raw(),
        "strength 0 exports the picture unchanged"
    );
    let full = export_at(&mut h, data.path(), 1.0);
    let differing = full
        .as_raw()
        .iter()
        .zip(original.as_raw())
        .filter(|(a, b)| a.abs_diff(**b) > 24)
        .count();
    assert!(
        differing > full.as_raw().len() / 4,
        "the style changes the picture ({differing} channels differ)"
    );
    let half = export_at(&mut h, data.path(), 0.5);
    for ((m, a), b) in half
        .as_raw()
        .iter()
        .zip(original.as_raw())
        .zip(full.as_raw())
    {
        let expect = (*a as f32 + *b as f32) / 2.0;
        assert!(
            (*m as f32 - expect).abs() <= 1.0,
            "strength ½ is the average: {m} vs ({a} + {b}) / 2"
        );
    }

    // JPEG at the chosen quality; a bare name gets the extension.
    h.state_mut()
        .style_panel_mut()
        .export_to(StyleExport::Jpeg(85), data.path().join("cat"));
    wait_for(&mut h, "the JPEG", Duration::from_secs(60), |app| {
        !app.style_panel().is_exporting()
    });
    let jpeg = image::open(data.path().join("cat.jpg")).expect("a JPEG");
    assert_eq!((jpeg.width(), jpeg.height()), (451, 300));

    // The gallery renders all 26 thumbnails once the user's jobs are done, and caches them.
    wait_for(&mut h, "26 thumbnails", Duration::from_secs(180), |app| {
        app.style_panel().thumbnails_ready() == 26
    });
    let cached = data.path().join("style/thumbs/v1-style-25.png");
    wait_for(
        &mut h,
        "the thumbnail cache",
        Duration::from_secs(20),
        |_| cached.is_file(),
    );

    // A blend: Ctrl+click adds a style, the preview follows.
    let previews = h.state().style_panel().previews_received();
    h.state_mut().style_panel_mut().toggle_blend(19);
    assert_eq!(h.state().style_panel().mix().len(), 2);
    wait_for(
        &mut h,
        "the blend's result",
        Duration::from_secs(60),
        |app| app.style_panel().previews_received() > previews && !app.style_panel().is_busy(),
    );
    assert!(shows(&h, "Weight of style 19"));

    // The snapshot: the result with the divider, strength 80 %, autosave settled.
    h.state_mut().style_panel_mut().set_strength(0.8);
    h.state_mut().style_panel_mut().set_split(true, 0.42);
    wait_for(
        &mut h,
        "everything settled",
        Duration::from_secs(60),
        |app| !app.style_panel().is_busy() && !app.store().has_unsaved_changes(),
    );
    for _ in 0..3 {
        h.step();
    }
    assert!(shows(&h, "Before / after divider"));
    // The result card shows measured times ("rendered in 0.11 s", "preview 251 ms after …"),
    // which differ from run to run by a few hundred pixels of digits; a layout or shader
    // change moves tens of thousands.
    h.snapshot_options(
        "style_panel",
        &egui_kittest::SnapshotOptions::new().max_failed_pixels(1200),
    );
}

#[test]
fn cached_thumbnails_are_read_not_rendered_again() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("style/thumbs");
    std::fs::create_dir_all(&dir).unwrap();
    let tile = image::RgbImage::from_pixel(128, 128, image::Rgb([200, 40, 40]));
    for i in 0..26 {
        tile.save(dir.join(format!("v1-style-{i:02}.png"))).unwrap();
    }
    let mut h = app_on(data.path());
    wait_for(
        &mut h,
        "the cached thumbnails",
        Duration::from_secs(10),
        |app| app.style_panel().thumbnails_ready() == 26,
    );
    assert!(
        !h.state().style_panel().is_busy(),
        "no job for cached thumbnails"
    );
}

#[test]
fn a_broken_file_and_missing_networks_are_explained_inline() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut h = app_on(data.path());
    let bad = data.path().join("broken.png");
    std::fs::write(&bad, b"this is not a PNG").unwrap();
    h.state_mut().style_panel_mut().set_content_path(bad);
    wait_for(&mut h, "the error", Duration::from_secs(60), |app| {
        app.style_panel().error().is_some()
    });
    h.step();
    let err = h
        .state()
        .style_panel()
        .error()
        .unwrap_or_default()
        .to_string();
    assert!(
        err.contains("broken.png"),
        "the error names the file: {err}"
    );
    assert!(shows(&h, "broken.png"));

    h.state_mut()
        .style_panel_mut()
        .set_models_dir(data.path().join("no-models"));
    h.step();
    h.step();
    assert!(shows(&h, "models/fetch.sh style"));
    assert!(shows(&h, "The 26-style network is not installed"));
}

#[test]
fn any_picture_can_be_the_style() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut h = app_on(data.path());
    h.state_mut()
        .style_panel_mut()
        .set_content_path(picture("astronaut.png"));
    h.state_mut()
        .style_panel_mut()
        .set_style_image(picture("coffee.png"));
    h.state_mut().style_panel_mut().set_max_side(512);
    wait_for(
        &mut h,
        "the arbitrary-style result",
        Duration::from_secs(240),
        |app| app.style_panel().fulls_received() >= 1 && !app.style_panel().is_busy(),
    );
    assert_eq!(h.state().style_panel().result(), Some(((512, 512), false)));
    assert!(shows(&h, "coffee.png"));
}

#[test]
fn large_pictures_run_in_tiles_with_progress() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut h = app_on(data.path());
    // 1411×1411 at its own size in a 256 MB budget (whole, it would need about 400 MB): two
    // tiles, statistics from a 1024 copy, and a result large enough to be readied for the GPU
    // on a thread.
    h.state_mut().style_panel_mut().set_max_side(2048);
    h.state_mut().style_panel_mut().set_tile_options(
        atelier::models::stylenet::tiling::TileOptions {
            budget_mb: 256,
            ..Default::default()
        },
    );
    h.state_mut()
        .style_panel_mut()
        .set_content_path(picture("retina.jpg"));
    let saw_steps = std::cell::Cell::new(false);
    wait_for(
        &mut h,
        "the tiled result",
        Duration::from_secs(240),
        |app| {
            let s = app.style_panel();
            if s.status_text().is_some_and(|t| t.contains("step")) {
                saw_steps.set(true);
            }
            s.fulls_received() >= 1 && !s.is_busy()
        },
    );
    assert!(saw_steps.get(), "the full pass reported its steps");
    assert_eq!(
        h.state().style_panel().result(),
        Some(((1411, 1411), false))
    );
    assert!(shows(&h, "tiles"), "the result says it ran in tiles");
    assert!(
        shows(
            &h,
            "normalisation statistics from the image scaled to 1024×1024"
        ),
        "the notes are shown"
    );
    // The shader draws the big result: the middle of the view is the picture, not background.
    let frame = h.render().expect("a frame renders");
    let middle = frame.get_pixel(frame.width() / 2 - 50, frame.height() / 2);
    assert_ne!(
        [middle[0], middle[1], middle[2]],
        [0x16, 0x17, 0x1b],
        "the result is drawn"
    );
}

#[test]
fn the_selected_face_can_be_the_style_without_a_gpu() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let generator = atelier::features::faces::default_model();
    if !generator.is_file() {
        eprintln!("skipped: no face generator at {}", generator.display());
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut h = app_with(data.path(), false);
    h.state_mut().style_panel_mut().set_max_side(512);
    h.state_mut()
        .style_panel_mut()
        .set_content_path(picture("astronaut.png"));
    // A face on the Faces page first.
    h.state_mut().store_mut().settings.page = Page::Faces;
    h.step();
    h.state_mut().faces_panel_mut().select_cell(2);
    wait_for(
        &mut h,
        "the face preview",
        Duration::from_secs(120),
        |app| app.faces_panel().preview_ready(),
    );
    h.get_by_label("Style").click();
    // The click is applied after the frame draws; the next frame shows the page.
    h.step();
    h.step();
    h.get_by_label("From an image").click();
    h.step();
    h.step();
    h.get_by_label("Use the selected face").click();
    wait_for(
        &mut h,
        "the face-styled result",
        Duration::from_secs(240),
        |app| app.style_panel().fulls_received() >= 1 && !app.style_panel().is_busy(),
    );
    h.step();
    assert!(shows(&h, "Face, seed 2"), "the style card names the face");
    assert_eq!(h.state().style_panel().result(), Some(((512, 512), false)));
    // The CPU fallback draws the divider too.
    h.state_mut().style_panel_mut().set_split(true, 0.5);
    h.step();
    assert!(shows(&h, "Full size · 512×512"));
}

#[test]
fn dropped_files_and_pasted_images_become_the_content() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut h = app_on(data.path());
    h.step();

    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(common::Dropped(picture("coffee.png"))));
    wait_for(
        &mut h,
        "the dropped picture",
        Duration::from_secs(120),
        |app| app.style_panel().fulls_received() >= 1 && !app.style_panel().is_busy(),
    );
    assert!(shows(&h, "coffee.png"));
    assert_eq!(h.state().style_panel().result(), Some(((600, 400), false)));

    // Ctrl+V with an image on the clipboard: egui-winit sends its pixels.
    let pasted = egui::ColorImage::new(
        [200, 120],
        vec![egui::Color32::from_rgb(40, 90, 160); 200 * 120],
    );
    h.event(egui::Event::PasteImage(std::sync::Arc::new(pasted)));
    // It fits the preview whole, so the preview is the final result.
    wait_for(
        &mut h,
        "the pasted picture",
        Duration::from_secs(60),
        |app| {
            let s = app.style_panel();
            s.result() == Some(((200, 120), false)) && !s.is_busy()
        },
    );
    assert!(shows(&h, "Pasted image"));
}

#[test]
fn the_picture_style_and_finish_survive_a_restart() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    {
        let mut h = app_with(data.path(), false);
        h.step();
        let s = h.state_mut().style_panel_mut();
        s.set_content_path(picture("chelsea.png"));
        s.select_style(7);
        s.toggle_blend(12);
        s.set_strength(0.6);
        s.set_preserve_colour(true);
        s.set_max_side(512);
        h.step();
        h.state_mut().close();
    }
    let mut h = app_with(data.path(), false);
    h.step();
    let s = h.state().style_panel();
    assert_eq!(s.mix(), &[(7, 1.0), (12, 1.0)]);
    assert_eq!(s.finish().strength, 0.6);
    assert!(s.finish().preserve_colour);
    let settings = &h.state().store().settings.style;
    assert_eq!(
        settings.content.as_deref(),
        Some(picture("chelsea.png").as_path())
    );
    assert_eq!(settings.max_side, 512);
    // The restored picture is rendered again without being opened.
    wait_for(
        &mut h,
        "the restored picture's preview",
        Duration::from_secs(120),
        |app| app.style_panel().result().is_some(),
    );
}

/// With the image models on the window's own GPU (`--backend gpu`; lavapipe here), previews
/// and full-size results that fit one tile never leave it: the panel shows the worker's
/// texture through the finish shader, and an export reads it back once, matching the CPU's
/// pixels.
#[test]
fn on_the_window_gpu_results_stay_textures_and_exports_read_them_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let data = tempfile::tempdir().unwrap();
    let mut h = app_with_backend(data.path(), true, Some(atelier::gpu::Backend::Gpu));
    // Smaller than the preview size: the preview is the final result, no full pass follows.
    let cat = image::open(picture("chelsea.png")).unwrap().to_rgb8();
    let small = image::imageops::resize(&cat, 180, 120, image::imageops::FilterType::Triangle);
    h.state_mut()
        .style_panel_mut()
        .set_content_pixels(small.clone(), "small cat");
    h.state_mut().style_panel_mut().select_style(3);
    wait_for(&mut h, "the GPU preview", Duration::from_secs(180), |app| {
        app.style_panel().previews_received() >= 1 && !app.style_panel().is_busy()
    });
    let panel = h.state().style_panel();
    assert_eq!(
        panel.result(),
        Some(((180, 120), false)),
        "the preview is final"
    );
    assert!(panel.result_is_texture(), "the preview stayed on the GPU");
    assert_eq!(panel.fulls_received(), 0);
    if let Ok(p) = std::env::var("ATELIER_TEST_SHOT") {
        h.render().unwrap().save(p).unwrap();
    }

    let exported = export_at(&mut h, data.path(), 1.0);
    let net = atelier::models::stylenet::Multistyle26::load(
        &atelier::paths::models_dir().join("multistyle26.onnx"),
    )
    .unwrap();
    let style = net.mix(&atelier::models::stylenet::StyleMix::single(3).unwrap());
    let (want, _) = atelier::models::stylenet::tiling::run_whole(
        &atelier::models::stylenet::tiling::MultistyleNet { net: &net, style },
        &small,
        &|| false,
    )
    .unwrap();
    assert_eq!(exported.dimensions(), want.dimensions());
    let worst = max_level_diff(&exported, &want);
    assert!(
        worst <= Some(1),
        "export off the CPU pixels by {worst:?} levels"
    );

    // Larger than the preview: the preview, then the full size, both left on the GPU.
    h.state_mut()
        .style_panel_mut()
        .set_content_path(picture("chelsea.png"));
    wait_for(
        &mut h,
        "the GPU full-size result",
        Duration::from_secs(180),
        |app| app.style_panel().fulls_received() >= 1 && !app.style_panel().is_busy(),
    );
    let panel = h.state().style_panel();
    assert_eq!(panel.result(), Some(((451, 300), false)));
    assert!(
        panel.result_is_texture(),
        "the full-size result stayed on the GPU"
    );
    let exported = export_at(&mut h, data.path(), 1.0);
    let style = net.mix(&atelier::models::stylenet::StyleMix::single(3).unwrap());
    let (want, _) = atelier::models::stylenet::tiling::run_whole(
        &atelier::models::stylenet::tiling::MultistyleNet { net: &net, style },
        &cat,
        &|| false,
    )
    .unwrap();
    let worst = max_level_diff(&exported, &want);
    assert!(
        worst <= Some(1),
        "full-size export off the CPU pixels by {worst:?} levels"
    );

    // Larger than one tile: the tiles are blended on the GPU too. The memory budget runs
    // 640×426 whole, so the test asks for 512-pixel tiles (two, on either device).
    let wide = image::imageops::resize(&cat, 640, 426, image::imageops::FilterType::Triangle);
    let tiles = atelier::models::stylenet::tiling::TileOptions {
        tile: Some(512),
        ..Default::default()
    };
    h.state_mut().style_panel_mut().set_tile_options(tiles);
    let fulls = h.state().style_panel().fulls_received();
    h.state_mut()
        .style_panel_mut()
        .set_content_pixels(wide.clone(), "wide cat");
    wait_for(
        &mut h,
        "the GPU tiled result",
        Duration::from_secs(300),
        |app| app.style_panel().fulls_received() > fulls && !app.style_panel().is_busy(),
    );
    let panel = h.state().style_panel();
    assert_eq!(panel.result(), Some(((640, 426), false)));
    assert!(
        panel.result_is_texture(),
        "the tiled result stayed on the GPU"
    );
    if let Ok(p) = std::env::var("ATELIER_TEST_SHOT_TILED") {
        h.render().unwrap().save(p).unwrap();
    }
    let exported = export_at(&mut h, data.path(), 1.0);
    let style = net.mix(&atelier::models::stylenet::StyleMix::single(3).unwrap());
    let (want, report) = atelier::models::stylenet::tiling::stylize(
        &atelier::models::stylenet::tiling::MultistyleNet { net: &net, style },
        &wide,
        &tiles,
        &mut |_, _| {},
        &|| false,
    )
    .unwrap();
    assert_eq!(report.tiles, 2);
    let worst = max_level_diff(&exported, &want);
    assert!(
        worst <= Some(1),
        "tiled export off the CPU pixels by {worst:?} levels"
    );
}
