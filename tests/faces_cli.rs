//! `atelier faces` end to end: the real binary and the real DCGAN, the three documented forms,
//! direction offsets (computed, cached in the data folder), and one-line errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{ok, one_line_error};

fn atelier(args: &[&str], data: &Path) -> Output {
    common::atelier(args, Some(data))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

#[test]
fn a_seed_grid_png_with_truncation_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("grid.png");
    ok(&atelier(
        &[
            "faces",
            "--seed",
            "42",
            "--grid",
            "4",
            "--out",
            s(&out),
            "--truncation",
            "0.7",
            "--size",
            "96",
        ],
        dir.path(),
    ));
    let img = image::open(&out).unwrap().to_rgba8();
    assert_eq!(img.dimensions(), (4 * 96, 4 * 96));
    // Sixteen different faces: no two tiles are equal.
    let tile = |i: u32| {
        image::imageops::crop_imm(&img, (i % 4) * 96, (i / 4) * 96, 96, 96)
            .to_image()
            .into_raw()
    };
    let tiles: Vec<_> = (0..16).map(tile).collect();
    for i in 0..16 {
        for j in i + 1..16 {
            assert_ne!(tiles[i], tiles[j], "tiles {i} and {j}");
        }
    }
    // The same command again gives the same bytes.
    let again = dir.path().join("again.png");
    ok(&atelier(
        &[
            "faces",
            "--seed",
            "42",
            "--grid",
            "4",
            "--out",
            s(&again),
            "--truncation",
            "0.7",
            "--size",
            "96",
        ],
        dir.path(),
    ));
    assert_eq!(
        image::open(&again).unwrap().to_rgba8().into_raw(),
        img.into_raw()
    );
}

#[test]
fn a_latent_file_raw_or_json_gives_the_reference_face() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("face.png");
    let z = fixture("dcgan/z_1.f32");
    ok(&atelier(
        &["faces", "--latent", s(&z), "--out", s(&out)],
        dir.path(),
    ));
    let img = image::open(&out).unwrap().to_rgba8();
    assert_eq!(img.dimensions(), (64, 64));
    // Within one level of the reference's own rounding of the float64 output.
    let want: Vec<f32> = std::fs::read(fixture("dcgan/out_1.f32"))
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            let expect = ((want[c * 4096 + i] + 1.0) * 127.5).round();
            assert!((px[c] as f32 - expect).abs() <= 1.0);
        }
    }
    // The same latent as a JSON array.
    let values: Vec<f32> = std::fs::read(&z)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let json = dir.path().join("z.json");
    std::fs::write(&json, serde_json::to_string(&values).unwrap()).unwrap();
    let out2 = dir.path().join("face2.png");
    ok(&atelier(
        &["faces", "--latent", s(&json), "--out", s(&out2)],
        dir.path(),
    ));
    assert_eq!(image::open(&out2).unwrap().to_rgba8(), img);
}

#[test]
fn a_walk_gif_has_every_frame_and_loops() {
    use image::AnimationDecoder;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("walk.gif");
    ok(&atelier(
        &[
            "faces",
            "--walk",
            "1,7,42",
            "--frames",
            "24",
            "--out",
            s(&out),
        ],
        dir.path(),
    ));
    let bytes = std::fs::read(&out).unwrap();
    assert!(
        bytes.windows(11).any(|w| w == b"NETSCAPE2.0"),
        "looping extension"
    );
    let dec = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes)).unwrap();
    let frames = dec.into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 24);
    assert_eq!(frames[0].buffer().dimensions(), (64, 64));
    assert_ne!(frames[0].buffer(), frames[3].buffer());
}

#[test]
fn offsets_edit_the_face_and_the_directions_are_cached() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.png");
    let edited = dir.path().join("edited.png");
    ok(&atelier(
        &["faces", "--seed", "3", "--out", s(&plain)],
        dir.path(),
    ));
    ok(&atelier(
        &[
            "faces",
            "--seed",
            "3",
            "--offsets",
            "-3,0,2",
            "--out",
            s(&edited),
        ],
        dir.path(),
    ));
    assert_ne!(
        image::open(&plain).unwrap().to_rgba8(),
        image::open(&edited).unwrap().to_rgba8()
    );
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("faces"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("directions-"))
        .collect();
    assert_eq!(cached.len(), 1);
    // Zero offsets are the unedited face.
    let zero = dir.path().join("zero.png");
    ok(&atelier(
        &[
            "faces",
            "--seed",
            "3",
            "--offsets",
            "0,0",
            "--out",
            s(&zero),
        ],
        dir.path(),
    ));
    assert_eq!(
        image::open(&plain).unwrap().to_rgba8(),
        image::open(&zero).unwrap().to_rgba8()
    );
}

#[test]
fn bad_input_is_one_line_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    let short = dir.path().join("short.f32");
    std::fs::write(&short, [0u8; 12]).unwrap();
    let not_model = dir.path().join("model.tar");
    std::fs::write(&not_model, b"definitely not a checkpoint").unwrap();
    for (args, needle) in [
        (
            vec!["faces", "--latent", s(&short), "--out", s(&out)],
            "400 bytes",
        ),
        (
            vec!["faces", "--latent", "/nonexistent/z.f32", "--out", s(&out)],
            "cannot read",
        ),
        (
            vec![
                "faces",
                "--seed",
                "1",
                "--truncation",
                "3",
                "--out",
                s(&out),
            ],
            "truncation",
        ),
        (
            vec!["faces", "--seed", "1", "--grid", "40", "--out", s(&out)],
            "--grid",
        ),
        (vec!["faces", "--walk", "5", "--out", "w.gif"], "2 to 8"),
        (vec!["faces", "--walk", "1,2", "--out", s(&out)], ".gif"),
        (vec!["faces", "--seed", "1", "--out", "face.jpg"], ".png"),
        (
            vec!["faces", "--seed", "1", "--size", "9999", "--out", s(&out)],
            "size",
        ),
        (
            vec![
                "faces",
                "--seed",
                "1",
                "--model",
                s(&not_model),
                "--out",
                s(&out),
            ],
            "not a model checkpoint",
        ),
        (
            vec![
                "faces",
                "--seed",
                "1",
                "--model",
                "/nonexistent.tar",
                "--out",
                s(&out),
            ],
            "does not exist",
        ),
    ] {
        let line = one_line_error(&atelier(&args, dir.path()));
        assert!(line.contains(needle), "{args:?}: {line}");
    }
    assert!(!out.exists());
}
