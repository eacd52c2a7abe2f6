//! Exports: the full-resolution result finished on the CPU ([`colour::compose`], the shader's
//! reference) and written as PNG or JPEG on a named thread, so the UI never waits on encoding
//! or the disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};

use egui_wgpu::wgpu;
use image::RgbImage;

use super::finish::Stylised;
use crate::gpu::readback::texture_to_rgb;
use crate::models::stylenet::colour::{self, Finish};

/// The format of an export; the app asks where, then hands the path back to the panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StyleExport {
    /// Lossless PNG.
    Png,
    /// JPEG at this quality (1–100).
    Jpeg(u8),
}

impl StyleExport {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg(_) => "jpg",
        }
    }

    /// The dialog's filter name.
    pub fn filter_name(self) -> &'static str {
        match self {
            Self::Png => "PNG image",
            Self::Jpeg(_) => "JPEG image",
        }
    }

    /// The suggested file name for a content file stem.
    pub fn file_name(self, stem: &str) -> String {
        format!("{stem}-styled.{}", self.extension())
    }

    fn quality(self) -> u8 {
        match self {
            Self::Png => 100,
            Self::Jpeg(q) => q,
        }
    }
}

/// `path` with the format's extension when it has none the encoder knows (a save dialog may
/// return a bare name).
pub fn with_extension(path: PathBuf, format: StyleExport) -> PathBuf {
    let known = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .is_some_and(|e| matches!(e.as_str(), "png" | "jpg" | "jpeg"));
    if known {
        path
    } else {
        let mut s = path.into_os_string();
        s.push(".");
        s.push(format.extension());
        PathBuf::from(s)
    }
}

/// Finishes and writes on a named thread; the receiver gets the saved path or the error.
pub fn write_in_background(
    content: Arc<RgbImage>,
    stylised: Stylised,
    gpu: Option<(wgpu::Device, wgpu::Queue)>,
    finish: Finish,
    format: StyleExport,
    path: PathBuf,
    ctx: Option<egui::Context>,
) -> Receiver<Result<PathBuf, String>> {
    let (tx, rx) = channel();
    let spawned = std::thread::Builder::new()
        .name("atelier-style-export".into())
        .spawn({
            let tx = tx.clone();
            move || {
                // A result on the GPU is read back here, once, for the file.
                let stylised = match stylised {
                    Stylised::Pixels(img) => Ok(img),
                    Stylised::Texture(t) => match &gpu {
                        Some((device, queue)) => texture_to_rgb(device, queue, &t)
                            .map(Arc::new)
                            .map_err(|e| e.to_string()),
                        None => Err("the result is on a GPU this window no longer has".into()),
                    },
                };
                let result = match stylised.and_then(|s| {
                    colour::compose(&content, &s, finish)
                        .ok_or_else(|| "the result and the original differ in size".to_string())
                }) {
                    Ok(img) => crate::models::stylenet::image::save(&img, &path, format.quality())
                        .map(|()| path)
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_get_the_format_extension() {
        let p = with_extension(PathBuf::from("/tmp/cat"), StyleExport::Png);
        assert_eq!(p, PathBuf::from("/tmp/cat.png"));
        let p = with_extension(PathBuf::from("/tmp/cat.JPEG"), StyleExport::Png);
        assert_eq!(p, PathBuf::from("/tmp/cat.JPEG"));
        assert_eq!(StyleExport::Jpeg(90).file_name("cat"), "cat-styled.jpg");
    }
}
