//! Success shapes: what a session answer may look like.

use super::*;

#[tokio::test]
async fn text_plain_json_without_errcode_is_a_session() {
    let fake = FakeServer::always(Reply::text(
        r#"{"session_key":"tiihtNczf5v6AKRyjwEUhQ==","openid":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","unionid":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA"}"#,
    ))
    .await;
    let session = call(&client(&fake.base_url)).await.expect("a session");
    assert_eq!(session.openid, "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
    assert_eq!(
        session.session_key.expose_secret(),
        "tiihtNczf5v6AKRyjwEUhQ=="
    );
    assert_eq!(
        session.unionid.as_deref(),
        Some("ocMvos6NjeKLIBqg5Mr9QjxrP1FA")
    );
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn application_json_with_errcode_zero_and_no_unionid() {
    let fake = FakeServer::always(
        Reply::text(r#"{"errcode":0,"errmsg":"ok","session_key":"k==","openid":"o1"}"#)
            .with_content_type("application/json; charset=utf-8"),
    )
    .await;
    let session = call(&client(&fake.base_url)).await.expect("a session");
    assert_eq!(session.openid, "o1");
    assert_eq!(session.unionid, None);
}

#[tokio::test]
async fn request_has_exactly_wechats_shape() {
    let fake = FakeServer::always(Reply::text(r#"{"session_key":"k","openid":"o"}"#)).await;
    call(&client(&fake.base_url)).await.expect("a session");
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    let (path, query) = request.split_once('?').expect("a query");
    assert_eq!(path, "/sns/jscode2session");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let expected = [
        ("appid", APPID),
        ("secret", SECRET),
        ("js_code", CODE),
        ("grant_type", "authorization_code"),
    ];
    assert_eq!(pairs.len(), expected.len(), "{pairs:?}");
    for (name, value) in expected {
        assert!(
            pairs.iter().any(|(n, v)| n == name && v == value),
            "{name} missing in {pairs:?}"
        );
    }
    assert!(!query.contains("access_token"));
}

#[tokio::test]
async fn api_base_path_is_kept_as_a_prefix() {
    let fake = FakeServer::always(Reply::text(r#"{"session_key":"k","openid":"o"}"#)).await;
    let client = client(&format!("{}/wechat/", fake.base_url));
    call(&client).await.expect("a session");
    assert!(fake.requests()[0].starts_with("/wechat/sns/jscode2session?"));
}
