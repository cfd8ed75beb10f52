//! wxlink's reusable crates used the way another team uses them: only their public API, from a
//! package that is not part of the wxlink workspace.
//!
//! - `crypto`: WeChat's official vectors (embedded below, not read from the wxlink checkout),
//!   every error variant a caller matches on, sealing and key rotation.
//! - `simulator`: the simulator in-process, over its HTTP control API, and mounted in our own
//!   axum app.
//! - `client`: the WeChat client against the simulator, for every call and every error variant
//!   the simulator can provoke.

mod client;
mod crypto;
mod simulator;

use std::time::Duration;

use wxlink_wechat_client::{ClientConfig, WeChatClient};
use wxlink_wechat_sim::{AppKind, AppRegistration, SimHandle, Simulator, UnionidPolicy};

/// A mini program whose users always get a unionid.
const MINI: &str = "wx4f4bc4dec97d474b";
const MINI_SECRET: &str = "mini-secret-0123456789";
/// An official account whose OAuth exchange leaves the unionid to sns/userinfo.
const OA: &str = "wx_official_account";
const OA_SECRET: &str = "oa-secret-0123456789";
/// A mini program not bound to an Open Platform account: no unionid, ever.
const UNBOUND: &str = "wx_unbound_mini";
const UNBOUND_SECRET: &str = "unbound-secret";

/// A simulator with the three apps above.
async fn simulator() -> SimHandle {
    Simulator::builder()
        .app(MINI, MINI_SECRET, UnionidPolicy::Always)
        .app(UNBOUND, UNBOUND_SECRET, UnionidPolicy::Never)
        .app_with(
            AppRegistration::new(OA, OA_SECRET, UnionidPolicy::Always)
                .with_kind(AppKind::OfficialAccount)
                .with_unionid_in_exchange(false),
        )
        .start()
        .await
        .expect("the simulator starts")
}

/// A client pointed at the simulator, with fast retries so that the tests stay quick.
fn client_for(sim: &SimHandle) -> WeChatClient {
    client_with(sim, |config| config)
}

fn client_with(
    sim: &SimHandle,
    configure: impl FnOnce(
        wxlink_wechat_client::ClientConfigBuilder,
    ) -> wxlink_wechat_client::ClientConfigBuilder,
) -> WeChatClient {
    let config = configure(
        ClientConfig::builder()
            .api_base(sim.base_url())
            .timeout(Duration::from_secs(5))
            .backoff_base(Duration::from_millis(1)),
    )
    .build()
    .expect("a valid configuration");
    WeChatClient::new(config).expect("the client builds")
}
