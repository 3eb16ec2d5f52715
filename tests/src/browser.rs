//! A headless Chromium driven through the DevTools protocol, for tests of
//! the web console as an operator sees it.
//!
//! Chromium (Debian package `chromium`, installed by `deploy/test.sh`)
//! starts with `--remote-debugging-port=0` and writes the port it chose to
//! `DevToolsActivePort` in its profile directory; the test connects to the
//! browser's WebSocket, opens one page and evaluates expressions in it.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The browser binary: `$DMC_CHROMIUM`, else `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    std::env::var_os("DMC_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
}

impl Browser {
    /// Start the browser and open `url` in a page of `width`×`height`.
    pub fn open(url: &str, width: u32, height: u32) -> Result<Browser> {
        let profile = tempfile::tempdir()?;
        let child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} (apt-get install chromium)", chromium().display()))?;
        let endpoint = wait_endpoint(profile.path(), Duration::from_secs(60))?;
        let (ws, _) = tungstenite::connect(endpoint.as_str()).context("connecting to the browser's DevTools")?;
        let mut b = Browser {
            child,
            _profile: profile,
            ws,
            session: String::new(),
            next_id: 0,
        };
        let target = b.call_browser("Target.createTarget", json!({ "url": "about:blank" }))?;
        let target_id = target["targetId"]
            .as_str()
            .ok_or_else(|| anyhow!("no target id"))?
            .to_string();
        let attached = b.call_browser(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        )?;
        b.session = attached["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id"))?
            .to_string();
        b.call("Page.enable", json!({}))?;
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )?;
        b.call("Page.navigate", json!({ "url": url }))?;
        Ok(b)
    }

    fn send(&mut self, method: &str, params: Value, session: bool) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if session {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::text(msg.to_string()))?;
        loop {
            let m = self.ws.read().context("reading from the browser")?;
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str())?;
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    bail!("{method}: {e}");
                }
                return Ok(v["result"].clone());
            }
        }
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Result<Value> {
        self.send(method, params, false)
    }

    /// A DevTools command in the page.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.send(method, params, true)
    }

    /// The value of JavaScript `expr` in the page (promises awaited); an
    /// exception is an error.
    pub fn eval(&mut self, expr: &str) -> Result<Value> {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        )?;
        if let Some(ex) = r.get("exceptionDetails") {
            bail!("{expr}: {ex}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// Poll `expr` until it is truthy (its value), within `timeout`.
    pub fn wait_for(&mut self, expr: &str, timeout: Duration) -> Result<Value> {
        let start = Instant::now();
        loop {
            let v = self.eval(expr)?;
            let truthy = !matches!(v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return Ok(v);
            }
            if start.elapsed() > timeout {
                let body = self.eval("document.body ? document.body.innerText.slice(0, 2000) : ''")?;
                bail!("timed out after {timeout:?} waiting for {expr}; the page shows:\n{body}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A PNG of the page as it is now.
    pub fn screenshot(&mut self, path: &Path) -> Result<()> {
        use base64_decode::decode;
        let r = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        )?;
        let data = r["data"].as_str().ok_or_else(|| anyhow!("no screenshot data"))?;
        std::fs::write(path, decode(data)?).with_context(|| format!("writing {}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser's WebSocket address, once it wrote `DevToolsActivePort`.
fn wait_endpoint(profile: &Path, timeout: Duration) -> Result<String> {
    let file = profile.join("DevToolsActivePort");
    let start = Instant::now();
    loop {
        match std::fs::read_to_string(&file) {
            Ok(s) => {
                let mut lines = s.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    return Ok(format!("ws://127.0.0.1:{port}{path}"));
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        if start.elapsed() > timeout {
            bail!("the browser wrote no {} within {timeout:?}", file.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Standard base64 (what DevTools sends screenshots in).
mod base64_decode {
    use anyhow::{bail, Result};

    pub fn decode(s: &str) -> Result<Vec<u8>> {
        let val = |c: u8| -> Result<u32> {
            Ok(match c {
                b'A'..=b'Z' => u32::from(c - b'A'),
                b'a'..=b'z' => u32::from(c - b'a') + 26,
                b'0'..=b'9' => u32::from(c - b'0') + 52,
                b'+' => 62,
                b'/' => 63,
                _ => bail!("not base64: {:?}", char::from(c)),
            })
        };
        let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
        let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
        for chunk in bytes.chunks(4) {
            let mut acc = 0u32;
            for &c in chunk {
                acc = (acc << 6) | val(c)?;
            }
            let [_, b1, b2, b3] = (acc << (6 * (4 - chunk.len()))).to_be_bytes();
            out.extend_from_slice(&[b1, b2, b3][..chunk.len().saturating_sub(1)]);
        }
        Ok(out)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn decodes_with_and_without_padding() {
            assert_eq!(super::decode("aGVsbG8=").unwrap(), b"hello");
            assert_eq!(super::decode("aGVsbG8h").unwrap(), b"hello!");
            assert_eq!(super::decode("aGk=").unwrap(), b"hi");
            assert!(super::decode("a$").is_err());
        }
    }
}
