//! Rate limits behind a trusted proxy: the client is the address the proxy forwards, and
//! nothing a client writes into `x-forwarded-for` makes it another client or the exempt proxy.
//! Every request comes from the loopback proxy (the router sees 127.0.0.1).

use axum::http::{HeaderValue, Method};

use crate::helpers::{Backend, Options, Reply, TestApp, assert_error};

on_both_backends!(
    a_trusted_proxy_forwards_the_client_and_spoofing_does_not_help,
    a_junk_forwarded_header_does_not_make_a_client_the_exempt_proxy,
);

/// An empty login, refused as `invalid_request` unless the client is over its limit.
async fn login_through_the_proxy(app: &TestApp, headers: &[(&str, HeaderValue)]) -> Reply {
    app.call_with_headers(
        Method::POST,
        "/v1/wechat/login",
        headers,
        Some("application/json"),
        Some(b"{}".to_vec()),
    )
    .await
}

/// wxlink behind a trusted loopback proxy, with a burst of 2 per client address.
async fn behind_a_loopback_proxy(backend: Backend) -> TestApp {
    TestApp::spawn(
        backend,
        Options::default().extra_toml(
            "[rate_limit]\ntrusted_proxies = [\"127.0.0.1/32\"]\nper_ip_burst = 2\nper_ip_per_minute = 1\n",
        ),
    )
    .await
}

/// Behind a trusted loopback proxy the client is the right-most forwarded address: entries the
/// client adds on the left change nothing, and neither a forwarded loopback address nor a
/// request without the header is exempt.
async fn a_trusted_proxy_forwards_the_client_and_spoofing_does_not_help(backend: Backend) {
    let app = behind_a_loopback_proxy(backend).await;
    let app = &app;
    let attempt = |forwarded: Option<&'static str>| {
        let headers: Vec<(&str, HeaderValue)> = forwarded
            .map(|xff| ("x-forwarded-for", HeaderValue::from_static(xff)))
            .into_iter()
            .collect();
        async move { login_through_the_proxy(app, &headers).await }
    };
    for _ in 0..2 {
        assert_error(
            &attempt(Some("203.0.113.1")).await,
            400,
            "invalid_request",
            "within the burst",
        );
    }
    assert_error(
        &attempt(Some("203.0.113.1")).await,
        429,
        "rate_limited",
        "third request of one forwarded client",
    );
    assert_error(
        &attempt(Some("198.51.100.9, 10.1.2.3, 203.0.113.1")).await,
        429,
        "rate_limited",
        "spoofed entries on the left",
    );
    assert_error(
        &attempt(Some("203.0.113.2")).await,
        400,
        "invalid_request",
        "another forwarded client",
    );
    // Each client spends its burst, then is limited: (spends it, then asks, why).
    let clients = [
        (
            Some("127.0.0.1"),
            Some("127.0.0.1"),
            "a forwarded loopback address is not exempt",
        ),
        // IPv6 clients are one client per /64.
        (
            Some("2001:db8:7:7::1"),
            Some("2001:db8:7:7:ffff::2"),
            "another address of the same IPv6 /64",
        ),
        // A request through the proxy without the header is not exempt as loopback either.
        (None, None, "no header from a trusted proxy"),
    ];
    for (spends, then, why) in clients {
        for _ in 0..2 {
            attempt(spends).await;
        }
        assert_error(&attempt(then).await, 429, "rate_limited", why);
    }
}

/// nginx's `$proxy_add_x_forwarded_for` appends the real address to whatever the client sent,
/// in the same header value: a byte that is not ASCII on the left must not hide it, and a
/// malformed entry where the client should be, or no header, is limited in a bucket of its own
/// rather than exempt as the loopback proxy.
async fn a_junk_forwarded_header_does_not_make_a_client_the_exempt_proxy(backend: Backend) {
    let app = behind_a_loopback_proxy(backend).await;
    let app = &app;
    let attempt = |forwarded: &'static [u8]| {
        let xff = HeaderValue::from_bytes(forwarded).expect("a header value");
        async move { login_through_the_proxy(app, &[("x-forwarded-for", xff)]).await }
    };
    for _ in 0..2 {
        assert_error(
            &attempt(b"1.2.3.4\xff, 203.0.113.1").await,
            400,
            "invalid_request",
            "within the burst",
        );
    }
    assert_error(
        &attempt(b"6.6.6.6\xfe, 203.0.113.1").await,
        429,
        "rate_limited",
        "a byte that is not ASCII left of the client's entry",
    );
    for _ in 0..2 {
        assert_error(
            &attempt(b"203.0.113.9, bogus").await,
            400,
            "invalid_request",
            "within the unnamed bucket's burst",
        );
    }
    for junk in [&b"203.0.113.9, bogus"[..], b"203.0.113.9\xff", b"[::1"] {
        assert_error(
            &attempt(junk).await,
            429,
            "rate_limited",
            "a malformed right-most entry shares the unnamed bucket",
        );
    }
    assert_error(
        &attempt(b"203.0.113.2").await,
        400,
        "invalid_request",
        "a well-named client is served meanwhile",
    );
}
