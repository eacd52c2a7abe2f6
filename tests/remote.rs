//! Remote engines over real HTTP on loopback: the Write client against `atelier serve` (token
//! for token equal to the local engine) and against llama.cpp's own server
//! (llama-cpp-python[server], installed by `scripts/peer-venv.sh`), the server's limits,
//! queue, errors and authentication under load, and the client's messages when the network
//! or the server misbehaves.
//!
//! Every wait has a deadline and says what it waited for; nothing here measures speed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use atelier::engine::{Engine, EngineError, Event, WriteRequest};
use atelier::models::llm::context::WriteTask;
use atelier::models::llm::{GenerateParams, GeneratedToken, SamplingParams};
use atelier::remote::{ApiKey, RemoteEndpoint, RemoteError, Timeouts};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

mod common;
use common::{Server, fake_server, http, peer_python, runtime};

/// The model-running tests share two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn smollm2() -> PathBuf {
    let p = atelier::paths::default_model(atelier::paths::SMOLLM2_FILE);
    assert!(
        p.is_file(),
        "{} is missing; run {}",
        p.display(),
        atelier::paths::FETCH_COMMAND
    );
    p
}

/// Greedy, no repetition penalty (implementations apply it differently), small.
fn greedy(max_new_tokens: usize) -> GenerateParams {
    GenerateParams {
        sampling: SamplingParams {
            temperature: 0.0,
            repeat_penalty: 1.0,
            ..Default::default()
        },
        max_new_tokens,
        logprobs: 5,
    }
}

fn continue_task() -> WriteTask {
    WriteTask::Continue {
        text: "The old lighthouse keeper climbed the stairs one last time. At the top,".into(),
    }
}

fn instruct_task() -> WriteTask {
    WriteTask::Instruct {
        instruction: "Write one sentence about the sea.".into(),
        document: String::new(),
    }
}

/// Runs a write request and returns its tokens (candidate 0) or the failure.
fn run_write(
    engine: &Engine,
    request: WriteRequest,
    timeout: Duration,
) -> Result<Vec<GeneratedToken>, EngineError> {
    let job = engine.write(request);
    let deadline = Instant::now() + timeout;
    let mut tokens = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "the write job did not end in {timeout:?}"
        );
        let Some(ev) = engine.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if ev.job() != job.id() {
            continue;
        }
        match ev {
            Event::Token {
                candidate: 0,
                token,
                ..
            } => tokens.push(token),
            Event::Failed { error, .. } => return Err(error),
            Event::Finished { .. } | Event::Cancelled { .. } => return Ok(tokens),
            _ => {}
        }
    }
}

fn request(
    task: WriteTask,
    params: GenerateParams,
    remote: Option<RemoteEndpoint>,
) -> WriteRequest {
    WriteRequest {
        model: smollm2(),
        adapter: None,
        task,
        params,
        candidates: 1,
        forced: Vec::new(),
        remote,
    }
}

fn texts(tokens: &[GeneratedToken]) -> Vec<String> {
    tokens
        .iter()
        .map(|t| t.text.clone())
        .filter(|t| !t.is_empty())
        .collect()
}

#[test]
fn client_against_atelier_serve_matches_the_local_engine_token_for_token() {
    let _s = serial();
    let engine = Engine::spawn(None, None).expect("engine");
    let server = Server::start(&["--model", "smollm2"], &[]);
    for task in [continue_task(), instruct_task()] {
        let local = run_write(
            &engine,
            request(task.clone(), greedy(24), None),
            Duration::from_secs(300),
        )
        .expect("local generation");
        let endpoint = RemoteEndpoint::new(server.url.clone(), "");
        let remote = run_write(
            &engine,
            request(task.clone(), greedy(24), Some(endpoint)),
            Duration::from_secs(300),
        )
        .expect("remote generation");
        assert!(!local.is_empty());
        assert_eq!(texts(&remote), texts(&local), "{task:?}");
        // Same engine on both sides: the log-probabilities match too.
        let local_lp: Vec<f32> = local
            .iter()
            .filter(|t| !t.text.is_empty())
            .map(|t| t.logprob)
            .collect();
        for (r, l) in remote.iter().zip(&local_lp) {
            assert!((r.logprob - l).abs() < 1e-4, "logprob {} vs {l}", r.logprob);
            assert_eq!(r.top.len(), 5);
        }
    }
}

/// The tolerance the foundation tests established against llama.cpp (tests/llm_numerics.rs):
/// greedy runs may part only where the two best tokens are closer than this (nats).
const NEAR_TIE: f32 = 0.25;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn client_against_llama_cpp_server_matches_within_the_established_tolerance() {
    let _s = serial();
    let port = free_port();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let peer = Peer(
        Command::new(peer_python())
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(smollm2())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--n_ctx", "2048", "--n_threads", "2", "--verbose", "false"])
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("log"))
            .spawn()
            .expect("start llama_cpp.server"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let engine = Engine::spawn(None, None).expect("engine");
    // Ready when it lists its models.
    let deadline = Instant::now() + Duration::from_secs(180);
    let models = loop {
        let job = engine.remote_models(RemoteEndpoint::new(url.clone(), ""));
        let mut listed = None;
        while let Some(ev) = engine.recv_timeout(Duration::from_secs(30)) {
            if ev.job() != job.id() {
                continue;
            }
            match ev {
                Event::RemoteModels { models, .. } => listed = Some(models),
                e if e.is_terminal() => break,
                _ => {}
            }
        }
        if let Some(m) = listed {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "llama_cpp.server did not come up: {}",
            std::fs::read_to_string(log.path()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(!models.is_empty());
    let _ = &peer;
    for task in [continue_task(), instruct_task()] {
        let local = run_write(
            &engine,
            request(task.clone(), greedy(24), None),
            Duration::from_secs(300),
        )
        .expect("local generation");
        // The client asks for log-probabilities; llama-cpp-python refuses them without
        // logits_all, and the client retries without.
        let remote = run_write(
            &engine,
            request(
                task.clone(),
                greedy(24),
                Some(RemoteEndpoint::new(url.clone(), models[0].clone())),
            ),
            Duration::from_secs(300),
        )
        .unwrap_or_else(|e| panic!("remote generation on llama.cpp: {e}"));
        let theirs: String = remote.iter().map(|t| t.text.as_str()).collect();
        let mut ours = String::new();
        let mut parted = None;
        for (i, t) in local.iter().enumerate() {
            ours.push_str(&t.text);
            if !theirs.starts_with(&ours) && !ours.starts_with(&theirs) {
                parted = Some(i);
                break;
            }
        }
        match parted {
            None => assert!(
                theirs.trim_end() == ours.trim_end(),
                "{task:?}: ours {ours:?}, llama.cpp {theirs:?}"
            ),
            Some(i) => {
                let t = &local[i];
                let margin =
                    t.top[0].logprob - t.top.get(1).map_or(f32::NEG_INFINITY, |a| a.logprob);
                assert!(
                    margin < NEAR_TIE,
                    "{task:?}: parted from llama.cpp at token {i} ({:?}) where our margin is {margin:.3} nats\nours {ours:?}\nllama.cpp {theirs:?}",
                    t.text
                );
                eprintln!("{task:?}: parted at token {i}, a near-tie ({margin:.3} nats)");
            }
        }
    }
}

/// POSTs JSON and returns (status, body as JSON).
async fn post_json(client: &reqwest::Client, url: &str, body: &[u8]) -> (u16, Value) {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let json =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, json)
}

#[test]
fn serve_answers_bad_requests_with_json_errors() {
    let _s = serial();
    let server = Server::start(&["--max-tokens", "64"], &[]);
    let rt = runtime();
    rt.block_on(async {
        let c = http();
        let completions = format!("{}/v1/completions", server.url);
        let chat = format!("{}/v1/chat/completions", server.url);
        let cases: Vec<(&str, String, Vec<u8>, u16, &str)> = vec![
            (
                "malformed JSON",
                completions.clone(),
                b"{\"prompt\": ".to_vec(),
                400,
                "not valid JSON",
            ),
            (
                "negative max_tokens",
                completions.clone(),
                br#"{"prompt":"Hi","max_tokens":-5}"#.to_vec(),
                400,
                "max_tokens",
            ),
            (
                "max_tokens over the limit",
                completions.clone(),
                br#"{"prompt":"Hi","max_tokens":100000}"#.to_vec(),
                400,
                "between 1 and 64",
            ),
            (
                "unknown model",
                completions.clone(),
                br#"{"model":"gpt-9","prompt":"Hi"}"#.to_vec(),
                404,
                "not served here",
            ),
            (
                "no prompt",
                completions.clone(),
                b"{}".to_vec(),
                400,
                "'prompt' is required",
            ),
            (
                "empty prompt",
                completions.clone(),
                br#"{"prompt":"  "}"#.to_vec(),
                400,
                "empty",
            ),
            (
                "no messages",
                chat.clone(),
                br#"{"prompt":"x"}"#.to_vec(),
                400,
                "'messages'",
            ),
            (
                "bad role",
                chat.clone(),
                br#"{"messages":[{"role":"wizard","content":"x"}]}"#.to_vec(),
                400,
                "role",
            ),
            (
                "n too large",
                completions.clone(),
                br#"{"prompt":"Hi","n":9}"#.to_vec(),
                400,
                "'n'",
            ),
            (
                "huge body",
                completions.clone(),
                format!("{{\"prompt\":\"{}\"}}", "a".repeat(2 << 20)).into_bytes(),
                413,
                "",
            ),
            (
                "too long a prompt",
                completions.clone(),
                format!("{{\"prompt\":\"{}\"}}", "a ".repeat(20_000)).into_bytes(),
                400,
                "at most",
            ),
        ];
        for (what, url, body, status, needle) in cases {
            let (got, json) = post_json(&c, &url, &body).await;
            assert_eq!(got, status, "{what}: {json}");
            let message = json["error"]["message"].as_str().unwrap_or_default();
            assert!(!message.is_empty(), "{what}: no message in {json}");
            assert!(message.contains(needle), "{what}: {message}");
        }
        let unknown_model =
            post_json(&c, &completions, br#"{"model":"gpt-9","prompt":"Hi"}"#).await;
        assert_eq!(unknown_model.1["error"]["code"], "model_not_found");
        // Unknown routes and methods answer JSON too.
        let resp = c
            .get(format!("{}/v2/nothing", server.url))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 404);
        assert!(resp.json::<Value>().await.expect("json")["error"]["message"].is_string());
        let resp = c
            .delete(format!("{}/v1/models", server.url))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 405);
        assert!(resp.json::<Value>().await.expect("json")["error"]["message"].is_string());
        // A good non-streamed request after all that: the server is fine.
        let (status, json) = post_json(
            &c,
            &completions,
            br#"{"prompt":"Once upon a time","max_tokens":4,"temperature":0}"#,
        )
        .await;
        assert_eq!(status, 200, "{json}");
        assert_eq!(json["object"], "text_completion");
        assert_eq!(json["choices"][0]["finish_reason"], "length");
        assert_eq!(json["usage"]["completion_tokens"], 4);
        assert!(json["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 3);
    });
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}

#[test]
fn chat_stop_sequences_and_images() {
    let _s = serial();
    let server = Server::start(&[], &[]);
    let rt = runtime();
    rt.block_on(async {
        let c = http();
        // Whole chat response in OpenAI's shape.
        let body = json!({"messages": [{"role": "user", "content": "Count from 1 to 20, separated by commas."}],
                          "max_tokens": 40, "temperature": 0});
        let (status, full) = post_json(&c, &format!("{}/v1/chat/completions", server.url), body.to_string().as_bytes()).await;
        assert_eq!(status, 200, "{full}");
        assert_eq!(full["object"], "chat.completion");
        assert_eq!(full["choices"][0]["message"]["role"], "assistant");
        let text = full["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string();
        assert!(text.contains('3'), "{text}");
        // The same request with a stop sequence ends right before it.
        let mut with_stop = body.clone();
        with_stop["stop"] = json!(["3"]);
        let (status, stopped) = post_json(&c, &format!("{}/v1/chat/completions", server.url), with_stop.to_string().as_bytes()).await;
        assert_eq!(status, 200, "{stopped}");
        let cut = stopped["choices"][0]["message"]["content"].as_str().unwrap_or_default();
        assert_eq!(cut, &text[..text.find('3').unwrap_or(0)]);
        assert_eq!(stopped["choices"][0]["finish_reason"], "stop");

        // Faces: a 2×2 grid of 64-pixel faces is a 128×128 PNG.
        let resp = c
            .post(format!("{}/v1/images/faces", server.url))
            .json(&json!({"seed": 7, "grid": 2, "size": 64}))
            .send()
            .await
            .expect("faces");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.headers()["content-type"], "image/png");
        let png = image::load_from_memory(&resp.bytes().await.expect("bytes")).expect("png");
        assert_eq!((png.width(), png.height()), (128, 128));
        let (status, err) = post_json(&c, &format!("{}/v1/images/faces", server.url), br#"{"truncation":3}"#).await;
        assert_eq!(status, 400, "{err}");

        // Style: a small photo restyled with style 19 keeps its size.
        let photo = image::RgbImage::from_fn(96, 64, |x, y| image::Rgb([x as u8 * 2, y as u8 * 3, 128]));
        let mut bytes = Vec::new();
        image::DynamicImage::ImageRgb8(photo)
            .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
            .expect("encode");
        let resp = c
            .post(format!("{}/v1/images/style?style=19&strength=0.8", server.url))
            .header("content-type", "image/png")
            .body(bytes)
            .send()
            .await
            .expect("style");
        assert_eq!(resp.status().as_u16(), 200);
        let out = image::load_from_memory(&resp.bytes().await.expect("bytes")).expect("png");
        assert_eq!((out.width(), out.height()), (96, 64));
        let resp = c
            .post(format!("{}/v1/images/style?style=19", server.url))
            .header("content-type", "image/png")
            .body(b"not an image".to_vec())
            .send()
            .await
            .expect("style");
        assert_eq!(resp.status().as_u16(), 400);
        let resp = c
            .post(format!("{}/v1/images/style?style=99", server.url))
            .header("content-type", "image/png")
            .body(vec![1u8])
            .send()
            .await
            .expect("style");
        assert_eq!(resp.status().as_u16(), 400);
    });
}

/// Reads a streamed response to its end: (status, body text).
async fn stream_all(client: &reqwest::Client, url: &str, body: &Value) -> (u16, String) {
    let resp = client.post(url).json(body).send().await.expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, text)
}

#[test]
fn sixteen_streaming_clients_get_complete_answers_or_429_and_memory_stays_flat() {
    let _s = serial();
    let server = Server::start(&["--queue", "4"], &[]);
    let rt = runtime();
    let url = format!("{}/v1/completions", server.url);
    let mut rss = Vec::new();
    let rounds = 4;
    for round in 0..rounds {
        let (ok, busy) = rt.block_on(async {
            let c = http();
            let mut tasks = Vec::new();
            for i in 0..16 {
                let c = c.clone();
                let url = url.clone();
                tasks.push(tokio::spawn(async move {
                    let body = json!({"prompt": format!("Story number {i}: once upon a time"),
                                      "max_tokens": 24, "stream": true, "temperature": 0.7, "seed": i});
                    stream_all(&c, &url, &body).await
                }));
            }
            let mut ok = 0;
            let mut busy = 0;
            for t in tasks {
                let (status, text) = t.await.expect("client task");
                match status {
                    200 => {
                        ok += 1;
                        assert!(text.trim_end().ends_with("data: [DONE]"), "incomplete stream: {text}");
                        assert!(text.contains("\"finish_reason\":\"length\"") || text.contains("\"finish_reason\":\"stop\""), "{text}");
                        assert!(!text.contains("\"error\""), "{text}");
                    }
                    429 => {
                        busy += 1;
                        let json: Value = serde_json::from_str(&text).expect("429 is JSON");
                        assert_eq!(json["error"]["code"], "queue_full");
                    }
                    other => panic!("unexpected status {other}: {text}"),
                }
            }
            (ok, busy)
        });
        assert_eq!(ok + busy, 16);
        assert!(ok >= 1, "round {round}: no request was served");
        assert!(
            busy >= 1,
            "round {round}: 16 requests at once never filled a queue of 4"
        );
        rss.push(server.rss_kib());
    }
    // The first round loads the model; after it, memory must not grow with more requests.
    let growth_mib = (rss[rounds - 1] as f64 - rss[1] as f64) / 1024.0;
    eprintln!("server RSS per round (KiB): {rss:?}");
    assert!(
        growth_mib < 24.0,
        "server RSS grew {growth_mib:.1} MiB: {rss:?}"
    );
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}

/// Retries a tiny request until the server's only queue slot is free again.
async fn wait_for_free_slot(c: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, json) = post_json(c, url, br#"{"prompt":"Hi","max_tokens":2}"#).await;
        if status == 200 {
            return;
        }
        assert_eq!(status, 429, "{json}");
        assert!(Instant::now() < deadline, "the slot never came free");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_client_that_disconnects_cancels_its_job() {
    let _s = serial();
    let server = Server::start(&["--queue", "1"], &[("RUST_LOG", "atelier=info")]);
    let rt = runtime();
    rt.block_on(async {
        let c = http();
        let url = format!("{}/v1/completions", server.url);
        let body = json!({"prompt": "Write a very long story:", "max_tokens": 2000, "stream": true, "temperature": 0.7, "seed": 7});
        let resp = c.post(&url).json(&body).send().await.expect("send");
        assert_eq!(resp.status().as_u16(), 200);
        let mut stream = resp.bytes_stream();
        use futures_util::StreamExt;
        let first = tokio::time::timeout(Duration::from_secs(120), stream.next()).await;
        assert!(matches!(first, Ok(Some(Ok(_)))), "no first chunk");
        drop(stream); // the client goes away mid-generation
        // The only queue slot comes free and the next request is served.
        wait_for_free_slot(&c, &url).await;
        // The same for a whole (non-streamed) answer: the client gives up after a second. A
        // sampled story may end early on its own: seeds are fixed, the first long one is used.
        let mut gave_up = false;
        for seed in 1..=8 {
            let body = json!({"prompt": "Write a very long story:", "max_tokens": 2000,
                              "temperature": 0.7, "seed": seed});
            let sent = c
                .post(&url)
                .json(&body)
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if sent.is_err() {
                gave_up = true;
                break;
            }
        }
        assert!(gave_up, "every story ended within a second");
        wait_for_free_slot(&c, &url).await;
    });
    let logs = server.stderr();
    assert_eq!(
        logs.matches("client went away: cancelling its job").count(),
        2,
        "{logs}"
    );
}

#[test]
fn non_loopback_needs_a_token_and_the_key_never_reaches_a_log() {
    let _s = serial();
    // No token: refused before binding.
    let refused = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(["serve", "--bind", "0.0.0.0:0"])
        .env_remove("ATELIER_SERVE_TOKEN")
        .output()
        .expect("run");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("without a token") && err.contains("--token"),
        "{err}"
    );

    const SECRET: &str = "sk-atelier-test-3f9a1c77d2";
    let server = Server::start(
        &["--bind", "0.0.0.0:0"],
        &[("ATELIER_SERVE_TOKEN", SECRET), ("RUST_LOG", "trace")],
    );
    let rt = runtime();
    rt.block_on(async {
        let c = http();
        let models = format!("{}/v1/models", server.url);
        for auth in [None, Some("Bearer wrong"), Some(SECRET)] {
            let mut req = c.get(&models);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.expect("send");
            assert_eq!(resp.status().as_u16(), 401, "auth {auth:?}");
            let json: Value = resp.json().await.expect("json");
            assert_eq!(json["error"]["code"], "invalid_api_key");
        }
        let resp = c
            .get(&models)
            .bearer_auth(SECRET)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 200);
    });
    // The studio's client, from the CLI, with the key from the environment and every log on.
    let client_data = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(["--log", "trace", "write", "--remote", &server.url])
        .args([
            "--prompt",
            "Hello",
            "--max-tokens",
            "3",
            "--temperature",
            "0",
        ])
        .env("ATELIER_API_KEY", SECRET)
        .env("ATELIER_DATA", client_data.path())
        .output()
        .expect("run client");
    let client_out = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{client_out}");
    // A wrong key is refused with a message that names the problem, not the key.
    let out = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args([
            "write",
            "--remote",
            &server.url,
            "--prompt",
            "Hello",
            "--max-tokens",
            "2",
        ])
        .env("ATELIER_API_KEY", "sk-wrong-key")
        .env("ATELIER_DATA", client_data.path())
        .output()
        .expect("run client");
    let refused = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        refused.contains("HTTP 401") && refused.contains("check the API key"),
        "{refused}"
    );
    let logs = server.all_logs();
    assert!(
        logs.contains("POST /v1/completions 200"),
        "the server logged no requests: {logs}"
    );
    assert!(!logs.contains(SECRET), "the token is in the server's logs");
    assert!(
        !client_out.contains(SECRET),
        "the key is in the client's output"
    );
    assert!(!refused.contains("sk-wrong-key"));
    for dir in [client_data.path(), server.data.path()] {
        assert_no_secret(dir, SECRET);
    }
}

fn assert_no_secret(dir: &Path, secret: &str) {
    for e in walk(dir) {
        let bytes = std::fs::read(&e).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "{} contains the secret",
            e.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn raw_response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn fails_with(addr: &str, timeouts: Timeouts) -> EngineError {
    let engine = Engine::spawn(None, None).expect("engine");
    let mut endpoint = RemoteEndpoint::new(addr.to_string(), "m");
    endpoint.timeouts = timeouts;
    endpoint.api_key = ApiKey::new("sk-test");
    match run_write(
        &engine,
        request(continue_task(), greedy(8), Some(endpoint)),
        Duration::from_secs(60),
    ) {
        Err(e) => e,
        Ok(t) => panic!("expected a failure, got {t:?}"),
    }
}

#[test]
fn the_client_explains_network_and_server_failures() {
    let rt = runtime();
    // Refused: nothing listens on the port.
    let port = free_port();
    let e = fails_with(&format!("http://127.0.0.1:{port}"), Timeouts::default());
    assert!(
        matches!(e, EngineError::Remote(RemoteError::Connect { .. })),
        "{e}"
    );
    assert!(
        e.to_string().contains("cannot connect") && e.to_string().contains("refused"),
        "{e}"
    );

    // Silent: accepts, never answers.
    let silent = fake_server(&rt, |socket| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let short = Timeouts {
        response: Duration::from_secs(1),
        idle: Duration::from_secs(1),
        ..Timeouts::default()
    };
    let e = fails_with(&format!("http://{silent}"), short);
    assert!(
        matches!(e, EngineError::Remote(RemoteError::Timeout { .. })),
        "{e}"
    );

    // An HTTP error carries the server's own message.
    let broken = fake_server(&rt, |mut socket| async move {
        let body =
            r#"{"error":{"message":"model failed to load: out of memory","type":"server_error"}}"#;
        let _ = socket
            .write_all(raw_response("503 Service Unavailable", "application/json", body).as_bytes())
            .await;
    });
    let e = fails_with(&format!("http://{broken}"), Timeouts::default());
    assert!(
        e.to_string().contains("HTTP 503") && e.to_string().contains("out of memory"),
        "{e}"
    );

    // 401: says to check the key.
    let locked = fake_server(&rt, |mut socket| async move {
        let _ = socket
            .write_all(
                raw_response(
                    "401 Unauthorized",
                    "application/json",
                    r#"{"error":"bad key"}"#,
                )
                .as_bytes(),
            )
            .await;
    });
    let e = fails_with(&format!("http://{locked}"), Timeouts::default());
    assert!(
        matches!(e, EngineError::Remote(RemoteError::Unauthorized { .. })),
        "{e}"
    );
    assert!(!e.to_string().contains("sk-test"));

    // A stream that is not JSON.
    let garbage = fake_server(&rt, |mut socket| async move {
        let _ = socket
            .write_all(
                raw_response("200 OK", "text/event-stream", "data: {not json\n\n").as_bytes(),
            )
            .await;
    });
    let e = fails_with(&format!("http://{garbage}"), Timeouts::default());
    assert!(
        matches!(e, EngineError::Remote(RemoteError::Malformed { .. })),
        "{e}"
    );

    // A stream cut short.
    let cut = fake_server(&rt, |mut socket| async move {
        let body = "data: {\"choices\":[{\"index\":0,\"text\":\"Hi\",\"finish_reason\":null}]}\n\n";
        let _ = socket
            .write_all(raw_response("200 OK", "text/event-stream", body).as_bytes())
            .await;
    });
    let e = fails_with(&format!("http://{cut}"), Timeouts::default());
    assert!(e.to_string().contains("ended before"), "{e}");

    // An error event in the middle of a stream.
    let midway = fake_server(&rt, |mut socket| async move {
        let body = "data: {\"choices\":[{\"index\":0,\"text\":\"Hi\"}]}\n\ndata: {\"error\":{\"message\":\"context overflow\"}}\n\n";
        let _ = socket
            .write_all(raw_response("200 OK", "text/event-stream", body).as_bytes())
            .await;
    });
    let e = fails_with(&format!("http://{midway}"), Timeouts::default());
    assert!(e.to_string().contains("context overflow"), "{e}");
}

#[test]
fn stop_closes_the_stream_at_once() {
    let rt = runtime();
    let closed = Arc::new(AtomicBool::new(false));
    let seen = closed.clone();
    let endless = fake_server(&rt, move |mut socket| {
        let closed = seen.clone();
        async move {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..600 {
                let event = "data: {\"choices\":[{\"index\":0,\"text\":\" word\"}]}\n\n";
                let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                if socket.write_all(chunk.as_bytes()).await.is_err()
                    || socket.flush().await.is_err()
                {
                    closed.store(true, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let engine = Engine::spawn(None, None).expect("engine");
    let job = engine.write(request(
        continue_task(),
        greedy(1000),
        Some(RemoteEndpoint::new(format!("http://{endless}"), "m")),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut tokens = 0;
    let ended = loop {
        assert!(Instant::now() < deadline, "the remote job did not stop");
        let Some(ev) = engine.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        match ev {
            Event::Token { .. } => {
                tokens += 1;
                if tokens == 2 {
                    job.cancel();
                }
            }
            e if e.is_terminal() => break e,
            _ => {}
        }
    };
    assert!(matches!(ended, Event::Cancelled { .. }), "{ended:?}");
    // The server notices: its next write fails.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !closed.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the connection stayed open after Stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The platform keyring path, against a real Secret Service (gnome-keyring in a private D-Bus
/// session): the key goes into the keyring, not the file, and comes back. The test set-up
/// installs gnome-keyring; without it (or dbus-run-session) the test says so and passes.
#[test]
fn api_keys_go_to_the_secret_service_when_there_is_one() {
    if std::env::var_os("ATELIER_INNER_KEYRING_TEST").is_some() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = atelier::remote::keystore::KeyStore::in_dir(dir.path());
        let url = "http://keyring-test.invalid:8080";
        let key = ApiKey::new("sk-keyring-test-5b1e").expect("key");
        let backing = store.save(url, &key).expect("save");
        assert_eq!(backing, atelier::remote::keystore::Backing::Keyring);
        assert!(
            !dir.path()
                .join(atelier::remote::keystore::FILE_NAME)
                .exists(),
            "the key went to the file despite the keyring"
        );
        assert_eq!(store.load(url).expect("load"), Some(key));
        store.delete(url).expect("delete");
        assert_eq!(store.load(url).expect("load"), None);
        return;
    }
    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("dbus-run-session") || !have("gnome-keyring-daemon") {
        eprintln!("no dbus-run-session or gnome-keyring-daemon: keyring path not exercised");
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("dbus-run-session")
        .args(["--", "sh", "-c"])
        .arg(
            "printf 'atelier-test' | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1 && \
             exec \"$0\" --exact api_keys_go_to_the_secret_service_when_there_is_one --nocapture",
        )
        .arg(exe)
        .env("ATELIER_INNER_KEYRING_TEST", "1")
        .env_remove("ATELIER_KEYSTORE")
        .output()
        .expect("run dbus-run-session");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
}
