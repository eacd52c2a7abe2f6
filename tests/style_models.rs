//! The style networks against onnxruntime's outputs (tests/fixtures/style, see
//! tests/fixtures/README.md): multistyle26 within max |diff| 2e-3, the arbitrary-style pair
//! within mean |diff| 2e-3 and max |diff| 5e-2.

use std::path::{Path, PathBuf};

use atelier::models::stylenet::arbitrary::BOTTLENECK;
use atelier::models::stylenet::image::to_feature_map;
use atelier::models::stylenet::{
    FeatureMap, Multistyle26, StyleMix, StylePredictor, StyleTransform,
};
use atelier::paths;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn model(file: &str) -> PathBuf {
    let p = paths::models_dir().join(file);
    assert!(
        p.exists(),
        "{} missing: run models/fetch.sh style",
        p.display()
    );
    p
}

fn png(name: &str) -> FeatureMap {
    let img = image::open(fixture(name)).expect("fixture png").to_rgb8();
    to_feature_map(&img)
}

fn f32s(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(name)).expect("fixture f32");
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Planar (CHW) -> interleaved (HWC), to compare with the NHWC references.
fn chw_to_hwc(v: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for ch in 0..c {
        for i in 0..h * w {
            out[i * c + ch] = v[ch * h * w + i];
        }
    }
    out
}

fn diffs(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let mut max = 0.0f32;
    let mut sum = 0.0f64;
    for (x, y) in a.iter().zip(b) {
        let d = (x - y).abs();
        max = max.max(d);
        sum += d as f64;
    }
    ((sum / a.len() as f64) as f32, max)
}

const NEVER: &(dyn Fn() -> bool + Sync) = &|| false;

#[test]
fn multistyle26_matches_onnxruntime() {
    let net = Multistyle26::load(&model("multistyle26.onnx")).unwrap();
    for (input, out, mix) in [
        ("style/astronaut_256.png", "style/astronaut_w0.f32", "19:1"),
        (
            "style/astronaut_256.png",
            "style/astronaut_w1.f32",
            "3:0.5,11:0.5",
        ),
        ("style/chelsea_256.png", "style/chelsea_w0.f32", "19:1"),
        (
            "style/chelsea_256.png",
            "style/chelsea_w1.f32",
            "3:0.5,11:0.5",
        ),
    ] {
        let x = png(input);
        let style = net.mix(&StyleMix::parse(mix).unwrap());
        let (y, _) = net.forward(&x, &style, None, NEVER).unwrap();
        assert_eq!((y.c, y.h, y.w), (3, 256, 256));
        let want = f32s(out);
        let (mean, max) = diffs(&y.data, &want);
        eprintln!("{out}: mean |diff| {mean:.2e}, max {max:.2e}");
        assert!(max < 2e-3, "{out}: max |diff| {max} (mean {mean})");
    }
}

#[test]
fn arbitrary_pair_matches_onnxruntime() {
    let predictor = StylePredictor::load(&model("arbitrary_predict.onnx")).unwrap();
    let transform = StyleTransform::load(&model("arbitrary_transform.onnx")).unwrap();
    for (content, style, bottleneck, out) in [
        (
            "style/astronaut_384.png",
            "style/brick_style_256.png",
            "style/astronaut_x_brick_bottleneck.f32",
            "style/astronaut_x_brick.f32",
        ),
        (
            "style/chelsea_384.png",
            "style/coffee_style_256.png",
            "style/chelsea_x_coffee_bottleneck.f32",
            "style/chelsea_x_coffee.f32",
        ),
    ] {
        // The predictor reproduces onnxruntime's int8 arithmetic and float summation order, so
        // it matches exactly here; allow one quantisation step (~0.02) on a few values.
        let b = predictor.predict(&png(style), NEVER).unwrap();
        let b_ref = f32s(bottleneck);
        assert_eq!(b.len(), BOTTLENECK);
        let (bmean, bmax) = diffs(&b, &b_ref);
        eprintln!("{bottleneck}: mean |diff| {bmean:.2e}, max {bmax:.2e}");
        assert!(
            bmax < 0.021 && bmean < 1e-3,
            "{bottleneck}: mean {bmean} max {bmax}"
        );

        // The transform on the reference bottleneck, then end to end on ours.
        let x = png(content);
        let want = f32s(out);
        for (label, bn) in [
            ("reference bottleneck", &b_ref),
            ("predicted bottleneck", &b),
        ] {
            let st = transform.style(bn).unwrap();
            let (y, _) = transform.forward(&x, &st, None, NEVER).unwrap();
            assert_eq!((y.c, y.h, y.w), (3, 384, 384));
            let (mean, max) = diffs(&chw_to_hwc(&y.data, 3, 384, 384), &want);
            eprintln!("{out} ({label}): mean |diff| {mean:.2e}, max {max:.2e}");
            assert!(
                mean < 2e-3 && max < 5e-2,
                "{out} ({label}): mean {mean} max {max}"
            );
        }
    }
}

#[test]
fn predictor_takes_any_size_from_8_pixels_and_refuses_smaller() {
    let predictor = StylePredictor::load(&model("arbitrary_predict.onnx")).unwrap();
    for (h, w) in [(8, 8), (9, 13), (257, 300)] {
        let data = (0..3 * h * w).map(|i| (i % 251) as f32 / 250.0).collect();
        let x = FeatureMap::from_vec(3, h, w, data).unwrap();
        let b = predictor.predict(&x, NEVER).unwrap();
        assert_eq!(b.len(), BOTTLENECK);
        assert!(b.iter().all(|v| v.is_finite()), "{h}×{w}");
    }
    let tiny = FeatureMap::from_vec(3, 7, 7, vec![0.5; 3 * 49]).unwrap();
    assert!(predictor.predict(&tiny, NEVER).is_err());
    // Cancelled before it starts: a clean error, not a bottleneck.
    assert!(
        predictor
            .predict(&png("style/brick_style_256.png"), &|| true)
            .is_err()
    );
}
