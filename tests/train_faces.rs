//! Training the face generator end to end: two steps against PyTorch (the committed fixture of
//! `scripts/fixtures/train_faces_step.py`), a short real run on the emoji that brings the
//! samples closer to them, kill -9 mid-checkpoint and resume, determinism, and bad input.
//!
//! The real runs need `models/fetch.sh faces` and `models/fetch.sh train` (scripts/test.sh
//! fetches both).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atelier::engine::LongJobControl;
use atelier::features::train::faces::swd::SwdConfig;
use atelier::features::train::faces::{
    PictureSource, StartFrom, TrainFacesConfig, TrainFacesError, TrainFacesEvent, TrainSettings,
    checkpoint, model_file, run, runs,
};
use atelier::models::gan::{
    AdamConfig, AugmentParams, Discriminator, GanShape, GanTrainer, Generator, NamedTensor,
    StepAugment, StepBatch,
};
use atelier::models::state_dict;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train/faces_step.safetensors")
}

/// `prefix.*` tensors of the fixture, prefix removed.
fn group(sd: &state_dict::StateDict, prefix: &str) -> BTreeMap<String, NamedTensor> {
    sd.iter()
        .filter_map(|(k, t)| {
            let name = k.strip_prefix(prefix)?.strip_prefix('.')?.to_owned();
            Some((
                name.clone(),
                NamedTensor {
                    name,
                    shape: t.shape.clone(),
                    values: t.to_f32()?,
                },
            ))
        })
        .collect()
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

/// Every tensor of `ours` against `want`: `|a − b| ≤ rel·max|b| + abs`.
fn compare(
    what: &str,
    ours: &[NamedTensor],
    want: &BTreeMap<String, NamedTensor>,
    rel: f32,
    abs: f32,
) {
    assert!(!ours.is_empty());
    for t in ours {
        let w = want
            .get(&t.name)
            .unwrap_or_else(|| panic!("{what}: the fixture has no {}", t.name));
        assert_eq!(t.shape, w.shape, "{what} {}", t.name);
        let tol = rel * max_abs(&w.values) + abs;
        let worst = t
            .values
            .iter()
            .zip(&w.values)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= tol,
            "{what} {}: max |diff| {worst} > {tol}",
            t.name
        );
    }
}

fn grads_g(t: &mut GanTrainer) -> Vec<NamedTensor> {
    let specs: Vec<(String, Vec<usize>, Vec<f32>)> = {
        let grads: Vec<Vec<f32>> =
            t.g.layers
                .params_mut()
                .iter()
                .map(|p| p.grad.clone())
                .collect();
        t.g.layers
            .param_specs()
            .iter()
            .zip(grads)
            .map(|(s, g)| (s.name().to_owned(), s.torch_shape(), s.to_torch(&g)))
            .collect()
    };
    specs
        .into_iter()
        .map(|(name, shape, values)| NamedTensor {
            name,
            shape,
            values,
        })
        .collect()
}

fn grads_d(t: &mut GanTrainer) -> Vec<NamedTensor> {
    let grads: Vec<Vec<f32>> =
        t.d.layers
            .params_mut()
            .iter()
            .map(|p| p.grad.clone())
            .collect();
    t.d.layers
        .param_specs()
        .iter()
        .zip(grads)
        .map(|(s, g)| NamedTensor {
            name: s.name().to_owned(),
            shape: s.torch_shape(),
            values: s.to_torch(&g),
        })
        .collect()
}

fn augment_rows(t: &state_dict::RawTensor) -> Vec<AugmentParams> {
    t.to_f32()
        .unwrap()
        .chunks_exact(7)
        .map(|r| AugmentParams {
            brightness: r[0],
            saturation: r[1],
            contrast: r[2],
            translate_y: r[3] as i32,
            translate_x: r[4] as i32,
            cutout: Some((r[5] as i32, r[6] as i32)),
        })
        .collect()
}

/// Two iterations (plain, then with DiffAugment) from PyTorch's initial weights, latents and
/// batch: losses, every gradient, and the weights and running statistics after both steps.
#[test]
fn two_training_steps_match_pytorch() {
    let (sd, meta) = state_dict::load_safetensors_with_metadata(&fixture()).unwrap();
    let num = |k: &str| meta[k].parse::<usize>().unwrap();
    let shape = GanShape {
        nz: num("nz"),
        ngf: num("ngf"),
        ndf: num("ndf"),
    };
    let none = BTreeMap::new();
    let g = Generator::from_tensors(shape, &group(&sd, "init.g"), &none).unwrap();
    let d = Discriminator::from_tensors(shape, &group(&sd, "init.d"), &none).unwrap();
    let mut t = GanTrainer::new(g, d, AdamConfig::default());
    let real: Vec<f32> = sd["real"]
        .data
        .iter()
        .map(|&v| v as f32 / 127.5 - 1.0)
        .collect();
    let losses = sd["losses"].to_f32().unwrap();
    for it in 1..=2 {
        let z = sd[&format!("z{it}")].to_f32().unwrap();
        let aug = (it == 2).then(|| StepAugment {
            real: augment_rows(&sd["aug2.real"]),
            fake: augment_rows(&sd["aug2.fake"]),
            generator: augment_rows(&sd["aug2.gen"]),
        });
        let batch = StepBatch {
            real: &real,
            latents: &z,
            augment: aug.as_ref(),
        };
        let l = t.step(&batch, &mut || false).unwrap().unwrap();
        let want = &losses[(it - 1) * 3..][..3];
        for (ours, theirs) in [l.d_real, l.d_fake, l.g].iter().zip(want) {
            assert!(
                (ours - theirs).abs() < 1e-4,
                "step {it} losses {l:?} vs {want:?}"
            );
        }
        compare(
            &format!("step {it} D grad"),
            &grads_d(&mut t),
            &group(&sd, &format!("grad{it}.d")),
            2e-3,
            1e-6,
        );
        compare(
            &format!("step {it} G grad"),
            &grads_g(&mut t),
            &group(&sd, &format!("grad{it}.g")),
            2e-3,
            1e-6,
        );
    }
    compare(
        "final G",
        &t.g.layers.tensors().0,
        &group(&sd, "final.g"),
        0.0,
        1e-4,
    );
    compare(
        "final D",
        &t.d.layers.tensors().0,
        &group(&sd, "final.d"),
        0.0,
        1e-4,
    );
}

/// The 169 "Smileys & Emotion" emoji (emoji-datasource-google, `models/fetch.sh train`),
/// linked into a folder of their own.
fn smileys(dir: &Path) -> PathBuf {
    let emoji = atelier::paths::models_dir().join("emoji");
    let json = std::fs::read(emoji.join("emoji.json"))
        .unwrap_or_else(|e| panic!("{}: {e}: run models/fetch.sh train", emoji.display()));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
    let out = dir.join("smileys");
    std::fs::create_dir_all(&out).unwrap();
    for e in list.iter().filter(|e| e["category"] == "Smileys & Emotion") {
        let name = e["image"].as_str().unwrap();
        std::os::unix::fs::symlink(emoji.join(name), out.join(name)).unwrap();
    }
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 169);
    out
}

fn faces_model() -> PathBuf {
    let p = atelier::features::faces::default_model();
    assert!(
        p.exists(),
        "{} is missing: run models/fetch.sh faces",
        p.display()
    );
    p
}

/// 40 steps of batch 16 from the face model on the emoji bring the samples closer to the emoji
/// than the face model's (sliced Wasserstein distance, smaller than the benchmark's to stay
/// quick), and the exported file draws in Faces.
#[test]
fn a_short_run_on_the_emoji_lowers_the_swd() {
    let tmp = tempfile::tempdir().unwrap();
    let pictures = smileys(tmp.path());
    let mut settings = TrainSettings::new(PictureSource::Folder(pictures), faces_model());
    settings.batch = 16;
    let mut config = TrainFacesConfig::new(settings, tmp.path().join("run"), 40);
    config.swd_every = Some(40);
    config.swd = SwdConfig {
        patches: 4096,
        directions: 128,
        ..SwdConfig::default()
    };
    config.samples_every = 20;
    config.export = Some(tmp.path().join("emoji.safetensors"));
    let mut steps = 0;
    let mut samples = 0;
    let report = run(
        &config,
        &LongJobControl::standalone(2),
        &mut |ev| match ev {
            TrainFacesEvent::Step { .. } => steps += 1,
            TrainFacesEvent::Samples { grid, .. } => {
                assert_eq!(grid.dimensions(), (256, 256));
                samples += 1;
            }
            _ => {}
        },
    )
    .unwrap();
    assert_eq!((steps, samples, report.step), (40, 2, 40));
    let swd: Vec<f64> = report.swd.iter().map(|p| p.swd).collect();
    eprintln!(
        "SWD to the emoji: {swd:?} ({:.1} pictures/s)",
        report.samples_per_s
    );
    assert_eq!(report.swd.len(), 2);
    assert!(swd[1] < 0.85 * swd[0], "SWD did not fall: {swd:?}");
    // The export is a Faces model.
    let mut g =
        atelier::models::dcgan::Generator::load(&tmp.path().join("emoji.safetensors")).unwrap();
    let img = g
        .forward(&atelier::features::faces::latent_for_seed(3))
        .unwrap();
    assert!(img.iter().all(|v| v.is_finite()));
    // The run is listed, finished, with its curves and samples.
    let listed = runs::list(tmp.path());
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].record.state, runs::RunState::Finished);
    assert_eq!(listed[0].record.curves.step.len(), 40);
    assert!(listed[0].samples.is_some());
}

/// A folder of `n` small random pictures.
fn random_pictures(dir: &Path, n: usize) -> PathBuf {
    let out = dir.join("pictures");
    std::fs::create_dir_all(&out).unwrap();
    for i in 0..n {
        let img = image::RgbImage::from_fn(48, 40, |x, y| {
            let v = ((x * 7 + y * 13 + i as u32 * 31) % 255) as u8;
            image::Rgb([v, 255 - v, (v / 2) ^ (i as u8)])
        });
        img.save(out.join(format!("p{i:03}.png"))).unwrap();
    }
    out
}

fn atelier() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atelier"));
    c.env(
        "ATELIER_DATA",
        std::env::temp_dir().join("atelier-train-test-data"),
    );
    c
}

/// A tiny network from scratch, so the process tests take seconds.
fn tiny_args(pictures: &Path, run_dir: &Path) -> Vec<String> {
    [
        "train",
        "faces",
        "--from",
        "scratch",
        "--widths",
        "8,4,4",
        "--batch",
        "4",
        "--samples-every",
        "1000",
        "--threads",
        "2",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--images".into(),
        pictures.display().to_string(),
        "--run-dir".into(),
        run_dir.display().to_string(),
    ])
    .collect()
}

fn report(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "atelier failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Same seed, settings, pictures and threads: the same weights. And a run interrupted by
/// kill -9 while writing a checkpoint resumes from the previous one, continues the step
/// count, and ends with exactly the weights of an uninterrupted run.
#[test]
fn kill_during_a_checkpoint_then_resume_continues_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let pictures = random_pictures(tmp.path(), 16);
    let steps = 30;
    let straight_dir = tmp.path().join("straight");
    let mut args = tiny_args(&pictures, &straight_dir);
    args.extend([
        "--steps".into(),
        steps.to_string(),
        "--checkpoint-every".into(),
        "1".into(),
    ]);
    let straight = report(&atelier().args(&args).output().unwrap());
    assert_eq!(straight["step"], steps);

    // The same run, killed the moment a checkpoint's temporary file appears after step 10.
    let dir = tmp.path().join("killed");
    let mut args = tiny_args(&pictures, &dir);
    args.extend([
        "--steps".into(),
        steps.to_string(),
        "--checkpoint-every".into(),
        "1".into(),
    ]);
    let mut child = atelier()
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut killed_mid_write = false;
    while Instant::now() < deadline {
        let past_10 = checkpoint::list(&dir)
            .first()
            .is_some_and(|(s, _)| *s >= 10);
        let writing = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().starts_with(".atelier-"))
            })
            .unwrap_or(false);
        if past_10 && writing {
            child.kill().unwrap(); // SIGKILL
            killed_mid_write = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = child.wait();
    assert!(killed_mid_write, "never caught a checkpoint being written");
    let (last, _) = checkpoint::list(&dir)[0].clone();
    assert!(
        last >= 10 && last < steps,
        "last complete checkpoint: step {last}"
    );
    // Every checkpoint on disk loads (nothing torn).
    for (_, p) in checkpoint::list(&dir) {
        checkpoint::load(&p, AdamConfig::default()).unwrap();
    }
    let resumed = report(
        &atelier()
            .args(["train", "faces", "--json", "--threads", "2", "--resume"])
            .arg(&dir)
            .output()
            .unwrap(),
    );
    assert_eq!(resumed["step"], steps);
    assert_eq!(resumed["steps_run"], steps - last);
    let weights = |d: &Path| {
        let (_, p) = checkpoint::list(d)[0].clone();
        checkpoint::load(&p, AdamConfig::default())
            .unwrap()
            .trainer
            .g
            .layers
            .tensors()
            .0
    };
    assert_eq!(
        weights(&dir),
        weights(&straight_dir),
        "resumed weights differ"
    );
    assert!(
        std::fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")),
        "a temporary file was left behind"
    );
}

fn error_of(config: &TrainFacesConfig) -> String {
    match run(config, &LongJobControl::standalone(1), &mut |_| {}) {
        Ok(r) => panic!("expected an error, got {r:?}"),
        Err(e) => e.to_string(),
    }
}

fn tiny(source: PathBuf, run_dir: PathBuf) -> TrainFacesConfig {
    let mut s = TrainSettings::new(PictureSource::Folder(source), PathBuf::new());
    s.start = StartFrom::Scratch;
    s.shape = GanShape {
        nz: 8,
        ngf: 4,
        ndf: 4,
    };
    s.batch = 4;
    TrainFacesConfig::new(s, run_dir, 3)
}

#[test]
fn bad_input_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    // An empty folder.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = error_of(&tiny(empty.clone(), tmp.path().join("r1")));
    assert!(
        e.contains("0 usable picture") && e.contains("at least 16"),
        "{e}"
    );
    // A folder that does not exist.
    let e = error_of(&tiny(tmp.path().join("nowhere"), tmp.path().join("r2")));
    assert!(e.contains("cannot read the picture folder"), "{e}");
    // Text files named .png: listed as unreadable, and too few usable pictures.
    let texts = tmp.path().join("texts");
    std::fs::create_dir_all(&texts).unwrap();
    for i in 0..20 {
        std::fs::write(texts.join(format!("{i}.png")), "just some words").unwrap();
    }
    let e = error_of(&tiny(texts, tmp.path().join("r3")));
    assert!(
        e.contains("0 usable") && e.contains("skipped 20 files") && e.contains("0.png"),
        "{e}"
    );
    // A PNG bomb: a few hundred bytes claiming 60000×60000 pixels is refused from its header
    // (quickly, and without allocating gigabytes), the rest of the folder trains.
    let bombs = random_pictures(tmp.path(), 16);
    std::fs::write(
        bombs.join("bomb.png"),
        atelier::fuzzing::png_claiming(60_000, 60_000),
    )
    .unwrap();
    let started = Instant::now();
    let mut skipped = Vec::new();
    let config = tiny(bombs.clone(), tmp.path().join("r4"));
    let r = run(&config, &LongJobControl::standalone(1), &mut |ev| {
        if let TrainFacesEvent::Started { skipped: s, .. } = ev {
            skipped = s;
        }
    })
    .unwrap();
    assert_eq!(r.pictures, 16);
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].reason.contains("60000×60000"),
        "{}",
        skipped[0].reason
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    // A new run in a folder that already holds one.
    let e = error_of(&tiny(bombs.clone(), tmp.path().join("r4")));
    assert!(e.contains("already holds a training run"), "{e}");
}

/// A read-only output folder fails before any training, naming the folder; so does a run
/// folder inside one. (As root, permission bits do not stop writes: then `/proc`, which
/// nobody can write files in, plays the read-only folder.)
#[cfg(unix)]
#[test]
fn read_only_folders_fail_before_training() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let pictures = random_pictures(tmp.path(), 16);
    let mut locked = tmp.path().join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(locked.join("probe"), b"x").is_ok() {
        locked = PathBuf::from("/proc");
    }
    let mut config = tiny(pictures.clone(), tmp.path().join("run"));
    config.export = Some(locked.join("model.safetensors"));
    let started = Instant::now();
    let e = error_of(&config);
    assert!(
        e.contains(&*locked.to_string_lossy()) && e.contains("model.safetensors"),
        "{e}"
    );
    // Refused before training: no checkpoint beyond step 0 exists.
    assert!(
        checkpoint::list(&tmp.path().join("run"))
            .iter()
            .all(|(s, _)| *s == 0)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let e = error_of(&tiny(pictures, locked.join("run")));
    assert!(
        e.contains("cannot write the run folder") && e.contains(&*locked.to_string_lossy()),
        "{e}"
    );
}

/// Disk full while checkpointing, simulated with a file-size limit (RLIMIT_FSIZE) on the
/// child process: the write of a checkpoint fails with "File too large" (the same path as
/// ENOSPC: `write` fails mid-file), the error says so and that the previous checkpoint is
/// intact, and the run resumes from it once there is room.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_while_checkpointing_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let pictures = random_pictures(tmp.path(), 16);
    let dir = tmp.path().join("run");
    // First a run of 4 steps, to have a checkpoint and know its size.
    let mut args = tiny_args(&pictures, &dir);
    args.extend(["--steps".into(), "4".into()]);
    report(&atelier().args(&args).output().unwrap());
    let (_, first) = checkpoint::list(&dir)[0].clone();
    let size = std::fs::metadata(&first).unwrap().len();
    // Resume to step 8 with files limited to half a checkpoint: SIGXFSZ is ignored so the
    // write returns EFBIG instead of killing the process.
    let limit = size / 2;
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {}; exec \"$0\" \"$@\"",
            limit / 1024
        ))
        .arg(env!("CARGO_BIN_EXE_atelier"))
        .args(["train", "faces", "--json", "--steps", "8", "--resume"])
        .arg(&dir)
        .env("ATELIER_DATA", tmp.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot write the checkpoint") && err.contains("intact"),
        "{err}"
    );
    // Nothing lost: the step-4 checkpoint is there and loads; no temporary file remains.
    let list = checkpoint::list(&dir);
    assert_eq!(list[0].0, 4, "{list:?}");
    checkpoint::load(&list[0].1, AdamConfig::default()).unwrap();
    // With room again, the run resumes from step 4 and finishes.
    let r = report(
        &atelier()
            .args(["train", "faces", "--json", "--steps", "8", "--resume"])
            .arg(&dir)
            .output()
            .unwrap(),
    );
    assert_eq!(
        (r["step"].as_u64(), r["steps_run"].as_u64()),
        (Some(8), Some(4))
    );
}

/// Stop from another thread: the run writes a checkpoint and returns Ok with `stopped`.
#[test]
fn stop_writes_a_checkpoint_and_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let pictures = random_pictures(tmp.path(), 16);
    let mut config = tiny(pictures, tmp.path().join("run"));
    config.steps = 1_000_000;
    let control = LongJobControl::standalone(1);
    let stopper = control.clone();
    let r = run(&config, &control, &mut |ev| {
        if let TrainFacesEvent::Step { step: 5, .. } = ev {
            stopper.stop();
        }
    })
    .unwrap();
    assert!(r.stopped);
    assert_eq!(r.step, 5);
    let (s, _) = checkpoint::list(&tmp.path().join("run"))[0].clone();
    assert_eq!(s, 5);
    let rec = runs::RunRecord::load(&tmp.path().join("run")).unwrap();
    assert_eq!(rec.state, runs::RunState::Stopped);
    // "Open in Faces" later: the run's generator exported from its checkpoint.
    let out = tmp.path().join("g.safetensors");
    assert_eq!(runs::export_run(&tmp.path().join("run"), &out).unwrap(), 5);
    let g = model_file::load_generator(&out, config.settings.shape).unwrap();
    assert_eq!(g.forward_eval(&[0.5; 8]).len(), 64 * 64 * 3);
    // Settings errors are typed.
    let mut bad = tiny(PathBuf::from("/"), tmp.path().join("x"));
    bad.settings.batch = 0;
    assert!(matches!(
        run(&bad, &control, &mut |_| {}),
        Err(TrainFacesError::Settings(_))
    ));
}

#[test]
fn training_on_the_long_job_lane_leaves_the_worker_free_and_pauses_and_stops() {
    use atelier::engine::{Engine, Event};
    use atelier::features::faces::{FaceSpec, RenderRequest};
    use atelier::features::train::{TrainEvent, TrainRequest};
    let tmp = tempfile::tempdir().unwrap();
    let pictures = random_pictures(tmp.path(), 16);
    let mut config = tiny(pictures, tmp.path().join("run"));
    config.steps = 1_000_000;
    config.samples_every = 2;
    let engine = Engine::spawn(None, None).unwrap();
    let (job, control) = engine.train(TrainRequest::Faces(Box::new(config)), 1);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut steps = 0u64;
    let mut samples = 0;
    let mut render = None;
    let mut rendered = false;
    let mut terminal = None;
    let mut report = None;
    let mut paused_at = None;
    while terminal.is_none() {
        assert!(Instant::now() < deadline, "training events stopped coming");
        let Some(ev) = engine.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        if render
            .as_ref()
            .is_some_and(|r: &atelier::engine::JobHandle| r.id() == ev.job())
        {
            match ev {
                Event::Finished { .. } => rendered = true,
                Event::Failed { error, .. } => panic!("the face grid failed: {error}"),
                _ => {}
            }
            continue;
        }
        assert_eq!(ev.job(), job.id());
        match ev {
            Event::Train { event, .. } => match *event {
                TrainEvent::Faces(TrainFacesEvent::Step { step, .. }) => steps = step,
                TrainEvent::Faces(TrainFacesEvent::Samples { .. }) => samples += 1,
                TrainEvent::FacesDone(r) => report = Some(r),
                _ => {}
            },
            Event::Failed { error, .. } => panic!("training failed: {error}"),
            e if e.is_terminal() => terminal = Some(e),
            _ => {}
        }
        // A grid on the worker while the run goes: it finishes (the run yields to it).
        if steps >= 2 && render.is_none() {
            render = Some(engine.faces_render(RenderRequest {
                model: faces_model(),
                faces: (0..4).map(|s| FaceSpec::from_seed(s, 0.7)).collect(),
                size: 64,
            }));
        }
        if rendered && paused_at.is_none() {
            control.pause();
            std::thread::sleep(Duration::from_millis(600));
            // At most the step in flight ends after a pause.
            while let Some(ev) = engine.recv_timeout(Duration::from_millis(10)) {
                if let Event::Train { event, .. } = ev
                    && let TrainEvent::Faces(TrainFacesEvent::Step { step, .. }) = *event
                {
                    steps = step;
                }
            }
            paused_at = Some(steps);
            std::thread::sleep(Duration::from_millis(600));
            while let Some(ev) = engine.recv_timeout(Duration::from_millis(10)) {
                assert!(
                    !matches!(&ev, Event::Train { event, .. } if matches!(**event, TrainEvent::Faces(TrainFacesEvent::Step { .. }))),
                    "a paused run stepped"
                );
            }
            control.resume();
        }
        if paused_at.is_some_and(|p| steps > p + 2) {
            // Cancelling the handle is Stop: a checkpoint, the report, then Cancelled.
            job.cancel();
        }
    }
    assert!(rendered, "the face grid finished while training ran");
    assert!(samples >= 1);
    assert!(
        matches!(terminal, Some(Event::Cancelled { .. })),
        "{terminal:?}"
    );
    let report = report.expect("the run's report before its end");
    assert!(report.stopped);
    assert_eq!(report.step, steps);
    assert!(!report.checkpoints.is_empty());
}

/// Ctrl+C (SIGINT) stops a command-line run as the panel's Stop does: a checkpoint at the step
/// reached, a report saying it stopped, exit status 0, and `--resume` goes on from there.
#[test]
fn ctrl_c_stops_a_command_line_run_with_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let pictures = random_pictures(tmp.path(), 16);
    let dir = tmp.path().join("run");
    let mut args = tiny_args(&pictures, &dir);
    args.extend(["--steps".into(), "1000000".into()]);
    let mut child = atelier()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Training has begun once the first checkpoint (written at the start) is on disk.
    let deadline = Instant::now() + Duration::from_secs(120);
    while checkpoint::list(&dir).is_empty() {
        assert!(Instant::now() < deadline, "the run never started");
        if child.try_wait().unwrap().is_some() {
            report(&child.wait_with_output().unwrap());
            panic!("the run ended by itself");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: sends a signal to the child this test spawned and still owns.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let stopped = report(&child.wait_with_output().unwrap());
    assert_eq!(stopped["stopped"], true);
    let step = stopped["step"].as_u64().unwrap();
    assert!(step > 0 && step < 1_000_000, "{stopped}");
    assert_eq!(checkpoint::list(&dir)[0].0, step);
    let resumed = report(
        &atelier()
            .args(["train", "faces", "--json", "--threads", "2", "--steps"])
            .arg((step + 2).to_string())
            .arg("--resume")
            .arg(&dir)
            .output()
            .unwrap(),
    );
    assert_eq!(resumed["step"], step + 2);
    assert_eq!(resumed["stopped"], false);
}
