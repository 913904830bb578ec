//! A `costshare serve` child and a small HTTP/1.1 client for the server's
//! tests (serve_api, serve_analysis): no HTTP crate, the bytes as sent.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

// ---------------------------------------------------------------- HTTP

/// An answer: status, headers (lowercased names) and body.
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): status {} {}", self.status, self.text()))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
    /// The error code of an error answer.
    pub fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or("").to_string()
    }
}

/// Source addresses for requests: 127.0.0.2, .3, … (the server slows an
/// address after five failed logins; each check of a refusal uses a fresh
/// one).
static NEXT_SRC: AtomicU8 = AtomicU8::new(2);

pub fn fresh_src() -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, NEXT_SRC.fetch_add(1, Ordering::SeqCst).max(2))
}

/// One HTTP/1.1 request on its own connection. The body is written from
/// another thread while the answer is read, so a server that answers 413
/// before reading the whole body is heard.
pub fn request(
    port: u16,
    src: Option<Ipv4Addr>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(ip) = src {
        sock.bind(&SocketAddr::from((ip, 0)).into()).unwrap();
    }
    sock.connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())
        .unwrap();
    let mut stream: TcpStream = sock.into();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut w = stream.try_clone().unwrap();
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(head.as_bytes());
        let _ = w.write_all(&body);
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => break, // a reset after the answer: keep what came
        }
    }
    let _ = writer.join();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer to {method} {path}: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Resp { status, head, body }
}

pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}

// ---------------------------------------------------------------- serve

/// A `costshare serve` child, killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(ledger: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_costshare"))
            .args(["serve", ledger, "--listen", "127.0.0.1:0", "--quiet"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on http://127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("first line of serve: {line:?}"));
        Server { child, port }
    }
    pub fn get(&self, token: &str, path: &str) -> Resp {
        request(self.port, None, "GET", path, &auth(token), b"")
    }
    pub fn post(&self, token: &str, path: &str, ct: &str, body: &[u8]) -> Resp {
        let mut h = auth(token);
        h.push(("Content-Type", ct));
        request(self.port, None, "POST", path, &h, body)
    }
    pub fn post_json(&self, token: &str, path: &str, v: &Value) -> Resp {
        self.post(token, path, "application/json", v.to_string().as_bytes())
    }
    pub fn head(&self, token: &str) -> String {
        let r = self.get(token, "/api/v1/whoami");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["journal"]["head"].as_str().unwrap().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn auth(token: &str) -> Vec<(&'static str, &str)> {
    if token.is_empty() {
        vec![]
    } else {
        vec![("Authorization", leak(format!("Bearer {token}")))]
    }
}

pub fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}
