//! Background jobs next to the server: housekeeping, sharing rate-limit counts, webhooks.

use std::sync::Arc;
use std::time::Duration;

use wxlink_domain::Clock;

use crate::state::AppState;

pub(crate) mod webhooks;

/// Publishes this node's rate-limit counts and reads the cluster's, every second.
pub(crate) async fn share_rate_limits(state: Arc<AppState>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        state.limits.sync().await;
    }
}

/// Deletes expired and revoked sessions every `purge_every` (failures are logged and retried at
/// the next tick: the database may be restarting), and forgets idle rate-limit keys every minute.
pub(crate) async fn housekeeping(state: Arc<AppState>, purge_every: Duration) {
    let minute = Duration::from_secs(60);
    let mut ticks = tokio::time::interval(minute.min(purge_every));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_purge = tokio::time::Instant::now();
    loop {
        let now = ticks.tick().await;
        state.limits.forget_idle();
        state.limits.purge().await;
        if now >= next_purge {
            next_purge = now + purge_every;
            if let Err(error) = state.store.purge_expired_sessions(state.clock.now()).await {
                tracing::warn!(%error, "purging expired sessions failed; will retry");
            }
        }
    }
}

/// Re-reads the signing keys and adds the next one when due, every
/// [`JwtTokens::reload_interval`](crate::tokens::JwtTokens::reload_interval): often enough
/// that a key another node added is known here before it signs. Failures are logged and
/// retried at the next tick.
pub(crate) async fn signing_keys(tokens: Arc<crate::tokens::JwtTokens>, clock: Arc<dyn Clock>) {
    let mut ticks = tokio::time::interval(tokens.reload_interval());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = tokens.rotate_if_due(clock.now()).await {
            tracing::warn!(%error, "reading or rotating the JWT signing keys failed; will retry");
        }
    }
}
