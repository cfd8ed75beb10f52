//! [`Sim`]: the shared state of one simulator and its control methods.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::model::{
    AppRegistration, CODE2SESSION_PATH, CallCounts, Fault, FaultRule, FaultTarget, Login, SimError,
    UnionidPolicy, UserInfo, UserInfoRequest,
};
use crate::state::{self, State};

/// One simulated WeChat: its apps, users, codes, faults, counters and clock.
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

    /// Registers a mini program, or replaces its secret and policy.
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
        self.with_state(|s| {
            s.register_app(AppRegistration {
                appid: appid.to_owned(),
                secret: secret.to_owned(),
                unionid_policy,
            })
        })
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
        self.with_state(|s| s.set_following(appid, openid, following))
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

    /// Queues faults for matching code2Session calls: one per call, in order, then gone.
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

    /// Plays a fault on every matching code2Session call until [`clear_faults`](Self::clear_faults).
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

    /// Sets every counter to zero.
    pub fn reset_calls(&self) {
        self.with_state(State::reset_calls);
    }

    /// Moves the simulator clock forward: codes expire and watermarks are stamped as if this
    /// much time had passed.
    pub fn advance_clock(&self, by: Duration) {
        self.with_state(|s| s.advance_clock(by));
    }

    /// The simulator clock, in Unix seconds.
    pub fn now_unix(&self) -> i64 {
        self.with_state(|s| s.now_ms()) / 1000
    }
}
