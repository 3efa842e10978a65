//! A fault-injecting TCP proxy for the fault suite: it forwards every connection it accepts to
//! one upstream address and, as told by its [`Faults`], delays the data (latency), resets the
//! connection that carries the byte crossing every `reset_every` bytes (both directions count;
//! the data up to the crossing is forwarded, then both sockets are closed with an RST), and stops
//! forwarding on every connection for `stall_for` each time the traffic crosses another
//! `stall_every` bytes. It counts what it injected, so a test can report and assert the figures.
//!
//! The proxy runs on its own small runtime, so a test that blocks its own threads (waiting for a
//! child process) never starves it. It stops when dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Largest chunk read from a socket at once.
const CHUNK: usize = 16 * 1024;

/// What the proxy does to the traffic; the default forwards it untouched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Added to every chunk, in each direction (order kept, throughput not limited).
    pub latency: Duration,
    /// Reset the connection carrying the traffic across every multiple of this many bytes.
    pub reset_every: Option<u64>,
    /// Stall every connection for [`Self::stall_for`] each time the traffic crosses another
    /// multiple of this many bytes.
    pub stall_every: Option<u64>,
    /// How long a stall lasts.
    pub stall_for: Duration,
    /// Reset the connection carrying a chunk that contains these bytes (a request line such as
    /// `POST /bucket?delete`), before forwarding it.
    pub reset_on: Option<Vec<u8>>,
    /// Inject at most this many faults (resets and stalls) from when these faults are set, so
    /// a run always ends.
    pub budget: Option<u64>,
}

/// Counters of what went through the proxy and what it injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub connections: u64,
    pub bytes: u64,
    pub resets: u64,
    pub stalls: u64,
}

impl ProxyStats {
    /// Resets plus stalls.
    pub fn faults(&self) -> u64 {
        self.resets + self.stalls
    }
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    faults: Mutex<Faults>,
    /// Bytes forwarded (both directions) since the faults were last set: the thresholds count
    /// from here.
    counted: AtomicU64,
    /// Faults injected before the faults were last set: the budget counts from here.
    budget_base: AtomicU64,
    stalled_until: Mutex<Option<Instant>>,
    connections: AtomicU64,
    bytes: AtomicU64,
    resets: AtomicU64,
    stalls: AtomicU64,
}

/// What forwarding one chunk led to.
enum Verdict {
    /// Forward all of it.
    Forward,
    /// Forward the first `n` bytes, then reset the connection.
    ResetAfter(usize),
}

impl Shared {
    fn lock_faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn injected(&self) -> u64 {
        self.resets.load(Ordering::Relaxed) + self.stalls.load(Ordering::Relaxed)
    }

    fn within_budget(&self, f: &Faults) -> bool {
        f.budget
            .is_none_or(|b| self.injected() - self.budget_base.load(Ordering::Relaxed) < b)
    }

    /// Counts the bytes of `chunk`, about to be forwarded, and decides the faults they trigger.
    fn account(&self, chunk: &[u8]) -> Verdict {
        let len = chunk.len();
        let f = self.lock_faults();
        if let Some(pattern) = f.reset_on.as_deref().filter(|p| !p.is_empty()) {
            if chunk.windows(pattern.len()).any(|w| w == pattern) && self.within_budget(&f) {
                self.resets.fetch_add(1, Ordering::Relaxed);
                eprintln!("fault proxy to {}: reset on a chunk", self.upstream);
                return Verdict::ResetAfter(0);
            }
        }
        let before = self.counted.fetch_add(len as u64, Ordering::Relaxed);
        let after = before + len as u64;
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        if let Some(n) = f.stall_every.filter(|n| *n > 0) {
            if before / n != after / n && self.within_budget(&f) {
                self.stalls.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "fault proxy to {}: stall after {after} bytes",
                    self.upstream
                );
                self.stall_for(f.stall_for);
            }
        }
        if let Some(n) = f.reset_every.filter(|n| *n > 0) {
            if before / n != after / n && self.within_budget(&f) {
                self.resets.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "fault proxy to {}: reset after {after} bytes",
                    self.upstream
                );
                let room = (n - before % n) as usize;
                return Verdict::ResetAfter(room.min(len));
            }
        }
        Verdict::Forward
    }

    fn stall_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut s = self
            .stalled_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.is_none_or(|t| t < until) {
            *s = Some(until);
        }
    }

    /// Waits while a stall lasts.
    async fn wait_stall(&self) {
        loop {
            let until = *self
                .stalled_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => return,
            }
        }
    }
}

/// A running proxy on `127.0.0.1:port`.
#[derive(Debug)]
pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream` (which need not listen
    /// yet: each accepted connection connects to it then), with no faults.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy's loopback port");
        let port = listener.local_addr().expect("proxy address").port();
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .expect("proxy runtime");
        let shared = Arc::new(Shared {
            upstream,
            faults: Mutex::new(Faults::default()),
            counted: AtomicU64::new(0),
            budget_base: AtomicU64::new(0),
            stalled_until: Mutex::new(None),
            connections: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("proxy listener");
            while let Ok((client, _)) = listener.accept().await {
                s.connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(client, Arc::clone(&s)));
            }
        });
        FaultProxy {
            port,
            shared,
            runtime: Some(runtime),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Replaces the faults; the byte thresholds count from now.
    pub fn set_faults(&self, faults: Faults) {
        *self
            .shared
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = faults;
        self.shared.counted.store(0, Ordering::Relaxed);
        self.shared
            .budget_base
            .store(self.shared.injected(), Ordering::Relaxed);
    }

    /// Stops forwarding on every connection for `d` from now (counted as a stall).
    pub fn stall(&self, d: Duration) {
        self.shared.stalls.fetch_add(1, Ordering::Relaxed);
        self.shared.stall_for(d);
    }

    /// What went through and what was injected so far.
    pub fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        ProxyStats {
            connections: s.connections.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            resets: s.resets.load(Ordering::Relaxed),
            stalls: s.stalls.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// How one direction of a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The sender closed its side; the close was passed on.
    Closed,
    /// The proxy reset the connection, or a socket failed: tear the connection down with RSTs.
    Reset,
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    let mut upstream = match TcpStream::connect(shared.upstream).await {
        Ok(u) => u,
        Err(_) => {
            // Upstream down (a killed broker): the client sees a reset, as it would without
            // the proxy.
            let _ = client.set_zero_linger();
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let reset = {
        let (mut cr, mut cw) = client.split();
        let (mut ur, mut uw) = upstream.split();
        let up = forward(&mut cr, &mut uw, &shared);
        let down = forward(&mut ur, &mut cw, &shared);
        tokio::pin!(up, down);
        let (first, up_first) = tokio::select! {
            e = &mut up => (e, true),
            e = &mut down => (e, false),
        };
        // A normal close of one direction leaves the other open (half-close) until it ends.
        first == End::Reset || (if up_first { down.await } else { up.await }) == End::Reset
    };
    if reset {
        // Closing a socket with a zero linger time sends an RST instead of a FIN.
        let _ = client.set_zero_linger();
        let _ = upstream.set_zero_linger();
    }
}

/// Forwards one direction until it closes (the close is passed on) or is reset.
async fn forward<R, W>(from: &mut R, to: &mut W, shared: &Shared) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Chunks travel with the time they may leave; `None` marks a failed read.
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<(Instant, Vec<u8>)>>();
    let read = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    let due = Instant::now() + shared.lock_faults().latency;
                    if tx.send(Some((due, buf[..n].to_vec()))).is_err() {
                        break;
                    }
                }
                Err(_) => {
                    let _ = tx.send(None);
                    break;
                }
            }
        }
        drop(tx);
        std::future::pending::<()>().await;
    };
    let write = async {
        while let Some(item) = rx.recv().await {
            let Some((due, data)) = item else {
                return End::Reset;
            };
            tokio::time::sleep_until(due.into()).await;
            // Count first: the chunk that sets a stall off waits for it too.
            let verdict = shared.account(&data);
            shared.wait_stall().await;
            match verdict {
                Verdict::Forward => {
                    if to.write_all(&data).await.is_err() {
                        return End::Reset;
                    }
                }
                Verdict::ResetAfter(n) => {
                    let _ = to.write_all(&data[..n]).await;
                    return End::Reset;
                }
            }
        }
        let _ = to.shutdown().await;
        End::Closed
    };
    tokio::select! {
        e = write => e,
        () = read => End::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read, Write};

    /// An upstream that echoes everything back, on its own thread per connection.
    fn echo_server() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// An upstream that streams bytes to every client until it goes away.
    fn firehose() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || while s.write_all(&[7u8; 1024]).is_ok() {});
            }
        });
        addr
    }

    fn connect(p: &FaultProxy) -> std::net::TcpStream {
        let s = std::net::TcpStream::connect(p.addr()).expect("connect to the proxy");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s
    }

    /// Reads until the stream fails or ends: (bytes read, the error kind if it failed).
    fn drain(s: &mut std::net::TcpStream) -> (u64, Option<ErrorKind>) {
        let mut total = 0;
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (total, None),
                Ok(n) => total += n as u64,
                Err(e) => return (total, Some(e.kind())),
            }
        }
    }

    #[test]
    fn a_reset_every_n_kib_really_resets_the_connection() {
        let proxy = FaultProxy::start(firehose());
        proxy.set_faults(Faults {
            reset_every: Some(64 * 1024),
            ..Faults::default()
        });
        let mut first = connect(&proxy);
        let (read, err) = drain(&mut first);
        assert_eq!(err, Some(ErrorKind::ConnectionReset), "after {read} bytes");
        assert!(
            read <= 64 * 1024 && read > 32 * 1024,
            "the reset came at the threshold: {read} bytes"
        );
        assert_eq!(proxy.stats().resets, 1);
        // The proxy keeps serving: the next connection is reset at the next threshold.
        let mut second = connect(&proxy);
        let (read, err) = drain(&mut second);
        assert_eq!(err, Some(ErrorKind::ConnectionReset), "after {read} bytes");
        assert!(read <= 64 * 1024, "{read}");
        assert_eq!(proxy.stats().resets, 2);
        assert_eq!(proxy.stats().connections, 2);
    }

    #[test]
    fn a_stall_really_stops_forwarding_then_resumes() {
        let proxy = FaultProxy::start(echo_server());
        let mut s = connect(&proxy);
        let ping = |s: &mut std::net::TcpStream, msg: &[u8]| {
            let started = Instant::now();
            s.write_all(msg).expect("write");
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).expect("read the echo");
            assert_eq!(back, msg);
            started.elapsed()
        };
        assert!(ping(&mut s, b"warm") < Duration::from_millis(500));
        proxy.stall(Duration::from_millis(800));
        let stalled = ping(&mut s, b"stalled");
        assert!(stalled >= Duration::from_millis(750), "{stalled:?}");
        assert!(ping(&mut s, b"after") < Duration::from_millis(500));
        // A stall set off by the traffic: 2 KiB out and back crosses 3 KiB once.
        proxy.set_faults(Faults {
            stall_every: Some(3 * 1024),
            stall_for: Duration::from_millis(600),
            ..Faults::default()
        });
        let took = ping(&mut s, &[1u8; 2048]);
        assert!(took >= Duration::from_millis(550), "{took:?}");
        assert_eq!(proxy.stats().stalls, 2);
        assert_eq!(proxy.stats().resets, 0);
    }

    #[test]
    fn a_chunk_with_the_pattern_is_reset_before_it_is_forwarded() {
        let proxy = FaultProxy::start(echo_server());
        proxy.set_faults(Faults {
            reset_on: Some(b"?delete".to_vec()),
            budget: Some(1),
            ..Faults::default()
        });
        let mut s = connect(&proxy);
        s.write_all(b"GET /b/k").expect("write");
        let mut back = [0u8; 8];
        s.read_exact(&mut back).expect("an innocent request passes");
        s.write_all(b"POST /b?delete").expect("write");
        assert_eq!(drain(&mut s), (0, Some(ErrorKind::ConnectionReset)));
        // The budget is spent: the next one passes.
        let mut s = connect(&proxy);
        s.write_all(b"POST /b?delete").expect("write");
        let mut back = [0u8; 14];
        s.read_exact(&mut back).expect("read");
        assert_eq!(proxy.stats().resets, 1);
    }

    #[test]
    fn latency_delays_each_direction() {
        let proxy = FaultProxy::start(echo_server());
        proxy.set_faults(Faults {
            latency: Duration::from_millis(150),
            ..Faults::default()
        });
        let mut s = connect(&proxy);
        let started = Instant::now();
        s.write_all(b"hello").expect("write");
        let mut back = [0u8; 5];
        s.read_exact(&mut back).expect("read");
        assert_eq!(&back, b"hello");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(proxy.stats().faults(), 0);
    }
}
