//! Slow and junk clients, bounded metrics labels and request ids, one limit for several nodes:
//! each test performs the attack, bounded in requests and time. (Rate limits behind proxies and
//! on every WeChat call need no process: `crates/api/tests/contract/proxies.rs` and
//! `errors/requests.rs`.)

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

on_both_backends!(
    slow_clients_are_cut_while_others_are_served,
    a_slow_body_gets_408_request_timeout,
    the_connection_cap_holds_new_clients_until_a_slot_frees,
    junk_methods_and_paths_do_not_grow_the_metrics_labels,
    unfit_request_ids_are_replaced,
);

/// How long a test waits for the server to close a connection it must close.
pub(crate) const CUT_WITHIN: Duration = Duration::from_secs(10);

pub(crate) fn socket_addr(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or resets it); `Err` when it is still open
/// after [`CUT_WITHIN`].
async fn until_closed(stream: &mut TcpStream) -> Result<(), String> {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(CUT_WITHIN, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .map_err(|_| format!("the connection is still open after {CUT_WITHIN:?}"))
}

/// Reads one `GET /healthz` answer off a keep-alive connection (its JSON body ends in `}`).
pub(crate) async fn read_health_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(CUT_WITHIN, async {
        while !answer.ends_with(b"}") {
            let n = stream.read(&mut buf).await.expect("read the answer");
            assert!(n > 0, "closed before answering");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("answered in time");
    String::from_utf8_lossy(&answer).into_owned()
}

pub(crate) const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: wxlink\r\n\r\n";

/// A normal client on a fresh connection (a pooled one may meet the server's idle timeout
/// just as it is reused, which is the client's race, not the server's refusal).
async fn healthz_on_a_new_connection(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(HEALTH).await.expect("send a request");
    read_health_answer(&mut stream).await
}

/// 50 clients dribble a header byte every 200 ms, past a 1 s header-read timeout; one more
/// idles on a keep-alive connection after its first answer. The server cuts them all, and
/// serves a normal client meanwhile.
async fn slow_clients_are_cut_while_others_are_served(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        Options::default().server_toml("header_read_timeout_ms = 1000\n"),
    )
    .await;
    let addr = socket_addr(&app);
    let mut dribblers = tokio::task::JoinSet::new();
    let (started_tx, mut started_rx) = tokio::sync::mpsc::channel::<()>(50);
    for _ in 0..50 {
        let addr = addr.clone();
        let started = started_tx.clone();
        dribblers.spawn(async move {
            let mut stream = TcpStream::connect(&addr).await.expect("connect");
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: wxlink\r\nx-slow: ")
                .await
                .expect("send the start of a request");
            let _ = started.send(()).await;
            let mut pace = tokio::time::interval(Duration::from_millis(200));
            let mut buf = [0u8; 1024];
            let outcome = tokio::time::timeout(CUT_WITHIN, async {
                loop {
                    tokio::select! {
                        read = stream.read(&mut buf) => match read {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        },
                        _ = pace.tick() => {
                            if stream.write_all(b"a").await.is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .await;
            outcome.map_err(|_| "a dribbling client still holds its connection".to_owned())
        });
    }
    drop(started_tx);
    for _ in 0..50 {
        started_rx.recv().await.expect("every dribbler started");
    }
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    idle.write_all(HEALTH).await.expect("send a request");
    assert!(
        read_health_answer(&mut idle)
            .await
            .starts_with("HTTP/1.1 200")
    );

    // A normal client is served while the slow ones hold their connections.
    for _ in 0..3 {
        assert!(
            healthz_on_a_new_connection(&addr)
                .await
                .starts_with("HTTP/1.1 200")
        );
    }
    while let Some(outcome) = dribblers.join_next().await {
        outcome
            .expect("the dribbler ran")
            .unwrap_or_else(|why| panic!("{why}"));
    }
    until_closed(&mut idle)
        .await
        .unwrap_or_else(|why| panic!("idle keep-alive connection: {why}"));
    assert!(
        healthz_on_a_new_connection(&addr)
            .await
            .starts_with("HTTP/1.1 200")
    );
}

/// A client that sends its headers and then dribbles the body past `request_timeout_ms` gets
/// 408 `request_timeout` in the contract's shape, and the connection ends.
async fn a_slow_body_gets_408_request_timeout(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        Options::default().server_toml(
            "request_timeout_ms = 1000
",
        ),
    )
    .await;
    let mut stream = TcpStream::connect(socket_addr(&app))
        .await
        .expect("connect");
    stream
        .write_all(
            b"POST /v1/wechat/login HTTP/1.1\r\nhost: wxlink\r\ncontent-type: application/json\r\n\
              content-length: 1000\r\n\r\n{",
        )
        .await
        .expect("send the headers");
    let mut pace = tokio::time::interval(Duration::from_millis(200));
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(CUT_WITHIN, async {
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                },
                _ = pace.tick() => {
                    // The server may stop reading once it has answered.
                    let _ = stream.write_all(b" ").await;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("a slow body held its request for {CUT_WITHIN:?}"));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert!(answer.contains(r#""request_id""#), "{answer}");
}

/// With `max_connections = 20`, 20 idle keep-alive connections leave the 21st client waiting
/// (in the kernel's backlog, unanswered); when one of them closes, the 21st is served.
///
/// Ordering, not a clock, tells served from waiting: the test client's pooled connection and 19
/// of ours fill the 20 slots (each answered before the next is opened); the 21st asks first,
/// then every held connection makes a round trip, and only then is the 21st's socket looked
/// at. A server without the cap would have answered it among those; a slow one only later.
async fn the_connection_cap_holds_new_clients_until_a_slot_frees(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        Options::default().server_toml("max_connections = 20\nheader_read_timeout_ms = 60000\n"),
    )
    .await;
    let addr = socket_addr(&app);
    // The test client keeps one idle keep-alive connection (its requests are one at a time):
    // the first slot.
    assert_eq!(app.get("/healthz", None).await.status, 200);
    let open_and_ask = async || {
        let mut stream = TcpStream::connect(&addr)
            .await
            .expect("the kernel's backlog takes the connection");
        stream.write_all(HEALTH).await.expect("send a request");
        stream
    };
    let mut held = Vec::new();
    for _ in 0..19 {
        let mut stream = open_and_ask().await;
        let answer = read_health_answer(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(stream);
    }
    let waiting = open_and_ask().await;
    for stream in &mut held {
        stream.write_all(HEALTH).await.expect("send a request");
        let again = read_health_answer(stream).await;
        assert!(again.starts_with("HTTP/1.1 200"), "{again}");
    }
    // Straight from the kernel: is any answer there yet?
    let waiting = waiting.into_std().expect("the socket");
    let mut buf = [0u8; 1];
    let unanswered = waiting
        .peek(&mut buf)
        .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock);
    assert!(
        unanswered,
        "the 21st connection was answered while 20 were open, with a cap of 20"
    );
    let mut waiting = TcpStream::from_std(waiting).expect("the socket");
    // A freed slot serves the waiting client.
    drop(held.pop());
    let answer = read_health_answer(&mut waiting).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// 300 requests with made-up methods and paths add no label values beyond the standard
/// methods, `other` and the routes' templates.
async fn junk_methods_and_paths_do_not_grow_the_metrics_labels(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let before = app.get("/metrics", None).await.body.len();
    for i in 0..300 {
        let method = Method::from_bytes(format!("JUNK{i}").as_bytes()).expect("a token");
        let path = if i % 2 == 0 {
            format!("/junk/{i}")
        } else {
            "/healthz".to_owned()
        };
        let reply = app.call(method, &path, None, None, None).await;
        assert!(reply.status >= 400, "a made-up method is refused");
    }
    let metrics = app.get("/metrics", None).await.body;
    let label = |line: &str, name: &str| {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        let end = line[start..].find('"')? + start;
        Some(line[start..end].to_owned())
    };
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("wxlink_http_requests_total{"))
        .collect();
    let methods: BTreeSet<String> = series.iter().filter_map(|l| label(l, "method")).collect();
    let routes: BTreeSet<String> = series.iter().filter_map(|l| label(l, "route")).collect();
    let standard = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other",
    ];
    assert!(
        methods.iter().all(|m| standard.contains(&m.as_str())),
        "method labels: {methods:?}"
    );
    assert!(methods.contains("other"), "method labels: {methods:?}");
    assert!(
        routes.iter().all(|r| !r.starts_with("/junk")),
        "route labels: {routes:?}"
    );
    assert!(routes.len() <= 4, "route labels: {routes:?}");
    let grown = metrics.len().saturating_sub(before);
    assert!(grown < 30_000, "/metrics grew by {grown} bytes");
}

/// A client's request id is kept only when it is a short plain token; otherwise the answer,
/// its error body and the log lines carry a generated one.
async fn unfit_request_ids_are_replaced(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let long = "a".repeat(65);
    let unfit: [&[u8]; 5] = [
        long.as_bytes(),
        b"id\"quote",
        b"tab\there",
        "unicod\u{e9}".as_bytes(),
        b"spaces and {json}",
    ];
    for id in unfit {
        let value = reqwest::header::HeaderValue::from_bytes(id).expect("a header value");
        let request = app
            .client
            .get(format!("{}/no-such-route", app.address))
            .header("x-request-id", value);
        let reply = send(request, "unfit request id").await;
        let echoed = reply
            .header("x-request-id")
            .expect("the answer has a request id")
            .to_owned();
        assert_ne!(echoed.as_bytes(), id, "an unfit id was kept");
        assert!(echoed.len() <= 64, "{echoed}");
        assert_eq!(
            reply.json()["error"]["request_id"],
            json!(echoed),
            "the error body names the generated id"
        );
    }
    let fit = "req-1.a_b:C";
    let request = app
        .client
        .get(format!("{}/no-such-route", app.address))
        .header("x-request-id", fit);
    let reply = send(request, "fit request id").await;
    assert_eq!(reply.header("x-request-id"), Some(fit));
    assert_eq!(reply.json()["error"]["request_id"], json!(fit));
    assert!(
        !app.stderr().contains(&long),
        "the long id reached the logs"
    );
}

/// Two nodes on one PostgreSQL: a client alternating between them meets one per-IP limit and
/// one per-app limit for the cluster, not one per node (which would admit twice as much).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_share_one_limit() {
    let Some(backend) = Backend::postgres("abuse::two_nodes_on_one_postgres_share_one_limit")
    else {
        return;
    };
    // Cluster caps per 60 s (burst + rate): 11 per IP, 5 WeChat calls per app.
    let mut app = TestApp::spawn(
        backend,
        Options::default().extra_toml(
            "[rate_limit]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
             per_ip_burst = 10\nper_ip_per_minute = 1\nper_app_burst = 4\nper_app_per_minute = 1\n",
        ),
    )
    .await;
    let nodes = [app.address.clone(), app.spawn_node().await];
    let attempt = |node: &str, client: &'static str, body: String| {
        let request = app
            .client
            .post(format!("{node}/v1/wechat/login"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", client)
            .body(body);
        send(request, "login on one of two nodes")
    };
    let mut admitted = 0;
    for i in 0..24 {
        let reply = attempt(&nodes[i % 2], "203.0.113.50", "{}".to_owned()).await;
        match reply.status {
            400 => admitted += 1,
            429 => {
                assert_error(&reply, 429, "rate_limited", "over the cluster's IP limit");
            }
            other => panic!("unexpected answer {other}: {}", reply.body),
        }
    }
    assert!(
        admitted <= 12,
        "{admitted} of 24 requests admitted across two nodes with a cluster cap of 11 per IP \
         (each node alone admits 11)"
    );
    for i in 0..12 {
        let client = if i % 2 == 0 {
            "198.51.100.60"
        } else {
            "198.51.100.61"
        };
        let body = json!({"appid": APP_B, "code": format!("never-issued-{i}")}).to_string();
        let reply = attempt(&nodes[i % 2], client, body).await;
        assert!(
            matches!(reply.status, 401 | 429),
            "a bogus code is invalid_code or refused: {} {}",
            reply.status,
            reply.body
        );
    }
    let calls = app.sim.code2session_calls();
    assert!(
        calls <= 6,
        "{calls} code2session calls across two nodes with a cluster cap of 5 per app \
         (each node alone makes 5)"
    );
}

/// Two nodes on one PostgreSQL and a flood of logins spread over both at once, far past half
/// the app's cap, where the nodes spend blocks of hits leased from the shared count: the
/// cluster makes at most the cap plus what the other node admitted from memory (at most half
/// the cap, docs/operations.md) in WeChat calls; each node alone would make 199.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_spread_over_two_nodes_gets_the_cap_and_a_bounded_slack() {
    let Some(backend) =
        Backend::postgres("abuse::a_flood_spread_over_two_nodes_gets_the_cap_and_a_bounded_slack")
    else {
        return;
    };
    // Cluster cap per 60 s: 200 WeChat calls per app. Loopback is exempt from the per-IP limit.
    let mut app = TestApp::spawn(
        backend,
        Options::default()
            .extra_toml("[rate_limit]\nper_app_burst = 199\nper_app_per_minute = 1\n"),
    )
    .await;
    let nodes = [app.address.clone(), app.spawn_node().await];
    let mut flood = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let node = nodes[worker % 2].clone();
        let client = app.client.clone();
        flood.spawn(async move {
            for i in 0..25 {
                let body = json!({"appid": APP_B, "code": format!("never-issued-{worker}-{i}")});
                let request = client
                    .post(format!("{node}/v1/wechat/login"))
                    .header("content-type", "application/json")
                    .body(body.to_string());
                let reply = send(request, "a login of the flood").await;
                assert!(
                    matches!(reply.status, 401 | 429),
                    "a bogus code is invalid_code or refused: {} {}",
                    reply.status,
                    reply.body
                );
            }
        });
    }
    flood.join_all().await;
    let calls = app.sim.code2session_calls();
    assert!(
        (100..=300).contains(&calls),
        "{calls} code2session calls for 400 logins spread over two nodes with a cluster cap of \
         200 per app (each node alone makes 199)"
    );
}
