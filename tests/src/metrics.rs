//! A process's Prometheus endpoint (`--metrics ADDR`) as a status query:
//! what a test waits on or checks when no `smapp` listing shows it (a
//! refused connection, tracks a primary node sent, side copies).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A free TCP port on loopback, for a `--metrics` address.
pub fn free_tcp_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The exposition text the endpoint at `addr` serves now.
pub fn scrape(addr: SocketAddr) -> Result<String> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("metrics at {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// The value of `metric` in exposition `text`, summed over its label sets;
/// 0 when absent (a counter nothing has incremented yet is not exported).
pub fn value_in(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(metric)?;
            // The whole name, not a longer one it prefixes.
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                return None;
            }
            rest.split_whitespace().last()?.parse::<f64>().ok()
        })
        .sum()
}

/// The value of `metric` at the endpoint `addr` now.
pub fn value(addr: SocketAddr, metric: &str) -> Result<f64> {
    Ok(value_in(&scrape(addr)?, metric))
}

/// Wait until `metric` at `addr` is at least `at_least`; returns its value.
/// A poll of the endpoint with an overall deadline, never a sleep that hopes.
pub fn wait_at_least(addr: SocketAddr, metric: &str, at_least: f64, timeout: Duration) -> Result<f64> {
    let start = Instant::now();
    loop {
        let v = value(addr, metric).unwrap_or(0.0);
        if v >= at_least {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("{metric} at {addr} is {v} after {timeout:?}, expected at least {at_least}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE dmc_a_total counter\n\
        dmc_a_total 3\n\
        dmc_a_total_more 100\n\
        dmc_gauge{drive=\"drive0\"} 1.5\n\
        dmc_gauge{drive=\"drive1\"} 2\n";

    #[test]
    fn values_are_read_by_whole_name_and_summed_over_labels() {
        assert_eq!(value_in(TEXT, "dmc_a_total"), 3.0);
        assert_eq!(value_in(TEXT, "dmc_a_total_more"), 100.0);
        assert_eq!(value_in(TEXT, "dmc_gauge"), 3.5);
        assert_eq!(value_in(TEXT, "dmc_absent_total"), 0.0);
        assert_eq!(value_in(TEXT, "dmc_a"), 0.0);
    }
}
