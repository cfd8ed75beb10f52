//! Call counters.

use super::*;

#[tokio::test]
async fn calls_are_counted_per_endpoint_and_appid() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let base = sim.base_url();
    code2session(&sim, "a").await;
    code2session(&sim, "b").await;
    code2session_at(&base, "wxother", "s", "c").await;
    assert_eq!(sim.code2session_calls(), 3);
    assert_eq!(sim.code2session_calls_for(APPID), 2);
    assert_eq!(sim.code2session_calls_for("wxother"), 1);
    let calls = sim.calls();
    assert_eq!(calls.total(CODE2SESSION_PATH), 3);
    sim.reset_calls();
    assert_eq!(sim.code2session_calls(), 0);
}
