//! An official account's web login (OAuth code exchange, then the profile for the unionid),
//! and a phone number through the app's access_token, refreshing the token once when WeChat
//! refuses it. Everything runs against an in-process WeChat simulator.
//!
//! Run it with `cargo run -p wxlink-wechat-client --example oauth_and_tokens`.

use std::error::Error;

use wxlink_wechat_client::{AppSecret, ClientConfig, Error as WeChatError, WeChatClient};
use wxlink_wechat_sim::{AppKind, AppRegistration, OAuthScope, Simulator, UnionidPolicy};

const OFFICIAL_ACCOUNT: &str = "wx_official_account";
const MINI_PROGRAM: &str = "wx4f4bc4dec97d474b";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let sim = Simulator::builder()
        .app_with(
            AppRegistration::new(OFFICIAL_ACCOUNT, "oa-secret", UnionidPolicy::Always)
                .with_kind(AppKind::OfficialAccount)
                // Like many accounts, the exchange leaves the unionid to sns/userinfo.
                .with_unionid_in_exchange(false),
        )
        .app(MINI_PROGRAM, "mini-secret", UnionidPolicy::Always)
        .start()
        .await?;
    let client = WeChatClient::new(ClientConfig::builder().api_base(sim.base_url()).build()?)?;

    // The user consents on the official account's authorize page; the browser brings the code.
    let oa_secret = AppSecret::new("oa-secret");
    let grant = sim.oauth_authorize(
        OFFICIAL_ACCOUNT,
        Some("o-oa-alice"),
        Some("unionid-alice"),
        OAuthScope::SnsapiUserinfo,
    )?;
    let token = client
        .oauth2_access_token(OFFICIAL_ACCOUNT, &oa_secret, &grant.code)
        .await?;
    println!(
        "openid {} scope {} unionid {:?} token {:?}",
        token.openid, token.scope, token.unionid, token.access_token
    );
    let unionid = match token.unionid.clone() {
        Some(unionid) => Some(unionid),
        None => {
            client
                .sns_userinfo(&token.access_token, &token.openid)
                .await?
                .unionid
        }
    };
    println!("unionid from sns/userinfo: {unionid:?}");

    // A snsapi_base grant may not read the profile.
    let base = sim.oauth_authorize(OFFICIAL_ACCOUNT, None, None, OAuthScope::SnsapiBase)?;
    let base = client
        .oauth2_access_token(OFFICIAL_ACCOUNT, &oa_secret, &base.code)
        .await?;
    match client.sns_userinfo(&base.access_token, &base.openid).await {
        Err(WeChatError::ScopeUnauthorized) => println!("snsapi_base: profile not allowed"),
        other => return Err(format!("snsapi_base must not read the profile: {other:?}").into()),
    }

    // The mini program's getPhoneNumber button, with the app's access_token.
    let mini_secret = AppSecret::new("mini-secret");
    let app_token = client
        .stable_token(MINI_PROGRAM, &mini_secret, false)
        .await?;
    // Someone else forces a refresh: our cached token is dead.
    sim.revoke_access_token(MINI_PROGRAM)?;
    let phone_code = sim.phone_code(MINI_PROGRAM, "o-mini-alice", "13800138000", None)?;
    let phone = match client
        .get_phone_number(&app_token.access_token, &phone_code.code, None)
        .await
    {
        Err(e) if e.is_access_token_invalid() => {
            println!("token refused ({e}); getting the current one and retrying once");
            // Normal mode, never force_refresh: every node gets the same new token.
            let app_token = client
                .stable_token(MINI_PROGRAM, &mini_secret, false)
                .await?;
            client
                .get_phone_number(&app_token.access_token, &phone_code.code, None)
                .await?
        }
        other => other?,
    };
    println!("phone {phone:?}");
    assert_eq!(phone.pure_phone_number, "13800138000");

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
