//! Signed access tokens (JWTs, `[tokens] format = "jwt"`) and their rotating refresh tokens.
//!
//! A signed access token names its session (`sid`); wxlink's own use cases accept one only
//! while that session is live, so revoking a session stops its tokens here at once, while other
//! services that verify offline accept them until they expire. The session itself is keyed by
//! the hash of a random session token that is never handed out in this format: its hash is an
//! identifier, nothing more.

use std::fmt;
use std::sync::Arc;

use crate::error::DomainError;
use crate::ids::{AppId, UserId};
use crate::model::UnixTime;
use crate::secrets::{SessionToken, TokenHash};

/// What a signed access token says, for the adapter to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    /// The user the token acts as when issued (`sub`).
    pub sub: UserId,
    /// The app of the login (`azp`).
    pub azp: AppId,
    /// The session (`sid`).
    pub sid: TokenHash,
    /// Whether the user's unionid is known.
    pub unionid_linked: bool,
    /// When it is issued (`iat`); it expires `ttl` later.
    pub iat: UnixTime,
}

/// A signed access token's checked claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedAccess {
    /// The session it was issued for.
    pub sid: TokenHash,
    /// When it was issued.
    pub iat: UnixTime,
    /// When it expires.
    pub exp: UnixTime,
}

/// A freshly signed access token.
#[derive(Debug, Clone)]
pub struct IssuedAccess {
    /// The token (a JWT).
    pub token: SessionToken,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Signs and verifies access tokens: the JOSE adapter, with the cluster's signing keys.
/// Synchronous: the keys are in memory, so both are CPU work only.
pub trait AccessTokens: fmt::Debug + Send + Sync + 'static {
    /// Sign a token for `grant`.
    ///
    /// # Errors
    /// A store error when no signing key is available.
    fn issue(&self, grant: &AccessGrant) -> Result<IssuedAccess, DomainError>;

    /// The claims of `token` if its signature, issuer and lifetime hold at `now`.
    fn verify(&self, token: &str, now: UnixTime) -> Option<VerifiedAccess>;
}

/// The configured access-token format: `None` is opaque session tokens.
pub(crate) type Signer = Option<Arc<dyn AccessTokens>>;

/// Whether a presented bearer token has a JWT's shape (three dot-separated parts); opaque
/// session tokens never contain a dot.
pub(crate) fn is_signed(token: &SessionToken) -> bool {
    token.expose_secret().contains('.')
}

/// The session a bearer token stands for, and the token's own lifetime when it is signed:
/// `None` for a signed token that does not verify (or when signed tokens are not configured).
pub(crate) fn session_of(
    signer: &Signer,
    token: &SessionToken,
    now: UnixTime,
) -> Option<(TokenHash, Option<VerifiedAccess>)> {
    if !is_signed(token) {
        return Some((token.hash(), None));
    }
    let verified = signer.as_ref()?.verify(token.expose_secret(), now)?;
    Some((verified.sid, Some(verified)))
}

/// [`session_of`] for the use cases: an unverifiable token is [`DomainError::InvalidToken`].
pub(crate) fn session_hash(
    signer: &Signer,
    token: &SessionToken,
    now: UnixTime,
) -> Result<TokenHash, DomainError> {
    session_of(signer, token, now)
        .map(|(sid, _)| sid)
        .ok_or(DomainError::InvalidToken)
}

/// A stored refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshTokenRow {
    /// The session it refreshes.
    pub session: TokenHash,
    /// Whether it was already exchanged.
    pub used: bool,
}
