//! [`Sim`]: the shared state of one simulator and its control methods.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::model::{
    AccessTokenStatus, AppRegistration, CODE2SESSION_PATH, CallCounts, Fault, FaultRule,
    FaultTarget, Login, OAuthCode, OAuthScope, PhoneCode, STABLE_TOKEN_PATH, SimError,
    UnionidPolicy, UserInfo, UserInfoRequest,
};
use crate::state::{self, State};

/// One simulated WeChat: its apps, users, codes, tokens, faults, counters and clock.
///
/// Cloning is cheap and gives another handle to the same simulator.
/// Every method here has an HTTP twin under `/__sim/` (see the [crate documentation](crate)).
#[derive(Clone, Debug, Default)]
pub struct Sim {
    state: Arc<Mutex<State>>,
}

impl Sim {
    /// An empty simulator, not serving yet: mount [`Sim::router`] in an app, or use
    /// [`Simulator::start`](crate::Simulator::start) to get one that serves.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` under the lock. The lock is never held across an `.await`, and a panic under it
    /// (there is none on purpose) does not poison the simulator.
    pub(crate) fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard: MutexGuard<'_, State> =
            self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// Registers a mini program, or replaces its secret and policy (and makes it a mini
    /// program).
    ///
    /// # Errors
    ///
    /// [`SimError::InvalidInput`] for an empty, over-long or non-ASCII appid or an empty
    /// secret, [`SimError::Capacity`] beyond 1000 apps.
    pub fn register_app(
        &self,
        appid: &str,
        secret: &str,
        unionid_policy: UnionidPolicy,
    ) -> Result<(), SimError> {
        self.register_app_with(AppRegistration::new(appid, secret, unionid_policy))
    }

    /// Registers an app of any kind, or replaces its settings; its access_tokens survive.
    ///
    /// ```
    /// use wxlink_wechat_sim::{AppKind, AppRegistration, Sim, UnionidPolicy};
    ///
    /// let sim = Sim::new();
    /// sim.register_app_with(
    ///     AppRegistration::new("wx_oa", "oa-secret", UnionidPolicy::Always)
    ///         .with_kind(AppKind::OfficialAccount)
    ///         .with_unionid_in_exchange(false), // only sns/userinfo tells the unionid
    /// )?;
    /// # Ok::<(), wxlink_wechat_sim::SimError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`register_app`](Self::register_app).
    pub fn register_app_with(&self, app: AppRegistration) -> Result<(), SimError> {
        self.with_state(|s| s.register_app(app))
    }

    /// Plays `wx.login` for a user: issues a fresh five-minute single-use code and rotates the
    /// user's session key (the previous key stops working).
    ///
    /// The user is created on first login. `unionid` sets the unionid the person has on the
    /// Open Platform (whether code2Session returns it depends on the app's policy); `None` keeps
    /// the one the user already has.
    ///
    /// # Errors
    ///
    /// [`SimError::UnknownApp`], [`SimError::InvalidInput`] for an empty or over-long id,
    /// [`SimError::Capacity`].
    pub fn login(
        &self,
        appid: &str,
        openid: &str,
        unionid: Option<&str>,
    ) -> Result<Login, SimError> {
        self.with_state(|s| s.login(appid, Some(openid), unionid))
    }

    /// Plays a user's OAuth consent in an official account, mobile app or website: issues a
    /// fresh five-minute single-use code for [`OAUTH_ACCESS_TOKEN_PATH`](crate::OAUTH_ACCESS_TOKEN_PATH).
    ///
    /// `openid` is generated when `None`; `unionid` sets the person's unionid as for
    /// [`login`](Self::login). The scope must fit the app's kind: `snsapi_base` or
    /// `snsapi_userinfo` for an official account, `snsapi_userinfo` for a mobile app,
    /// `snsapi_login` for a website.
    ///
    /// # Errors
    ///
    /// [`SimError::UnknownApp`], [`SimError::WrongAppKind`] for a mini program or a scope the
    /// kind does not have, [`SimError::InvalidInput`], [`SimError::Capacity`].
    pub fn oauth_authorize(
        &self,
        appid: &str,
        openid: Option<&str>,
        unionid: Option<&str>,
        scope: OAuthScope,
    ) -> Result<OAuthCode, SimError> {
        self.with_state(|s| s.oauth_authorize(appid, openid, unionid, scope))
    }

    /// Plays a visit of an official account's page in snapshot mode ("快照页", a page opened
    /// from a Moments share without tapping "使用完整服务"): issues a `snsapi_base` code of a
    /// virtual user (a fresh openid, no unionid) whose exchange answers `"is_snapshotuser": 1`.
    ///
    /// # Errors
    ///
    /// [`SimError::UnknownApp`], [`SimError::WrongAppKind`] for an app that is not an official
    /// account, [`SimError::Capacity`].
    pub fn oauth_snapshot_visit(&self, appid: &str) -> Result<OAuthCode, SimError> {
        self.with_state(|s| s.oauth_snapshot_visit(appid))
    }

    /// Plays a mini program's getPhoneNumber button: issues a fresh five-minute single-use
    /// code for [`PHONE_NUMBER_PATH`](crate::PHONE_NUMBER_PATH), which reveals this number.
    ///
    /// `phone_number` is the number without country calling code (digits only);
    /// `country_code` defaults to `86`. The exchange answers `phoneNumber` as the bare number
    /// for 86 and as `+{country_code}{number}` otherwise. The user is created if needed.
    ///
    /// # Errors
    ///
    /// [`SimError::UnknownApp`], [`SimError::WrongAppKind`] for an app that is not a mini
    /// program, [`SimError::InvalidInput`] for a number or country code that is not 1–20
    /// (1–4) digits, [`SimError::Capacity`].
    pub fn phone_code(
        &self,
        appid: &str,
        openid: &str,
        phone_number: &str,
        country_code: Option<&str>,
    ) -> Result<PhoneCode, SimError> {
        self.with_state(|s| s.phone_code(appid, openid, phone_number, country_code))
    }

    /// Makes an app's current (and previous) stable access_token expire now: calls with it get
    /// 42001 `access_token expired`, and the next stable_token call issues a new token.
    ///
    /// # Errors
    ///
    /// [`SimError::UnknownApp`].
    pub fn expire_access_token(&self, appid: &str) -> Result<(), SimError> {
        self.with_state(|s| s.expire_access_token(appid))
    }

    /// Revokes an app's current (and previous) stable access_token, as a forced refresh by
    /// someone else does: calls with it get 40001 `invalid credential, access_token is invalid
    /// or not latest`, and the next stable_token call issues a new token.
    ///
    /// # Errors
    ///
    /// [`SimError::UnknownApp`].
    pub fn revoke_access_token(&self, appid: &str) -> Result<(), SimError> {
        self.with_state(|s| s.revoke_access_token(appid))
    }

    /// The app's current and previous stable access_token and its forced refreshes.
    ///
    /// # Errors
    ///
    /// [`SimError::UnknownApp`].
    pub fn access_token_status(&self, appid: &str) -> Result<AccessTokenStatus, SimError> {
        self.with_state(|s| s.access_token_status(appid))
    }

    /// Like [`login`](Self::login) for a new user with a generated openid.
    ///
    /// # Errors
    ///
    /// As [`login`](Self::login).
    pub fn login_new_user(&self, appid: &str, unionid: Option<&str>) -> Result<Login, SimError> {
        self.with_state(|s| s.login(appid, None, unionid))
    }

    /// Marks a user as following the platform's official account (creating the user if
    /// needed); matters for [`UnionidPolicy::WhenFollowing`].
    ///
    /// # Errors
    ///
    /// [`SimError::UnknownApp`], [`SimError::InvalidInput`], [`SimError::Capacity`].
    pub fn follow(&self, appid: &str, openid: &str) -> Result<(), SimError> {
        self.set_following(appid, openid, true)
    }

    /// Marks a user as following an official account, with the unionid the person has on the
    /// Open Platform: `GET /cgi-bin/user/info` then answers `subscribe: 1` with that unionid
    /// when the account is bound (its [`UnionidPolicy`] is not `Never`).
    ///
    /// # Errors
    ///
    /// As [`follow`](Self::follow).
    pub fn follow_with_unionid(
        &self,
        appid: &str,
        openid: &str,
        unionid: &str,
    ) -> Result<(), SimError> {
        self.with_state(|s| s.set_following(appid, openid, true, Some(unionid)))
    }

    /// Sets whether a user follows the official account.
    ///
    /// # Errors
    ///
    /// As [`follow`](Self::follow).
    pub fn set_following(
        &self,
        appid: &str,
        openid: &str,
        following: bool,
    ) -> Result<(), SimError> {
        self.with_state(|s| s.set_following(appid, openid, following, None))
    }

    /// Plays `wx.getUserInfo` for a user: the encrypted data, iv, rawData and signature under
    /// the user's current session key, with `unionId` when the user has one.
    ///
    /// # Errors
    ///
    /// As [`user_info_with`](Self::user_info_with).
    pub fn user_info(&self, appid: &str, openid: &str) -> Result<UserInfo, SimError> {
        self.user_info_with(&UserInfoRequest::new(appid, openid))
    }

    /// Plays `wx.getUserInfo` or `wx.getUserProfile` with options.
    ///
    /// The plaintext is JSON with `openId`, `unionId` (when requested and the user has one,
    /// whatever the app's code2Session policy), `nickName`, `gender`, `language`, `city`,
    /// `province`, `country`, `avatarUrl` and `watermark: {appid, timestamp}`, the timestamp
    /// being the simulator clock in Unix seconds.
    ///
    /// # Errors
    ///
    /// [`SimError::UnknownApp`], [`SimError::UnknownUser`], [`SimError::NoSession`] for a user
    /// who never logged in, [`SimError::InvalidInput`] for an over-long nickname.
    pub fn user_info_with(&self, request: &UserInfoRequest) -> Result<UserInfo, SimError> {
        if let Some(nick) = &request.nick_name {
            state::check_id("nick_name", nick)?;
        }
        let (session_key, unionid, now_ms) =
            self.with_state(|s| s.user_info_inputs(&request.appid, &request.openid))?;
        let unionid = unionid.filter(|_| request.include_unionid);
        let (raw_data, plaintext) = state::user_info_plaintext(
            &request.openid,
            unionid.as_deref(),
            request.nick_name.as_deref().unwrap_or("微信用户"),
            request.watermark_appid.as_deref().unwrap_or(&request.appid),
            request.watermark_timestamp.unwrap_or(now_ms / 1000),
        );
        let iv = state::random_iv();
        let encrypted_data =
            wxlink_crypto::encrypt(&session_key, &iv, plaintext.to_string().as_bytes())
                .map_err(SimError::Crypto)?;
        let signature = wxlink_crypto::raw_data_signature(&raw_data, &session_key);
        Ok(UserInfo {
            encrypted_data,
            iv,
            raw_data,
            signature,
        })
    }

    /// Queues faults for matching calls of the WeChat endpoints: one per call, in order, then
    /// gone. Use [`FaultTarget::at_path`] to aim at one endpoint.
    ///
    /// # Errors
    ///
    /// As [`add_fault_rule`](Self::add_fault_rule).
    pub fn queue_faults(
        &self,
        target: FaultTarget,
        faults: impl IntoIterator<Item = Fault>,
    ) -> Result<(), SimError> {
        self.add_fault_rule(FaultRule {
            target,
            faults: faults.into_iter().collect(),
            sticky: false,
        })
    }

    /// Plays a fault on every matching call until [`clear_faults`](Self::clear_faults).
    ///
    /// # Errors
    ///
    /// As [`add_fault_rule`](Self::add_fault_rule).
    pub fn sticky_fault(&self, target: FaultTarget, fault: Fault) -> Result<(), SimError> {
        self.add_fault_rule(FaultRule {
            target,
            faults: vec![fault],
            sticky: true,
        })
    }

    /// Adds a fault rule (queued or sticky).
    ///
    /// # Errors
    ///
    /// [`SimError::InvalidInput`] for an empty list or a delay over 60 s,
    /// [`SimError::Capacity`] beyond 1000 rules or 1000 faults in a rule.
    pub fn add_fault_rule(&self, rule: FaultRule) -> Result<(), SimError> {
        self.with_state(|s| s.add_fault_rule(rule))
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.with_state(State::clear_faults);
    }

    /// The call counters.
    pub fn calls(&self) -> CallCounts {
        self.with_state(|s| s.calls())
    }

    /// How many times code2Session was called.
    pub fn code2session_calls(&self) -> u64 {
        self.calls().total(CODE2SESSION_PATH)
    }

    /// How many times code2Session was called with this appid.
    pub fn code2session_calls_for(&self, appid: &str) -> u64 {
        self.calls().for_app(CODE2SESSION_PATH, appid)
    }

    /// How many times stable_token was called.
    pub fn stable_token_calls(&self) -> u64 {
        self.calls().total(STABLE_TOKEN_PATH)
    }

    /// How many times stable_token was called with this appid.
    pub fn stable_token_calls_for(&self, appid: &str) -> u64 {
        self.calls().for_app(STABLE_TOKEN_PATH, appid)
    }

    /// Sets every counter to zero (also [`AccessTokenStatus::force_refresh_calls`]).
    pub fn reset_calls(&self) {
        self.with_state(State::reset_calls);
    }

    /// Moves the simulator clock forward: codes and tokens expire and watermarks are stamped as
    /// if this much time had passed.
    pub fn advance_clock(&self, by: Duration) {
        self.with_state(|s| s.advance_clock(by));
    }

    /// The simulator clock, in Unix seconds.
    pub fn now_unix(&self) -> i64 {
        self.with_state(|s| s.now_ms()) / 1000
    }
}
