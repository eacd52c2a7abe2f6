//! Pixels: model output to RGBA8, upscaling for previews and exports, grids, PNG and GIF.
//!
//! The preview filter is Catmull–Rom (bicubic, a = −0.5). The model draws 64×64 faces, so every
//! large view is an upscale: nearest neighbour shows the pixel grid, bilinear smears eyes and
//! hairlines into mush, and Lanczos3 is marginally sharper but rings (light/dark halos) around
//! exactly the high-contrast edges a face has, and costs 36 taps per pixel against 16 — which
//! matters because the live walk upscales every frame on the worker.

use std::path::Path;

use image::RgbaImage;
use image::imageops::FilterType;

use super::FacesError;
use crate::models::dcgan::{IMAGE_SIZE, to_rgba8};

/// The filter every preview and export uses (see the module docs for why).
pub const PREVIEW_FILTER: FilterType = FilterType::CatmullRom;

/// Largest side accepted for an upscaled face.
pub const MAX_SIZE: u32 = 2048;

/// An RGBA8 image, row-major, opaque.
#[derive(Clone, PartialEq, Eq)]
pub struct FaceImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 4` bytes.
    pub rgba: Vec<u8>,
}

impl std::fmt::Debug for FaceImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaceImage({}×{})", self.width, self.height)
    }
}

impl FaceImage {
    /// One generator output (`[3][64][64]` in [-1, 1]) as a 64×64 image.
    pub fn from_model_output(chw: &[f32]) -> Self {
        Self {
            width: IMAGE_SIZE as u32,
            height: IMAGE_SIZE as u32,
            rgba: to_rgba8(chw),
        }
    }

    /// This image resized to `size`×`size` with [`PREVIEW_FILTER`] (a copy when it already
    /// has that size).
    pub fn upscaled(&self, size: u32) -> Self {
        self.resized(size, size)
    }

    /// This image resized to `width`×`height` with [`PREVIEW_FILTER`].
    pub fn resized(&self, width: u32, height: u32) -> Self {
        if width == self.width && height == self.height {
            return self.clone();
        }
        let Some(img) = self.to_image() else {
            return self.clone();
        };
        let out = image::imageops::resize(&img, width, height, PREVIEW_FILTER);
        Self {
            width,
            height,
            rgba: out.into_raw(),
        }
    }

    /// As an `image` buffer (`None` only if the byte count does not match the size).
    pub fn to_image(&self) -> Option<RgbaImage> {
        RgbaImage::from_raw(self.width, self.height, self.rgba.clone())
    }
}

/// Tiles equally sized images row-major into a `cols`-wide grid (the last row may be short).
pub fn compose_grid(images: &[FaceImage], cols: usize) -> Result<RgbaImage, FacesError> {
    let Some(first) = images.first() else {
        return Err(FacesError::InvalidRequest("no images to tile".into()));
    };
    let cols = cols.max(1);
    let rows = images.len().div_ceil(cols);
    let (w, h) = (first.width, first.height);
    let mut out = RgbaImage::new(w * cols as u32, h * rows as u32);
    for (i, img) in images.iter().enumerate() {
        let tile = img
            .to_image()
            .filter(|t| t.width() == w && t.height() == h)
            .ok_or_else(|| FacesError::InvalidRequest("grid images differ in size".into()))?;
        let (x, y) = ((i % cols) as u32 * w, (i / cols) as u32 * h);
        image::imageops::replace(&mut out, &tile, x as i64, y as i64);
    }
    Ok(out)
}

/// Saves an image as PNG.
pub fn save_png(img: &RgbaImage, path: &Path) -> Result<(), FacesError> {
    let err = |reason: String| FacesError::Image {
        path: path.to_path_buf(),
        reason,
    };
    // Encoded in memory and written atomically: a failed export leaves no torn file.
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| err(e.to_string()))?;
    crate::fsutil::atomic_write(path, bytes.get_ref()).map_err(|e| err(e.to_string()))
}

/// Writes frames as a looping animated GIF at `fps` (GIF stores delays in hundredths of a
/// second, so the rate is rounded to that). Colours are quantised per frame (NeuQuant).
pub fn save_gif(frames: &[FaceImage], fps: f32, path: &Path) -> Result<(), FacesError> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let err = |reason: String| FacesError::Image {
        path: path.to_path_buf(),
        reason,
    };
    if frames.is_empty() {
        return Err(err("no frames to write".into()));
    }
    if !(fps.is_finite() && fps > 0.0) {
        return Err(err(format!("frame rate {fps} is not positive")));
    }
    // Encoded in memory and written atomically: a failed export (a full disk, a frame that
    // does not encode) leaves the old file or none, never a truncated one.
    let mut bytes = Vec::new();
    let mut enc = GifEncoder::new_with_speed(&mut bytes, 10);
    enc.set_repeat(Repeat::Infinite)
        .map_err(|e| err(e.to_string()))?;
    let delay_ms = (1000.0 / fps).round().max(10.0) as u32;
    for f in frames {
        let img = f
            .to_image()
            .ok_or_else(|| err("a frame's pixels do not match its size".into()))?;
        let frame =
            image::Frame::from_parts(img, 0, 0, image::Delay::from_numer_denom_ms(delay_ms, 1));
        enc.encode_frame(frame).map_err(|e| err(e.to_string()))?;
    }
    drop(enc);
    crate::fsutil::atomic_write(path, &bytes).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_export_leaves_the_old_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("walk.gif");
        std::fs::write(&path, b"the old walk").unwrap();
        let good = FaceImage {
            width: 2,
            height: 2,
            rgba: vec![255; 16],
        };
        // The second frame's pixels do not match its size: the encoder fails midway.
        let bad = FaceImage {
            width: 2,
            height: 2,
            rgba: vec![255; 3],
        };
        assert!(save_gif(&[good.clone(), bad], 10.0, &path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"the old walk");
        save_gif(&[good.clone(), good], 10.0, &path).unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(b"GIF89a"));
    }

    use super::*;

    fn solid(w: u32, h: u32, v: u8) -> FaceImage {
        FaceImage {
            width: w,
            height: h,
            rgba: vec![v; (w * h * 4) as usize],
        }
    }

    #[test]
    fn upscale_keeps_flat_colour_and_size() {
        let big = solid(64, 64, 100).upscaled(256);
        assert_eq!((big.width, big.height), (256, 256));
        assert!(big.rgba.iter().all(|&v| v == 100));
    }

    #[test]
    fn grid_places_tiles_row_major() {
        let imgs: Vec<_> = (0..3).map(|i| solid(2, 2, i * 50)).collect();
        let g = compose_grid(&imgs, 2).unwrap();
        assert_eq!(g.dimensions(), (4, 4));
        assert_eq!(g.get_pixel(0, 0)[0], 0);
        assert_eq!(g.get_pixel(2, 0)[0], 50);
        assert_eq!(g.get_pixel(0, 2)[0], 100);
        assert_eq!(g.get_pixel(3, 3)[3], 0, "empty cell stays transparent");
    }

    #[test]
    fn gif_has_all_frames() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.gif");
        let frames: Vec<_> = (0..5).map(|i| solid(8, 8, i * 40)).collect();
        save_gif(&frames, 25.0, &p).unwrap();
        let dec = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
            std::fs::File::open(&p).unwrap(),
        ))
        .unwrap();
        use image::AnimationDecoder;
        assert_eq!(dec.into_frames().count(), 5);
    }
}
