//! Prometheus metrics at `/metrics`: requests by route and status with latency histograms,
//! WeChat calls by endpoint and errcode, logins by outcome, and the database pool.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use wxlink_wechat_client::Error as ClientError;

/// Latency buckets in seconds: logins take milliseconds locally and up to the WeChat timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder (metrics are global by nature); installed once.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (an embedding application's): render ours alone.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

/// Counts and times every request by its route pattern (never the raw path: ids would explode
/// the label set).
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("wxlink_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("wxlink_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label: a client may send any token as a method, and each new label value is
/// a new series kept for the life of the process.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Count one call to WeChat by endpoint and outcome (`0`, WeChat's errcode, or the kind of
/// failure when there was no errcode).
pub fn wechat_call<T>(endpoint: &'static str, result: &Result<T, ClientError>) {
    let errcode = match result {
        Ok(_) => "0".to_owned(),
        Err(e) => match e.errcode() {
            Some(code) => code.to_string(),
            None => match e {
                ClientError::Timeout => "timeout".to_owned(),
                ClientError::Transport(_) => "transport".to_owned(),
                ClientError::Http { status, .. } => format!("http_{status}"),
                ClientError::NotJson { .. } => "not_json".to_owned(),
                _ => "unexpected".to_owned(),
            },
        },
    };
    metrics::counter!("wxlink_wechat_calls_total", "endpoint" => endpoint, "errcode" => errcode)
        .increment(1);
}

/// Count one login by outcome: `new`, `provisional`, `linked`, `merged`, `returning`, or
/// `refused`.
pub fn login(outcome: &'static str) {
    metrics::counter!("wxlink_logins_total", "outcome" => outcome).increment(1);
}

/// Count one client connection that wxlink closed for what the client did: `per_ip_cap` (its
/// address held its share of connections) or `write_timeout` (it did not read its answers).
pub fn connection_closed(reason: &'static str) {
    metrics::counter!("wxlink_connections_closed_total", "reason" => reason).increment(1);
}

/// The pool gauges, set at scrape time.
pub fn pool(connections: u32, idle: u32, max: u32) {
    metrics::gauge!("wxlink_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("wxlink_db_pool_connections", "state" => "in_use")
        .set(f64::from(connections.saturating_sub(idle)));
    metrics::gauge!("wxlink_db_pool_max_connections").set(f64::from(max));
}
