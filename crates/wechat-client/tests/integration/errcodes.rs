//! Errcodes: each maps to its variant, none is retried.

use super::*;

#[tokio::test]
async fn errcodes_map_to_variants_without_retry() {
    type Check = fn(&Error) -> bool;
    let cases: [(i64, &str, Check); 9] = [
        (40029, "invalid code, rid: 1", |e| {
            matches!(e, Error::InvalidCode)
        }),
        (40163, "code been used, rid: 2", |e| {
            matches!(e, Error::CodeUsed)
        }),
        (40226, "code blocked", |e| matches!(e, Error::HighRiskUser)),
        (
            45011,
            "api minute-quota reach limit mustslower retry next minute",
            |e| matches!(e, Error::RateLimited),
        ),
        (
            40125,
            "invalid appsecret",
            |e| matches!(e, Error::InvalidCredential { errcode: 40125, errmsg } if errmsg == "invalid appsecret"),
        ),
        (40013, "invalid appid", |e| {
            matches!(e, Error::InvalidCredential { errcode: 40013, .. })
        }),
        (40001, "invalid credential", |e| {
            matches!(e, Error::InvalidCredential { errcode: 40001, .. })
        }),
        (
            41008,
            "missing code",
            |e| matches!(e, Error::Api { errcode: 41008, errmsg } if errmsg == "missing code"),
        ),
        (40002, "invalid grant_type", |e| {
            matches!(e, Error::Api { errcode: 40002, .. })
        }),
    ];
    for (errcode, errmsg, check) in cases {
        let fake = FakeServer::always(Reply::errcode(errcode, errmsg)).await;
        let error = expect_error(&client(&fake.base_url)).await;
        assert!(check(&error), "{errcode}: {error:?}");
        assert_eq!(error.errcode(), Some(errcode));
        assert_eq!(fake.calls(), 1, "errcode {errcode} must not be retried");
    }
}

#[tokio::test]
async fn errcode_zero_without_openid_is_unexpected() {
    let fake = FakeServer::always(Reply::text(
        r#"{"errcode":0,"errmsg":"ok","session_key":"sk"}"#,
    ))
    .await;
    let error = expect_error(&client(&fake.base_url)).await;
    assert!(matches!(error, Error::UnexpectedAnswer { .. }), "{error:?}");
    assert!(!format!("{error:?}").contains("sk"));

    let fake = FakeServer::always(Reply::text(r#"{"openid":"o","session_key":""}"#)).await;
    let error = expect_error(&client(&fake.base_url)).await;
    assert!(matches!(error, Error::UnexpectedAnswer { .. }), "{error:?}");
}
