//! The tables, once for both backends.
//!
//! Only column types that `#[derive(diesel::MultiConnection)]` maps on every backend are used:
//! `Text`, `BigInt`, `Binary` and `Nullable` of them. Timestamps are Unix seconds in `BigInt`,
//! which keeps SQLite and PostgreSQL identical and avoids time-zone conversions altogether.

diesel::table! {
    /// People as wxlink knows them.
    users (id) {
        /// wxlink's user id.
        id -> Text,
        /// The unionid, once known; unique.
        unionid -> Nullable<Text>,
        /// The owner this provisional user was merged into.
        merged_into -> Nullable<Text>,
        /// Unix seconds.
        created_at -> BigInt,
        /// Unix seconds.
        updated_at -> BigInt,
        /// A verified phone number, sealed, associated data = the user id.
        phone_number -> Nullable<Binary>,
        /// Unix seconds: when WeChat verified `phone_number`.
        phone_verified_at -> Nullable<BigInt>,
        /// Unix seconds; set when the account was cancelled (the row is a tombstone).
        deleted_at -> Nullable<BigInt>,
        /// Keyed hash of the phone number's digits, to find a user by phone (`phone_hash`).
        phone_hash -> Nullable<Binary>,
        /// The app of the identity that verified `phone_number` (NULL: verified before this
        /// was recorded).
        phone_appid -> Nullable<Text>,
        /// The openid of the identity that verified `phone_number`.
        phone_openid -> Nullable<Text>,
    }
}

diesel::table! {
    /// (appid, openid) identities and the user each belongs to.
    identities (appid, openid) {
        /// The app.
        appid -> Text,
        /// The user's openid in the app.
        openid -> Text,
        /// The owning user.
        user_id -> Text,
        /// Unix seconds.
        created_at -> BigInt,
        /// Unix seconds.
        updated_at -> BigInt,
        /// The unionid WeChat told for this identity: it vouches for its user's unionid.
        unionid -> Nullable<Text>,
    }
}

diesel::table! {
    /// Logins: bearer token hashes and the sealed WeChat session_key behind each.
    sessions (token_hash) {
        /// SHA-256 of the bearer token (32 bytes).
        token_hash -> Binary,
        /// The user the token was issued to.
        user_id -> Text,
        /// The app of the login.
        appid -> Text,
        /// The openid of the login.
        openid -> Text,
        /// The session_key sealed with the keyring, associated data = token_hash; only mini
        /// program logins have one.
        session_key -> Nullable<Binary>,
        /// Unix seconds.
        created_at -> BigInt,
        /// Unix seconds.
        expires_at -> BigInt,
        /// Unix seconds; set by logout.
        revoked_at -> Nullable<BigInt>,
        /// Attempts to open user data reserved and not given back (failed decryptions).
        failed_decrypts -> BigInt,
    }
}

diesel::table! {
    /// The append-only log of creations, links and merges.
    events (id) {
        /// Increasing id, in the order events were written (not committed).
        id -> BigInt,
        /// The position in the feed, the followers' cursor; NULL until placed (PostgreSQL).
        seq -> Nullable<BigInt>,
        /// `EventKind::as_str`.
        kind -> Text,
        /// The user it happened to (for a merge, the surviving owner).
        user_id -> Text,
        /// For a merge, the user merged away.
        other_user_id -> Nullable<Text>,
        /// The app whose request caused it.
        appid -> Text,
        /// The openid in that app.
        openid -> Text,
        /// Unix seconds.
        at -> BigInt,
        /// Facts that are not columns, a JSON object (`EventDetail`: `by`, and what a merge moved
        /// or how many sessions a revocation revoked).
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    /// Rotating refresh tokens (`[tokens] format = "jwt"`), hashed, one chain per session.
    refresh_tokens (token_hash) {
        /// SHA-256 of the refresh token (32 bytes).
        token_hash -> Binary,
        /// The session it refreshes (`sessions.token_hash`).
        session_hash -> Binary,
        /// Unix seconds.
        created_at -> BigInt,
        /// Unix seconds; set when exchanged (presenting it again is reuse).
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// The cluster's JWT signing keys; the generation guards rotation.
    signing_keys (generation) {
        /// 1, 2, …: exactly one key per generation.
        generation -> BigInt,
        /// The JWS `kid`.
        kid -> Text,
        /// The JWS `alg`.
        algorithm -> Text,
        /// PKCS#8 private key, sealed, associated data = kid.
        private_key -> Binary,
        /// The public key as a JWK, JSON text.
        public_jwk -> Text,
        /// Unix seconds.
        created_at -> BigInt,
        /// Unix seconds; signing starts here.
        activates_at -> BigInt,
    }
}

diesel::joinable!(identities -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    identities,
    sessions,
    events,
    access_tokens,
    webhook_cursors,
    rate_limit_windows,
    data_keys,
    decrypt_budgets,
    operators,
    operator_sessions,
    sign_in_failures,
    refresh_tokens,
    signing_keys
);

diesel::table! {
    /// One WeChat access token per app for the whole cluster, and the refresh lease.
    access_tokens (appid) {
        /// The app.
        appid -> Text,
        /// The token, sealed, associated data = the appid; NULL before the first refresh.
        token -> Nullable<Binary>,
        /// Unix seconds.
        expires_at -> BigInt,
        /// The node refreshing the token now, if any.
        lease_holder -> Nullable<Text>,
        /// Unix seconds; the lease is free after this.
        lease_until -> BigInt,
        /// Unix seconds of the last refresh.
        refreshed_at -> BigInt,
    }
}

diesel::table! {
    /// Per webhook: the last event its receiver acknowledged, and the delivery lease.
    webhook_cursors (name) {
        /// The webhook's name (`[webhooks.<name>]`).
        name -> Text,
        /// The feed position (`events.seq`) of the last acknowledged event.
        last_event_id -> BigInt,
        /// The node delivering now, if any.
        lease_holder -> Nullable<Text>,
        /// Unix seconds; the lease is free after this.
        lease_until -> BigInt,
    }
}

diesel::table! {
    /// Rate-limit hits per key and fixed window, summed over every node.
    rate_limit_windows (limit_key, window_start) {
        /// What is limited, e.g. `ip:203.0.113.7` or `app:wx…`.
        limit_key -> Text,
        /// Unix seconds where the window starts.
        window_start -> BigInt,
        /// Hits counted in the window by all nodes.
        hits -> BigInt,
    }
}

diesel::table! {
    /// The data keys sealed values are under: key id and fingerprint, never the key.
    data_keys (key_id) {
        /// `KeyId` as 8 hex digits.
        key_id -> Text,
        /// `DataKey::fingerprint`; NULL when only seen in a sealed value's header.
        fingerprint -> Nullable<Text>,
        /// `in_use` or `retired`.
        state -> Text,
        /// Order in which keys became current; the greatest is the cluster's current key.
        current_seq -> Nullable<BigInt>,
        /// Unix seconds.
        recorded_at -> BigInt,
    }
}

diesel::table! {
    /// The daily budget of failed decryptions per (appid, openid), kept apart from
    /// `identities` so that deleting an identity (a cancellation, an unlink) does not reset it.
    decrypt_budgets (identity_hash) {
        /// HMAC-SHA256 of (appid, openid) under a key derived from the current data key.
        identity_hash -> Binary,
        /// Failed decryptions since `window_since`.
        failed_decrypts -> BigInt,
        /// Unix seconds: when the current day-long window began.
        window_since -> BigInt,
    }
}

diesel::table! {
    /// The support console's operators.
    operators (name) {
        /// The operator's name, as events' `actor` shows it (`console:NAME`).
        name -> Text,
        /// Argon2id, PHC string format.
        password_hash -> Text,
        /// 1 while the password is a one-time one to change at the next sign-in.
        password_expired -> BigInt,
        /// Space-separated scope names.
        scopes -> Text,
        /// The TOTP secret, sealed, associated data = the name.
        totp_secret -> Nullable<Binary>,
        /// The last TOTP time step accepted (each code is accepted once).
        totp_last_step -> Nullable<BigInt>,
        /// Unix seconds; set when disabled.
        disabled_at -> Nullable<BigInt>,
        /// Unix seconds.
        created_at -> BigInt,
        /// Unix seconds.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Signed-in operators.
    operator_sessions (token_hash) {
        /// SHA-256 of the session cookie's token.
        token_hash -> Binary,
        /// The operator.
        operator -> Text,
        /// Unix seconds.
        created_at -> BigInt,
        /// Unix seconds of the last request; the idle timeout counts from it.
        last_seen_at -> BigInt,
    }
}

diesel::table! {
    /// Failed sign-ins per operator and per client address.
    sign_in_failures (limit_key) {
        /// `operator:NAME` or `address:IP`.
        limit_key -> Text,
        /// Failures since the last success.
        failures -> BigInt,
        /// Unix seconds.
        last_failure_at -> BigInt,
    }
}
