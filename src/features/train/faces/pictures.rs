//! The training pictures: a folder (or a list of dropped files) of PNG, JPEG or WebP pictures
//! of any size, each centre-cropped to a square and resized to 64×64 (Catmull–Rom, which
//! antialiases when shrinking), transparency composited onto a background colour the user
//! picks (white by default).
//!
//! Each file's header is read before anything is decoded and pictures over
//! [`PICTURE_LIMITS`] are refused (a small PNG can claim 60000×60000 pixels); unreadable,
//! too-small and other files are listed with the reason and skipped, never fatal. Fewer than
//! [`MIN_PICTURES`] usable pictures is an error that lists them.

use std::path::{Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;

use crate::models::gan::IMAGE_SIZE;
use crate::models::stylenet::image::{ImageLimits, decode_on_background};

/// Fewest usable pictures a run accepts.
pub const MIN_PICTURES: usize = 16;
/// Most pictures a run loads (about 600 MB of 64×64 RGB; more is refused with a message).
pub const MAX_PICTURES: usize = 50_000;
/// Smallest side a picture may have: smaller ones would be blown up into blur.
pub const MIN_SIDE: u32 = 32;
/// Largest file read (the header decides for the pixels; this bounds the read itself).
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// Largest picture decoded: 40 megapixels, 16384 px a side (a 64×64 result needs no more;
/// bigger photos should be downscaled first).
pub const PICTURE_LIMITS: ImageLimits = ImageLimits {
    max_side: 16_384,
    max_pixels: 40_000_000,
};
/// File extensions read (case-insensitive).
pub const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "webp"];

/// Where the pictures come from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PictureSource {
    /// Every picture directly inside a folder (sorted by name; subfolders are not read).
    Folder(PathBuf),
    /// These files (dropped on the panel), in this order.
    Files(Vec<PathBuf>),
}

impl PictureSource {
    /// For messages: the folder, or "N files".
    pub fn describe(&self) -> String {
        match self {
            Self::Folder(p) => p.display().to_string(),
            Self::Files(f) => format!("{} dropped files", f.len()),
        }
    }
}

/// A file that was not used, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why (a sentence naming the file).
    pub reason: String,
}

/// One usable picture.
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    /// The file it came from.
    pub path: PathBuf,
    /// Its size before cropping.
    pub original: (u32, u32),
    /// 64×64 RGB, row-major.
    pub rgb: Vec<u8>,
}

/// Why the pictures cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PicturesError {
    /// The folder could not be listed.
    #[error("cannot read the picture folder {}: {source}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Too few usable pictures.
    #[error(
        "{source_desc} has {usable} usable picture(s); training needs at least {MIN_PICTURES} \
         (PNG, JPEG or WebP, at least {MIN_SIDE}×{MIN_SIDE} pixels){}",
        skipped_summary(skipped)
    )]
    TooFew {
        /// The folder or files.
        source_desc: String,
        /// Pictures that loaded.
        usable: usize,
        /// Files that did not, with reasons.
        skipped: Vec<Skipped>,
    },
    /// Too many pictures.
    #[error(
        "{source_desc} holds {count} pictures, more than the {MAX_PICTURES} a run loads; \
         choose a smaller folder"
    )]
    TooMany {
        /// The folder or files.
        source_desc: String,
        /// Picture files found.
        count: usize,
    },
}

fn skipped_summary(skipped: &[Skipped]) -> String {
    match skipped {
        [] => String::new(),
        [one] => format!("; skipped: {}", one.reason),
        [first, rest @ ..] => format!("; skipped {} files, e.g. {}", rest.len() + 1, first.reason),
    }
}

/// The loaded set.
#[derive(Clone, Debug)]
pub struct PictureSet {
    /// The usable pictures, in file-name order.
    pub pictures: Vec<Picture>,
    /// Files that were not used.
    pub skipped: Vec<Skipped>,
    /// The colour transparency was composited onto.
    pub background: [u8; 3],
}

fn is_picture_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The candidate files of `source`, sorted (folders), and the other files, skipped.
fn list(source: &PictureSource) -> Result<(Vec<PathBuf>, Vec<Skipped>), PicturesError> {
    let files = match source {
        PictureSource::Files(f) => f.clone(),
        PictureSource::Folder(dir) => {
            let err = |source| PicturesError::Folder {
                path: dir.clone(),
                source,
            };
            let mut files = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(err)? {
                let entry = entry.map_err(err)?;
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                // Subfolders are not read; a symlink to a file is.
                if !hidden && entry.path().is_file() {
                    files.push(entry.path());
                }
            }
            files.sort();
            files
        }
    };
    let (pictures, others): (Vec<PathBuf>, Vec<PathBuf>) =
        files.into_iter().partition(|p| is_picture_name(p));
    let skipped = others
        .into_iter()
        .map(|path| Skipped {
            reason: format!(
                "{} is not a PNG, JPEG or WebP picture (by its name)",
                path.display()
            ),
            path,
        })
        .collect();
    Ok((pictures, skipped))
}

/// One picture, decoded, composited, cropped and resized, or why not.
fn load_one(path: &Path, background: [u8; 3]) -> Result<Picture, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(format!(
            "{} is {} MB, more than the {} MB a picture may be",
            path.display(),
            len >> 20,
            MAX_FILE_BYTES >> 20
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let img = decode_on_background(&bytes, path, PICTURE_LIMITS, background)
        .map_err(|e| e.to_string())?
        .image;
    let (w, h) = img.dimensions();
    if w.min(h) < MIN_SIDE {
        return Err(format!(
            "{} is {w}×{h} pixels, smaller than {MIN_SIDE}×{MIN_SIDE}",
            path.display()
        ));
    }
    Ok(Picture {
        path: path.to_path_buf(),
        original: (w, h),
        rgb: square_64(&img).into_raw(),
    })
}

/// The centred square of `img`, resized to 64×64.
pub fn square_64(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let side = w.min(h);
    let crop = image::imageops::crop_imm(img, (w - side) / 2, (h - side) / 2, side, side);
    let s = IMAGE_SIZE as u32;
    if side == s {
        return crop.to_image();
    }
    image::imageops::resize(&*crop, s, s, image::imageops::FilterType::CatmullRom)
}

impl PictureSet {
    /// Loads `source` (in parallel on the current rayon pool), compositing transparency onto
    /// `background`. Unusable files are listed in [`Self::skipped`].
    pub fn load(source: &PictureSource, background: [u8; 3]) -> Result<Self, PicturesError> {
        let (files, mut skipped) = list(source)?;
        if files.len() > MAX_PICTURES {
            return Err(PicturesError::TooMany {
                source_desc: source.describe(),
                count: files.len(),
            });
        }
        let results: Vec<Result<Picture, Skipped>> = files
            .par_iter()
            .map(|path| {
                load_one(path, background).map_err(|reason| Skipped {
                    path: path.clone(),
                    reason,
                })
            })
            .collect();
        let mut pictures = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(p) => pictures.push(p),
                Err(s) => skipped.push(s),
            }
        }
        if pictures.len() < MIN_PICTURES {
            return Err(PicturesError::TooFew {
                source_desc: source.describe(),
                usable: pictures.len(),
                skipped,
            });
        }
        Ok(Self {
            pictures,
            skipped,
            background,
        })
    }

    /// Number of usable pictures.
    pub fn len(&self) -> usize {
        self.pictures.len()
    }

    /// Whether there are none (never, for a set [`Self::load`] returned).
    pub fn is_empty(&self) -> bool {
        self.pictures.is_empty()
    }

    /// The pictures at `indices` as the trainer's input: `[n][64][64][3]` in [-1, 1]
    /// (`v / 127.5 − 1`).
    pub fn batch(&self, indices: &[usize], out: &mut Vec<f32>) {
        out.clear();
        for &i in indices {
            if let Some(p) = self.pictures.get(i) {
                out.extend(p.rgb.iter().map(|&v| v as f32 / 127.5 - 1.0));
            }
        }
    }
}

/// Parses a background colour: `#rrggbb`, `rrggbb`, or `white` / `black`.
pub fn parse_colour(s: &str) -> Option<[u8; 3]> {
    match s.trim().to_ascii_lowercase().as_str() {
        "white" => return Some([255, 255, 255]),
        "black" => return Some([0, 0, 0]),
        _ => {}
    }
    let hex = s.trim().trim_start_matches('#');
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(path: &Path, w: u32, h: u32, rgba: [u8; 4]) {
        image::RgbaImage::from_pixel(w, h, image::Rgba(rgba))
            .save(path)
            .unwrap();
    }

    #[test]
    fn loads_crops_composites_and_skips_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..16 {
            // Half-transparent red on the chosen background.
            png(
                &dir.path().join(format!("{i:02}.png")),
                100,
                80,
                [255, 0, 0, 128],
            );
        }
        png(&dir.path().join("tiny.png"), 20, 20, [0, 0, 0, 255]);
        std::fs::write(dir.path().join("fake.png"), b"not a png").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
        std::fs::write(dir.path().join(".hidden.png"), b"x").unwrap();
        let set = PictureSet::load(&PictureSource::Folder(dir.path().into()), [0, 0, 255]).unwrap();
        assert_eq!(set.len(), 16);
        assert_eq!(set.pictures[0].original, (100, 80));
        assert_eq!(set.pictures[0].rgb.len(), 64 * 64 * 3);
        assert_eq!(&set.pictures[0].rgb[..3], &[128, 0, 127]);
        let reasons: Vec<&str> = set.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("notes.txt") && r.contains("not a PNG"))
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("tiny.png") && r.contains("smaller"))
        );
        assert!(reasons.iter().any(|r| r.contains("fake.png")));
        let mut b = Vec::new();
        set.batch(&[0, 1], &mut b);
        assert_eq!(b.len(), 2 * 64 * 64 * 3);
        assert!((b[0] - (128.0 / 127.5 - 1.0)).abs() < 1e-6);
    }

    #[test]
    fn colours_parse() {
        assert_eq!(parse_colour("#ff8000"), Some([255, 128, 0]));
        assert_eq!(parse_colour("White"), Some([255, 255, 255]));
        assert_eq!(parse_colour("#ff80"), None);
        assert_eq!(parse_colour("zzzzzz"), None);
    }
}
