//! `atelier serve` and the remote client under hostile load, over real sockets on loopback
//! only: stalled connections, image bombs, clients that stop reading, requests a web page
//! could forge, error bodies, and servers that never stop talking.
//!
//! Every attack is bounded (a fixed number of sockets and bytes) and uses short timeouts set
//! by flags, so each test takes seconds. The figures they print (`--nocapture`) are the ones
//! in the README's security section. Nothing here measures speed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

mod common;
use common::{Server, fake_server, http, runtime};

/// The server tests share two cores and the models: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Raises this process's soft limit on open files to at least `want` (up to the hard limit):
/// the attack below holds over a thousand sockets. Returns the soft limit in force.
fn raise_fd_limit(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only touch the struct they are given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want.min(limit.rlim_max),
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = raised.rlim_cur;
            }
        }
    }
    limit.rlim_cur
}

/// Sends raw bytes and returns the answer's status code and body (the connection is closed
/// by the request's `connection: close`).
fn raw_request(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn stalled_sockets_neither_exhaust_files_nor_lock_out_a_client() {
    let _s = serial();
    const STALLED: usize = 1100;
    const TOKEN: &str = "sk-hardening-test";
    let soft = raise_fd_limit(4096);
    assert!(
        soft >= 1300,
        "the open-files limit is {soft}; the test needs 1300"
    );
    // The default cap (512 connections), a short header timeout, and the usual default
    // limit of 1024 open files: 1,100 sockets held open would exhaust it.
    let server = Server::start_with_fd_limit(
        &["--header-timeout", "2", "--model", "smollm2"],
        &[("ATELIER_SERVE_TOKEN", TOKEN)],
        Some(1024),
    );
    let baseline_fds = server.open_fds();
    // Half a request line each, then nothing: the classic slowloris.
    let mut stalled = Vec::with_capacity(STALLED);
    let mut held = 0;
    for i in 0..STALLED {
        let mut s = TcpStream::connect(server.addr).expect("connect");
        s.write_all(b"POST /v1/completions HT").expect("send");
        stalled.push(s);
        if i % 50 == 0 {
            held = held.max(server.open_fds());
        }
    }
    let attack_started = Instant::now();
    let rt = runtime();
    let c = http();
    let mut served = 0;
    let mut slowest = Duration::ZERO;
    rt.block_on(async {
        for _ in 0..20 {
            let t = Instant::now();
            let resp = c
                .get(server.endpoint("/v1/models"))
                .bearer_auth(TOKEN)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            let status = resp.map(|r| r.status().as_u16()).unwrap_or(0);
            assert_eq!(
                status, 200,
                "an authenticated request failed during the attack"
            );
            served += 1;
            slowest = slowest.max(t.elapsed());
            held = held.max(server.open_fds());
        }
    });
    let rss_kib = server.status_kib("VmHWM:");
    // The server holds at most its cap (plus a few files of its own), not 1,100 sockets.
    assert!(
        held <= baseline_fds + 512 + 2,
        "the server had {held} files open (baseline {baseline_fds})"
    );
    // After the header timeout every stalled socket has been closed by the server.
    let deadline = attack_started + Duration::from_secs(10);
    let mut closed = 0;
    for s in &mut stalled {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .expect("timeout");
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Ok(n) => panic!(
                "a stalled socket got an answer: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) => panic!("a stalled socket was still open after the timeout: {e}"),
        }
    }
    let closed_after = attack_started.elapsed();
    drop(stalled);
    eprintln!(
        "slowloris: {STALLED} stalled sockets; server (1024 open files allowed) held at most {held} files (baseline {baseline_fds}, cap 512), \
         served {served}/20 authenticated requests during the attack (slowest {:.0} ms), \
         all {closed} stalled sockets closed within {:.1} s (header timeout 2 s), server peak RSS {} MiB",
        slowest.as_secs_f64() * 1e3,
        closed_after.as_secs_f64(),
        rss_kib / 1024
    );
    assert_eq!(closed, STALLED);
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}

/// A 16-bit RGBA PNG of `width`×`height` in one flat colour, written row by row (a few
/// hundred KiB for 40 megapixels; the test never holds the pixels).
fn flat_png_16bit(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Sixteen);
    enc.set_compression(png::Compression::High);
    enc.set_filter(png::Filter::Up);
    let mut writer = enc.write_header().expect("png header");
    {
        let mut stream = writer.stream_writer().expect("png stream");
        let row: Vec<u8> =
            [0x40u8, 0x00, 0x80, 0x00, 0xC0, 0x00, 0xFF, 0xFF].repeat(width as usize);
        for _ in 0..height {
            stream.write_all(&row).expect("png row");
        }
        stream.finish().expect("png end");
    }
    writer.finish().expect("png finish");
    out
}

/// A PNG whose header claims `width`×`height` and whose data is a few bytes (a
/// decompression bomb's shape, without the bytes).
fn header_only_png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Sixteen);
    let mut writer = enc.write_header().expect("png header");
    // An empty zlib stream: the file ends (IEND, on drop) long before its pixels would.
    writer
        .write_chunk(
            png::chunk::IDAT,
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        )
        .expect("png chunk");
    drop(writer);
    out
}

#[test]
fn image_uploads_take_a_slot_before_they_are_decoded() {
    let _s = serial();
    // 6400 × 6250 = 40 megapixels, the server's limit; 16-bit RGBA decodes to 320 MB.
    let bomb = flat_png_16bit(6400, 6250);
    assert!(bomb.len() < 1 << 20, "the PNG is {} bytes", bomb.len());
    let server = Server::start(&["--queue", "1"], &[]);
    let rt = runtime();
    let url = server.endpoint("/v1/images/style?style=3&max_size=64");
    let statuses = rt.block_on(async {
        let c = http();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (c, url, bomb) = (c.clone(), url.clone(), bomb.clone());
                tokio::spawn(async move {
                    let resp = c
                        .post(url)
                        .header("content-type", "image/png")
                        .body(bomb)
                        .send()
                        .await
                        .expect("upload");
                    let status = resp.status().as_u16();
                    let body = resp.bytes().await.unwrap_or_default();
                    (status, body)
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for t in tasks {
            let (status, body) = t.await.expect("client task");
            match status {
                200 => {
                    let img = image::load_from_memory(&body).expect("a PNG");
                    assert_eq!(img.width().max(img.height()), 64);
                }
                429 => {
                    let json: Value = serde_json::from_slice(&body).expect("JSON");
                    assert_eq!(json["error"]["code"], "queue_full");
                }
                other => panic!("status {other}: {}", String::from_utf8_lossy(&body)),
            }
            statuses.push(status);
        }
        statuses
    });
    let busy = statuses.iter().filter(|&&s| s == 429).count();
    // A header that claims 60000×60000 is refused before any pixel is decoded.
    let claim = header_only_png(60000, 60000);
    let (status, body) = rt.block_on(async {
        let resp = http()
            .post(server.endpoint("/v1/images/style?style=3"))
            .header("content-type", "image/png")
            .body(claim)
            .send()
            .await
            .expect("upload");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    });
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("60000"), "{body}");
    let peak_mib = server.status_kib("VmHWM:") / 1024;
    eprintln!(
        "image bombs: 16 concurrent {} KiB 40 MP 16-bit PNGs with --queue 1: {} answered, {busy} got 429; \
         a 60000×60000 header: 400; server peak RSS {peak_mib} MiB",
        bomb.len() / 1024,
        16 - busy
    );
    assert!(busy >= 15, "{statuses:?}");
    assert!(peak_mib < 1536, "server peak RSS {peak_mib} MiB");
}

#[test]
fn a_client_that_stops_reading_loses_its_slot_after_the_write_timeout() {
    let _s = serial();
    // A small kernel send buffer, so a few tokens fill it (the default 512 KiB would take
    // minutes of generation on a test build).
    let server = Server::start(
        &[
            "--queue",
            "8",
            "--write-timeout",
            "1",
            "--send-buffer-kib",
            "4",
            "--model",
            "smollm2",
        ],
        // The hub logs each job it accepts, so the probe below starts only once all eight
        // streams hold their slots (otherwise it can overtake the last one and take its slot).
        &[("RUST_LOG", "info,atelier::serve::hub=debug")],
    );
    let rt = runtime();
    let started = Instant::now();
    rt.block_on(async {
        // Eight streams with large chunks (20 alternatives per token) on sockets with a tiny
        // receive window, never read.
        let body = json!({"messages": [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}],
                          "max_tokens": 2048, "stream": true, "temperature": 0,
                          "logprobs": true, "top_logprobs": 20})
        .to_string();
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut readers = Vec::new();
        for _ in 0..8 {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket.set_recv_buffer_size(4096).expect("buffer size");
            let mut stream = socket.connect(server.addr).await.expect("connect");
            stream.write_all(request.as_bytes()).await.expect("send");
            readers.push(stream);
        }
        let accepted = Instant::now() + Duration::from_secs(60);
        while server.stderr().matches("job accepted").count() < 8 {
            assert!(
                Instant::now() < accepted,
                "the eight streams were not all accepted within 60 s:\n{}",
                server.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The queue is full now; a ninth request is served once the stalled streams' writes
        // have timed out and their jobs were cancelled.
        let c = http();
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let resp = c
                .post(server.endpoint("/v1/completions"))
                .json(&json!({"prompt": "Hi", "max_tokens": 2}))
                .send()
                .await
                .expect("send");
            let status = resp.status().as_u16();
            if status == 200 {
                break;
            }
            assert_eq!(status, 429, "{}", resp.text().await.unwrap_or_default());
            assert!(
                Instant::now() < deadline,
                "the stalled streams held the queue for 240 s"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        drop(readers);
    });
    let logs = server.stderr();
    let cancelled = logs.matches("client went away: cancelling its job").count();
    eprintln!(
        "stalled readers: 8 SSE streams never read (receive window 4 KiB), --write-timeout 1: \
         the queue was free again after {:.1} s, {cancelled} jobs cancelled",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(cancelled, 8, "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}

#[test]
fn a_body_that_trickles_in_gets_408_and_frees_its_slot() {
    let _s = serial();
    let server = Server::start(
        &["--queue", "1", "--body-timeout", "1", "--model", "smollm2"],
        &[],
    );
    // A body of 100 bytes announced, 10 sent: it holds the only queue slot...
    let mut slow = TcpStream::connect(server.addr).expect("connect");
    slow.write_all(
        b"POST /v1/completions HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"prompt\":",
    )
    .expect("send");
    std::thread::sleep(Duration::from_millis(300));
    let json = r#"{"prompt":"Hi","max_tokens":1}"#;
    let request = format!(
        "POST /v1/completions HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
        json.len()
    );
    assert_eq!(raw_request(server.addr, &request).0, 429);
    // ...until the body timeout answers 408.
    let started = Instant::now();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = [0u8; 512];
    let n = slow.read(&mut answer).expect("an answer");
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    eprintln!(
        "slow body: 10 of 100 bytes sent, --body-timeout 1: 408 after {:.1} s more",
        started.elapsed().as_secs_f64()
    );
    let (status, body) = raw_request(server.addr, &request);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn without_a_token_only_local_names_and_json_get_through() {
    let _s = serial();
    let server = Server::start(&["--model", "smollm2"], &[]);
    let port = server.addr.port();
    let get = |host: &str, extra: &str| {
        raw_request(
            server.addr,
            &format!("GET /v1/models HTTP/1.1\r\nhost: {host}\r\n{extra}connection: close\r\n\r\n"),
        )
    };
    // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1.
    let (status, body) = get(&format!("evil.example:{port}"), "");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("host_not_allowed"), "{body}");
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_string(),
    ] {
        assert_eq!(get(&host, "").0, 200, "{host}");
    }
    let (status, _) = get("localhost", "origin: https://evil.example\r\n");
    assert_eq!(status, 403);
    assert_eq!(get("localhost", "origin: http://localhost:3000\r\n").0, 200);

    // A page may POST text/plain, forms or no type without a CORS preflight: all refused.
    let post = |path: &str, content_type: Option<&str>, body: &str| {
        let ct = content_type
            .map(|t| format!("content-type: {t}\r\n"))
            .unwrap_or_default();
        raw_request(
            server.addr,
            &format!(
                "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n{ct}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let prompt = r#"{"prompt":"Hi","max_tokens":1}"#;
    for path in [
        "/v1/completions",
        "/v1/chat/completions",
        "/v1/images/faces",
    ] {
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
        ] {
            let (status, body) = post(path, ct, prompt);
            assert_eq!(status, 415, "{path} {ct:?}: {body}");
            assert!(body.contains("application/json"), "{body}");
        }
    }
    assert_eq!(
        post("/v1/images/style?style=1", Some("text/plain"), "x").0,
        415
    );
    assert_eq!(post("/v1/images/style?style=1", None, "x").0, 415);
    let (status, body) = post("/v1/completions", Some("application/json"), prompt);
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        "/v1/completions",
        Some("application/json; charset=utf-8"),
        prompt,
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn error_bodies_name_no_server_folder() {
    let _s = serial();
    // A private models folder (no faces or style model in it) and a GGUF that cannot load.
    let private = tempfile::Builder::new()
        .prefix("atelier-private-models-")
        .tempdir()
        .expect("temp dir");
    let models = private.path();
    std::fs::write(models.join("SHA256SUMS"), "").expect("sums");
    let broken = models.join("broken.gguf");
    std::fs::write(&broken, b"GGUF\x03\0\0\0 this is not a model").expect("gguf");
    let server = Server::start(
        &["--model", broken.to_str().expect("utf-8 path")],
        &[("ATELIER_MODELS", models.to_str().expect("utf-8 path"))],
    );
    let rt = runtime();
    let bodies = rt.block_on(async {
        let c = http();
        let mut bodies = Vec::new();
        let requests: Vec<(&str, reqwest::RequestBuilder)> = vec![
            (
                "a model that fails to load",
                c.post(server.endpoint("/v1/completions"))
                    .json(&json!({"prompt": "Hi", "max_tokens": 2})),
            ),
            (
                "the faces model is missing",
                c.post(server.endpoint("/v1/images/faces")).json(&json!({})),
            ),
            (
                "the style model is missing",
                c.post(server.endpoint("/v1/images/style?style=1"))
                    .header("content-type", "image/png")
                    .body(vec![1u8, 2, 3]),
            ),
            (
                "an unknown model",
                c.post(server.endpoint("/v1/completions"))
                    .json(&json!({"model": "nope", "prompt": "Hi"})),
            ),
            (
                "bad JSON",
                c.post(server.endpoint("/v1/chat/completions"))
                    .header("content-type", "application/json")
                    .body("{"),
            ),
        ];
        for (what, req) in requests {
            let resp = req.send().await.expect("send");
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            assert!(status >= 400, "{what}: {status} {text}");
            let json: Value = serde_json::from_str(&text).expect("JSON error");
            assert!(json["error"]["message"].is_string(), "{what}: {text}");
            bodies.push((what, status, text));
        }
        bodies
    });
    let mut secrets = vec![
        models.to_string_lossy().to_string(),
        server.data.path().to_string_lossy().to_string(),
    ];
    for dir in [models, server.data.path()] {
        if let Ok(c) = std::fs::canonicalize(dir) {
            secrets.push(c.to_string_lossy().to_string());
        }
    }
    for (what, status, text) in &bodies {
        eprintln!("{what}: {status} {text}");
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{what}: {text}");
        }
        assert!(!text.contains("/tmp/"), "{what}: {text}");
    }
    // Still useful: the file that is wrong or missing is named.
    assert!(bodies[0].2.contains("broken.gguf"), "{}", bodies[0].2);
    assert_eq!(bodies[1].1, 503);
    assert!(bodies[1].2.contains("models/fetch.sh"), "{}", bodies[1].2);
}

/// A fake OpenAI server on loopback: answers every connection with `head` then `total`
/// bytes of `fill` (never a newline), until the client hangs up.
fn endless_server(rt: &tokio::runtime::Runtime, head: String, fill: u8, total: u64) -> SocketAddr {
    fake_server(rt, move |mut socket| {
        let head = head.clone();
        async move {
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![fill; 1 << 16];
            let mut sent = 0u64;
            while sent < total {
                if socket.write_all(&chunk).await.is_err() {
                    return;
                }
                sent += chunk.len() as u64;
            }
        }
    })
}

/// Runs `atelier write --remote` against `addr`; returns (success, stderr, peak RSS in KiB
/// from the kernel's accounting of that child alone).
// The child is reaped by wait4 (for its rusage), which std's Child does not know about.
#[allow(clippy::zombie_processes)]
fn remote_write(addr: SocketAddr, extra: &[&str]) -> (bool, String, u64) {
    let data = tempfile::tempdir().expect("temp dir");
    let stderr_path = data.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(["write", "--remote", &format!("http://{addr}")])
        .args(["--prompt", "Hello", "--max-tokens", "4"])
        .args(extra)
        .env("ATELIER_API_KEY", "sk-test")
        .env("ATELIER_DATA", data.path())
        .env("NO_PROXY", "*")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr"))
        .spawn()
        .expect("spawn atelier write");
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waits for our own child and fills the two structs it is given.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert!(r == 0, "wait4 failed");
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("atelier write did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    (ok, stderr, usage.ru_maxrss as u64)
}

#[test]
fn the_client_stops_reading_a_server_that_never_stops_talking() {
    const TWO_GB: u64 = 2 << 30;
    let rt = runtime();
    // An event stream whose first line never ends.
    let sse = endless_server(
        &rt,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: ".into(),
        b'a',
        TWO_GB,
    );
    // A model list of 2 GB.
    let models = endless_server(
        &rt,
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {TWO_GB}\r\n\r\n"
        ),
        b' ',
        TWO_GB,
    );
    // An error page of 2 GB.
    let error = endless_server(
        &rt,
        format!(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: {TWO_GB}\r\n\r\n"
        ),
        b'x',
        TWO_GB,
    );
    let cases = [
        (
            "SSE without a blank line",
            sse,
            vec!["--model", "m"],
            "malformed",
        ),
        ("a 2 GB model list", models, vec![], "malformed"),
        ("a 2 GB error body", error, vec!["--model", "m"], "HTTP 500"),
    ];
    for (what, addr, extra, needle) in cases {
        let started = Instant::now();
        let (ok, stderr, rss_kib) = remote_write(addr, &extra);
        eprintln!(
            "{what}: failed in {:.1} s, client peak RSS {} MiB: {}",
            started.elapsed().as_secs_f64(),
            rss_kib / 1024,
            stderr.lines().last().unwrap_or_default()
        );
        assert!(!ok, "{what}: the client succeeded");
        assert!(stderr.contains(needle), "{what}: {stderr}");
        assert!(
            rss_kib < 200 * 1024,
            "{what}: client peak RSS {rss_kib} KiB"
        );
    }
}

#[test]
fn the_server_refuses_bad_timeouts_and_caps() {
    for (arg, flag) in [
        ("--header-timeout=0", "--header-timeout"),
        ("--write-timeout=-1", "--write-timeout"),
        ("--idle-timeout=nan", "--idle-timeout"),
        ("--body-timeout=1e9", "--body-timeout"),
        ("--max-connections=0", "--max-connections"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_atelier"))
            .args(["serve", "--bind", "127.0.0.1:0", arg])
            .env_remove("ATELIER_SERVE_TOKEN")
            .output()
            .expect("run");
        assert!(!out.status.success(), "{arg}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{arg}: {err}");
    }
}
