//! The WeChat endpoints the simulator serves, and the lifetimes of what they issue.

/// The path of code2Session, also the key of its call counter.
pub const CODE2SESSION_PATH: &str = "/sns/jscode2session";
/// The path of the OAuth code exchange (official accounts, mobile apps, websites).
pub const OAUTH_ACCESS_TOKEN_PATH: &str = "/sns/oauth2/access_token";
/// The path of the OAuth user profile.
pub const SNS_USERINFO_PATH: &str = "/sns/userinfo";
/// The path of getStableAccessToken.
pub const STABLE_TOKEN_PATH: &str = "/cgi-bin/stable_token";
/// The path of the classic getAccessToken, which replaces the app's token on every call.
pub const GET_ACCESS_TOKEN_PATH: &str = "/cgi-bin/token";
/// The path of an official account's follower record (`subscribe`, `unionid`).
pub const CGI_USER_INFO_PATH: &str = "/cgi-bin/user/info";
/// The path of the phone number exchange.
pub const PHONE_NUMBER_PATH: &str = "/wxa/business/getuserphonenumber";
/// The path of checkSessionKey.
pub const CHECK_SESSION_PATH: &str = "/wxa/checksession";

/// How long a code from [`Sim::login`](crate::Sim::login),
/// [`Sim::oauth_authorize`](crate::Sim::oauth_authorize) or
/// [`Sim::phone_code`](crate::Sim::phone_code) can be exchanged: five minutes, as on WeChat.
pub const CODE_TTL_SECS: u64 = 300;

/// The lifetime of an access_token (the app's, from stable_token, and a user's, from the OAuth
/// exchange): 7200 s on the simulator clock.
pub const ACCESS_TOKEN_TTL_SECS: u64 = 7200;

/// stable_token's handover: a token is renewed when fewer than this many seconds remain, and
/// the previous token keeps working until its own expiry, at most this long.
pub const ACCESS_TOKEN_OVERLAP_SECS: u64 = 300;
