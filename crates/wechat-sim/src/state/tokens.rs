//! The app's global access_token: getStableAccessToken's rules, and the check every endpoint
//! that takes an access_token makes.
//!
//! Normal mode hands out the same token while more than five minutes of it remain.
//! Within its last five minutes the first call renews it as if WeChat had renewed it exactly
//! five minutes before expiry: the new token expires 7200 s after that moment, and the old one
//! keeps working until its own expiry, so every token handed out has `expires_in` > 300.
//! A forced refresh kills the current and previous tokens at once and issues a new one; it is
//! allowed 20 times a Beijing-time day (45009 past that) and, as WeChat documents ("否则不会刷新"),
//! one within 30 s of the previous forced refresh does not refresh: it answers like normal mode.
//!
//! The classic getAccessToken (`GET /cgi-bin/token`) is separate: every call issues a new token
//! for 7200 s, the previous one keeps working for five more minutes (then 40001, "not latest"),
//! and the one before that stops at once.
//! Neither kind of token affects the other, as WeChat documents.

use serde_json::json;

use super::{Answer, State, errcode, present, random_text};
use crate::model::{ACCESS_TOKEN_OVERLAP_SECS, ACCESS_TOKEN_TTL_SECS, AccessTokenStatus, SimError};

const TTL_MS: i64 = ACCESS_TOKEN_TTL_SECS as i64 * 1000;
const OVERLAP_MS: i64 = ACCESS_TOKEN_OVERLAP_SECS as i64 * 1000;
/// Forced refreshes allowed per day.
pub(crate) const FORCE_REFRESH_DAILY_LIMIT: u32 = 20;
/// The least time between two forced refreshes that both refresh.
const FORCE_REFRESH_SPACING_MS: i64 = 30_000;
/// WeChat's day starts at midnight Beijing time (UTC+8).
const BEIJING_OFFSET_MS: i64 = 8 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// Remembered tokens (app and user); expired ones are forgotten when room is needed.
pub(super) const MAX_TOKENS: usize = 100_000;

/// The errmsg of 40001 for an access_token that is unknown, replaced or revoked.
pub(super) const NOT_LATEST: &str = "invalid credential, access_token is invalid or not latest";

/// One app access_token handed out.
#[derive(Debug)]
pub(super) struct TokenRecord {
    appid: String,
    expires_at_ms: i64,
    /// Killed by a forced refresh or a revocation: 40001 from then on.
    revoked: bool,
    /// A classic token replaced by a newer one: 40001 from this time on.
    replaced_at_ms: Option<i64>,
}

impl TokenRecord {
    fn works_at(&self, now: i64) -> bool {
        !self.revoked && now < self.expires_at_ms && self.replaced_at_ms.is_none_or(|at| now < at)
    }
}

/// An app's stable_token state.
#[derive(Debug, Default)]
pub(super) struct AppTokens {
    current: Option<String>,
    previous: Option<String>,
    /// The Beijing-time day of `force_count`.
    force_day: i64,
    force_count: u32,
    last_force_ms: Option<i64>,
    /// Calls with `force_refresh: true`, whatever the outcome; reset with the call counters.
    pub(super) force_refresh_calls: u64,
    /// The latest token of `GET /cgi-bin/token`, and the one it replaced.
    classic: Option<String>,
    classic_previous: Option<String>,
}

/// The JSON body of a stable_token call, read leniently: a field of the wrong type is `Err`.
#[derive(Debug, Default)]
pub(crate) struct StableTokenBody {
    pub(crate) grant_type: Option<String>,
    pub(crate) appid: Option<String>,
    pub(crate) secret: Option<String>,
    pub(crate) force_refresh: bool,
}

/// The query of a `GET /cgi-bin/token` call; absent parameters are `None`.
#[derive(Debug, Default)]
pub(crate) struct TokenQuery {
    pub(crate) grant_type: Option<String>,
    pub(crate) appid: Option<String>,
    pub(crate) secret: Option<String>,
}

impl State {
    /// The app an access_token belongs to, or the errcode answer for a missing (41001),
    /// unknown or revoked (40001) or expired (42001) token.
    pub(crate) fn check_access_token(&self, token: &Option<String>) -> Result<String, Answer> {
        let Some(token) = present(token) else {
            return Err(errcode(41001, "access_token missing"));
        };
        match self.access_tokens.get(token) {
            None => Err(errcode(40001, NOT_LATEST)),
            Some(record) if record.revoked => Err(errcode(40001, NOT_LATEST)),
            Some(record) if record.replaced_at_ms.is_some_and(|at| self.now_ms() >= at) => {
                Err(errcode(40001, NOT_LATEST))
            }
            Some(record) if self.now_ms() >= record.expires_at_ms => {
                Err(errcode(42001, "access_token expired"))
            }
            Some(record) => Ok(record.appid.clone()),
        }
    }

    /// The appid of an access_token, valid or not, for counters and fault targets.
    pub(crate) fn access_token_appid(&self, token: &Option<String>) -> Option<String> {
        let token = token.as_deref()?;
        self.access_tokens.get(token).map(|r| r.appid.clone())
    }

    /// Counts a stable_token call with `force_refresh: true` for a registered app.
    pub(crate) fn count_force_refresh_call(&mut self, appid: Option<&str>) {
        if let Some(app) = appid.and_then(|a| self.apps.get_mut(a)) {
            app.tokens.force_refresh_calls += 1;
        }
    }

    /// `POST /cgi-bin/stable_token`.
    pub(crate) fn stable_token(&mut self, body: &StableTokenBody) -> Answer {
        let wrong_secret = (40125, "invalid appsecret");
        let appid = match self.checked_credential(
            &body.appid,
            &body.secret,
            &body.grant_type,
            wrong_secret,
        ) {
            Ok(appid) => appid,
            Err(answer) => return answer,
        };
        let now = self.now_ms();
        if body.force_refresh {
            let Some(app) = self.apps.get(&appid) else {
                return errcode(40013, "invalid appid");
            };
            let tokens = &app.tokens;
            let spaced = tokens
                .last_force_ms
                .is_none_or(|last| now.saturating_sub(last) >= FORCE_REFRESH_SPACING_MS);
            if spaced {
                let day = beijing_day(now);
                let today = if tokens.force_day == day {
                    tokens.force_count
                } else {
                    0
                };
                if today >= FORCE_REFRESH_DAILY_LIMIT {
                    return errcode(45009, "reach max api daily quota limit");
                }
                return self.force_refresh(&appid, now, day, today);
            }
        }
        self.normal_token(&appid, now)
    }

    /// WeChat's checks of a client credential, in its order: appid, secret, grant_type.
    /// Returns the appid; a wrong secret gets `wrong_secret`, which differs by endpoint.
    fn checked_credential(
        &self,
        appid: &Option<String>,
        secret: &Option<String>,
        grant_type: &Option<String>,
        wrong_secret: (i64, &str),
    ) -> Result<String, Answer> {
        let Some(appid) = present(appid) else {
            return Err(errcode(41002, "appid missing"));
        };
        let Some(app) = self.apps.get(appid) else {
            return Err(errcode(40013, "invalid appid"));
        };
        let Some(secret) = present(secret) else {
            return Err(errcode(41004, "appsecret missing"));
        };
        if secret != app.secret {
            return Err(errcode(wrong_secret.0, wrong_secret.1));
        }
        if grant_type.as_deref() != Some("client_credential") {
            return Err(errcode(40002, "invalid grant_type"));
        }
        Ok(appid.to_owned())
    }

    /// `GET /cgi-bin/token`: a new token on every call; the previous one works five more
    /// minutes, the one before it no longer.
    pub(crate) fn classic_token(&mut self, query: &TokenQuery) -> Answer {
        // getAccessToken's page documents 40001 for a wrong AppSecret (stable_token: 40125).
        let wrong_secret = (40001, "invalid credential, appsecret is invalid");
        let appid = match self.checked_credential(
            &query.appid,
            &query.secret,
            &query.grant_type,
            wrong_secret,
        ) {
            Ok(appid) => appid,
            Err(answer) => return answer,
        };
        let now = self.now_ms();
        let expires_at_ms = now + TTL_MS;
        let Some(token) = self.issue_token(&appid, expires_at_ms, now) else {
            return errcode(-1, "system error");
        };
        let Some(tokens) = self.tokens_mut(&appid) else {
            return errcode(40013, "invalid appid");
        };
        let gone = tokens.classic_previous.take();
        let replaced = tokens.classic.replace(token.clone());
        tokens.classic_previous.clone_from(&replaced);
        if let Some(record) = gone.and_then(|t| self.access_tokens.get_mut(&t)) {
            record.revoked = true;
        }
        if let Some(record) = replaced.and_then(|t| self.access_tokens.get_mut(&t)) {
            let end = now.saturating_add(OVERLAP_MS);
            record.replaced_at_ms = Some(record.replaced_at_ms.map_or(end, |at| at.min(end)));
        }
        token_answer(&token, expires_at_ms, now)
    }

    /// Normal mode: the current token, renewed within its last five minutes.
    fn normal_token(&mut self, appid: &str, now: i64) -> Answer {
        let current = self.valid_token(appid, Current, now);
        let (token, expires_at_ms) = match current {
            Some((token, expires_at_ms)) if expires_at_ms - now > OVERLAP_MS => {
                (token, expires_at_ms)
            }
            Some((old, old_expires_at_ms)) => {
                // Renewed as if at old expiry minus five minutes; the old token keeps working
                // until its own expiry.
                let expires_at_ms = old_expires_at_ms - OVERLAP_MS + TTL_MS;
                let Some(token) = self.issue_token(appid, expires_at_ms, now) else {
                    return errcode(-1, "system error");
                };
                if let Some(tokens) = self.tokens_mut(appid) {
                    tokens.previous = Some(old);
                    tokens.current = Some(token.clone());
                }
                (token, expires_at_ms)
            }
            None => {
                let expires_at_ms = now + TTL_MS;
                let Some(token) = self.issue_token(appid, expires_at_ms, now) else {
                    return errcode(-1, "system error");
                };
                if let Some(tokens) = self.tokens_mut(appid) {
                    tokens.previous = None;
                    tokens.current = Some(token.clone());
                }
                (token, expires_at_ms)
            }
        };
        token_answer(&token, expires_at_ms, now)
    }

    /// Force mode: kill the current and previous tokens, issue a new one.
    fn force_refresh(&mut self, appid: &str, now: i64, day: i64, today: u32) -> Answer {
        let expires_at_ms = now + TTL_MS;
        let Some(token) = self.issue_token(appid, expires_at_ms, now) else {
            return errcode(-1, "system error");
        };
        self.revoke_tokens(appid);
        if let Some(tokens) = self.tokens_mut(appid) {
            tokens.current = Some(token.clone());
            tokens.force_day = day;
            tokens.force_count = today + 1;
            tokens.last_force_ms = Some(now);
        }
        token_answer(&token, expires_at_ms, now)
    }

    /// A new token, or `None` when the simulator remembers too many live tokens.
    fn issue_token(&mut self, appid: &str, expires_at_ms: i64, now: i64) -> Option<String> {
        if self.access_tokens.len() >= MAX_TOKENS {
            self.access_tokens.retain(|_, r| r.works_at(now));
            if self.access_tokens.len() >= MAX_TOKENS {
                return None;
            }
        }
        // WeChat's tokens are long opaque strings; callers must reserve 512 characters.
        let token = format!("{}-{}", random_text(80), random_text(50));
        self.access_tokens.insert(
            token.clone(),
            TokenRecord {
                appid: appid.to_owned(),
                expires_at_ms,
                revoked: false,
                replaced_at_ms: None,
            },
        );
        Some(token)
    }

    /// The current or previous token of an app with its expiry, if it still works.
    fn valid_token(&self, appid: &str, which: Which, now: i64) -> Option<(String, i64)> {
        let tokens = &self.apps.get(appid)?.tokens;
        let token = match which {
            Current => tokens.current.as_ref(),
            Previous => tokens.previous.as_ref(),
        }?;
        let record = self.access_tokens.get(token)?;
        record
            .works_at(now)
            .then(|| (token.clone(), record.expires_at_ms))
    }

    fn tokens_mut(&mut self, appid: &str) -> Option<&mut AppTokens> {
        self.apps.get_mut(appid).map(|app| &mut app.tokens)
    }

    /// Marks the app's current and previous tokens revoked (40001 from now on).
    fn revoke_tokens(&mut self, appid: &str) {
        let Some(app) = self.apps.get_mut(appid) else {
            return;
        };
        for token in [app.tokens.current.take(), app.tokens.previous.take()]
            .into_iter()
            .flatten()
        {
            if let Some(record) = self.access_tokens.get_mut(&token) {
                record.revoked = true;
            }
        }
    }

    // --- control ------------------------------------------------------------------------------

    /// Makes the app's current and previous tokens (of both endpoints) expired now (42001 from
    /// now on).
    pub(crate) fn expire_access_token(&mut self, appid: &str) -> Result<(), SimError> {
        let now = self.now_ms();
        let tokens = &self.require_app(appid)?.tokens;
        let live: Vec<String> = [
            &tokens.current,
            &tokens.previous,
            &tokens.classic,
            &tokens.classic_previous,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        for token in live {
            if let Some(record) = self.access_tokens.get_mut(&token) {
                record.expires_at_ms = record.expires_at_ms.min(now);
            }
        }
        Ok(())
    }

    /// Revokes the app's current and previous tokens (40001 from now on), as a forced refresh
    /// by someone else would, and its classic tokens, as a rival's `cgi-bin/token` calls would.
    pub(crate) fn revoke_access_token(&mut self, appid: &str) -> Result<(), SimError> {
        self.require_app(appid)?;
        self.revoke_tokens(appid);
        let Some(tokens) = self.tokens_mut(appid) else {
            return Ok(());
        };
        let classic = [tokens.classic.take(), tokens.classic_previous.take()];
        for token in classic.into_iter().flatten() {
            if let Some(record) = self.access_tokens.get_mut(&token) {
                record.revoked = true;
            }
        }
        Ok(())
    }

    pub(crate) fn access_token_status(&self, appid: &str) -> Result<AccessTokenStatus, SimError> {
        let app = self.require_app(appid)?;
        let now = self.now_ms();
        let current = self.valid_token(appid, Current, now);
        let previous = self.valid_token(appid, Previous, now);
        let force_refreshes_today = if app.tokens.force_day == beijing_day(now) {
            app.tokens.force_count
        } else {
            0
        };
        Ok(AccessTokenStatus {
            appid: appid.to_owned(),
            expires_in: current.as_ref().map(|(_, at)| secs_until(*at, now)),
            access_token: current.map(|(token, _)| token),
            previous_access_token: previous.map(|(token, _)| token),
            force_refreshes_today,
            force_refresh_calls: app.tokens.force_refresh_calls,
        })
    }
}

#[derive(Clone, Copy)]
enum Which {
    Current,
    Previous,
}
use Which::{Current, Previous};

fn token_answer(token: &str, expires_at_ms: i64, now: i64) -> Answer {
    Answer::Json(json!({
        "access_token": token,
        "expires_in": secs_until(expires_at_ms, now),
    }))
}

/// Whole seconds from `now` to `at`, at least 0.
fn secs_until(at: i64, now: i64) -> u64 {
    u64::try_from(at.saturating_sub(now) / 1000).unwrap_or(0)
}

fn beijing_day(now_ms: i64) -> i64 {
    now_ms.saturating_add(BEIJING_OFFSET_MS).div_euclid(DAY_MS)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{errcode_of, state_with_app};
    use super::*;
    use crate::UnionidPolicy;

    fn body(force_refresh: bool) -> StableTokenBody {
        StableTokenBody {
            grant_type: Some("client_credential".into()),
            appid: Some("wx1".into()),
            secret: Some("s".into()),
            force_refresh,
        }
    }

    fn issued(answer: &Answer) -> (String, u64) {
        let Answer::Json(value) = answer else {
            panic!("not json: {answer:?}")
        };
        (
            value["access_token"].as_str().expect("a token").to_owned(),
            value["expires_in"].as_u64().expect("expires_in"),
        )
    }

    fn check(state: &State, token: &str) -> Option<i64> {
        match state.check_access_token(&Some(token.to_owned())) {
            Ok(_) => None,
            Err(answer) => errcode_of(&answer),
        }
    }

    #[test]
    fn normal_mode_renews_in_the_last_five_minutes_with_an_overlap() {
        let mut state = state_with_app(UnionidPolicy::Always);
        let (first, expires_in) = issued(&state.stable_token(&body(false)));
        assert_eq!(expires_in, 7200);
        state.advance_clock(Duration::from_secs(6800));
        let (same, expires_in) = issued(&state.stable_token(&body(false)));
        assert_eq!(same, first);
        // The simulator clock also moves in real time: allow a second.
        assert!((399..=400).contains(&expires_in), "{expires_in}");
        state.advance_clock(Duration::from_secs(200));
        let (second, expires_in) = issued(&state.stable_token(&body(false)));
        assert_ne!(second, first);
        assert!(
            (7099..=7100).contains(&expires_in),
            "as if renewed at 6900 s"
        );
        assert_eq!(check(&state, &first), None, "the old token still works");
        state.advance_clock(Duration::from_secs(200));
        assert_eq!(check(&state, &first), Some(42001));
        assert_eq!(check(&state, &second), None);
    }

    #[test]
    fn forced_refresh_revokes_at_once_and_is_limited() {
        let mut state = state_with_app(UnionidPolicy::Always);
        // Start a minute into a Beijing day, so that the test does not cross one.
        let into_day = state
            .now_ms()
            .saturating_add(BEIJING_OFFSET_MS)
            .rem_euclid(DAY_MS);
        let to_next = u64::try_from(DAY_MS - into_day + 60_000).unwrap_or(0);
        state.advance_clock(Duration::from_millis(to_next));
        let (first, _) = issued(&state.stable_token(&body(false)));
        let (forced, expires_in) = issued(&state.stable_token(&body(true)));
        assert_ne!(forced, first);
        assert_eq!(expires_in, 7200);
        assert_eq!(check(&state, &first), Some(40001));
        // Within 30 s a forced refresh does not refresh.
        state.advance_clock(Duration::from_secs(10));
        let (same, _) = issued(&state.stable_token(&body(true)));
        assert_eq!(same, forced);
        for _ in 1..FORCE_REFRESH_DAILY_LIMIT {
            state.advance_clock(Duration::from_secs(30));
            let (next, _) = issued(&state.stable_token(&body(true)));
            assert_eq!(check(&state, &next), None);
        }
        state.advance_clock(Duration::from_secs(30));
        assert_eq!(errcode_of(&state.stable_token(&body(true))), Some(45009));
        assert_eq!(errcode_of(&state.stable_token(&body(false))), None);
        state.advance_clock(Duration::from_secs(24 * 3600));
        let answer = state.stable_token(&body(true));
        assert_eq!(errcode_of(&answer), None, "a new day");
        let status = state.access_token_status("wx1").expect("status");
        assert_eq!(status.force_refreshes_today, 1);
    }

    fn classic(state: &mut State, secret: &str) -> Answer {
        state.classic_token(&TokenQuery {
            grant_type: Some("client_credential".into()),
            appid: Some("wx1".into()),
            secret: Some(secret.into()),
        })
    }

    #[test]
    fn classic_tokens_replace_each_other_after_five_minutes() {
        let mut state = state_with_app(UnionidPolicy::Always);
        let (stable, _) = issued(&state.stable_token(&body(false)));
        let (first, expires_in) = issued(&classic(&mut state, "s"));
        assert_eq!(expires_in, 7200);
        let (second, _) = issued(&classic(&mut state, "s"));
        assert_ne!(second, first);
        assert_eq!(check(&state, &first), None, "five minutes of overlap");
        state.advance_clock(Duration::from_secs(299));
        assert_eq!(check(&state, &first), None);
        state.advance_clock(Duration::from_secs(1));
        assert_eq!(check(&state, &first), Some(40001), "not latest");
        assert_eq!(check(&state, &second), None);
        let (third, _) = issued(&classic(&mut state, "s"));
        let (_fourth, _) = issued(&classic(&mut state, "s"));
        assert_eq!(check(&state, &second), Some(40001), "two calls later");
        assert_eq!(check(&state, &third), None);
        assert_eq!(check(&state, &stable), None, "stable tokens are separate");
        state.advance_clock(Duration::from_secs(7200));
        assert_eq!(check(&state, &stable), Some(42001));
    }

    #[test]
    fn classic_checks_and_revocation() {
        let mut state = state_with_app(UnionidPolicy::Always);
        assert_eq!(errcode_of(&classic(&mut state, "bad")), Some(40001));
        let mut query = TokenQuery {
            grant_type: Some("authorization_code".into()),
            appid: Some("wx1".into()),
            secret: Some("s".into()),
        };
        assert_eq!(errcode_of(&state.classic_token(&query)), Some(40002));
        query.appid = Some("wx2".into());
        assert_eq!(errcode_of(&state.classic_token(&query)), Some(40013));
        query.appid = None;
        assert_eq!(errcode_of(&state.classic_token(&query)), Some(41002));
        let (token, _) = issued(&classic(&mut state, "s"));
        state.revoke_access_token("wx1").expect("revoke");
        assert_eq!(check(&state, &token), Some(40001));
        let (token, _) = issued(&classic(&mut state, "s"));
        state.expire_access_token("wx1").expect("expire");
        assert_eq!(check(&state, &token), Some(42001));
    }

    #[test]
    fn checks_and_token_errors() {
        let mut state = state_with_app(UnionidPolicy::Always);
        let mut b = body(false);
        b.grant_type = None;
        assert_eq!(errcode_of(&state.stable_token(&b)), Some(40002));
        let mut b = body(false);
        b.appid = Some("wx2".into());
        assert_eq!(errcode_of(&state.stable_token(&b)), Some(40013));
        let mut b = body(false);
        b.secret = Some("bad".into());
        assert_eq!(errcode_of(&state.stable_token(&b)), Some(40125));
        assert_eq!(
            errcode_of(&state.check_access_token(&None).expect_err("missing")),
            Some(41001)
        );
        assert_eq!(check(&state, "nope"), Some(40001));
        let (token, _) = issued(&state.stable_token(&body(false)));
        state.expire_access_token("wx1").expect("expire");
        assert_eq!(check(&state, &token), Some(42001));
        let (next, _) = issued(&state.stable_token(&body(false)));
        assert_ne!(next, token);
        state.revoke_access_token("wx1").expect("revoke");
        assert_eq!(check(&state, &next), Some(40001));
        let errmsg = match state.check_access_token(&Some(next)) {
            Err(Answer::Json(v)) => v["errmsg"].as_str().map(str::to_owned),
            _ => None,
        };
        assert!(errmsg.is_some_and(|m| m.starts_with(NOT_LATEST)));
    }
}
