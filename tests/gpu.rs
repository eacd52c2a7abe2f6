//! The GPU kernels against the CPU ports on the reference inputs (tests/fixtures): the DCGAN,
//! multistyle26 and the arbitrary-style transform must agree within 1e-3 (max |diff|).
//!
//! Runs on whatever adapter wgpu finds — in CI mesa's software Vulkan driver (lavapipe),
//! which `scripts/system-deps.sh` installs. No adapter at all is a failure, not a skip.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use atelier::gpu::GpuContext;
use atelier::gpu::dcgan::GpuGenerator;
use atelier::gpu::kernels::Kernels;
use atelier::gpu::stylenet::{GpuMultistyle, GpuTransform};
use atelier::models::dcgan::Generator;
use atelier::models::stylenet::image::to_feature_map;
use atelier::models::stylenet::{FeatureMap, Multistyle26, StyleMix, StyleTransform};
use atelier::paths;

const TOLERANCE: f32 = 1e-3;
const NEVER: &(dyn Fn() -> bool + Sync) = &|| false;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn model(file: &str) -> PathBuf {
    let p = paths::models_dir().join(file);
    assert!(p.exists(), "{} missing: run models/fetch.sh", p.display());
    p
}

fn f32s(name: &str) -> Vec<f32> {
    std::fs::read(fixture(name))
        .expect("fixture")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn png(name: &str) -> FeatureMap {
    to_feature_map(&image::open(fixture(name)).expect("fixture png").to_rgb8())
}

fn gpu() -> (GpuContext, Arc<Kernels>) {
    let ctx = GpuContext::headless().unwrap_or_else(|e| {
        panic!("{e}\n(the GPU tests need a wgpu adapter; scripts/system-deps.sh installs lavapipe)")
    });
    eprintln!("adapter: {}", ctx.adapter);
    let kernels = Arc::new(Kernels::new(&ctx).expect("kernels compile"));
    (ctx, kernels)
}

/// The largest difference between two images' 8-bit values (None for empty images).
fn max_level_diff(a: &image::RgbImage, b: &image::RgbImage) -> Option<u8> {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn dcgan_gpu_matches_cpu() {
    let (ctx, kernels) = gpu();
    let mut cpu = Generator::load(&model("dcgan-weights.tar")).unwrap();
    let mut gpu = GpuGenerator::new(&ctx, kernels, &cpu).unwrap();
    // The three reference latents, one at a time and as one batch.
    let mut batch = Vec::new();
    for i in 1..=3 {
        let z = f32s(&format!("dcgan/z_{i}.f32"));
        let want = cpu.forward(&z).unwrap();
        let got = gpu.forward(&z).unwrap();
        let d = max_diff(&got, &want);
        eprintln!("dcgan z_{i}: max |gpu - cpu| {d:.2e}");
        assert!(d < TOLERANCE, "z_{i}: max |diff| {d}");
        let reference = f32s(&format!("dcgan/out_{i}.f32"));
        assert!(max_diff(&got, &reference) < TOLERANCE);
        batch.extend(z);
    }
    let want = cpu.forward(&batch).unwrap();
    let got = gpu.forward(&batch).unwrap();
    assert!(max_diff(&got, &want) < TOLERANCE);
}

#[test]
fn multistyle26_gpu_matches_cpu() {
    let (ctx, kernels) = gpu();
    let cpu = Multistyle26::load(&model("multistyle26.onnx")).unwrap();
    let gpu = GpuMultistyle::new(&ctx, kernels, &cpu).unwrap();
    for (input, mix) in [
        ("style/astronaut_256.png", "19:1"),
        ("style/chelsea_256.png", "3:0.5,11:0.5"),
    ] {
        let x = png(input);
        let style = cpu.mix(&StyleMix::parse(mix).unwrap());
        let (want, want_stats) = cpu.forward(&x, &style, None, NEVER).unwrap();
        let (got, got_stats) = gpu.forward(&x, &style, None).unwrap();
        assert_eq!((got.c, got.h, got.w), (want.c, want.h, want.w));
        let d = max_diff(&got.data, &want.data);
        eprintln!("multistyle26 {input} {mix}: max |gpu - cpu| {d:.2e}");
        assert!(d < TOLERANCE, "{input} {mix}: max |diff| {d}");
        // With the CPU's statistics given (tiles), the GPU normalises alike.
        let (fixed, _) = gpu.forward(&x, &style, Some(&want_stats)).unwrap();
        let d = max_diff(&fixed.data, &want.data);
        assert!(
            d < TOLERANCE,
            "{input} {mix} with fixed stats: max |diff| {d}"
        );
        assert_eq!(got_stats.layers.len(), want_stats.layers.len());
    }
}

/// Within 1e-3 (max |diff|) like the others; in fact bit for bit. The network fake-quantises
/// every tensor, so a last-bit difference anywhere (a sum's order, a fused multiply-add the
/// adapter does not fuse, a 2.5-ULP division, a driver's `exp`) moves a value a whole grid
/// step and spreads through the instance-norm statistics: before the kernels reproduced the
/// CPU's arithmetic exactly (`fma_x`, `div_cr`, `sqrt_cr`, `exp_portable` in common.wgsl),
/// lavapipe drifted to mean |diff| 1.5e-2, max 0.15 on the astronaut.
#[test]
fn arbitrary_transform_gpu_matches_cpu() {
    let (ctx, kernels) = gpu();
    let cpu = StyleTransform::load(&model("arbitrary_transform.onnx")).unwrap();
    let gpu = GpuTransform::new(&ctx, kernels, &cpu).unwrap();
    for (content, bottleneck) in [
        (
            "style/astronaut_384.png",
            "style/astronaut_x_brick_bottleneck.f32",
        ),
        (
            "style/chelsea_384.png",
            "style/chelsea_x_coffee_bottleneck.f32",
        ),
    ] {
        let x = png(content);
        let style = cpu.style(&f32s(bottleneck)).unwrap();
        let (want, want_stats) = cpu.forward(&x, &style, None, NEVER).unwrap();
        for (label, stats) in [
            ("own statistics", None),
            ("CPU statistics", Some(&want_stats)),
        ] {
            let (got, _) = gpu.forward(&x, &style, stats).unwrap();
            assert_eq!((got.c, got.h, got.w), (want.c, want.h, want.w));
            let n = got.data.len() as f64;
            let d = max_diff(&got.data, &want.data);
            let mean = got
                .data
                .iter()
                .zip(&want.data)
                .map(|(a, b)| (a - b).abs() as f64)
                .sum::<f64>()
                / n;
            let within = got
                .data
                .iter()
                .zip(&want.data)
                .filter(|(a, b)| (*a - *b).abs() < TOLERANCE)
                .count() as f64
                / n;
            eprintln!(
                "arbitrary transform {content} ({label}): max |gpu - cpu| {d:.2e}, mean {mean:.2e}, {:.1}% within 1e-3",
                within * 100.0
            );
            assert!(
                d < TOLERANCE,
                "{content} ({label}): max |diff| {d}, mean {mean}"
            );
        }
    }
}

/// The probe answers on whatever adapter there is (lavapipe in CI: not fused).
#[test]
fn fma_probe_answers() {
    let (ctx, _) = gpu();
    let fused = ctx.fma_is_fused().unwrap();
    eprintln!("{}: fma fused: {fused}", ctx.adapter);
    if ctx.adapter.contains("llvmpipe") {
        assert!(
            !fused,
            "lavapipe's fma was unfused when this was written; if it fuses now, tighten arbitrary_transform_gpu_matches_cpu"
        );
    }
}

/// A result written straight into a texture (the Style panel's previews on the window's
/// device) holds the CPU's pixels: read back here only to compare. An odd size checks the
/// crop from the network's multiple-of-4 input.
#[test]
fn results_written_into_a_texture_match_the_cpu_pixels() {
    use atelier::gpu::readback::texture_to_rgb;
    use atelier::models::stylenet::image::region;
    use atelier::models::stylenet::tiling::{MultistyleNet, TransformNet, run_whole};
    let (ctx, kernels) = gpu();
    let img = image::open(fixture("style/chelsea_384.png"))
        .unwrap()
        .to_rgb8();
    let img = image::imageops::crop_imm(&img, 5, 3, 201, 149).to_image();
    let (w, h) = img.dimensions();
    let x = region(&img, 0, 0, w.div_ceil(4) * 4, h.div_ceil(4) * 4);

    let cpu = StyleTransform::load(&model("arbitrary_transform.onnx")).unwrap();
    let style = cpu
        .style(&f32s("style/chelsea_x_coffee_bottleneck.f32"))
        .unwrap();
    let gpu = GpuTransform::new(&ctx, kernels.clone(), &cpu).unwrap();
    let texture = gpu.forward_to_texture(&x, &style, (w, h)).unwrap();
    let got = texture_to_rgb(&ctx.device, &ctx.queue, &texture).unwrap();
    let (want, _) = run_whole(&TransformNet { net: &cpu, style }, &img, NEVER).unwrap();
    assert_eq!(got.dimensions(), (w, h));
    assert!(
        got == want,
        "arbitrary transform: texture differs from the CPU image"
    );

    let cpu = Multistyle26::load(&model("multistyle26.onnx")).unwrap();
    let mix = StyleMix::single(19).unwrap();
    let gpu = GpuMultistyle::new(&ctx, kernels, &cpu).unwrap();
    let texture = gpu.forward_to_texture(&x, &cpu.mix(&mix), (w, h)).unwrap();
    let got = texture_to_rgb(&ctx.device, &ctx.queue, &texture).unwrap();
    let (want, _) = run_whole(
        &MultistyleNet {
            net: &cpu,
            style: cpu.mix(&mix),
        },
        &img,
        NEVER,
    )
    .unwrap();
    // Float within 5e-6 of the CPU: a value on a rounding boundary may land one level over.
    let worst = max_level_diff(&got, &want);
    assert!(
        worst <= Some(1),
        "multistyle26: texture off by {worst:?} levels"
    );
}

/// A picture larger than one tile, blended on the GPU into a texture (the Style panel's
/// full-size results), holds the pixels of the CPU's tiled run: same tiles, statistics pass
/// and feathered weights. 9 tiles of 128² over an odd 301×229 crop, both networks.
#[test]
fn tiles_blended_on_the_gpu_match_the_cpu_blend() {
    use atelier::gpu::blend::stylize_to_texture;
    use atelier::gpu::readback::texture_to_rgb;
    use atelier::gpu::stylenet::{GpuMultistyleNet, GpuTransformNet};
    use atelier::models::stylenet::tiling::{MultistyleNet, TileOptions, TransformNet, stylize};
    let (ctx, kernels) = gpu();
    // Past 16.8 megapixels the CPU blends (memory for one row of tiles only); below that the
    // device's binding limit decides (lavapipe's is 128 MiB: 8.4 megapixels of sums).
    assert!(atelier::gpu::blend::fits_device(&ctx, 2000, 1500));
    assert!(!atelier::gpu::blend::fits_device(&ctx, 6000, 4000));
    let img = image::open(fixture("style/chelsea_384.png"))
        .unwrap()
        .to_rgb8();
    let img = image::imageops::crop_imm(&img, 40, 77, 301, 229).to_image();
    let opts = TileOptions {
        tile: Some(128),
        overlap: 32,
        ..TileOptions::default()
    };
    let mut steps = Vec::new();

    let cpu = StyleTransform::load(&model("arbitrary_transform.onnx")).unwrap();
    let style = cpu
        .style(&f32s("style/chelsea_x_coffee_bottleneck.f32"))
        .unwrap();
    let gpu = GpuTransform::new(&ctx, kernels.clone(), &cpu).unwrap();
    let net = GpuTransformNet {
        net: &gpu,
        style: style.clone(),
    };
    let (texture, report) = stylize_to_texture(
        &net,
        &img,
        &opts,
        &mut |done, total| steps.push((done, total)),
        NEVER,
    )
    .unwrap()
    .expect("fits the device");
    assert_eq!(report.tiles, 9);
    assert_eq!(steps.first(), Some(&(1, 10)));
    assert_eq!(steps.last(), Some(&(10, 10)));
    let got = texture_to_rgb(&ctx.device, &ctx.queue, &texture).unwrap();
    let net = TransformNet { net: &cpu, style };
    let (want, _) = stylize(&net, &img, &opts, &mut |_, _| {}, NEVER).unwrap();
    assert_eq!(got.dimensions(), (301, 229));
    assert!(
        got == want,
        "arbitrary transform: GPU blend differs from the CPU's"
    );

    let cpu = Multistyle26::load(&model("multistyle26.onnx")).unwrap();
    let style = cpu.mix(&StyleMix::single(19).unwrap());
    let gpu = GpuMultistyle::new(&ctx, kernels, &cpu).unwrap();
    let net = GpuMultistyleNet {
        net: &gpu,
        style: style.clone(),
    };
    // Tiles chosen on the GPU respect the device's largest binding whatever the budget: the
    // first layer's 32 planes of a run must fit one.
    use atelier::models::stylenet::tiling::{TilePlan, TiledNet};
    let cost = net.cost();
    assert_eq!(cost.max_pixels, Some(ctx.max_binding() / 128));
    let roomy = TileOptions {
        budget_mb: 1 << 16,
        ..TileOptions::default()
    };
    let plan = TilePlan::new(6000, 4000, &roomy, &cost).unwrap();
    assert!(!plan.is_whole());
    assert!(plan.tile_w as u64 * plan.tile_h as u64 <= ctx.max_binding() / 128);
    let (texture, _) = stylize_to_texture(&net, &img, &opts, &mut |_, _| {}, NEVER)
        .unwrap()
        .expect("fits the device");
    let got = texture_to_rgb(&ctx.device, &ctx.queue, &texture).unwrap();
    let net = MultistyleNet {
        net: &cpu,
        style: style.clone(),
    };
    let (want, _) = stylize(&net, &img, &opts, &mut |_, _| {}, NEVER).unwrap();
    let worst = max_level_diff(&got, &want);
    assert!(
        worst <= Some(1),
        "multistyle26: GPU blend off by {worst:?} levels"
    );

    // A cancel between tiles stops the job.
    let cancel: &(dyn Fn() -> bool + Sync) = &|| true;
    let net = GpuMultistyleNet { net: &gpu, style };
    assert!(stylize_to_texture(&net, &img, &opts, &mut |_, _| {}, cancel).is_err());
}
