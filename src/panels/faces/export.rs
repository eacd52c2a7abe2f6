//! Exports: the selected face as PNG (64, 256 or 512 px) and the walk as an animated GIF. The
//! file dialog runs on the app's dialog thread, the pixels come from the worker, and encoding
//! and writing run on a named thread so the UI never waits on the disk.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};

use crate::features::faces::FaceImage;
use crate::features::faces::render::{save_gif, save_png};

/// Sizes a face can be exported at.
pub const PNG_SIZES: [u32; 3] = [64, 256, 512];

/// Frame rate of exported walks (GIF delays are in hundredths of a second: 25 fps is exact).
pub const GIF_FPS: f32 = 25.0;

/// What to export; the app asks where, then hands the path back to the panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaceExport {
    /// The selected face as a PNG of this side (64 = the model's own pixels).
    Png(u32),
    /// The walk as a looping animated GIF at `GIF_FPS`.
    Gif,
}

impl FaceExport {
    /// The dialog's title.
    pub fn title(self) -> String {
        match self {
            Self::Png(s) => format!("Export the face as a {s}×{s} PNG"),
            Self::Gif => "Export the walk as an animated GIF".into(),
        }
    }

    /// The suggested file name.
    pub fn file_name(self, seed: Option<u64>) -> String {
        let stem = seed.map_or_else(|| "face".to_string(), |s| format!("face-{s}"));
        match self {
            Self::Png(s) => format!("{stem}-{s}.png"),
            Self::Gif => "walk.gif".into(),
        }
    }

    /// File extension and filter name.
    pub fn filter(self) -> (&'static str, &'static str) {
        match self {
            Self::Png(_) => ("PNG image", "png"),
            Self::Gif => ("Animated GIF", "gif"),
        }
    }
}

/// Writes on a named thread; the receiver gets the saved path or the error message.
pub fn write_in_background(
    what: FaceExport,
    path: PathBuf,
    frames: Vec<FaceImage>,
    ctx: Option<egui::Context>,
) -> Receiver<Result<PathBuf, String>> {
    let (tx, rx) = channel();
    let spawned = std::thread::Builder::new()
        .name("atelier-faces-export".into())
        .spawn({
            let tx = tx.clone();
            move || {
                let result = write(what, &path, &frames).map(|()| path);
                let _ = tx.send(result);
                if let Some(ctx) = ctx {
                    ctx.request_repaint();
                }
            }
        });
    if let Err(e) = spawned {
        let _ = tx.send(Err(format!("cannot start the export: {e}")));
    }
    rx
}

fn write(what: FaceExport, path: &Path, frames: &[FaceImage]) -> Result<(), String> {
    match what {
        FaceExport::Png(_) => {
            let img = frames
                .first()
                .and_then(FaceImage::to_image)
                .ok_or_else(|| "no image to export".to_string())?;
            save_png(&img, path).map_err(|e| e.to_string())
        }
        FaceExport::Gif => save_gif(frames, GIF_FPS, path).map_err(|e| e.to_string()),
    }
}
