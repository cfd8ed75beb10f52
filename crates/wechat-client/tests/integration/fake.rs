//! The fake WeChat: answers from a queue, then a default; records every request's path and
//! query.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

#[derive(Clone)]
pub(crate) struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    delay: Duration,
}

impl Reply {
    pub(crate) fn text(body: &str) -> Self {
        Self {
            status: 200,
            content_type: "text/plain",
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub(crate) fn with_content_type(mut self, content_type: &'static str) -> Self {
        self.content_type = content_type;
        self
    }

    pub(crate) fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub(crate) fn errcode(errcode: i64, errmsg: &str) -> Self {
        Self::text(&format!(r#"{{"errcode":{errcode},"errmsg":"{errmsg}"}}"#))
    }
}

struct Fake {
    queue: Mutex<VecDeque<Reply>>,
    default: Reply,
    calls: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
}

/// A request as the fake saw it.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) method: Method,
    /// Path and query.
    pub(crate) uri: String,
    pub(crate) content_type: Option<String>,
    pub(crate) body: String,
}

impl Recorded {
    pub(crate) fn path(&self) -> &str {
        self.uri
            .split_once('?')
            .map_or(self.uri.as_str(), |(path, _)| path)
    }

    pub(crate) fn query(&self) -> Vec<(String, String)> {
        let query = self.uri.split_once('?').map_or("", |(_, query)| query);
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

pub(crate) struct FakeServer {
    pub(crate) base_url: String,
    state: Arc<Fake>,
}

impl FakeServer {
    pub(crate) async fn start(queue: Vec<Reply>, default: Reply) -> Self {
        let state = Arc::new(Fake {
            queue: Mutex::new(queue.into()),
            default,
            calls: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url: format!("http://{addr}"),
            state,
        }
    }

    pub(crate) async fn always(reply: Reply) -> Self {
        Self::start(Vec::new(), reply).await
    }

    pub(crate) fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn requests(&self) -> Vec<String> {
        self.recorded().into_iter().map(|r| r.uri).collect()
    }

    pub(crate) fn recorded(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }
}

async fn answer(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    request_body: Bytes,
) -> Response {
    fake.calls.fetch_add(1, Ordering::SeqCst);
    let request_body = String::from_utf8_lossy(&request_body).into_owned();
    fake.requests.lock().expect("lock").push(Recorded {
        method,
        uri: uri.to_string(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: request_body.clone(),
    });
    let reply = fake
        .queue
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or_else(|| fake.default.clone());
    // A slow WeChat, as the test asked for: the delay is what the client's budget is tested
    // against, not synchronisation.
    tokio::time::sleep(reply.delay).await;
    // Echo the request into error pages, as some proxies do, to prove bodies are redacted.
    let body = reply
        .body
        .replace("{uri}", &uri.to_string())
        .replace("{body}", &request_body);
    (
        StatusCode::from_u16(reply.status).expect("status"),
        [(header::CONTENT_TYPE, reply.content_type)],
        body,
    )
        .into_response()
}
