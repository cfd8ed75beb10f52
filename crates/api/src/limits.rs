//! Rate limits against abuse: per client IP on the endpoints that reach WeChat or decrypt, and
//! per appid on login (a flood of bogus codes would burn the app's WeChat minute quota for
//! everyone). The defaults are far above what real users do — a mini program's launch burst,
//! many users behind one carrier NAT — so they stop floods, not people.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use wxlink_domain::AppId;

use crate::config::RateLimitSettings;
use crate::error::ApiError;

/// The configured limiters.
#[derive(Debug)]
pub struct RateLimits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_app: Option<DefaultKeyedRateLimiter<AppId>>,
    exempt_loopback: bool,
    /// Whether the client address comes from `X-Forwarded-For` (set by a trusted proxy).
    pub trust_x_forwarded_for: bool,
    clock: DefaultClock,
}

fn quota(per_minute: u32, burst: u32) -> Option<Quota> {
    let per_minute = NonZeroU32::new(per_minute)?;
    let burst = NonZeroU32::new(burst).unwrap_or(per_minute);
    Some(Quota::per_minute(per_minute).allow_burst(burst))
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
            trust_x_forwarded_for: settings.trust_x_forwarded_for,
            clock: DefaultClock::default(),
        }
    }

    /// Count one request from `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        if self.exempt_loopback && ip.is_loopback() {
            return Ok(());
        }
        match &self.per_ip {
            Some(limiter) => limiter
                .check_key(&ip)
                .map_err(|not_until| self.refused(not_until.wait_time_from(self.clock.now()))),
            None => Ok(()),
        }
    }

    /// Count one login for `app`.
    pub fn check_app(&self, app: &AppId) -> Result<(), ApiError> {
        match &self.per_app {
            Some(limiter) => limiter
                .check_key(app)
                .map_err(|not_until| self.refused(not_until.wait_time_from(self.clock.now()))),
            None => Ok(()),
        }
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
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError::rate_limited(secs.max(1))
    }
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

    #[test]
    fn an_ip_over_its_burst_is_refused_with_a_retry_after() {
        let limits = RateLimits::new(&settings(3, 0));
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..3 {
            limits.check_ip(ip).unwrap();
        }
        let refused = limits.check_ip(ip).unwrap_err();
        assert_eq!(refused.code, "rate_limited");
        assert_eq!(refused.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(matches!(refused.retry_after, Some(1..=20)));
        // Another client is not affected.
        limits.check_ip("203.0.113.8".parse().unwrap()).unwrap();
    }

    #[test]
    fn loopback_is_exempt_by_default_and_apps_are_limited_apart() {
        let limits = RateLimits::new(&settings(1, 2));
        for _ in 0..100 {
            limits.check_ip(IpAddr::from([127, 0, 0, 1])).unwrap();
        }
        let a: AppId = "wx0000000000000001".parse().unwrap();
        let b: AppId = "wx0000000000000002".parse().unwrap();
        limits.check_app(&a).unwrap();
        limits.check_app(&a).unwrap();
        assert!(limits.check_app(&a).is_err());
        limits.check_app(&b).unwrap();
    }

    #[test]
    fn zero_or_disabled_means_unlimited() {
        let limits = RateLimits::new(&settings(0, 0));
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..1000 {
            limits.check_ip(ip).unwrap();
        }
        let off = RateLimits::new(&RateLimitSettings {
            enabled: false,
            ..settings(1, 1)
        });
        for _ in 0..10 {
            off.check_ip(ip).unwrap();
        }
    }
}
