//! The time budget of one call.

use super::*;

#[tokio::test]
async fn slow_answer_beyond_the_budget_times_out() {
    let fake = FakeServer::always(
        Reply::text(r#"{"session_key":"k","openid":"o"}"#).delayed(Duration::from_secs(10)),
    )
    .await;
    let client = client_with(config(&fake.base_url).timeout(Duration::from_millis(300)));
    let started = Instant::now();
    let error = expect_error(&client).await;
    let elapsed = started.elapsed();
    assert!(matches!(error, Error::Timeout), "{error:?}");
    assert!(error.is_retryable());
    // The server answers after 10 s: a client without its budget would get the answer.
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert_eq!(fake.calls(), 1);
}

/// Serves raw HTTP over TCP: headers and the start of a body, then nothing for a long time.
async fn slow_body_server() -> (String, Arc<AtomicUsize>) {
    tcp_server(|mut stream| async move {
        let mut buf = [0_u8; 4096];
        let _ = stream.read(&mut buf).await;
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 60\r\n\r\n";
        let _ = stream.write_all(head.as_bytes()).await;
        // One byte every 200 ms: the body would take 12 s.
        for byte in br#"{"openid":"o","session_key":"k"}"#.iter().cycle().take(60) {
            if stream.write_all(&[*byte]).await.is_err() {
                return;
            }
            // The trickle is the behaviour under test, not synchronisation.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
}

#[tokio::test]
async fn slowly_trickling_body_times_out() {
    let (base_url, accepted) = slow_body_server().await;
    let client = client_with(config(&base_url).timeout(Duration::from_millis(500)));
    let error = expect_error(&client).await;
    // The body never ends: only the budget ends the call.
    assert!(matches!(error, Error::Timeout), "{error:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}
