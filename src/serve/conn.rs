//! The server's connections: the accept loop, the cap on open connections and the timeouts
//! that keep a slow or silent client from holding one.
//!
//! Every connection is in one of two phases. *Waiting* for a request head: it must deliver
//! its first head within the header timeout of being accepted, and after an answer it may
//! stay idle (keep-alive) for the idle timeout, then has the header timeout from the first
//! byte of its next head. *Busy* from a complete head until its answer has been written: the
//! handlers bound the body read ([`super::read_body`]), and a write that makes no progress
//! for the write timeout fails the connection, which drops the answer (and with it the job
//! and its queue slot).
//!
//! At most `max_connections` are open. When a new one arrives at the cap, the connection that
//! has waited longest for a request is closed to make room (a stalled client is cheapest to
//! drop, and an attacker's sockets cannot lock others out); when every connection is busy,
//! the newcomer gets a 503 and is closed. Accept errors (out of file descriptors) pause the
//! loop briefly instead of spinning.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

/// How many connections, and how long each phase may last.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConnLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// To receive a request head (from accept, or from its first byte on a kept-alive
    /// connection).
    pub header: Duration,
    /// A kept-alive connection waiting for its next request.
    pub idle: Duration,
    /// A response write that makes no progress (the client stopped reading).
    pub write: Duration,
    /// The kernel send buffer of each connection in bytes (0: the system's choice).
    pub send_buffer: usize,
}

/// How long shutdown waits for answers in progress before it drops them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The pause after an accept error such as "too many open files".
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The body of the answer to a connection refused because every open one is busy.
const FULL_BODY: &str = r#"{"error":{"message":"the server has too many connections open, all busy; retry shortly","type":"server_error","code":"too_many_connections"}}"#;
/// What a client must take, once an answer is blocked, within each write timeout (16 KiB per
/// 30 s by default: far below any real link, far above a deliberate trickle).
const MIN_WRITE_PROGRESS: usize = 16 << 10;
/// How long a newcomer waits at the cap for an evicted connection to close (it closes as
/// soon as its task runs).
const EVICTION_WAIT: Duration = Duration::from_secs(1);
/// File descriptors kept free for everything else (model files, logs, the engine's threads).
const FD_RESERVE: u64 = 64;

/// Serves `app` on `listener` until `shutdown` resolves, then lets the answers in progress
/// finish (for a few seconds at most).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let registry = Arc::new(Registry::new(limits.max_connections));
    let stop = Arc::new(tokio::sync::watch::Sender::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        // Reap ended connections so the set does not grow over a long run.
        while tasks.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                // Out of file descriptors (or memory): closing connections frees some.
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(conn) = registry.admit_waiting().await else {
            // Best effort and never blocking: the socket is closed right after.
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{FULL_BODY}",
                FULL_BODY.len()
            );
            let _ = stream.try_write(answer.as_bytes());
            continue;
        };
        // Tokens go out as they come; a stalled client holds a bounded kernel buffer.
        let _ = stream.set_nodelay(true);
        if limits.send_buffer > 0 {
            let _ = socket2::SockRef::from(&stream).set_send_buffer_size(limits.send_buffer);
        }
        tasks.spawn(serve_connection(
            stream,
            conn,
            registry.clone(),
            app.clone(),
            limits,
            stop.subscribe(),
        ));
    }
    drop(listener);
    stop.send_replace(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

/// The connection cap that fits the limit on open files, after raising its soft value
/// towards the hard one (as Go's runtime and most servers do): a cap above what the process
/// may open would turn an attack into "too many open files" everywhere, model loads included.
pub fn fit_connections_to_fd_limit(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return wanted;
        }
        let need = (wanted as u64).saturating_add(FD_RESERVE);
        if limit.rlim_cur < need && limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: need.min(limit.rlim_max),
                rlim_max: limit.rlim_max,
            };
            // SAFETY: setrlimit only reads the struct it is given.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit.rlim_cur = raised.rlim_cur;
            }
        }
        let fits = limit.rlim_cur.saturating_sub(FD_RESERVE).max(1);
        if wanted as u64 > fits {
            tracing::warn!(
                "--max-connections {wanted} needs more than the {} open files this process may \
                 have; serving at most {fits} connections (raise `ulimit -n` for more)",
                limit.rlim_cur
            );
            return usize::try_from(fits).unwrap_or(wanted);
        }
    }
    wanted
}

/// Errors that concern one incoming connection only (it was reset before being accepted).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Runs one connection until it ends, times out, is evicted or the server stops.
async fn serve_connection(
    stream: TcpStream,
    conn: Arc<ConnState>,
    registry: Arc<Registry>,
    app: Router,
    limits: ConnLimits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let _registered = Registered {
        registry,
        conn: conn.clone(),
    };
    let io = TokioIo::new(TimedIo::new(stream, limits.write, conn.clone()));
    let service = hyper::service::service_fn({
        let conn = conn.clone();
        move |req: hyper::Request<Incoming>| {
            let busy = Busy::begin(conn.clone());
            let mut app = app.clone();
            async move {
                let resp = match app.call(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(resp.map(|body| TrackedBody { body, _busy: busy }))
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The supervisor below times heads (hyper's own timer would also cut idle keep-alives).
    builder.header_read_timeout(None);
    // Request heads of 64 KiB at most (hyper's default buffer is 400 KiB): thousands of
    // connections cannot make the server hold much.
    builder.max_buf_size(64 * 1024);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        if conn.evicted.load(Ordering::Acquire) {
            return;
        }
        let deadline = conn.deadline(&limits);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            () = conn.changed.notified() => {}
            () = sleep_until(deadline) => {
                if conn.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!("closing a connection that sent no request in time");
                    return;
                }
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_err() || *stop.borrow() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The open connections, for the cap and for eviction.
struct Registry {
    max: usize,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: std::sync::atomic::AtomicU64,
    /// Signalled when a connection's task ends.
    freed: Notify,
}

impl Registry {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(0),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection. At the cap, closes the connection that has waited longest
    /// for a request and waits (a moment at most) for its socket to be closed, so open
    /// connections never exceed the cap; `None` when every open connection is busy.
    async fn admit_waiting(&self) -> Option<Arc<ConnState>> {
        let deadline = Instant::now() + EVICTION_WAIT;
        loop {
            match self.admit() {
                Admission::Admitted(conn) => return Some(conn),
                Admission::Full => return None,
                Admission::Evicting => {
                    let freed = tokio::time::timeout_at(deadline, self.freed.notified()).await;
                    if freed.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// One attempt of [`Self::admit_waiting`].
    fn admit(&self) -> Admission {
        let mut open = self.lock();
        if open.len() >= self.max {
            if open.values().any(|c| c.evicted.load(Ordering::Acquire)) {
                return Admission::Evicting;
            }
            let Some(oldest) = open
                .values()
                .filter_map(|c| c.waiting_since().map(|t| (t, c.id)))
                .min()
                .and_then(|(_, id)| open.get(&id))
            else {
                return Admission::Full;
            };
            oldest.evicted.store(true, Ordering::Release);
            oldest.changed.notify_one();
            return Admission::Evicting;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(ConnState::new(id));
        open.insert(id, conn.clone());
        Admission::Admitted(conn)
    }

    /// A connection's task ended (its socket is closed).
    fn remove(&self, id: u64) {
        self.lock().remove(&id);
        self.freed.notify_one();
    }
}

/// The outcome of one admission attempt.
enum Admission {
    /// Registered.
    Admitted(Arc<ConnState>),
    /// At the cap; a waiting connection is being closed to make room.
    Evicting,
    /// At the cap and every connection is busy.
    Full,
}

/// Removes a connection from the registry when its task ends.
struct Registered {
    registry: Arc<Registry>,
    conn: Arc<ConnState>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.remove(self.conn.id);
    }
}

/// What the supervisor, the socket wrapper and the request wrapper share about a connection.
struct ConnState {
    id: u64,
    phase: Mutex<Phase>,
    /// Set when the registry closes this connection to make room.
    evicted: AtomicBool,
    /// Wakes the supervisor when the phase changes.
    changed: Notify,
}

#[derive(Clone, Copy, Debug)]
struct Phase {
    /// Requests being answered (HTTP/1.1: one at a time).
    busy: usize,
    /// When it last became idle (accepted, or its last answer was written).
    idle_since: Instant,
    /// When the head it is waiting for began to arrive (accept time for the first one).
    head_started: Option<Instant>,
}

impl ConnState {
    fn new(id: u64) -> Self {
        let now = Instant::now();
        Self {
            id,
            phase: Mutex::new(Phase {
                busy: 0,
                idle_since: now,
                head_started: Some(now),
            }),
            evicted: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When a waiting connection must have its request head; `None` while busy.
    fn deadline(&self, limits: &ConnLimits) -> Option<Instant> {
        let p = *self.phase();
        if p.busy > 0 {
            return None;
        }
        Some(match p.head_started {
            Some(started) => started + limits.header,
            None => p.idle_since + limits.idle,
        })
    }

    /// Since when it has been waiting for a request; `None` while busy.
    fn waiting_since(&self) -> Option<Instant> {
        let p = self.phase();
        (p.busy == 0).then_some(p.idle_since)
    }

    /// Bytes arrived: on an idle connection they start a request head.
    fn on_read(&self) {
        let mut p = self.phase();
        if p.busy == 0 && p.head_started.is_none() {
            p.head_started = Some(Instant::now());
            drop(p);
            self.changed.notify_one();
        }
    }
}

/// A request being answered: from its complete head until its answer is written (or dropped).
struct Busy(Arc<ConnState>);

impl Busy {
    fn begin(conn: Arc<ConnState>) -> Self {
        {
            let mut p = conn.phase();
            p.busy += 1;
            p.head_started = None;
        }
        conn.changed.notify_one();
        Self(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        {
            let mut p = self.0.phase();
            p.busy = p.busy.saturating_sub(1);
            if p.busy == 0 {
                p.idle_since = Instant::now();
                p.head_started = None;
            }
        }
        self.0.changed.notify_one();
    }
}

/// A response body that keeps its connection busy until hyper has written it all (or dropped
/// it with the connection).
struct TrackedBody {
    body: axum::body::Body,
    _busy: Busy,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, with a write timeout and a note of when bytes arrive.
///
/// Once a write blocks (the client's window and the kernel buffer are full), the client has
/// the write timeout to take `min_progress` bytes or everything offered; otherwise the write
/// fails with `TimedOut`. Trickling a few bytes now and then does not reset the clock, so a
/// slow reader cannot hold an answer (and its job's queue slot) for hours either.
struct TimedIo<S> {
    stream: S,
    write_timeout: Duration,
    min_progress: usize,
    /// Armed while writes are blocked, with the bytes taken since.
    stalled: Option<(Pin<Box<Sleep>>, usize)>,
    conn: Arc<ConnState>,
}

impl<S> TimedIo<S> {
    fn new(stream: S, write_timeout: Duration, conn: Arc<ConnState>) -> Self {
        Self {
            stream,
            write_timeout,
            min_progress: MIN_WRITE_PROGRESS,
            stalled: None,
            conn,
        }
    }

    /// Passes a write's result through (`offered` bytes were offered; `()` results count as
    /// complete), or fails a write that has been blocked too long.
    fn check_stall<T: Copy + Into<Written>>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
        offered: usize,
    ) -> Poll<io::Result<T>> {
        match &poll {
            Poll::Ready(Ok(result)) => {
                let taken = match (*result).into() {
                    Written::Bytes(n) => n,
                    Written::All => offered,
                };
                let unblocked = match &mut self.stalled {
                    None => true,
                    Some((_, progress)) => {
                        *progress = progress.saturating_add(taken);
                        taken >= offered || *progress >= self.min_progress
                    }
                };
                if unblocked {
                    self.stalled = None;
                }
                return poll;
            }
            Poll::Ready(Err(_)) => {
                self.stalled = None;
                return poll;
            }
            Poll::Pending => {}
        }
        let timeout = self.write_timeout;
        let (sleep, _) = self
            .stalled
            .get_or_insert_with(|| (Box::pin(tokio::time::sleep(timeout)), 0));
        if sleep.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read (almost) nothing for {:.1} s",
                    timeout.as_secs_f64()
                ),
            )));
        }
        Poll::Pending
    }
}

/// What a completed write operation took.
enum Written {
    /// Some bytes of what was offered.
    Bytes(usize),
    /// All of it (flush, shutdown).
    All,
}

impl From<usize> for Written {
    fn from(n: usize) -> Self {
        Written::Bytes(n)
    }
}

impl From<()> for Written {
    fn from((): ()) -> Self {
        Written::All
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.on_read();
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.check_stall(cx, poll, buf.len())
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        let offered = bufs.iter().map(|b| b.len()).fold(0, usize::saturating_add);
        self.check_stall(cx, poll, offered)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.check_stall(cx, poll, 0)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.check_stall(cx, poll, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMITS: ConnLimits = ConnLimits {
        max_connections: 2,
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        write: Duration::from_millis(100),
        send_buffer: 0,
    };

    #[tokio::test]
    async fn a_write_the_peer_does_not_read_times_out() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut io = TimedIo::new(near, LIMITS.write, Arc::new(ConnState::new(0)));
        let started = std::time::Instant::now();
        let err = io.write_all(&[7u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= LIMITS.write);
        let mut buf = [0u8; 64];
        assert_eq!(far.read(&mut buf).await.unwrap(), 64);
        // A reader that keeps up (here 64 bytes per 20 ms, the threshold being 128 bytes per
        // 100 ms) is never cut off, however long the answer takes; one that trickles 8 bytes
        // per 20 ms is, although it never stops.
        let (ok, slow) = tokio::join!(
            write_to_reader(64, Duration::from_millis(20)),
            write_to_reader(8, Duration::from_millis(20))
        );
        ok.unwrap();
        assert_eq!(slow.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    /// Writes 4 KiB through a 64-byte pipe to a reader taking `chunk` bytes every `pause`.
    async fn write_to_reader(chunk: usize, pause: Duration) -> io::Result<()> {
        let (near, mut far) = tokio::io::duplex(64);
        let mut io = TimedIo::new(near, LIMITS.write, Arc::new(ConnState::new(1)));
        io.min_progress = 128;
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; chunk];
            loop {
                tokio::time::sleep(pause).await;
                if matches!(far.read(&mut buf).await, Ok(0) | Err(_)) {
                    return;
                }
            }
        });
        let written = io.write_all(&[7u8; 4096]).await;
        drop(io);
        let _ = reader.await;
        written
    }

    #[test]
    fn deadlines_follow_the_phase() {
        let conn = Arc::new(ConnState::new(0));
        let accepted = conn.phase().idle_since;
        // A new connection: the header timeout from accept.
        assert_eq!(conn.deadline(&LIMITS), Some(accepted + LIMITS.header));
        let busy = Busy::begin(conn.clone());
        assert_eq!(conn.deadline(&LIMITS), None);
        assert_eq!(conn.waiting_since(), None);
        drop(busy);
        // Kept alive: the idle timeout, then the header timeout from the first byte.
        let idle = conn.phase().idle_since;
        assert_eq!(conn.deadline(&LIMITS), Some(idle + LIMITS.idle));
        conn.on_read();
        let started = conn.phase().head_started.unwrap();
        assert_eq!(conn.deadline(&LIMITS), Some(started + LIMITS.header));
    }

    #[test]
    fn at_the_cap_the_longest_waiting_connection_makes_room() {
        let admitted = |a: Admission| match a {
            Admission::Admitted(c) => c,
            _ => panic!("not admitted"),
        };
        let registry = Registry::new(2);
        let first = admitted(registry.admit());
        std::thread::sleep(Duration::from_millis(5));
        let second = admitted(registry.admit());
        // At the cap: the longest-waiting one is told to close; nothing is admitted until it
        // has (and no second one is evicted meanwhile).
        assert!(matches!(registry.admit(), Admission::Evicting));
        assert!(first.evicted.load(Ordering::Acquire));
        assert!(matches!(registry.admit(), Admission::Evicting));
        assert!(!second.evicted.load(Ordering::Acquire));
        registry.remove(first.id);
        let third = admitted(registry.admit());
        assert_eq!(registry.lock().len(), 2);
        // When every open connection is busy, a newcomer is refused.
        let _b2 = Busy::begin(second.clone());
        let _b3 = Busy::begin(third.clone());
        assert!(matches!(registry.admit(), Admission::Full));
        registry.remove(third.id);
        assert!(matches!(registry.admit(), Admission::Admitted(_)));
    }
}
