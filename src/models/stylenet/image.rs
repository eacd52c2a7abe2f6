//! Reading and writing the Style panel's images.
//!
//! Loading reads the header first and refuses images larger than [`ImageLimits`] before any
//! pixel is decoded (a small PNG can claim 60000×60000 pixels: a decompression bomb), then
//! decodes with the decoder's allocation limit as a second guard, applies the EXIF
//! orientation, flattens transparency onto white and converts to 8-bit RGB. Every failure is a
//! [`StyleError`] that names the file.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use super::StyleError;
use super::ops::{FeatureMap, reflect_index};

/// The largest images Atelier decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    /// Longest allowed side in pixels.
    pub max_side: u32,
    /// Most pixels allowed (width × height).
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    /// 100 megapixels (a 12000×8000 photo), sides up to 32768: enough for any camera, far below
    /// what would exhaust memory (300 MB as 8-bit RGB).
    fn default() -> Self {
        Self {
            max_side: 32768,
            max_pixels: 100_000_000,
        }
    }
}

/// The decoder's own allocation ceiling (the decoded buffer counts): 100 MP at 16-bit RGBA
/// would need 800 MB.
const MAX_DECODE_ALLOC: u64 = 1 << 30;

/// A decoded image, upright.
#[derive(Clone, Debug)]
pub struct LoadedImage {
    /// The pixels, EXIF orientation applied, alpha flattened onto white.
    pub image: RgbImage,
    /// Whether an EXIF orientation other than "as stored" was applied.
    pub reoriented: bool,
}

/// Loads an image file with the default limits.
pub fn load(path: &Path) -> Result<LoadedImage, StyleError> {
    load_with_limits(path, ImageLimits::default())
}

/// Loads an image file, refusing ones larger than `limits`.
pub fn load_with_limits(path: &Path, limits: ImageLimits) -> Result<LoadedImage, StyleError> {
    let io = |source| StyleError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    decode_with_limits(&bytes, path, limits)
}

/// Decodes an image held in memory (pasted or dropped); `name` is used in messages.
pub fn decode_with_limits(
    bytes: &[u8],
    name: &Path,
    limits: ImageLimits,
) -> Result<LoadedImage, StyleError> {
    decode_on_background(bytes, name, limits, WHITE)
}

/// White, where transparency is flattened unless a caller chooses another background.
pub const WHITE: [u8; 3] = [255, 255, 255];

/// [`decode_with_limits`] with transparency composited onto `background` (the Train panel's
/// pictures: the user picks the colour).
pub fn decode_on_background(
    bytes: &[u8],
    name: &Path,
    limits: ImageLimits,
    background: [u8; 3],
) -> Result<LoadedImage, StyleError> {
    let path = name.to_path_buf();
    if bytes.is_empty() {
        return Err(StyleError::EmptyFile { path });
    }
    let reader = || -> Result<ImageReader<Cursor<&[u8]>>, StyleError> {
        let r = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|source| StyleError::Io {
                path: path.clone(),
                source,
            })?;
        if r.format().is_none() {
            return Err(StyleError::NotAnImage { path: path.clone() });
        }
        Ok(r)
    };
    let corrupt = |e: image::ImageError| match e {
        image::ImageError::Unsupported(_) => StyleError::NotAnImage { path: path.clone() },
        e => StyleError::CorruptImage {
            path: path.clone(),
            reason: e.to_string(),
        },
    };
    // The header alone, without limits, to say exactly how large the image claims to be.
    let mut header = reader()?;
    header.no_limits();
    let (width, height) = header.into_dimensions().map_err(corrupt)?;
    if width.max(height) > limits.max_side
        || u64::from(width) * u64::from(height) > limits.max_pixels
    {
        return Err(StyleError::ImageTooLarge {
            path,
            width,
            height,
            max_side: limits.max_side,
            max_mp: limits.max_pixels / 1_000_000,
        });
    }
    if width == 0 || height == 0 {
        return Err(StyleError::CorruptImage {
            path,
            reason: "the image has no pixels".into(),
        });
    }
    let mut r = reader()?;
    let mut decode_limits = Limits::default();
    decode_limits.max_image_width = Some(limits.max_side);
    decode_limits.max_image_height = Some(limits.max_side);
    decode_limits.max_alloc = Some(MAX_DECODE_ALLOC);
    r.limits(decode_limits);
    let is_jpeg = r.format() == Some(image::ImageFormat::Jpeg);
    let mut decoder = r.into_decoder().map_err(corrupt)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    // The JPEG decoder fills a cut-short scan with grey instead of failing; a complete JPEG
    // ends with the EOI marker (FF D9), possibly followed by padding or appended data.
    if is_jpeg && !has_jpeg_end(bytes) {
        return Err(StyleError::CorruptImage {
            path,
            reason: "the JPEG data ends before the image does (truncated file)".into(),
        });
    }
    let reoriented = orientation != image::metadata::Orientation::NoTransforms;
    img.apply_orientation(orientation);
    Ok(LoadedImage {
        image: flatten_to_rgb(img, background),
        reoriented,
    })
}

/// Whether JPEG bytes contain an end-of-image marker after the start of the last scan.
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let last_sos = bytes
        .windows(2)
        .rposition(|w| w == [0xFF, 0xDA])
        .unwrap_or(0);
    bytes[last_sos..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// 8-bit RGB; transparent pixels are composited onto `background` (white: what a viewer
/// shows).
fn flatten_to_rgb(img: DynamicImage, background: [u8; 3]) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let a = p[3] as u32;
        for i in 0..3 {
            o[i] = ((p[i] as u32 * a + background[i] as u32 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

/// Writes `img` as PNG or JPEG (chosen by the extension; `quality` 1–100 for JPEG),
/// atomically: a failed write leaves any existing file untouched.
pub fn save(img: &RgbImage, path: &Path, quality: u8) -> Result<(), StyleError> {
    let err = |reason: String| StyleError::Save {
        path: path.to_path_buf(),
        reason,
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let mut buf = Vec::new();
    match ext.as_str() {
        "png" => {
            let enc = image::codecs::png::PngEncoder::new(&mut buf);
            img.write_with_encoder(enc)
                .map_err(|e| err(e.to_string()))?;
        }
        "jpg" | "jpeg" => {
            if !(1..=100).contains(&quality) {
                return Err(StyleError::BadInput(format!(
                    "JPEG quality must be 1 to 100 (got {quality})"
                )));
            }
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality);
            img.write_with_encoder(enc)
                .map_err(|e| err(e.to_string()))?;
        }
        other => {
            return Err(err(format!(
                "unknown output format `.{other}`: use a .png, .jpg or .jpeg file name"
            )));
        }
    }
    crate::fsutil::atomic_write(path, &buf).map_err(|e| err(e.to_string()))
}

/// `img` scaled down (never up) so its longest side is at most `max_side`, keeping the aspect
/// ratio; `None` when it already fits.
pub fn fit_within(img: &RgbImage, max_side: u32) -> Option<RgbImage> {
    let (w, h) = img.dimensions();
    let long = w.max(h);
    if long <= max_side || max_side == 0 {
        return None;
    }
    let scale = max_side as f64 / long as f64;
    let nw = ((w as f64 * scale).round() as u32).max(1);
    let nh = ((h as f64 * scale).round() as u32).max(1);
    Some(resize(img, nw, nh))
}

/// Resizes with a filter suited to the direction (Catmull-Rom; the `image` crate widens the
/// kernel when shrinking, so it also antialiases).
pub fn resize(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    image::imageops::resize(img, w, h, image::imageops::FilterType::CatmullRom)
}

/// A region of `img` as a 0..1 RGB feature map. Coordinates beyond the right or bottom edge
/// reflect back into the image (how inputs are padded to a multiple of 4).
pub fn region(img: &RgbImage, x0: u32, y0: u32, w: u32, h: u32) -> FeatureMap {
    let (iw, ih) = img.dimensions();
    let raw = img.as_raw();
    let (w, h) = (w as usize, h as usize);
    let xs: Vec<usize> = (0..w)
        .map(|x| reflect_index(x0 as isize + x as isize, iw as usize) * 3)
        .collect();
    let mut data = super::planes::zeroed(3 * w * h);
    let (r, rest) = data.split_at_mut(w * h);
    let (g, b) = rest.split_at_mut(w * h);
    for y in 0..h {
        let sy = reflect_index(y0 as isize + y as isize, ih as usize);
        let row = &raw[sy * iw as usize * 3..(sy + 1) * iw as usize * 3];
        for (x, &sx) in xs.iter().enumerate() {
            let i = y * w + x;
            r[i] = row[sx] as f32 * (1.0 / 255.0);
            g[i] = row[sx + 1] as f32 * (1.0 / 255.0);
            b[i] = row[sx + 2] as f32 * (1.0 / 255.0);
        }
    }
    FeatureMap { c: 3, h, w, data }
}

/// The whole image as a 0..1 RGB feature map.
pub fn to_feature_map(img: &RgbImage) -> FeatureMap {
    region(img, 0, 0, img.width(), img.height())
}

/// The top-left `w × h` of an RGB feature map as an 8-bit image (0..1 → 0..255, rounded).
pub fn to_rgb_image(fm: &FeatureMap, w: u32, h: u32) -> Option<RgbImage> {
    if fm.c != 3 || (w as usize) > fm.w || (h as usize) > fm.h {
        return None;
    }
    let hw = fm.pixels();
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h as usize {
        for x in 0..w as usize {
            let i = y * fm.w + x;
            out.extend([
                to_u8(fm.data[i]),
                to_u8(fm.data[hw + i]),
                to_u8(fm.data[2 * hw + i]),
            ]);
        }
    }
    RgbImage::from_raw(w, h, out)
}

/// 0..1 → 0..255, rounded and saturated.
#[inline]
pub fn to_u8(v: f32) -> u8 {
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_within_keeps_aspect_and_never_enlarges() {
        let img = RgbImage::new(400, 100);
        assert!(fit_within(&img, 400).is_none());
        let small = fit_within(&img, 200).unwrap();
        assert_eq!(small.dimensions(), (200, 50));
    }

    #[test]
    fn region_reflects_past_the_edges() {
        let img = RgbImage::from_fn(3, 1, |x, _| image::Rgb([x as u8 * 100, 0, 0]));
        let fm = region(&img, 1, 0, 4, 1);
        let reds: Vec<u8> = fm.plane(0).iter().map(|&v| to_u8(v)).collect();
        // columns 1 2 | 3->1 4->0
        assert_eq!(reds, vec![100, 200, 100, 0]);
    }

    #[test]
    fn jpeg_end_marker_detection() {
        assert!(has_jpeg_end(&[0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 0xFF, 0xD9]));
        assert!(!has_jpeg_end(&[0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 3]));
    }
}
