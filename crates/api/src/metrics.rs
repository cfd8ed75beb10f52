//! Prometheus metrics at `/metrics`: requests by route and status with latency histograms,
//! WeChat calls by endpoint and errcode, logins by outcome, and the database pool.

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock, PoisonError, RwLock};
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
    // A clone of the pattern's `Arc`, not of its text.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    RequestSeries::with(route, method, status, |series| {
        series.requests.increment(1);
        series.duration.record(elapsed);
    });
    response
}

/// An empty cache of series handles, once the recorder is installed: a handle resolved before
/// would record nowhere, for good.
fn with_recorder<T: Default>() -> T {
    handle();
    T::default()
}

/// The series one request updates, by route, method and status, resolved once each: resolving
/// a series by its labels builds and hashes its key (two labels of allocated strings) at every
/// request. Routes are the router's patterns, methods and statuses few: the set stays small,
/// as Prometheus's own series do.
struct RequestSeries {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

type SeriesByRoute = HashMap<Box<str>, Vec<((&'static str, u16), RequestSeries)>>;

impl RequestSeries {
    fn with(route: &str, method: &'static str, status: u16, update: impl FnOnce(&RequestSeries)) {
        static SERIES: LazyLock<RwLock<SeriesByRoute>> = LazyLock::new(with_recorder);
        let key = (method, status);
        {
            let known = SERIES.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, series)) = known
                .get(route)
                .and_then(|of_route| of_route.iter().find(|(k, _)| *k == key))
            {
                update(series);
                return;
            }
        }
        let mut known = SERIES.write().unwrap_or_else(PoisonError::into_inner);
        let of_route = known.entry(route.into()).or_default();
        let index = match of_route.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                let (route, status) = (route.to_owned(), status.to_string());
                of_route.push((
                    key,
                    RequestSeries {
                        requests: metrics::counter!("wxlink_http_requests_total", "route" => route.clone(), "method" => method, "status" => status),
                        duration: metrics::histogram!("wxlink_http_request_duration_seconds", "route" => route, "method" => method),
                    },
                ));
                of_route.len() - 1
            }
        };
        if let Some((_, series)) = of_route.get(index) {
            update(series);
        }
    }
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
    // Resolved once per outcome (see [`RequestSeries`]).
    static LOGINS: LazyLock<RwLock<HashMap<&'static str, metrics::Counter>>> =
        LazyLock::new(with_recorder);
    if let Some(counter) = LOGINS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(outcome)
    {
        counter.increment(1);
        return;
    }
    LOGINS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(outcome)
        .or_insert_with(|| metrics::counter!("wxlink_logins_total", "outcome" => outcome))
        .increment(1);
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
