//! Hostile connections: clients that never read their answers, one host that opens every
//! connection it can, and a path long enough to flood the logs. Each test performs the attack,
//! bounded in connections and time.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};

use crate::abuse::{CUT_WITHIN, HEALTH, read_health_answer, socket_addr};
use crate::helpers::*;

on_both_backends!(
    a_client_that_does_not_read_its_answers_is_cut_after_the_write_timeout,
    one_address_cannot_hold_more_than_its_share_of_connections,
    a_long_path_does_not_reach_the_logs_in_full,
);

/// A connection to `app` from `source` (another loopback address is another client to the
/// server: Linux routes all of 127.0.0.0/8 to the loopback device), with a receive buffer of
/// `recv_buffer` bytes if given.
async fn connect_from(app: &TestApp, source: [u8; 4], recv_buffer: Option<u32>) -> TcpStream {
    let server: SocketAddr = socket_addr(app).parse().expect("a socket address");
    let socket = TcpSocket::new_v4().expect("a socket");
    if let Some(bytes) = recv_buffer {
        socket
            .set_recv_buffer_size(bytes)
            .expect("a receive buffer");
    }
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    socket.connect(server).await.expect("connect")
}

/// Poll (bounded) until `/metrics` has the sample `line`: the server counts a closed connection
/// just after the client may see it closed.
async fn metrics_show(app: &TestApp, line: &str) -> bool {
    wxlink_tests::eventually(CUT_WITHIN, async || {
        let metrics = app.get("/metrics", None).await.body;
        metrics.lines().any(|l| l == line).then_some(())
    })
    .await
    .is_ok()
}

/// A client sends pipelined requests for the 47 KB OpenAPI document with a tiny receive window
/// and never reads: once the server's socket buffers are full, its writes make no progress,
/// and after `write_timeout_ms` (1 s here) the server closes the connection. The close is seen
/// as a reset (the server leaves requests unread), without the client reading anything.
async fn a_client_that_does_not_read_its_answers_is_cut_after_the_write_timeout(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        Options::default().server_toml("write_timeout_ms = 1000\nheader_read_timeout_ms = 60000\n"),
    )
    .await;
    let mut stream = connect_from(&app, [127, 0, 0, 3], Some(4096)).await;
    // 300 requests: their answers (14 MB) are far more than the kernel buffers on loopback hold
    // (up to 4 MB on the server's side), and their ~300 KB more than the server reads ahead
    // while it is stuck writing.
    let padding = "p".repeat(1000);
    let request = format!("GET /openapi.json HTTP/1.1\r\nhost: wxlink\r\nx-pad: {padding}\r\n\r\n");
    let requests = request.repeat(300);
    let attack = async {
        // A reset while the requests are still being sent is the cut too.
        if stream.write_all(requests.as_bytes()).await.is_err() {
            return;
        }
        // Then the start of one more request, a byte at a time: a byte that reaches a closed
        // socket is answered with a reset, which the client sees without reading.
        if stream
            .write_all(b"GET /healthz HTTP/1.1\r\nx-slow: ")
            .await
            .is_err()
        {
            return;
        }
        let mut pace = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = stream.ready(Interest::ERROR) => return,
                _ = pace.tick() => {
                    if stream.write_all(b"a").await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let cut = tokio::time::timeout(CUT_WITHIN, attack).await;
    assert!(
        cut.is_ok(),
        "a client that reads nothing still holds its connection after {CUT_WITHIN:?}"
    );
    assert!(
        metrics_show(
            &app,
            r#"wxlink_connections_closed_total{reason="write_timeout"} 1"#
        )
        .await,
        "the cut is counted as a write timeout"
    );
    // Others are served meanwhile.
    let mut other = connect_from(&app, [127, 0, 0, 2], None).await;
    other.write_all(HEALTH).await.expect("send a request");
    let answer = read_health_answer(&mut other).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// With `max_connections_per_ip = 3`, one address holds 3 idle keep-alive connections; its 4th
/// is closed without an answer while another address is served.
async fn one_address_cannot_hold_more_than_its_share_of_connections(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        Options::default()
            .server_toml("max_connections_per_ip = 3\nheader_read_timeout_ms = 60000\n")
            .extra_toml("[rate_limit]\nexempt_loopback = false\n"),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from(&app, [127, 0, 0, 3], None).await;
        stream.write_all(HEALTH).await.expect("send a request");
        let answer = read_health_answer(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(stream);
    }
    let mut fourth = connect_from(&app, [127, 0, 0, 3], None).await;
    // The server may close before the request is written.
    let _ = fourth.write_all(HEALTH).await;
    let mut answer = Vec::new();
    let outcome = tokio::time::timeout(CUT_WITHIN, fourth.read_to_end(&mut answer)).await;
    assert!(
        outcome.is_ok(),
        "the 4th connection of one address is still open after {CUT_WITHIN:?}"
    );
    assert!(
        answer.is_empty(),
        "the 4th connection of one address was answered: {}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        metrics_show(
            &app,
            r#"wxlink_connections_closed_total{reason="per_ip_cap"} 1"#
        )
        .await,
        "the refusal is counted"
    );
    let mut other = connect_from(&app, [127, 0, 0, 2], None).await;
    other.write_all(HEALTH).await.expect("send a request");
    let answer = read_health_answer(&mut other).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The held connections still work.
    held[0].write_all(HEALTH).await.expect("send a request");
    let answer = read_health_answer(&mut held[0]).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A 4 KB path reaches the request's log lines cut, not in full.
async fn a_long_path_does_not_reach_the_logs_in_full(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let path = format!("/{}", "x".repeat(4096));
    let reply = app.get(&path, None).await;
    assert_error(&reply, 404, "not_found", "a long unknown path");
    assert!(
        app.wait_for_stderr(&path[..200]).await,
        "the request was logged with the start of its path"
    );
    assert!(
        !app.stderr().contains(&path),
        "the whole 4 KB path reached the logs"
    );
}
