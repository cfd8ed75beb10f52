//! `wxlink serve --sandbox`: the real service against a built-in WeChat simulator, with an
//! embedded SQLite file under `./wxlink-sandbox/` and two demo mini programs, so a newcomer can
//! walk through login, user info and a merge with curl. Never for production.

use std::path::{Path, PathBuf};

use wxlink_domain::AppKind;
use wxlink_wechat_sim::{AppRegistration, UnionidPolicy};

use crate::Application;
use crate::config::{AppSettings, Settings};

/// A mini program not bound to an Open Platform account: code2Session never gives a unionid.
pub const UNBOUND_APP: &str = "wxd0000000000000a1";
/// A mini program bound to the Open Platform account: code2Session gives the unionid.
pub const BOUND_APP: &str = "wxd0000000000000b2";
const DEMO_SECRET: &str = "sandbox-demo-secret";
/// The demo apps: appid, kind, whether code2Session tells the unionid.
const DEMO_APPS: [(&str, AppKind, UnionidPolicy); 2] = [
    (UNBOUND_APP, AppKind::MiniProgram, UnionidPolicy::Never),
    (BOUND_APP, AppKind::MiniProgram, UnionidPolicy::Always),
];
const SANDBOX_DIR: &str = "wxlink-sandbox";

/// Run the sandbox until SIGTERM or Ctrl-C. `config` may override server and database keys.
pub async fn serve(config: Option<&Path>) -> Result<(), String> {
    tracing::warn!(
        "SANDBOX MODE: simulated WeChat, demo apps with well-known secrets, data under ./{SANDBOX_DIR}/ — never use this in production"
    );
    let sim = DEMO_APPS
        .into_iter()
        .try_fold(
            wxlink_wechat_sim::Simulator::builder(),
            |sim, (appid, kind, policy)| {
                Ok::<_, String>(sim.app_with(
                    AppRegistration::new(appid, DEMO_SECRET, policy).with_kind(sim_kind(kind)?),
                ))
            },
        )?
        .start()
        .await
        .map_err(|e| format!("cannot start the WeChat simulator: {e}"))?;

    let mut settings = Settings::load(config).map_err(|e| e.to_string())?;
    if config.is_none() && std::env::var_os("WXLINK__DATABASE__URL").is_none() {
        settings.database.url = format!("sqlite://{SANDBOX_DIR}/wxlink.db");
    }
    settings.wechat.api_base = sim.base_url();
    if settings.console.bind.is_none() {
        // Beside the default 8080 on 8081; beside any other port (tests, several sandboxes)
        // on a free one, printed below.
        let port = if settings.server.bind.port() == 8080 {
            8081
        } else {
            0
        };
        settings.console.bind = Some(std::net::SocketAddr::new(settings.server.bind.ip(), port));
    }
    for (appid, kind, _) in DEMO_APPS {
        settings.apps.insert(
            appid.to_string(),
            AppSettings {
                secret: Some(DEMO_SECRET.to_string().into()),
                kind: Some(kind),
            },
        );
    }
    let key_file = PathBuf::from(SANDBOX_DIR).join("wxlink.key");
    let app = Application::build(settings, key_file)
        .await
        .map_err(|e| e.to_string())?;
    let addr = app.local_addr().map_err(|e| e.to_string())?;
    println!(
        "{}",
        walkthrough(&format!("http://{addr}"), &sim.base_url())
    );
    if let Some(console) = app.console_addr() {
        let console = console.map_err(|e| e.to_string())?;
        let password = demo_operator(&app).await?;
        println!(
            "# The support console: http://{console}/ — operator {DEMO_OPERATOR}, one-time \
             password {} (choose your own at the first sign-in)",
            password.as_str()
        );
    }
    app.run_until_stopped().await.map_err(|e| e.to_string())?;
    sim.shutdown().await;
    Ok(())
}

/// The sandbox's operator of the support console, with every scope.
pub const DEMO_OPERATOR: &str = "demo";

/// Add the demo operator, or give it a new one-time password when it exists already (the
/// sandbox's database outlives a run); returns that password.
async fn demo_operator(app: &Application) -> Result<secrecy::zeroize::Zeroizing<String>, String> {
    use crate::console::operators;
    let store = app.store();
    let now = app.clock().now();
    let added =
        operators::add_operator(store, DEMO_OPERATOR, &operators::all_scopes(), false, now).await;
    match added {
        Ok(added) => return Ok(added.one_time_password),
        Err(operators::AddError::Invalid(_)) => {}
        Err(operators::AddError::Store(e)) => return Err(e.to_string()),
    }
    // It exists from an earlier run: a new one-time password.
    let password = operators::one_time_password();
    let hash = operators::hash_password(&password)?;
    store
        .set_operator_password(DEMO_OPERATOR, hash, true, now)
        .await
        .map_err(|e| e.to_string())?;
    Ok(password)
}

/// The simulator's model of an app kind, by the name both use (the simulator is a crate of its
/// own that knows nothing of the domain).
fn sim_kind(kind: AppKind) -> Result<wxlink_wechat_sim::AppKind, String> {
    kind.as_str()
        .parse()
        .map_err(|e| format!("the simulator has no app kind {}: {e}", kind.as_str()))
}

/// The curl lines printed at start: a provisional login, the same person on a bound app, and the
/// merge that user info causes.
pub fn walkthrough(base: &str, sim: &str) -> String {
    let json = "-H 'content-type: application/json'";
    let field = |name: &str| format!("sed -E 's/.*\"{name}\":\"([^\"]+)\".*/\\1/'");
    let (code, token) = (field("code"), field("token"));
    format!(
        r#"wxlink sandbox listening on {base}
WeChat simulator on {sim}   (demo apps: {UNBOUND_APP} without unionid at login, {BOUND_APP} with it)

Try it (bash):

# 1. Alice opens mini program A, which is not bound to the Open Platform: wx.login, then log in.
#    She is logged in at once, as a provisional user (needs_user_info: true).
CODE=$(curl -s -X POST {sim}/__sim/login {json} -d '{{"appid":"{UNBOUND_APP}","openid":"alice-in-a","unionid":"alice-union"}}' | {code})
curl -s -X POST {base}/v1/wechat/login {json} -d "{{\"appid\":\"{UNBOUND_APP}\",\"code\":\"$CODE\"}}" | tee /tmp/wxlink-a.json; echo
TOKEN_A=$({token} < /tmp/wxlink-a.json)

# 2. She opens mini program B, which is bound: WeChat tells the unionid, so B's user owns it.
CODE=$(curl -s -X POST {sim}/__sim/login {json} -d '{{"appid":"{BOUND_APP}","openid":"alice-in-b","unionid":"alice-union"}}' | {code})
curl -s -X POST {base}/v1/wechat/login {json} -d "{{\"appid\":\"{BOUND_APP}\",\"code\":\"$CODE\"}}"; echo

# 3. In A she allows wx.getUserInfo; its encrypted data carries the unionid, and A's provisional
#    user is merged into B's (merged: true, B's user_id).
curl -s -X POST {sim}/__sim/user-info {json} -d '{{"appid":"{UNBOUND_APP}","openid":"alice-in-a"}}' \
  | curl -s -X POST {base}/v1/wechat/user-info {json} -H "authorization: Bearer $TOKEN_A" -d @-; echo

# 4. A's token now acts as the one user, with both identities.
curl -s {base}/v1/me -H "authorization: Bearer $TOKEN_A"; echo

# 5. Log out.
curl -s -o /dev/null -w '%{{http_code}}\n' -X POST {base}/v1/logout -H "authorization: Bearer $TOKEN_A"
"#,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_app_kind_has_its_simulated_twin() {
        for kind in AppKind::ALL {
            assert_eq!(sim_kind(kind).unwrap().as_str(), kind.as_str());
        }
    }
}
