//! The load generator: N workers on keep-alive HTTP/1.1 connections (hyper's client connection,
//! nothing pooled or shared between workers), a fixed request count, a hard time cap, and every
//! successful request's latency recorded for exact percentiles.
//!
//! Building a request (e.g. minting a fresh login code in the simulator) happens before its clock
//! starts; the latency is from sending the request to having read the whole answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::stats::{Latencies, LoadSummary};

/// One request to send.
#[derive(Debug, Clone)]
pub struct Req {
    /// GET or POST.
    pub method: Method,
    /// Origin-form target: path and query.
    pub path: String,
    /// JSON body (empty for GET).
    pub body: String,
}

impl Req {
    /// A GET.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            body: String::new(),
        }
    }

    /// A POST with a JSON body.
    pub fn post_json(path: impl Into<String>, body: String) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            body,
        }
    }
}

/// Makes request number `i` (untimed).
pub type MakeReq = dyn Fn(u64) -> Result<Req, String> + Send + Sync;
/// Checks an answer: Ok when it is what a successful request answers.
pub type CheckAnswer = fn(StatusCode, &[u8]) -> Result<(), String>;

/// How a load run is shaped.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Concurrent workers, one connection each.
    pub workers: usize,
    /// Requests in all.
    pub total: u64,
    /// The run stops starting requests after this long.
    pub time_cap: Duration,
    /// One request fails after this long.
    pub request_timeout: Duration,
}

/// What a run recorded.
#[derive(Debug)]
pub struct Outcome {
    /// Successful latencies.
    pub latencies: Latencies,
    /// Failed requests.
    pub errors: u64,
    /// First request sent to last answer read.
    pub elapsed: Duration,
    /// Whether the time cap stopped the run early.
    pub hit_time_cap: bool,
    /// A few error messages.
    pub first_errors: Vec<String>,
}

impl Outcome {
    /// The reported figures.
    pub fn summary(&self) -> LoadSummary {
        LoadSummary::new(
            &self.latencies,
            self.errors,
            self.elapsed,
            self.hit_time_cap,
            self.first_errors.clone(),
        )
    }
}

#[derive(Default)]
struct WorkerRecord {
    latencies: Vec<u64>,
    errors: u64,
    first_errors: Vec<String>,
}

impl WorkerRecord {
    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.first_errors.len() < 3 {
            self.first_errors.push(message);
        }
    }
}

/// Runs `shape.total` requests made by `make` against `addr` from `shape.workers` workers.
pub async fn run(
    addr: SocketAddr,
    shape: Shape,
    make: Arc<MakeReq>,
    check: CheckAnswer,
) -> Outcome {
    let next = Arc::new(AtomicU64::new(0));
    let capped = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + shape.time_cap;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..shape.workers.max(1) {
        let next = Arc::clone(&next);
        let capped = Arc::clone(&capped);
        let make = Arc::clone(&make);
        tasks.spawn(async move {
            let mut record = WorkerRecord::default();
            let mut conn: Option<SendRequest<String>> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= shape.total {
                    break;
                }
                if Instant::now() >= deadline {
                    capped.store(true, Ordering::Relaxed);
                    break;
                }
                let req = match make(i) {
                    Ok(req) => req,
                    Err(e) => {
                        record.error(format!("making request {i}: {e}"));
                        continue;
                    }
                };
                let sent = Instant::now();
                let answer =
                    tokio::time::timeout(shape.request_timeout, send(&mut conn, addr, &req)).await;
                let latency = sent.elapsed();
                match answer {
                    Ok(Ok((status, body))) => match check(status, &body) {
                        Ok(()) => record
                            .latencies
                            .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX)),
                        Err(e) => record.error(e),
                    },
                    Ok(Err(e)) => record.error(e),
                    Err(_) => {
                        conn = None;
                        record.error(format!("no answer within {:?}", shape.request_timeout));
                    }
                }
            }
            record
        });
    }
    let mut latencies = Vec::with_capacity(usize::try_from(shape.total).unwrap_or(0));
    let mut errors = 0;
    let mut first_errors = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(record) => {
                latencies.extend(record.latencies);
                errors += record.errors;
                for e in record.first_errors {
                    if first_errors.len() < 5 {
                        first_errors.push(e);
                    }
                }
            }
            Err(e) => {
                errors += 1;
                first_errors.push(format!("a worker failed: {e}"));
            }
        }
    }
    Outcome {
        latencies: Latencies::new(latencies),
        errors,
        elapsed: started.elapsed(),
        hit_time_cap: capped.load(Ordering::Relaxed),
        first_errors,
    }
}

/// Opens one HTTP/1.1 connection; its driver runs in a task that ends with the connection.
pub async fn connect(addr: SocketAddr) -> Result<SendRequest<String>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request on the worker's connection, (re)connecting when it is closed. A request
/// that fails on a reused connection before any answer (the server closed it while idle) is sent
/// once more on a new one.
pub async fn send(
    conn: &mut Option<SendRequest<String>>,
    addr: SocketAddr,
    req: &Req,
) -> Result<(StatusCode, Vec<u8>), String> {
    for attempt in 0..2 {
        let reused = match conn {
            Some(sender) if !sender.is_closed() => true,
            _ => {
                *conn = Some(connect(addr).await?);
                false
            }
        };
        let Some(sender) = conn.as_mut() else {
            return Err("no connection".to_owned());
        };
        if sender.ready().await.is_err() {
            *conn = None;
            if reused && attempt == 0 {
                continue;
            }
            return Err("connection closed before the request".to_owned());
        }
        let mut builder = Request::builder()
            .method(req.method.clone())
            .uri(req.path.as_str())
            .header(HOST, addr.to_string());
        if !req.body.is_empty() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(req.body.clone())
            .map_err(|e| format!("building the request: {e}"))?;
        match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                let close = response
                    .headers()
                    .get(CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                let body = read_body(response.into_body()).await;
                if close || body.is_err() {
                    *conn = None;
                }
                return Ok((status, body?));
            }
            Err(e) if reused && attempt == 0 && (e.is_canceled() || e.is_incomplete_message()) => {
                *conn = None;
            }
            Err(e) => {
                *conn = None;
                return Err(format!("request failed: {e}"));
            }
        }
    }
    Err("connection closed twice".to_owned())
}

/// Reads a whole answer body (at most 1 MiB).
async fn read_body(body: Incoming) -> Result<Vec<u8>, String> {
    const LIMIT: usize = 1 << 20;
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|e| format!("reading the answer: {e}"))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > LIMIT {
                return Err("answer larger than 1 MiB".to_owned());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// A login answer: 200 with a token.
pub fn check_login(status: StatusCode, body: &[u8]) -> Result<(), String> {
    if status != StatusCode::OK {
        return Err(format!(
            "login answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("login answer is not JSON: {e}"))?;
    match value.get("token").and_then(|t| t.as_str()) {
        Some(token) if token.len() >= 32 => Ok(()),
        _ => Err("login answer without a token".to_owned()),
    }
}

/// A code2Session answer: 200 with an openid and a session_key (and no errcode).
pub fn check_code2session(status: StatusCode, body: &[u8]) -> Result<(), String> {
    if status != StatusCode::OK {
        return Err(format!("code2Session answered {status}"));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("code2Session answer is not JSON: {e}"))?;
    if value.get("openid").is_some() && value.get("session_key").is_some() {
        Ok(())
    } else {
        Err(format!(
            "code2Session refused: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_answers_are_checked() {
        let good = br#"{"token":"0123456789abcdef0123456789abcdef0123456789a","user_id":"u"}"#;
        assert!(check_login(StatusCode::OK, good).is_ok());
        assert!(check_login(StatusCode::OK, br#"{"token":"short"}"#).is_err());
        assert!(check_login(StatusCode::OK, b"not json").is_err());
        assert!(check_login(StatusCode::UNAUTHORIZED, good).is_err());
    }

    #[test]
    fn code2session_answers_are_checked() {
        assert!(check_code2session(StatusCode::OK, br#"{"openid":"o","session_key":"k"}"#).is_ok());
        assert!(
            check_code2session(StatusCode::OK, br#"{"errcode":40163,"errmsg":"used"}"#).is_err()
        );
    }
}
