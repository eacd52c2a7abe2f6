//! The style gallery's thumbnails: each of multistyle26's styles applied to a built-in picture
//! (`assets/style/chelsea_256.png`, public domain), rendered once by the engine and cached as
//! PNGs in the data folder so later starts show them at once. Reading and writing the cache
//! happen on named threads; the panel asks the engine for one missing thumbnail at a time, and
//! only while nothing the user asked for is running.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};

use image::RgbImage;

use crate::models::stylenet::STYLE_COUNT;

/// The picture thumbnails are rendered from (scikit-image's "chelsea", public domain).
const SOURCE_PNG: &[u8] = include_bytes!("../../../assets/style/chelsea_256.png");

/// Side of a thumbnail as rendered (drawn at about half this, so it stays sharp on HiDPI).
pub const THUMB_SIZE: u32 = 128;

/// Bump when the renderer or the source picture changes, so stale caches are ignored.
const CACHE_VERSION: u32 = 1;

/// The thumbnails: textures for those that exist, and where they are cached.
pub struct Gallery {
    pub(super) dir: Option<PathBuf>,
    pub(super) textures: Vec<Option<egui::TextureHandle>>,
    /// Cached thumbnails being read from disk; `None` once read.
    pub(super) reading: Option<Receiver<Vec<(usize, RgbImage)>>>,
    /// Set when a thumbnail job failed, so the panel stops asking (the error is shown).
    pub failed: bool,
    pub(super) source: Option<Arc<RgbImage>>,
}

impl Default for Gallery {
    fn default() -> Self {
        Self {
            dir: None,
            textures: vec![None; STYLE_COUNT],
            reading: None,
            failed: false,
            source: None,
        }
    }
}

fn cache_file(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("v{CACHE_VERSION}-style-{index:02}.png"))
}

fn texture(ctx: &egui::Context, index: usize, img: &RgbImage) -> egui::TextureHandle {
    ctx.load_texture(
        format!("style-thumb-{index}"),
        egui::ColorImage::from_rgb([img.width() as usize, img.height() as usize], img.as_raw()),
        egui::TextureOptions {
            mipmap_mode: Some(egui::TextureFilter::Linear),
            ..egui::TextureOptions::LINEAR
        },
    )
}

impl Gallery {
    /// Starts reading the cache in `dir` (once); call every frame.
    pub fn open(&mut self, dir: PathBuf, ctx: &egui::Context) {
        if self.dir.is_some() {
            return;
        }
        let (tx, rx) = channel();
        let read_dir = dir.clone();
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("atelier-style-thumbs".into())
            .spawn(move || {
                let found: Vec<(usize, RgbImage)> = (0..STYLE_COUNT)
                    .filter_map(|i| {
                        let img = image::open(cache_file(&read_dir, i)).ok()?.to_rgb8();
                        (img.width() == THUMB_SIZE || img.height() == THUMB_SIZE)
                            .then_some((i, img))
                    })
                    .collect();
                let _ = tx.send(found);
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => self.reading = Some(rx),
            Err(e) => tracing::warn!("cannot read the style thumbnails: {e}"),
        }
        self.dir = Some(dir);
    }

    /// Uploads thumbnails read from the cache.
    pub fn poll(&mut self, ctx: &egui::Context) {
        let Some(rx) = &self.reading else {
            return;
        };
        match rx.try_recv() {
            Ok(found) => {
                for (i, img) in found {
                    self.textures[i] = Some(texture(ctx, i, &img));
                }
                self.reading = None;
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
            Err(std::sync::mpsc::TryRecvError::Disconnected) => self.reading = None,
        }
    }

    /// The next style without a thumbnail, once the cache has been read.
    pub fn next_missing(&self) -> Option<usize> {
        if self.dir.is_none() || self.reading.is_some() || self.failed {
            return None;
        }
        self.textures.iter().position(Option::is_none)
    }

    /// How many thumbnails are shown.
    pub fn ready(&self) -> usize {
        self.textures.iter().filter(|t| t.is_some()).count()
    }

    /// The texture of style `index`, if rendered.
    pub fn texture(&self, index: usize) -> Option<&egui::TextureHandle> {
        self.textures.get(index).and_then(Option::as_ref)
    }

    /// Shows a freshly rendered thumbnail and caches it on a named thread.
    pub fn insert(&mut self, index: usize, img: Arc<RgbImage>, ctx: &egui::Context) {
        if index >= STYLE_COUNT {
            return;
        }
        self.textures[index] = Some(texture(ctx, index, &img));
        let Some(dir) = self.dir.clone() else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("atelier-style-thumb-save".into())
            .spawn(move || {
                let path = cache_file(&dir, index);
                // A lost thumbnail is rendered again next time: log, do not bother the user.
                if let Err(e) = crate::models::stylenet::image::save(&img, &path, 100) {
                    tracing::warn!("{e}");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot cache a style thumbnail: {e}");
        }
    }

    /// The built-in picture (decoded once; the bundled PNG is known to be good).
    pub fn source(&mut self) -> Option<Arc<RgbImage>> {
        if self.source.is_none() {
            match image::load_from_memory(SOURCE_PNG) {
                Ok(img) => self.source = Some(Arc::new(img.to_rgb8())),
                Err(e) => {
                    tracing::error!("the bundled thumbnail picture does not decode: {e}");
                    self.failed = true;
                }
            }
        }
        self.source.clone()
    }
}
