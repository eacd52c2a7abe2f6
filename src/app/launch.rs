//! Opening the window: eframe with the wgpu renderer, whose device the engine shares, and the
//! eframe callbacks that drive [`AtelierApp`].

use super::studio::{AtelierApp, GuiOptions};
use crate::gpu::GpuContext;
use crate::theme;

/// Opens the main window and runs until it is closed.
pub fn run_gui(opts: GuiOptions) -> anyhow::Result<()> {
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("Atelier")
        .with_app_id("atelier")
        .with_inner_size([1400.0, 900.0])
        .with_min_inner_size([1000.0, 620.0]);
    if let Some(k) = &opts.kiosk {
        tracing::info!(
            "kiosk mode: panels {:?}, attract after {} s, reset after {} s, quit with {}",
            k.panels,
            k.idle_seconds,
            k.reset_seconds,
            k.quit_keys_text
        );
        viewport = viewport.with_fullscreen(k.fullscreen);
    }
    let native = eframe::NativeOptions {
        viewport,
        renderer: eframe::Renderer::Wgpu,
        wgpu_options: wgpu_options(),
        ..Default::default()
    };
    eframe::run_native(
        "Atelier",
        native,
        Box::new(move |cc| {
            theme::install(&cc.egui_ctx);
            let gpu = cc
                .wgpu_render_state
                .as_ref()
                .map(GpuContext::from_render_state);
            if let Some(g) = &gpu {
                tracing::info!("renderer: {}", g.adapter);
            }
            let mut app = AtelierApp::new(opts, gpu);
            if let Some(rs) = &cc.wgpu_render_state {
                app.set_render_state(rs.clone());
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the window could not be opened: {e}"))
}

impl eframe::App for AtelierApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        // eframe reports the previous frame's whole CPU time, rendering included.
        if let Some(secs) = frame.info().cpu_usage {
            self.record_full_frame(secs * 1000.0);
        }
        self.frame(ui);
    }

    fn on_exit(&mut self) {
        self.close();
    }
}

/// eframe's wgpu set-up, with the window's device asking for the adapter's buffer and texture
/// limits rather than WebGPU's portable defaults: the inference kernels share this device,
/// and a large Style result is blended there only when its sums fit one storage binding
/// (128 MiB by default, about 8 megapixels).
fn wgpu_options() -> egui_wgpu::WgpuConfiguration {
    let mut options = egui_wgpu::WgpuConfiguration::default();
    if let egui_wgpu::WgpuSetup::CreateNew(setup) = &mut options.wgpu_setup {
        let egui_device = setup.device_descriptor.clone();
        setup.device_descriptor = std::sync::Arc::new(move |adapter| {
            let mut desc = egui_device(adapter);
            let a = adapter.limits();
            let l = &mut desc.required_limits;
            // Never below what egui asks for; never above what the adapter has.
            l.max_storage_buffer_binding_size = l
                .max_storage_buffer_binding_size
                .max(a.max_storage_buffer_binding_size);
            l.max_buffer_size = l.max_buffer_size.max(a.max_buffer_size);
            l.max_texture_dimension_2d = l.max_texture_dimension_2d.max(a.max_texture_dimension_2d);
            desc
        });
    }
    options
}
