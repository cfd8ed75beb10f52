//! A mini program login against an in-process WeChat simulator: code2Session, decrypting the
//! user's data with the session key, checkSessionKey, and what a reused code gets.
//!
//! Run it with `cargo run -p wxlink-wechat-client --example code2session`.
//! It needs no network: `wxlink-wechat-sim` serves WeChat's API on `127.0.0.1`.
//! Against WeChat, leave `api_base` at its default and use your real appid and AppSecret.

use std::error::Error;
use std::time::Duration;

use wxlink_wechat_client::{AppSecret, ClientConfig, Error as WeChatError, WeChatClient};
use wxlink_wechat_sim::{Simulator, UnionidPolicy};

const APPID: &str = "wx4f4bc4dec97d474b";
const SECRET: &str = "example-app-secret";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let sim = Simulator::start().await?;
    sim.register_app(APPID, SECRET, UnionidPolicy::Always)?;

    let client = WeChatClient::new(
        ClientConfig::builder()
            .api_base(sim.base_url())
            .timeout(Duration::from_secs(5))
            .build()?,
    )?;
    let secret = AppSecret::new(SECRET);

    // The phone calls wx.login and sends the code to our server.
    let login = sim.login(APPID, "openid-alice", Some("unionid-alice"))?;

    // Our server exchanges it.
    let session = client.code2session(APPID, &secret, &login.code).await?;
    println!(
        "openid {} unionid {:?} session_key {:?}",
        session.openid, session.unionid, session.session_key
    );

    // A code works once.
    match client.code2session(APPID, &secret, &login.code).await {
        Err(WeChatError::CodeUsed) => println!("second exchange: code already used"),
        other => return Err(format!("a used code must be refused: {other:?}").into()),
    }

    // The phone sends encrypted profile data; the session key decrypts it.
    let info = sim.user_info(APPID, "openid-alice")?;
    let key = session.session_key.expose_secret();
    if !wxlink_crypto::verify_raw_data_signature(&info.raw_data, key, &info.signature) {
        return Err("the rawData signature must verify".into());
    }
    let user = wxlink_crypto::decrypt_user_data(key, &info.iv, &info.encrypted_data)?;
    wxlink_crypto::check_watermark(&user.watermark, APPID, sim.now_unix(), Some(300))?;
    println!(
        "decrypted: openId {} unionId {:?}",
        user.open_id, user.union_id
    );

    // Is the stored session key still current? Yes, until the user logs in again.
    let token = client.stable_token(APPID, &secret, false).await?;
    let current = client
        .check_session_key(&token.access_token, &session.openid, &session.session_key)
        .await?;
    println!("session key current: {current}");
    sim.login(APPID, "openid-alice", None)?;
    let current = client
        .check_session_key(&token.access_token, &session.openid, &session.session_key)
        .await?;
    println!("after another wx.login: {current}");

    sim.shutdown().await;
    Ok(())
}

// `cargo test -p wxlink-wechat-client` runs the example too (`test = true` in Cargo.toml).
#[cfg(test)]
mod tests {
    #[test]
    fn example_runs() {
        super::main().expect("the example succeeds");
    }
}
