//! Webhook delivery of the event feed: every creation, link and merge, POSTed in order to each
//! configured receiver, signed, retried with backoff until the receiver acknowledges (2xx), at
//! least once; a redirect (3xx) is not followed and counts as a failure. The events table is the outbox and each webhook's cursor lives in the database
//! with a lease, so with several nodes exactly one delivers at a time and a node that dies
//! mid-way is replaced by another that resumes at the last acknowledged event.
//!
//! A delivery is `POST <url>` with the body `{"events": [...]}` (the shape of
//! `GET /internal/v1/events`) and the headers `X-Wxlink-Timestamp: <unix seconds>` and
//! `X-Wxlink-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use wxlink_domain::Clock;
use wxlink_persistence::Store;

use crate::config::WebhookSettings;

/// Events per POST.
const BATCH: u32 = 100;
/// Longer than one POST with its timeout.
const LEASE_SECS: i64 = 30;
const POST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Deliver webhook `name` forever (the task is aborted at shutdown); `clock` times the leases
/// and the signature's timestamp.
pub async fn deliver(
    store: Store,
    name: String,
    settings: WebhookSettings,
    node: String,
    clock: Arc<dyn Clock>,
) {
    // A redirect is a failed delivery: following one would hand the signed events to a host
    // the operator did not configure.
    let http = match reqwest::Client::builder()
        .timeout(POST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(webhook = %name, %error, "cannot build the webhook HTTP client");
            return;
        }
    };
    let idle = Duration::from_millis(settings.poll_ms.max(10));
    let mut failures = failure_backoff(idle);
    loop {
        let wait = match deliver_once(&store, &http, &name, &settings, &node, &*clock).await {
            Ok(true) => {
                failures = failure_backoff(idle);
                Duration::ZERO
            }
            Ok(false) => idle,
            Err(why) => {
                let backoff = failures.next().unwrap_or(MAX_BACKOFF);
                tracing::warn!(webhook = %name, error = %why, retry_in = ?backoff, "webhook delivery failed");
                backoff
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// The waits after failed deliveries in a row: twice the poll interval, doubling, at most
/// [`MAX_BACKOFF`]; a delivery that succeeds starts them again.
fn failure_backoff(idle: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::new()
        .with_min_delay((idle * 2).min(MAX_BACKOFF))
        .with_max_delay(MAX_BACKOFF)
        .without_max_times()
        .build()
}

/// One round: take the lease, POST the next batch, advance the cursor. `Ok(true)` if events
/// were delivered (more may be waiting).
async fn deliver_once(
    store: &Store,
    http: &reqwest::Client,
    name: &str,
    settings: &WebhookSettings,
    node: &str,
    clock: &dyn Clock,
) -> Result<bool, String> {
    let now = clock.now();
    let Some(cursor) = store
        .lease_webhook(name, node, now, LEASE_SECS)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(false);
    };
    let page = store
        .events_after(cursor, BATCH)
        .await
        .map_err(|e| e.to_string())?;
    let Some(&(last, _)) = page.last() else {
        return Ok(false);
    };
    let events: Vec<_> = page
        .iter()
        .map(|(id, e)| crate::http::wire::FeedEvent::new(*id, e))
        .collect();
    let body =
        serde_json::to_vec(&serde_json::json!({ "events": events })).map_err(|e| e.to_string())?;
    let timestamp = clock.now();
    let response = http
        .post(&settings.url)
        .header("content-type", "application/json")
        .header("x-wxlink-timestamp", timestamp.to_string())
        .header(
            "x-wxlink-signature",
            signature(&settings.secret, timestamp, &body),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST failed: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("receiver answered {}", response.status()));
    }
    store
        .advance_webhook(name, node, last)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(webhook = %name, delivered = page.len(), last_event_id = last, "webhook delivered");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let secret = SecretString::from("whsec".to_owned());
        let a = signature(&secret, 1_700_000_000, b"{\"events\":[]}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, signature(&secret, 1_700_000_001, b"{\"events\":[]}"));
        assert_ne!(a, signature(&secret, 1_700_000_000, b"{\"events\":[1]}"));
        let other = SecretString::from("other".to_owned());
        assert_ne!(a, signature(&other, 1_700_000_000, b"{\"events\":[]}"));
    }
    #[test]
    fn failed_deliveries_back_off_from_twice_the_poll_interval_to_a_minute() {
        let waits: Vec<_> = failure_backoff(Duration::from_millis(20))
            .take(14)
            .collect();
        // backon computes in f32 seconds: a few nanoseconds either way are its rounding.
        let near = |a: Duration, b: Duration| a.abs_diff(b) < Duration::from_micros(1);
        assert!(near(waits[0], Duration::from_millis(40)), "{:?}", waits[0]);
        assert!(near(waits[1], Duration::from_millis(80)), "{:?}", waits[1]);
        assert!(
            near(waits[10], Duration::from_millis(40_960)),
            "{:?}",
            waits[10]
        );
        assert_eq!(waits[11], MAX_BACKOFF);
        assert_eq!(waits[13], MAX_BACKOFF);
        let slow = failure_backoff(Duration::from_secs(45)).next();
        assert_eq!(slow, Some(MAX_BACKOFF));
    }
}
