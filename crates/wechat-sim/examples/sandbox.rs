//! Starts the simulator, registers a mini program, plays `wx.login`, and calls code2Session
//! over HTTP as a service under test would; then a queued fault, the HTTP control API and the
//! call counters. It prints the equivalent `curl` lines as it goes, and stops by itself.
//!
//! Run it with `cargo run -p wxlink-wechat-sim --example sandbox`.
//! To keep a simulator running for manual tests, use the binary instead:
//! `cargo run -p wxlink-wechat-sim --features cli -- --app wx4f4bc4dec97d474b:app-secret`.

use std::error::Error;

use serde_json::{Value, json};
use wxlink_wechat_sim::{CODE2SESSION_PATH, Fault, FaultTarget, Simulator, UnionidPolicy};

const APPID: &str = "wx4f4bc4dec97d474b";
const SECRET: &str = "app-secret";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    // 127.0.0.1 at a free port, serving in the background until shutdown (or drop).
    let sim = Simulator::start().await?;
    let base = sim.base_url();
    println!("simulator at {base}");
    sim.register_app(APPID, SECRET, UnionidPolicy::Always)?;

    // What wx.login does on the phone: a fresh single-use code, and a new session key.
    let login = sim.login(APPID, "openid-1", Some("unionid-1"))?;
    println!(
        "wx.login gave code {} (session_key {})",
        login.code, login.session_key
    );

    // What the service under test does with the code.
    let code2session_url = |code: &str| {
        format!(
            "{base}{CODE2SESSION_PATH}?appid={APPID}&secret={SECRET}&js_code={code}\
             &grant_type=authorization_code"
        )
    };
    let url = code2session_url(&login.code);
    println!("$ curl -s '{url}'");
    let http = reqwest::Client::new();
    let answer = http.get(&url).send().await?;
    // WeChat, and so the simulator, sends this JSON as text/plain.
    println!("content-type: {:?}", answer.headers().get("content-type"));
    let body: Value = serde_json::from_str(&answer.text().await?)?;
    println!("{body}");
    assert_eq!(body["openid"], "openid-1");
    assert_eq!(body["unionid"], "unionid-1");
    assert_eq!(
        body["session_key"].as_str(),
        Some(login.session_key.as_str())
    );

    // The same code again: errcode 40163, as WeChat answers.
    let again: Value = serde_json::from_str(&http.get(&url).send().await?.text().await?)?;
    println!("again: {again}");
    assert_eq!(again["errcode"], 40163);

    // A fault for the next code2Session of this app: errcode -1, and the code counts as spent.
    let login = sim.login(APPID, "openid-1", None)?;
    sim.queue_faults(
        FaultTarget::app(APPID).at_path(CODE2SESSION_PATH),
        [Fault::SystemBusy { consume_code: true }],
    )?;
    let url = code2session_url(&login.code);
    let busy: Value = serde_json::from_str(&http.get(&url).send().await?.text().await?)?;
    println!("with a queued fault: {busy}");
    assert_eq!(busy["errcode"], -1);
    let spent: Value = serde_json::from_str(&http.get(&url).send().await?.text().await?)?;
    println!("the code after the fault: {spent}");
    assert_eq!(spent["errcode"], 40163);

    // The same through the HTTP control API, as a test in another process would drive it.
    let control = format!("{base}/__sim/login");
    let request = json!({ "appid": APPID, "openid": "openid-2" });
    println!("$ curl -s -XPOST {control} -H 'content-type: application/json' -d '{request}'");
    let login2: Value = http
        .post(&control)
        .json(&request)
        .send()
        .await?
        .json()
        .await?;
    println!("{login2}");
    let unknown: Value = http
        .post(&control)
        .json(&json!({ "appid": "wx_unknown" }))
        .send()
        .await?
        .json()
        .await?;
    println!("unknown app: {unknown}");
    assert_eq!(unknown["error"]["code"], "unknown_app");

    println!("$ curl -s {base}/__sim/calls");
    println!("{}", serde_json::to_string(&sim.calls())?);
    assert_eq!(sim.code2session_calls(), 4);

    sim.shutdown().await;
    Ok(())
}

// `cargo test -p wxlink-wechat-sim` runs the example too (`test = true` in Cargo.toml).
#[cfg(test)]
mod tests {
    #[test]
    fn example_runs() {
        super::main().expect("the example succeeds");
    }
}
