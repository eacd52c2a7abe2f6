//! Hostile model files through the real binary: GGUF headers whose counts would make a loader
//! allocate without bound or wrap a size, and PyTorch checkpoints whose pickle or zip lies.
//! Each is crafted here, run in a child process with a timeout (so an abort, a stack overflow
//! or a hang fails the test instead of killing the harness), and must end in one `error:` line
//! and exit status 1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atelier::models::llm::Architecture;
use candle_core::quantized::gguf_file::Value;

/// Longer than any clean refusal takes (they take well under a second); a run past it is a
/// hang, an unbounded loop or an allocation the size of the machine.
const TIMEOUT: Duration = Duration::from_secs(60);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args`, killing it after [`TIMEOUT`].
fn atelier(args: &[&str], data: &Path) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(args)
        .env("ATELIER_DATA", data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start atelier");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait for atelier").is_some() {
            break;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("atelier {args:?} ran past {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("collect output");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The run's one error line; fails unless it exited with status 1 (not a signal) and printed
/// exactly one line starting with `error: `.
fn one_line_error(run: &Run, what: &str) -> String {
    assert_eq!(
        run.code,
        Some(1),
        "{what}: expected exit status 1, got {:?}; stderr: {}",
        run.code,
        run.stderr
    );
    let err = run.stderr.trim();
    assert_eq!(err.lines().count(), 1, "{what}: one line, got: {err}");
    assert!(err.starts_with("error: "), "{what}: {err}");
    err.to_string()
}

/// A folder for crafted files: temporary, or kept under `$ATELIER_CRAFTED_DIR` when set (to
/// replay the files against another build, such as the one before a fix).
fn workdir() -> tempfile::TempDir {
    let Some(root) = std::env::var_os("ATELIER_CRAFTED_DIR") else {
        return tempfile::tempdir().unwrap();
    };
    std::fs::create_dir_all(&root).unwrap();
    let mut dir = tempfile::tempdir_in(root).unwrap();
    dir.disable_cleanup(true);
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write crafted file");
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A tiny model of `arch` with metadata `key` set to `value`.
fn gguf_with(arch: Architecture, key: &str, value: Value) -> Vec<u8> {
    atelier::fuzzing::tiny_gguf(arch, |md| {
        md.retain(|(k, _)| k != key);
        md.push((key.to_string(), value));
    })
    .expect("write tiny gguf")
}

fn write_model(model: &Path, data: &Path) -> Run {
    atelier(
        &[
            "write",
            "--model",
            s(model),
            "--prompt",
            "Hi",
            "--max-tokens",
            "2",
        ],
        data,
    )
}

#[test]
fn the_tiny_models_themselves_load_and_write() {
    // The crafted files below differ from these in one value: without this, a refusal could
    // come from the seed itself.
    let dir = workdir();
    for arch in [Architecture::Llama, Architecture::Gemma3] {
        let bytes = atelier::fuzzing::tiny_gguf(arch, |_| {}).unwrap();
        let model = write(dir.path(), &format!("{}.gguf", arch.gguf_name()), &bytes);
        let run = write_model(&model, dir.path());
        assert_eq!(run.code, Some(0), "{arch:?}: {}", run.stderr);
        assert!(!run.stdout.is_empty(), "{arch:?} wrote nothing");
    }
}

#[test]
fn hostile_gguf_counts_are_one_line_errors() {
    let dir = workdir();
    let huge = Value::U32(u32::MAX);
    let cases = [
        (
            Architecture::Llama,
            "llama.block_count",
            huge.clone(),
            "block_count",
        ),
        (
            Architecture::Llama,
            "llama.attention.head_count",
            huge.clone(),
            "head_count",
        ),
        (
            Architecture::Llama,
            "llama.attention.head_count",
            Value::U32(0),
            "head_count",
        ),
        (
            Architecture::Llama,
            "llama.attention.head_count_kv",
            huge.clone(),
            "head_count_kv",
        ),
        (
            Architecture::Llama,
            "llama.context_length",
            huge.clone(),
            "context_length",
        ),
        (
            Architecture::Llama,
            "llama.context_length",
            Value::U64(u64::MAX),
            "context_length",
        ),
        (
            Architecture::Llama,
            "llama.embedding_length",
            huge.clone(),
            "embedding_length",
        ),
        (
            Architecture::Llama,
            "llama.vocab_size",
            huge.clone(),
            "vocab_size",
        ),
        (
            Architecture::Llama,
            "llama.feed_forward_length",
            huge.clone(),
            "feed_forward_length",
        ),
        (
            Architecture::Llama,
            "llama.rope.dimension_count",
            huge.clone(),
            "rope.dimension_count",
        ),
        (
            Architecture::Llama,
            "llama.expert_count",
            huge.clone(),
            "expert_count",
        ),
        (
            Architecture::Llama,
            "general.alignment",
            Value::U32(0),
            "alignment",
        ),
        (
            Architecture::Gemma3,
            "gemma3.block_count",
            huge.clone(),
            "block_count",
        ),
        (
            Architecture::Gemma3,
            "gemma3.attention.key_length",
            huge.clone(),
            "key_length",
        ),
        (
            Architecture::Gemma3,
            "gemma3.attention.sliding_window",
            huge.clone(),
            "sliding_window",
        ),
        (
            Architecture::Gemma3,
            "gemma3.context_length",
            huge.clone(),
            "context_length",
        ),
    ];
    for (i, (arch, key, value, needle)) in cases.into_iter().enumerate() {
        let model = write(
            dir.path(),
            &format!("m{i}.gguf"),
            &gguf_with(arch, key, value),
        );
        let started = Instant::now();
        let err = one_line_error(&write_model(&model, dir.path()), key);
        eprintln!("{key}: {:.2} s: {err}", started.elapsed().as_secs_f64());
        assert!(err.contains(needle), "{key}: {err}");
        assert!(err.contains(s(&model)), "{key}: names the file: {err}");
    }
    // A vocabulary larger than the embedding table.
    let bytes = atelier::fuzzing::tiny_gguf(Architecture::Llama, |md| {
        for (k, v) in md.iter_mut() {
            if let ("tokenizer.ggml.tokens", Value::Array(tokens)) = (k.as_str(), v) {
                tokens.extend((0..1000).map(|i| Value::String(format!("extra{i}"))));
            }
        }
    })
    .unwrap();
    let model = write(dir.path(), "vocab.gguf", &bytes);
    let err = one_line_error(&write_model(&model, dir.path()), "vocabulary");
    assert!(err.contains("tokenizer.ggml.tokens"), "{err}");
}

#[test]
fn hostile_chat_templates_are_one_line_errors() {
    let dir = workdir();
    for (i, template) in [
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
        "{{ 'x' * 100000000 }}",
        "{% set s = 'x' * 10000000 %}{% for i in range(100) %}{{ s }}{% endfor %}",
    ]
    .into_iter()
    .enumerate()
    {
        let model = write(
            dir.path(),
            &format!("template{i}.gguf"),
            &gguf_with(
                Architecture::Llama,
                "tokenizer.chat_template",
                Value::String(template.into()),
            ),
        );
        let started = Instant::now();
        let run = atelier(
            &[
                "write",
                "--mode",
                "instruct",
                "--model",
                s(&model),
                "--prompt",
                "Hi",
                "--max-tokens",
                "2",
            ],
            dir.path(),
        );
        let err = one_line_error(&run, template);
        eprintln!(
            "template {i}: {:.2} s: {err}",
            started.elapsed().as_secs_f64()
        );
        assert!(err.contains("chat template"), "{template}: {err}");
    }
}

/// A GGUF of one Q4_1 tensor whose GGUF dimensions are `dims`, followed by `data` bytes.
fn one_tensor_gguf(dims: &[u64], data: usize) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes()); // tensors
    b.extend_from_slice(&1u64.to_le_bytes()); // metadata entries
    let string = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    string(&mut b, "general.architecture");
    b.extend_from_slice(&8u32.to_le_bytes());
    string(&mut b, "llama");
    string(&mut b, "token_embd.weight");
    b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        b.extend_from_slice(&d.to_le_bytes());
    }
    b.extend_from_slice(&3u32.to_le_bytes()); // Q4_1
    b.extend_from_slice(&0u64.to_le_bytes()); // offset
    while !b.len().is_multiple_of(32) {
        b.push(0);
    }
    b.resize(b.len() + data, 0);
    b
}

#[test]
fn wrapping_tensor_sizes_are_corrupt() {
    // 128 x (2^62 + 16) Q4_1 values take 1,280 bytes in wrapping arithmetic.
    let dir = workdir();
    let model = write(
        dir.path(),
        "wrap.gguf",
        &one_tensor_gguf(&[128, (1 << 62) + 16], 1280),
    );
    match atelier::models::llm::gguf::open(&model) {
        Err(atelier::models::llm::LlmError::Corrupt { detail, .. }) => {
            assert!(detail.contains("overflows"), "{detail}")
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("a wrapping tensor size was accepted"),
    }
    let err = one_line_error(&write_model(&model, dir.path()), "wrapping dims");
    assert!(err.contains("overflows"), "{err}");
    // The same shape that does not wrap is simply too large for the file.
    let model = write(
        dir.path(),
        "big.gguf",
        &one_tensor_gguf(&[128, 1 << 40], 1280),
    );
    let err = one_line_error(&write_model(&model, dir.path()), "large dims");
    assert!(err.contains("past the end"), "{err}");
}

// ---- PyTorch checkpoints -------------------------------------------------------------------

/// Pickle opcodes for the checkpoints below (protocol 2, as torch.save writes).
struct Pickle(Vec<u8>);

impl Pickle {
    fn new() -> Self {
        Self(b"\x80\x02".to_vec())
    }
    fn op(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    /// An integer (LONG1, 8 bytes).
    fn int(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&[0x8a, 8]);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn tuple(&mut self, items: &[u64]) -> &mut Self {
        self.op(b"(");
        for &i in items {
            self.int(i);
        }
        self.op(b"t")
    }
    /// `name: _rebuild_tensor_v2(FloatStorage('0', numel), offset, shape, stride, False,
    /// OrderedDict())`, set into the dict on top of the stack.
    fn tensor(
        &mut self,
        name: &str,
        numel: u64,
        offset: u64,
        shape: &[u64],
        stride: &[u64],
    ) -> &mut Self {
        self.str(name)
            .op(b"ctorch._utils\n_rebuild_tensor_v2\n(")
            .op(b"(")
            .str("storage")
            .op(b"ctorch\nFloatStorage\n")
            .str("0")
            .str("cpu")
            .int(numel)
            .op(b"tQ")
            .int(offset)
            .tuple(shape)
            .tuple(stride)
            .op(b"\x89ccollections\nOrderedDict\n)RtRs")
    }
    fn done(&mut self) -> Vec<u8> {
        self.op(b".");
        std::mem::take(&mut self.0)
    }
}

/// A torch.save-style zip: `archive/data.pkl`, `archive/byteorder`, `archive/data/0`.
fn checkpoint(pickle: &[u8], storage: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in [
        ("archive/data.pkl", pickle),
        ("archive/byteorder", b"little".as_slice()),
        ("archive/data/0", storage),
    ] {
        zip.start_file(name, opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn faces(model: &Path, data: &Path) -> Run {
    let out = data.join("face.png");
    atelier(
        &[
            "faces",
            "--seed",
            "1",
            "--model",
            s(model),
            "--out",
            s(&out),
        ],
        data,
    )
}

#[test]
fn hostile_checkpoints_are_one_line_errors() {
    let dir = workdir();
    let one_float = 1.0f32.to_le_bytes();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    // Stride 0 repeats one element 2^32 times: 16 GB from a 4-byte storage.
    cases.push((
        "stride-0",
        checkpoint(
            &Pickle::new()
                .op(b"}")
                .tensor("w", 1, 0, &[1 << 30, 4], &[0, 0])
                .done(),
            &one_float,
        ),
        "times the file's size",
    ));
    // 2^61 x 2 floats: the byte count wraps to 0 in unchecked arithmetic.
    cases.push((
        "wrapping-shape",
        checkpoint(
            &Pickle::new()
                .op(b"}")
                .tensor("w", 1, 0, &[1 << 61, 2], &[0, 0])
                .done(),
            &one_float,
        ),
        "overflows",
    ));
    // A storage the pickle says is 2^62 floats.
    cases.push((
        "huge-storage",
        checkpoint(
            &Pickle::new()
                .op(b"}")
                .tensor("w", 1 << 62, 0, &[1], &[1])
                .done(),
            &one_float,
        ),
        "overflows",
    ));
    // The zip's directory claims a 60 MB pickle (under the pickle limit) in a tiny archive.
    let mut lying = checkpoint(
        &Pickle::new().op(b"}").tensor("w", 1, 0, &[1], &[1]).done(),
        &one_float,
    );
    let name = b"archive/data.pkl";
    for sig in [&b"PK\x01\x02"[..], &b"PK\x03\x04"[..]] {
        // Local header: sizes at 18 and 22; central directory: at 20 and 24.
        let (csize, usize_at, name_at) = if sig[2] == 1 {
            (20, 24, 46)
        } else {
            (18, 22, 30)
        };
        let at = (0..lying.len() - name_at - name.len())
            .find(|&i| lying[i..].starts_with(sig) && lying[i + name_at..].starts_with(name))
            .expect("entry header");
        for off in [csize, usize_at] {
            lying[at + off..at + off + 4].copy_from_slice(&(60u32 << 20).to_le_bytes());
        }
    }
    cases.push(("lying-zip-size", lying, "whole archive"));
    // A million nested 1-tuples: dropping them recursively would overflow the stack.
    let mut deep = Pickle::new();
    deep.op(b")");
    for _ in 0..1_000_000 {
        deep.op(b"\x85");
    }
    cases.push((
        "deep-tuples",
        checkpoint(&deep.done(), &one_float),
        "nested",
    ));
    // A million distinct keys set at once: a duplicate scan per key is quadratic.
    let mut wide = Pickle::new();
    wide.op(b"}(");
    for i in 0..1_000_000u32 {
        wide.op(b"J").op(&i.to_le_bytes()).op(b"N");
    }
    wide.op(b"u");
    cases.push((
        "wide-dict",
        checkpoint(&wide.done(), &one_float),
        "no tensors",
    ));
    for (name, bytes, needle) in cases {
        let model = write(dir.path(), &format!("{name}.tar"), &bytes);
        let started = Instant::now();
        let err = one_line_error(&faces(&model, dir.path()), name);
        eprintln!("{name}: {:.2} s: {err}", started.elapsed().as_secs_f64());
        assert!(err.contains(needle), "{name}: {err}");
    }
}
