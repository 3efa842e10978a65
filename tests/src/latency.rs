//! Injected network round-trip latency for the benchmarks: on loopback every Kafka request
//! costs microseconds, which hides what sending requests concurrently buys on a real cluster.
//!
//! `BENCH_RTT_MS=N` (a number of milliseconds, fractions allowed; unset or 0: none) makes
//! [`Tansu::start`](crate::Tansu::start) put a [`FaultProxy`] in latency mode in front of the
//! broker, delaying each direction by N/2 ms, and has the broker advertise the proxy's address,
//! so every connection a client makes after bootstrapping goes through it too. Nothing else
//! changes: a benchmark that starts its broker with `Tansu::start` runs at that latency without
//! a change of its own. The proxy runs on its own thread in the benchmark's process; its CPU is
//! not counted as the broker's or the worker's.
//!
//! (A network namespace with `tc ... netem delay` would do the same in the kernel; where the
//! kernel has no netem qdisc, as on the machine these figures were first taken on, the proxy is
//! the portable way.)

use std::time::Duration;

use crate::proxy::{FaultProxy, Faults};

/// The environment variable holding the injected round trip, in milliseconds.
pub const ENV_RTT: &str = "BENCH_RTT_MS";

/// The round trip `BENCH_RTT_MS` asks for; `None` when unset, empty or zero.
///
/// # Panics
/// When the value is not a non-negative number of milliseconds (a benchmark must not silently
/// run at another latency than the one asked for).
pub fn rtt_from_env() -> Option<Duration> {
    let raw = std::env::var(ENV_RTT).ok()?;
    parse_rtt(&raw).unwrap_or_else(|e| panic!("{ENV_RTT}={raw:?}: {e}"))
}

fn parse_rtt(raw: &str) -> Result<Option<Duration>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let ms: f64 = raw
        .parse()
        .map_err(|_| "not a number of milliseconds".to_string())?;
    if !ms.is_finite() || ms < 0.0 {
        return Err("must be a non-negative number of milliseconds".into());
    }
    Ok((ms > 0.0).then(|| Duration::from_secs_f64(ms / 1000.0)))
}

/// One line naming the latency the benchmark runs at, for its output.
pub fn describe(rtt: Option<Duration>) -> String {
    match rtt {
        Some(rtt) => format!(
            "injected round trip to the broker: {:.1} ms (latency proxy, {:.2} ms each way; {ENV_RTT})",
            rtt.as_secs_f64() * 1000.0,
            rtt.as_secs_f64() * 500.0
        ),
        None => format!("injected round trip to the broker: none (loopback; set {ENV_RTT})"),
    }
}

/// Starts a proxy delaying each direction by half of `rtt`, forwarding to `127.0.0.1:upstream`
/// (which need not listen yet).
pub fn latency_proxy(upstream: u16, rtt: Duration) -> FaultProxy {
    let proxy = FaultProxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], upstream)));
    proxy.set_faults(Faults {
        latency: rtt / 2,
        ..Faults::default()
    });
    proxy
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    #[test]
    fn the_round_trip_is_read_in_milliseconds() {
        assert_eq!(parse_rtt(""), Ok(None));
        assert_eq!(parse_rtt("0"), Ok(None));
        assert_eq!(parse_rtt("2"), Ok(Some(Duration::from_millis(2))));
        assert_eq!(parse_rtt(" 0.5 "), Ok(Some(Duration::from_micros(500))));
        assert!(parse_rtt("2ms").is_err());
        assert!(parse_rtt("-1").is_err());
    }

    #[test]
    fn a_request_through_the_proxy_takes_the_round_trip() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = server.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let (mut s, _) = server.accept().expect("accept");
            let mut buf = [0u8; 4];
            while s.read_exact(&mut buf).is_ok() {
                if s.write_all(&buf).is_err() {
                    return;
                }
            }
        });
        let proxy = latency_proxy(port, Duration::from_millis(40));
        let mut s = std::net::TcpStream::connect(proxy.addr()).expect("connect");
        for _ in 0..3 {
            let started = Instant::now();
            s.write_all(b"ping").expect("write");
            let mut back = [0u8; 4];
            s.read_exact(&mut back).expect("read");
            assert_eq!(&back, b"ping");
            let took = started.elapsed();
            assert!(
                took >= Duration::from_millis(40) && took < Duration::from_millis(400),
                "{took:?}"
            );
        }
    }
}
