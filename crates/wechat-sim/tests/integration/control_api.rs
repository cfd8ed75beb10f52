//! The HTTP control API.

use super::*;

#[tokio::test]
async fn the_whole_flow_over_http() {
    use reqwest::Method;
    let sim = Simulator::start().await.expect("start");
    let base = sim.base_url();
    let sim_url = |path: &str| format!("{base}/__sim/{path}");

    let (status, body) = control(
        Method::POST,
        sim_url("apps"),
        Some(json!({"appid": "wxhttp", "secret": "s", "unionid_policy": "when_following"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        json!({
            "appid": "wxhttp",
            "unionid_policy": "when_following",
            "kind": "mini_program",
            "unionid_in_exchange": true,
        })
    );

    let (status, follow) = control(
        Method::POST,
        sim_url("follow"),
        Some(json!({"appid": "wxhttp", "openid": "o-h"})),
    )
    .await;
    assert_eq!(status, 200, "{follow}");
    assert_eq!(follow["following"], json!(true));

    let (status, login) = control(
        Method::POST,
        sim_url("login"),
        Some(json!({"appid": "wxhttp", "openid": "o-h", "unionid": "u-h"})),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let code = login["code"].as_str().expect("code").to_owned();
    let session_key = login["session_key"].as_str().expect("key").to_owned();
    assert_eq!(login["openid"], json!("o-h"));
    assert_eq!(login["expires_in"], json!(300));

    // A login without an openid makes a new user.
    let (_, generated) = control(
        Method::POST,
        sim_url("login"),
        Some(json!({"appid": "wxhttp"})),
    )
    .await;
    let generated_openid = generated["openid"].as_str().expect("openid");
    assert_eq!(generated_openid.len(), 28);
    assert_ne!(generated_openid, "o-h");

    let answer = code2session_at(&base, "wxhttp", "s", &code).await;
    assert_eq!(answer.str("unionid"), Some("u-h"));
    assert_eq!(answer.str("session_key"), Some(session_key.as_str()));

    let (status, info) = control(
        Method::POST,
        sim_url("user-info"),
        Some(json!({"appid": "wxhttp", "openid": "o-h", "include_unionid": false})),
    )
    .await;
    assert_eq!(status, 200, "{info}");
    let data = wxlink_crypto::decrypt_user_data(
        &session_key,
        info["iv"].as_str().expect("iv"),
        info["encrypted_data"].as_str().expect("data"),
    )
    .expect("decrypts");
    assert_eq!(data.union_id, None);
    assert_eq!(
        info["signature"].as_str(),
        Some(
            wxlink_crypto::raw_data_signature(
                info["raw_data"].as_str().expect("raw"),
                &session_key
            )
            .as_str()
        )
    );

    let (status, _) = control(
        Method::POST,
        sim_url("faults"),
        Some(json!({"appid": "wxhttp", "faults": [{"kind": "system_busy", "consume_code": true}, {"kind": "non_json_502"}], "sticky": false})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        code2session_at(&base, "wxhttp", "s", "x").await.errcode(),
        Some(-1)
    );
    assert_eq!(code2session_at(&base, "wxhttp", "s", "x").await.status, 502);
    let (status, _) = control(
        Method::POST,
        sim_url("faults"),
        Some(json!({"faults": [{"kind": "rate_limited"}], "sticky": true})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        code2session_at(&base, "wxhttp", "s", "x").await.errcode(),
        Some(45011)
    );
    let (status, _) = control(Method::DELETE, sim_url("faults"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        code2session_at(&base, "wxhttp", "s", "x").await.errcode(),
        Some(40029)
    );

    let (status, calls) = control(Method::GET, sim_url("calls"), None).await;
    assert_eq!(status, 200);
    assert_eq!(calls[CODE2SESSION_PATH]["total"], json!(5));
    assert_eq!(calls[CODE2SESSION_PATH]["by_appid"]["wxhttp"], json!(5));
    control(Method::DELETE, sim_url("calls"), None).await;
    let (_, calls) = control(Method::GET, sim_url("calls"), None).await;
    assert_eq!(calls, json!({}));

    let (status, before) = control(Method::GET, sim_url("clock"), None).await;
    assert_eq!(status, 200);
    let (_, login) = control(
        Method::POST,
        sim_url("login"),
        Some(json!({"appid": "wxhttp", "openid": "o-h"})),
    )
    .await;
    let (status, after) = control(
        Method::POST,
        sim_url("clock"),
        Some(json!({"advance_secs": 301})),
    )
    .await;
    assert_eq!(status, 200);
    let advanced = after["now"].as_i64().expect("now") - before["now"].as_i64().expect("now");
    assert!((301..=303).contains(&advanced), "{advanced}");
    let code = login["code"].as_str().expect("code");
    assert_eq!(
        code2session_at(&base, "wxhttp", "s", code).await.errcode(),
        Some(40029)
    );
}

#[tokio::test]
async fn control_errors_are_json() {
    use reqwest::Method;
    let sim = Simulator::start().await.expect("start");
    let base = sim.base_url();

    let (status, body) = control(
        Method::POST,
        format!("{base}/__sim/login"),
        Some(json!({"appid": "wxnope"})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], json!("unknown_app"));

    let response = reqwest::Client::new()
        .post(format!("{base}/__sim/apps"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], json!("invalid_request"));

    let (status, body) = control(
        Method::POST,
        format!("{base}/__sim/apps"),
        Some(json!({"appid": "bad appid!", "secret": "s"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], json!("invalid_request"));

    let (status, body) = control(
        Method::POST,
        format!("{base}/__sim/faults"),
        Some(json!({"faults": [{"kind": "meteor_strike"}]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = control(Method::GET, format!("{base}/__sim/nothing"), None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], json!("not_found"));

    let response = reqwest::Client::new()
        .post(format!("{base}/__sim/apps"))
        .header("content-type", "application/json")
        .body(vec![b' '; 100 * 1024])
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 413);
}
