//! Pictures arriving from outside the panel's buttons: dropped files, pasted images and
//! paths, and the style image's thumbnail (made on a thread).

use std::path::PathBuf;

use image::RgbImage;

use super::state::{StylePanel, is_image_path, thumb_options};

impl StylePanel {
    /// Loads a small preview of the style image on a named thread.
    pub(super) fn load_style_thumb(&mut self, path: PathBuf) {
        let (tx, rx) = std::sync::mpsc::channel();
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("atelier-style-image".into())
            .spawn(move || {
                let thumb = crate::models::stylenet::image::load(&path).ok().map(|l| {
                    let img = crate::models::stylenet::image::fit_within(&l.image, 160)
                        .unwrap_or(l.image);
                    egui::ColorImage::from_rgb(
                        [img.width() as usize, img.height() as usize],
                        img.as_raw(),
                    )
                });
                let _ = tx.send(thumb);
                if let Some(ctx) = ctx {
                    ctx.request_repaint();
                }
            });
        if spawned.is_ok() {
            self.style_thumb = None;
            self.style_thumb_rx = Some(rx);
        }
    }

    pub(super) fn poll_style_thumb(&mut self, ctx: &egui::Context) {
        if let Some(rx) = &self.style_thumb_rx
            && let Ok(img) = rx.try_recv()
        {
            // A file that does not decode gets its error from the style job itself.
            self.style_thumb = img.map(|i| ctx.load_texture("style-image", i, thumb_options()));
            self.style_thumb_rx = None;
        }
    }

    /// Dropped files and pasted images become the content (in a kiosk, pasted pixels only).
    pub(super) fn take_input(&mut self, ctx: &egui::Context, kiosk: bool) {
        let (dropped, pasted) = ctx.input(|i| {
            let dropped: Vec<PathBuf> = i
                .raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect();
            let pasted: Vec<egui::Event> = i
                .events
                .iter()
                .filter(|e| matches!(e, egui::Event::PasteImage(_) | egui::Event::Paste(_)))
                .cloned()
                .collect();
            (dropped, pasted)
        });
        // A kiosk's visitors must not open the machine's files: no dropped or pasted paths
        // (pasted pixels are only what is on the clipboard).
        if let Some(path) = dropped.into_iter().next().filter(|_| !kiosk) {
            self.set_content_path(path);
        }
        for e in pasted {
            match e {
                // egui-winit reads the clipboard (arboard, image-data) when Ctrl+V finds no
                // text, and hands over the pixels; nothing here touches the clipboard.
                egui::Event::PasteImage(img) => {
                    let [w, h] = img.size;
                    let rgb: Vec<u8> = img
                        .pixels
                        .iter()
                        .flat_map(|c| {
                            let [r, g, b, _] = c.to_srgba_unmultiplied();
                            [r, g, b]
                        })
                        .collect();
                    if let Some(pixels) = RgbImage::from_raw(w as u32, h as u32, rgb) {
                        self.set_content_pixels(pixels, "Pasted image");
                    }
                }
                // A copied file arrives as its path (or a file:// URI) in text.
                egui::Event::Paste(text) => {
                    let line = text.lines().next().unwrap_or_default().trim();
                    let path = PathBuf::from(line.strip_prefix("file://").unwrap_or(line));
                    if !kiosk && is_image_path(&path) && path.is_file() {
                        self.set_content_path(path);
                    }
                }
                _ => {}
            }
        }
    }
}
