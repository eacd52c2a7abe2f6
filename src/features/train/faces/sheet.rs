//! Pictures for the panel: the contact sheet of the training set and the grid of samples,
//! tiled as Faces tiles its grids, and saved as PNG atomically.

use std::path::Path;

use image::RgbaImage;

use super::pictures::PictureSet;
use crate::features::faces::FaceImage;
use crate::features::faces::render::compose_grid;
use crate::models::dcgan::to_rgba8;
use crate::models::gan::IMAGE_SIZE;

/// Most pictures on a contact sheet.
pub const CONTACT_SHEET_MAX: usize = 256;

/// Columns for `n` tiles: as square as possible.
fn columns(n: usize) -> usize {
    (1..=n.max(1)).find(|c| c * c >= n).unwrap_or(1)
}

fn tile(rgb: &[u8]) -> FaceImage {
    let s = IMAGE_SIZE as u32;
    FaceImage {
        width: s,
        height: s,
        rgba: rgb
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
    }
}

/// The first [`CONTACT_SHEET_MAX`] pictures as they are trained on (64×64 tiles), row-major.
pub fn contact_sheet(set: &PictureSet) -> RgbaImage {
    let tiles: Vec<FaceImage> = set
        .pictures
        .iter()
        .take(CONTACT_SHEET_MAX)
        .map(|p| tile(&p.rgb))
        .collect();
    compose_grid(&tiles, columns(tiles.len())).unwrap_or_default()
}

/// Generator outputs (`[n][64][64][3]` in [-1, 1]) as a grid.
pub fn sample_grid(images: &[f32]) -> RgbaImage {
    let plane = IMAGE_SIZE * IMAGE_SIZE;
    let tiles: Vec<FaceImage> = images
        .chunks_exact(plane * 3)
        .map(|hwc| {
            // to_rgba8 reads [3][64][64] (the inference generator's layout).
            let mut chw = vec![0f32; plane * 3];
            for (i, px) in hwc.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    chw[c * plane + i] = px[c];
                }
            }
            FaceImage {
                width: IMAGE_SIZE as u32,
                height: IMAGE_SIZE as u32,
                rgba: to_rgba8(&chw),
            }
        })
        .collect();
    compose_grid(&tiles, columns(tiles.len())).unwrap_or_default()
}

/// Writes `img` as a PNG atomically.
pub fn save_png(img: &RgbaImage, path: &Path) -> std::io::Result<()> {
    let mut buf = Vec::new();
    img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut buf))
        .map_err(std::io::Error::other)?;
    crate::fsutil::atomic_write(path, &buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_are_square_ish() {
        assert_eq!(columns(16), 4);
        assert_eq!(columns(17), 5);
        assert_eq!(columns(1), 1);
        let imgs = vec![0f32; 5 * IMAGE_SIZE * IMAGE_SIZE * 3];
        let g = sample_grid(&imgs);
        assert_eq!(g.dimensions(), (3 * 64, 2 * 64));
        assert_eq!(g.get_pixel(0, 0).0, [128, 128, 128, 255]);
    }
}
