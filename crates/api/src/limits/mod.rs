//! Rate limits against abuse: per client IP on the endpoints that reach WeChat or decrypt, and
//! per appid on every call to WeChat made for a client (a flood of bogus codes or of
//! undecryptable user data would burn the app's WeChat minute quota for everyone). The defaults
//! are far above what real users do — a mini program's launch burst, many users behind one
//! carrier NAT — so they stop floods, not people.
//!
//! A client is keyed by its IPv4 address or its IPv6 /64 (one subscriber gets a whole /64, so
//! a per-address limit would give each of them 2^64 budgets). Behind trusted proxies the client
//! is the right-most `X-Forwarded-For` entry that is not a proxy: entries further left are
//! whatever the client chose to send.
//!
//! `connections.rs` caps the connections each client address holds open, with the same keys
//! and exemptions.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use wxlink_domain::{AppId, UnixTime};

use crate::config::RateLimitSettings;
use crate::http::error::ApiError;
pub use connections::ConnectionCap;
use shared::SharedWindows;

mod connections;
mod shared;

/// The configured limiters.
#[derive(Debug)]
pub struct RateLimits {
    per_ip: Option<DefaultKeyedRateLimiter<LimitKey>>,
    per_app: Option<DefaultKeyedRateLimiter<AppId>>,
    exempt_loopback: bool,
    trusted_proxies: Vec<IpNet>,
    /// The per-node limiters' own monotonic clock: they refill by the nanosecond, which the
    /// service's clock (whole seconds) cannot time.
    clock: DefaultClock,
    /// Hits per 60 s across the cluster: burst + per-minute rate, per IP and per app.
    caps: (u64, u64),
    /// The cluster-wide counts, on PostgreSQL (one SQLite node needs none), with the clock
    /// their fixed windows are counted by.
    shared: Option<(SharedWindows, Arc<dyn wxlink_domain::Clock>)>,
}

/// Who sent a request, as far as the limits are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddr {
    /// The peer itself: it is not a trusted proxy.
    Peer(IpAddr),
    /// The client a trusted proxy named in `X-Forwarded-For` (never exempt as loopback).
    Forwarded(IpAddr),
    /// A request through this trusted proxy whose header names no usable client (it is
    /// missing, or the entry where the client should be is malformed): all such requests
    /// through one proxy share one limit of their own, never exempt.
    Unnamed(IpAddr),
}

/// What a client is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LimitKey {
    Client(IpAddr),
    UnnamedBehind(IpAddr),
}

impl std::fmt::Display for LimitKey {
    /// The key in the cluster's shared table.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Client(ip) => write!(f, "ip:{ip}"),
            Self::UnnamedBehind(proxy) => write!(f, "ip-unnamed:{proxy}"),
        }
    }
}

fn quota(per_minute: u32, burst: u32) -> Option<Quota> {
    let per_minute = NonZeroU32::new(per_minute)?;
    let burst = NonZeroU32::new(burst).unwrap_or(per_minute);
    Some(Quota::per_minute(per_minute).allow_burst(burst))
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// The key a client is limited by: its IPv4 address, or the /64 of its IPv6 address.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(
            u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
        )),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:5`, `[::1]:5`).
/// It is bytes: a header value may hold any byte but a control character, and a byte that is
/// not ASCII in one entry must not hide the others.
fn parse_forwarded(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry).ok()?.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical)
}

/// The client behind `peer`: the peer itself unless it is a trusted proxy; then, walking
/// `X-Forwarded-For` from the right (across all its header lines), the first entry that is not
/// a trusted proxy. When every entry is a trusted proxy the left-most is the client. When the
/// entry where the client should be is malformed, or there is no header, the request is
/// [`ClientAddr::Unnamed`] behind the last trusted hop: what lies left of a malformed entry
/// was not written by a proxy we trust, and the trusted hop itself is not the client.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> ClientAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return ClientAddr::Peer(peer);
    }
    let lines: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(axum::http::HeaderValue::as_bytes)
        .collect();
    let entries = lines
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(|&b| b == b','));
    let mut last_trusted = None;
    for entry in entries {
        let Some(ip) = parse_forwarded(entry) else {
            return ClientAddr::Unnamed(last_trusted.unwrap_or(peer));
        };
        if !is_trusted(&ip) {
            return ClientAddr::Forwarded(ip);
        }
        last_trusted = Some(ip);
    }
    last_trusted.map_or(ClientAddr::Unnamed(peer), ClientAddr::Forwarded)
}

impl RateLimits {
    /// Limiters as configured; a rate of 0 turns that limit off.
    pub fn new(settings: &RateLimitSettings) -> Self {
        let enabled = settings.enabled;
        Self {
            per_ip: quota(settings.per_ip_per_minute, settings.per_ip_burst)
                .filter(|_| enabled)
                .map(RateLimiter::keyed),
            per_app: quota(settings.per_app_per_minute, settings.per_app_burst)
                .filter(|_| enabled)
                .map(RateLimiter::keyed),
            exempt_loopback: settings.exempt_loopback,
            // Validated at start-up; a test that builds settings by hand gets what parses.
            trusted_proxies: settings.proxy_networks().unwrap_or_default(),
            clock: DefaultClock::default(),
            caps: (
                cap(settings.per_ip_per_minute, settings.per_ip_burst),
                cap(settings.per_app_per_minute, settings.per_app_burst),
            ),
            shared: None,
        }
    }

    /// Also count across the cluster, through the shared table of `store`, in windows of
    /// `clock`'s time.
    #[must_use]
    pub fn shared_through(
        mut self,
        store: wxlink_persistence::Store,
        clock: Arc<dyn wxlink_domain::Clock>,
    ) -> Self {
        self.shared = Some((SharedWindows::new(store), clock));
        self
    }

    /// The cluster-wide counts, if any, and the time to count them at.
    fn shared(&self) -> Option<(&SharedWindows, UnixTime)> {
        self.shared
            .as_ref()
            .map(|(windows, clock)| (windows, clock.now()))
    }

    /// Publish this node's counts and read the cluster's (every second in the background).
    pub async fn sync(&self) {
        if let Some((shared, now)) = self.shared() {
            shared.sync(now).await;
        }
    }

    /// Delete shared windows that no longer count.
    pub async fn purge(&self) {
        if let Some((shared, now)) = self.shared() {
            shared.purge(now).await;
        }
    }

    /// The client of a request from `peer` with these headers.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> ClientAddr {
        client_addr(peer, headers, &self.trusted_proxies)
    }

    /// Count one request from `client`, on this node and across the cluster.
    pub async fn check_ip(&self, client: ClientAddr) -> Result<(), ApiError> {
        let key = match client {
            ClientAddr::Peer(ip) if self.exempt_loopback && canonical(ip).is_loopback() => {
                return Ok(());
            }
            ClientAddr::Peer(ip) | ClientAddr::Forwarded(ip) => LimitKey::Client(limit_key(ip)),
            ClientAddr::Unnamed(proxy) => {
                tracing::debug!(%proxy, "a trusted proxy named no usable client address");
                LimitKey::UnnamedBehind(proxy)
            }
        };
        let Some(limiter) = &self.per_ip else {
            return Ok(());
        };
        limiter
            .check_key(&key)
            .map_err(|not_until| self.refused(not_until.wait_time_from(self.clock.now())))?;
        if let Some((shared, now)) = self.shared() {
            shared
                .hit(&key.to_string(), self.caps.0, now)
                .await
                .map_err(|wait| ApiError::rate_limited(wait.0))?;
        }
        Ok(())
    }

    /// Count one call to WeChat for `app`, on this node and across the cluster.
    pub async fn check_app(&self, app: &AppId) -> Result<(), RetryAfter> {
        let Some(limiter) = &self.per_app else {
            return Ok(());
        };
        limiter
            .check_key(app)
            .map_err(|not_until| retry_after(not_until.wait_time_from(self.clock.now())))?;
        if let Some((shared, now)) = self.shared() {
            shared.hit(&format!("app:{app}"), self.caps.1, now).await?;
        }
        Ok(())
    }

    /// Forget keys that have been quiet long enough to be back at full burst.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_app {
            l.retain_recent();
        }
    }

    fn refused(&self, wait: std::time::Duration) -> ApiError {
        ApiError::rate_limited(retry_after(wait).0)
    }
}

/// What a key may do in 60 s from rest: its burst, then its rate.
fn cap(per_minute: u32, burst: u32) -> u64 {
    let burst = if burst == 0 { per_minute } else { burst };
    u64::from(per_minute) + u64::from(burst)
}

/// Whole seconds until a refused key may try again (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

fn retry_after(wait: std::time::Duration) -> RetryAfter {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    RetryAfter(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(per_ip: u32, per_app: u32) -> RateLimitSettings {
        RateLimitSettings {
            per_ip_per_minute: per_ip,
            per_ip_burst: per_ip,
            per_app_per_minute: per_app,
            per_app_burst: per_app,
            ..Default::default()
        }
    }

    fn direct(ip: &str) -> ClientAddr {
        ClientAddr::Peer(ip.parse().unwrap())
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn xff(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(
                "x-forwarded-for",
                axum::http::HeaderValue::from_bytes(v).unwrap(),
            );
        }
        headers
    }

    fn client(peer: &str, values: &[&str], trusted: &[&str]) -> ClientAddr {
        let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        client_addr(peer.parse().unwrap(), &xff(&values), &nets(trusted))
    }

    fn forwarded(ip: &str) -> ClientAddr {
        ClientAddr::Forwarded(ip.parse().unwrap())
    }

    fn unnamed(proxy: &str) -> ClientAddr {
        ClientAddr::Unnamed(proxy.parse().unwrap())
    }

    #[tokio::test]
    async fn an_ip_over_its_burst_is_refused_with_a_retry_after() {
        let limits = RateLimits::new(&settings(3, 0));
        let ip = direct("203.0.113.7");
        for _ in 0..3 {
            limits.check_ip(ip).await.unwrap();
        }
        let refused = limits.check_ip(ip).await.unwrap_err();
        assert_eq!(refused.code.as_str(), "rate_limited");
        assert_eq!(refused.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(matches!(refused.retry_after, Some(1..=20)));
        // Another client is not affected.
        limits.check_ip(direct("203.0.113.8")).await.unwrap();
    }

    #[tokio::test]
    async fn loopback_is_exempt_by_default_and_apps_are_limited_apart() {
        let limits = RateLimits::new(&settings(1, 2));
        for _ in 0..100 {
            limits.check_ip(direct("127.0.0.1")).await.unwrap();
            limits.check_ip(direct("::ffff:127.0.0.1")).await.unwrap();
        }
        let a: AppId = "wx0000000000000001".parse().unwrap();
        let b: AppId = "wx0000000000000002".parse().unwrap();
        limits.check_app(&a).await.unwrap();
        limits.check_app(&a).await.unwrap();
        assert!(limits.check_app(&a).await.is_err());
        limits.check_app(&b).await.unwrap();
    }

    #[tokio::test]
    async fn a_forwarded_loopback_address_is_not_exempt() {
        let limits = RateLimits::new(&settings(2, 0));
        let spoofed = forwarded("127.0.0.1");
        limits.check_ip(spoofed).await.unwrap();
        limits.check_ip(spoofed).await.unwrap();
        assert!(limits.check_ip(spoofed).await.is_err());
    }

    #[tokio::test]
    async fn requests_a_loopback_proxy_names_no_client_for_share_one_limit() {
        let limits = RateLimits::new(&settings(2, 0));
        limits.check_ip(unnamed("127.0.0.1")).await.unwrap();
        limits.check_ip(unnamed("127.0.0.1")).await.unwrap();
        assert!(limits.check_ip(unnamed("127.0.0.1")).await.is_err());
        // The proxy's named clients, and the proxy as a client, are others.
        limits.check_ip(forwarded("127.0.0.1")).await.unwrap();
        limits.check_ip(unnamed("10.0.0.1")).await.unwrap();
    }

    #[tokio::test]
    async fn ipv6_clients_share_the_limit_of_their_64() {
        let limits = RateLimits::new(&settings(2, 0));
        limits.check_ip(direct("2001:db8:1:2::1")).await.unwrap();
        limits
            .check_ip(direct("2001:db8:1:2:ffff::9"))
            .await
            .unwrap();
        assert!(
            limits
                .check_ip(direct("2001:db8:1:2:abcd::1"))
                .await
                .is_err()
        );
        // The next /64 is another subscriber.
        limits.check_ip(direct("2001:db8:1:3::1")).await.unwrap();
        // An IPv4-mapped address is its IPv4 address.
        limits.check_ip(direct("198.51.100.1")).await.unwrap();
        limits
            .check_ip(direct("::ffff:198.51.100.1"))
            .await
            .unwrap();
        assert!(limits.check_ip(direct("198.51.100.1")).await.is_err());
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_forwarded_entry() {
        let proxies = ["127.0.0.1/32", "10.0.0.0/8"];
        // A peer that is not a trusted proxy is the client, whatever it claims.
        assert_eq!(
            client("203.0.113.9", &["198.51.100.1"], &proxies),
            direct("203.0.113.9")
        );
        // Nothing trusted: the header is ignored.
        assert_eq!(
            client("127.0.0.1", &["198.51.100.1"], &[]),
            direct("127.0.0.1")
        );
        // Spoofed entries on the left do not help the client.
        assert_eq!(
            client("127.0.0.1", &["1.1.1.1, 2.2.2.2, 198.51.100.7"], &proxies),
            forwarded("198.51.100.7")
        );
        // A chain of trusted proxies is skipped, across several header lines too.
        assert_eq!(
            client("10.0.0.2", &["6.6.6.6, 198.51.100.7", "10.1.1.1"], &proxies),
            forwarded("198.51.100.7")
        );
        // All trusted: the left-most entry.
        assert_eq!(
            client("127.0.0.1", &["10.9.9.9, 10.0.0.5"], &proxies),
            forwarded("10.9.9.9")
        );
        // A malformed entry where the client should be: unnamed behind the hop right of it.
        assert_eq!(
            client("127.0.0.1", &["198.51.100.7, junk, 10.0.0.5"], &proxies),
            unnamed("10.0.0.5")
        );
        assert_eq!(
            client("127.0.0.1", &["198.51.100.7, nonsense"], &proxies),
            unnamed("127.0.0.1")
        );
        assert_eq!(
            client("127.0.0.1", &["198.51.100.7,"], &proxies),
            unnamed("127.0.0.1")
        );
        // IPv6 entries, with and without ports; a mapped peer is its IPv4 address.
        assert_eq!(
            client("::ffff:127.0.0.1", &["[2001:db8::1]:443"], &proxies),
            forwarded("2001:db8::1")
        );
        assert_eq!(
            client("fd00::1", &["203.0.113.5:1234, 2001:db8::2"], &["fd00::/8"]),
            forwarded("2001:db8::2")
        );
        // No header from a trusted proxy: unnamed, not the proxy as a loopback client.
        assert_eq!(client("127.0.0.1", &[], &proxies), unnamed("127.0.0.1"));
    }

    #[test]
    fn a_byte_that_is_not_ascii_spoils_only_its_own_entry() {
        let proxies = nets(&["127.0.0.1/32"]);
        let peer = "127.0.0.1".parse().unwrap();
        // nginx appends the peer to whatever the client sent, in the same header value.
        let headers = xff(&[b"1.2.3.4\xff, 203.0.113.5"]);
        assert_eq!(
            client_addr(peer, &headers, &proxies),
            forwarded("203.0.113.5")
        );
        let headers = xff(&[b"203.0.113.5, 9.9.9.9\xff"]);
        assert_eq!(client_addr(peer, &headers, &proxies), unnamed("127.0.0.1"));
        let headers = xff(&[b"\xfe\xff", b"203.0.113.6"]);
        assert_eq!(
            client_addr(peer, &headers, &proxies),
            forwarded("203.0.113.6")
        );
    }

    #[tokio::test]
    async fn zero_or_disabled_means_unlimited() {
        let limits = RateLimits::new(&settings(0, 0));
        let ip = direct("203.0.113.7");
        for _ in 0..1000 {
            limits.check_ip(ip).await.unwrap();
        }
        let off = RateLimits::new(&RateLimitSettings {
            enabled: false,
            ..settings(1, 1)
        });
        for _ in 0..10 {
            off.check_ip(ip).await.unwrap();
        }
    }
}
