//! Open connections per client address: without a share per client, one host could hold every
//! slot of `server.max_connections` and leave everyone else waiting in the backlog.
//!
//! Peers are keyed like the rate limits (an IPv4 address, an IPv6 /64), and the peers the rate
//! limits exempt are exempt here too: trusted proxies carry many clients on their connections,
//! and with `exempt_loopback` the machine itself (the benchmark opens 1,000 connections from
//! loopback) is not a client to be kept in check.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;

use super::{canonical, limit_key};
use crate::config::RateLimitSettings;

/// Open connections per client key; a key without open connections has no entry.
type OpenCounts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// How many connections each client address may hold open at once.
#[derive(Debug, Clone)]
pub struct ConnectionCap {
    /// 0: no cap.
    per_ip: usize,
    exempt_loopback: bool,
    trusted_proxies: Vec<IpNet>,
    open: OpenCounts,
}

/// One admitted connection; dropping it frees its address's share.
#[derive(Debug)]
pub struct ConnectionSlot {
    counted: Option<(IpAddr, OpenCounts)>,
}

impl ConnectionCap {
    /// `per_ip` connections per client address (0 turns the cap off), exempting the peers that
    /// `limits` exempts from the rate limits.
    pub fn new(per_ip: usize, limits: &RateLimitSettings) -> Self {
        Self {
            per_ip,
            exempt_loopback: limits.exempt_loopback,
            // Validated at start-up; a test that builds settings by hand gets what parses.
            trusted_proxies: limits.proxy_networks().unwrap_or_default(),
            open: Arc::default(),
        }
    }

    /// A slot for a new connection from `peer`, or `None` when its address holds its share.
    pub fn admit(&self, peer: IpAddr) -> Option<ConnectionSlot> {
        let peer = canonical(peer);
        let exempt = self.per_ip == 0
            || (self.exempt_loopback && peer.is_loopback())
            || self.trusted_proxies.iter().any(|net| net.contains(&peer));
        if exempt {
            return Some(ConnectionSlot { counted: None });
        }
        let key = limit_key(peer);
        // A panic while holding the lock cannot leave the counts half-updated.
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let held = open.entry(key).or_insert(0);
        if *held >= self.per_ip {
            return None;
        }
        *held += 1;
        Some(ConnectionSlot {
            counted: Some((key, Arc::clone(&self.open))),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let Some((key, open)) = self.counted.take() else {
            return;
        };
        let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = open.get_mut(&key) {
            *held = held.saturating_sub(1);
            // Forget quiet addresses, so the map holds only addresses with open connections.
            if *held == 0 {
                open.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(per_ip: usize, trusted: &[&str], exempt_loopback: bool) -> ConnectionCap {
        ConnectionCap::new(
            per_ip,
            &RateLimitSettings {
                exempt_loopback,
                trusted_proxies: trusted.iter().map(|s| (*s).to_owned()).collect(),
                ..Default::default()
            },
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_holds_its_share_and_a_closed_connection_frees_it() {
        let cap = cap(2, &[], true);
        let first = cap.admit(ip("203.0.113.1")).unwrap();
        let _second = cap.admit(ip("::ffff:203.0.113.1")).unwrap();
        assert!(cap.admit(ip("203.0.113.1")).is_none());
        cap.admit(ip("203.0.113.2")).expect("another address");
        drop(first);
        cap.admit(ip("203.0.113.1")).expect("a freed share");
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let cap = cap(1, &[], true);
        let _held = cap.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(cap.admit(ip("2001:db8:1:2:ffff::9")).is_none());
        cap.admit(ip("2001:db8:1:3::1")).expect("the next /64");
    }

    #[test]
    fn trusted_proxies_and_loopback_are_exempt_as_from_the_rate_limits() {
        let exempting = cap(1, &["10.0.0.0/8"], true);
        let held: Vec<_> = (0..5)
            .flat_map(|_| {
                [
                    exempting.admit(ip("10.1.2.3")),
                    exempting.admit(ip("127.0.0.1")),
                ]
            })
            .collect();
        assert!(held.iter().all(Option::is_some));
        let strict = cap(1, &[], false);
        let _held = strict.admit(ip("127.0.0.1")).unwrap();
        assert!(strict.admit(ip("127.0.0.1")).is_none());
        let off = cap(0, &[], false);
        let held: Vec<_> = (0..5).map(|_| off.admit(ip("203.0.113.1"))).collect();
        assert!(held.iter().all(Option::is_some));
    }
}
