//! A throttling HTTP front for S3 tests: it forwards every request to an S3 server on loopback
//! and, as told by its [`Throttle`], answers some of them itself with `503 Slow Down` and an
//! S3 `SlowDown` error body, as S3 does when a prefix receives more requests than it can take.
//! A throttled request's body is read to its end first, so the client gets the answer, not a
//! reset. It counts what it answered, per request, so a test can assert that every throttled
//! request was sent again and got through.
//!
//! A request is told apart from another by its method and its path with query (`PUT
//! /bucket/key?partNumber=2&uploadId=…`): a retry is the same request again.
//!
//! The front runs on its own small runtime, so a test that blocks its threads (waiting for a
//! child process) never starves it. It stops when dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// What the front answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// Forward everything.
    Off,
    /// Answer `503 SlowDown` to the first `times` attempts of every `every`-th request
    /// (counting distinct requests), then forward its next attempt.
    EveryNth { every: u64, times: u32 },
    /// Answer `503 SlowDown` to every request: throttling that never stops.
    Always,
}

/// What went through the front.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlowDownStats {
    /// Requests received, attempts counted one by one.
    pub requests: u64,
    /// Answered `503 SlowDown`.
    pub throttled: u64,
    /// Forwarded to the server.
    pub forwarded: u64,
    /// Distinct requests throttled at least once.
    pub throttled_requests: u64,
    /// Of those, how many were sent again until one attempt was forwarded.
    pub recovered_requests: u64,
}

#[derive(Debug, Default)]
struct State {
    throttle: Option<Throttle>,
    /// Distinct requests seen (for `EveryNth`).
    distinct: u64,
    /// Per request: attempts throttled, and whether one was forwarded since.
    seen: HashMap<String, (u32, bool)>,
    stats: SlowDownStats,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        }
    }

    /// Whether to answer this attempt with `503 SlowDown` (and counts it either way).
    fn throttles(&self, key: String) -> bool {
        let mut guard = self.state();
        let s = &mut *guard;
        s.stats.requests += 1;
        let throttle = s.throttle.unwrap_or(Throttle::Off);
        let known = s.seen.get(&key).copied();
        let answer = match (throttle, known) {
            (Throttle::Off, _) => false,
            (Throttle::Always, _) => true,
            (Throttle::EveryNth { times, .. }, Some((n, _))) => n > 0 && n < times,
            (Throttle::EveryNth { every, times }, None) => {
                s.distinct += 1;
                times > 0 && s.distinct.is_multiple_of(every.max(1))
            }
        };
        let entry = s.seen.entry(key).or_insert((0, false));
        if answer {
            if entry.0 == 0 {
                s.stats.throttled_requests += 1;
            }
            entry.0 += 1;
            s.stats.throttled += 1;
        } else {
            let recovered = entry.0 > 0 && !entry.1;
            entry.1 = true;
            s.stats.forwarded += 1;
            if recovered {
                s.stats.recovered_requests += 1;
            }
        }
        answer
    }
}

/// A throttling front on a free loopback port, forwarding to `upstream`.
#[derive(Debug)]
pub struct SlowDown {
    pub port: u16,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl SlowDown {
    /// Starts the front, forwarding everything until [`SlowDown::set`] says otherwise.
    pub fn start(upstream: SocketAddr) -> SlowDown {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("slowdown-front")
            .enable_all()
            .build()
            .expect("the front's runtime");
        // Bound here (a test may call this from inside its own runtime), served there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the front");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let port = listener.local_addr().expect("the front's address").port();
        let shared = Arc::new(Shared {
            upstream,
            state: Mutex::new(State::default()),
        });
        let serving = Arc::clone(&shared);
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("the front's listener");
            accept(listener, serving).await;
        });
        SlowDown {
            port,
            shared,
            runtime: Some(runtime),
        }
    }

    /// Throttles from now on as `throttle` says (requests seen before count as new again).
    pub fn set(&self, throttle: Throttle) {
        let mut s = self.shared.state();
        s.throttle = Some(throttle);
        s.distinct = 0;
        s.seen.clear();
    }

    /// What went through the front so far.
    pub fn stats(&self) -> SlowDownStats {
        self.shared.state().stats
    }
}

impl Drop for SlowDown {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            // One upstream connection per client connection, opened on its first forward.
            let upstream = Arc::new(tokio::sync::Mutex::new(None::<SendRequest<Incoming>>));
            let service = hyper::service::service_fn(move |request| {
                serve(Arc::clone(&shared), Arc::clone(&upstream), request)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

async fn serve(
    shared: Arc<Shared>,
    upstream: Arc<tokio::sync::Mutex<Option<SendRequest<Incoming>>>>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let key = format!(
        "{} {}",
        request.method(),
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    if shared.throttles(key) {
        // Read the body to its end, so the client reads the answer instead of a reset.
        let _ = request.into_body().collect().await;
        return Ok(slow_down());
    }
    let mut sender = upstream.lock().await;
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        match connect(shared.upstream).await {
            Ok(s) => *sender = Some(s),
            Err(e) => return Ok(bad_gateway(&e)),
        }
    }
    let Some(s) = sender.as_mut() else {
        return Ok(bad_gateway(&"no upstream connection"));
    };
    match s.send_request(request).await {
        Ok(response) => Ok(response.map(|b| b.boxed())),
        Err(e) => {
            *sender = None;
            Ok(bad_gateway(&e))
        }
    }
}

async fn connect(upstream: SocketAddr) -> Result<SendRequest<Incoming>, String> {
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn full(text: String) -> Body {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}

/// S3's answer to a prefix that receives too many requests.
fn slow_down() -> Response<Body> {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                <Message>Please reduce your request rate.</Message>\
                <RequestId>tidemark-test-front</RequestId></Error>"
        .to_string();
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
        .headers_mut()
        .insert("content-type", "application/xml".parse().expect("header"));
    response
}

fn bad_gateway(e: &dyn std::fmt::Display) -> Response<Body> {
    let mut response = Response::new(full(format!("the front cannot reach the server: {e}")));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}
