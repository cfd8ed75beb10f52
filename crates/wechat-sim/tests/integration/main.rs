//! The simulator as a client sees it: over HTTP with reqwest, against a started simulator.
//!
//! This file holds the shared helpers; the modules hold the endpoints and the simulator's own
//! controls.

mod classic;
mod code2session;
mod control_api;
mod counters;
mod faults;
mod hosting;
mod mini_program;
mod oauth;
mod tokens;
mod user_info;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wxlink_wechat_sim::{
    CODE2SESSION_PATH, Fault, FaultTarget, Sim, SimError, SimHandle, Simulator, UnionidPolicy,
    UserInfoRequest,
};

const APPID: &str = "wx4f4bc4dec97d474b";
const SECRET: &str = "app-secret-1";

async fn sim_with_app(policy: UnionidPolicy) -> SimHandle {
    let sim = Simulator::builder()
        .app(APPID, SECRET, policy)
        .start()
        .await
        .expect("simulator starts");
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    sim
}

struct Exchange {
    status: u16,
    content_type: String,
    body: Value,
}

impl Exchange {
    fn errcode(&self) -> Option<i64> {
        self.body.get("errcode").and_then(Value::as_i64)
    }

    fn errmsg(&self) -> &str {
        self.body
            .get("errmsg")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn str(&self, field: &str) -> Option<&str> {
        self.body.get(field).and_then(Value::as_str)
    }
}

async fn code2session_at(base_url: &str, appid: &str, secret: &str, code: &str) -> Exchange {
    let response = reqwest::Client::new()
        .get(format!("{base_url}{CODE2SESSION_PATH}"))
        .query(&[
            ("appid", appid),
            ("secret", secret),
            ("js_code", code),
            ("grant_type", "authorization_code"),
        ])
        .send()
        .await
        .expect("an answer");
    exchange_of(response).await
}

async fn code2session(sim: &SimHandle, code: &str) -> Exchange {
    code2session_at(&sim.base_url(), APPID, SECRET, code).await
}

/// `checkSessionKey` for `openid`, signed with `key` by `method`.
async fn check_session(
    sim: &SimHandle,
    token: &str,
    openid: &str,
    key: &str,
    method: &str,
) -> Exchange {
    let signature = wxlink_crypto::check_session_signature(key);
    wechat_get(
        &sim.base_url(),
        wxlink_wechat_sim::CHECK_SESSION_PATH,
        &[
            ("access_token", token),
            ("openid", openid),
            ("signature", &signature),
            ("sig_method", method),
        ],
    )
    .await
}

async fn exchange_of(response: reqwest::Response) -> Exchange {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Exchange {
        status,
        content_type,
        body,
    }
}

/// A GET of a WeChat endpoint with these query pairs.
async fn wechat_get(base_url: &str, path: &str, query: &[(&str, &str)]) -> Exchange {
    let response = reqwest::Client::new()
        .get(format!("{base_url}{path}"))
        .query(query)
        .send()
        .await
        .expect("an answer");
    exchange_of(response).await
}

/// A POST of a WeChat endpoint with these query pairs and this raw body.
async fn wechat_post(
    base_url: &str,
    path: &str,
    query: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> Exchange {
    let response = reqwest::Client::new()
        .post(format!("{base_url}{path}"))
        .query(query)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("an answer");
    exchange_of(response).await
}

/// A call of the HTTP control API: its status and JSON body.
async fn control(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}
