//! What the server tests share: an `atelier serve` child process on a free loopback port, a
//! fake server, a runtime and an HTTP client for the test's side.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// An `atelier serve` child process on a free loopback port (`127.0.0.1:0` unless the
/// arguments say `--bind`), killed when dropped.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub addr: SocketAddr,
    /// Its data folder (`ATELIER_DATA`), with `stderr.log`.
    pub data: tempfile::TempDir,
}

impl Server {
    pub fn start(extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::try_start(extra, env).unwrap_or_else(|e| panic!("atelier serve did not start: {e}"))
    }

    pub fn try_start(extra: &[&str], env: &[(&str, &str)]) -> Result<Self, String> {
        Self::try_start_with_fd_limit(extra, env, None)
    }

    /// With `open_files`, the server starts under that soft limit on open files (the usual
    /// default is 1024), whatever this test process raised its own to.
    pub fn start_with_fd_limit(
        extra: &[&str],
        env: &[(&str, &str)],
        open_files: Option<u64>,
    ) -> Self {
        Self::try_start_with_fd_limit(extra, env, open_files)
            .unwrap_or_else(|e| panic!("atelier serve did not start: {e}"))
    }

    fn try_start_with_fd_limit(
        extra: &[&str],
        env: &[(&str, &str)],
        open_files: Option<u64>,
    ) -> Result<Self, String> {
        let data = tempfile::tempdir().expect("temp dir");
        let stderr = std::fs::File::create(data.path().join("stderr.log")).expect("stderr file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_atelier"));
        cmd.arg("serve")
            .args(extra)
            .env("ATELIER_DATA", data.path())
            .env_remove("ATELIER_SERVE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(stderr);
        if !extra.contains(&"--bind") {
            cmd.args(["--bind", "127.0.0.1:0"]);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(soft) = open_files {
            limit_open_files(&mut cmd, soft);
        }
        let mut child = cmd.spawn().expect("spawn atelier serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(|u| u.replace("0.0.0.0", "127.0.0.1"));
        let addr = url
            .as_deref()
            .and_then(|u| u.strip_prefix("http://"))
            .and_then(|a| a.parse().ok());
        let (Some(url), Some(addr)) = (url, addr) else {
            let _ = child.kill();
            let status = child.wait().ok();
            let err = std::fs::read_to_string(data.path().join("stderr.log")).unwrap_or_default();
            return Err(format!("exit {status:?}, stdout {line:?}, stderr: {err}"));
        };
        Ok(Self {
            child,
            url,
            addr,
            data,
        })
    }

    /// The URL of `path` (`/v1/models`) on this server.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.data.path().join("stderr.log")).unwrap_or_default()
    }

    /// Everything the server logged: stderr and the rotated log files in its data folder.
    pub fn all_logs(&self) -> String {
        let mut text = self.stderr();
        if let Ok(dir) = std::fs::read_dir(self.data.path().join("logs")) {
            for e in dir.flatten() {
                text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        text
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// A field of /proc/PID/status in KiB (`VmRSS:`, `VmHWM:` for the peak).
    pub fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// File descriptors the server has open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` under a soft limit of `soft` open files.
fn limit_open_files(cmd: &mut Command, soft: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls: getrlimit and setrlimit on
    // a struct on the stack.
    unsafe {
        cmd.pre_exec(move || {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur = soft.min(limit.rlim_max);
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
            Ok(())
        });
    }
}

/// A two-thread runtime for the test's own clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The studio's own HTTP client (rustls, default timeouts).
pub fn http() -> reqwest::Client {
    atelier::remote::client::http_client(&atelier::remote::Timeouts::default())
        .expect("http client")
}

/// A fake server: answers every connection with `respond`.
pub fn fake_server<F, Fut>(rt: &tokio::runtime::Runtime, respond: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let respond = Arc::new(respond);
    rt.spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let respond = respond.clone();
            tokio::spawn(async move {
                // Read the request head (and whatever body came with it).
                let mut buf = vec![0u8; 65536];
                let _ =
                    tokio::time::timeout(Duration::from_millis(500), socket.read(&mut buf)).await;
                respond(socket).await;
            });
        }
    });
    addr
}
