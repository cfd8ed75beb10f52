//! Secrets at rest: the database holds tokens only hashed and session_keys only sealed (that
//! they never reach the logs is tested on the process in `tests/tests/api/secrets.rs`).

use crate::helpers::{APP_A, APP_B, Api, Backend, Options, TestApp};

on_both_backends!(tokens_and_session_keys_are_not_stored_in_clear);

async fn tokens_and_session_keys_are_not_stored_in_clear(backend: Backend) {
    let app = TestApp::spawn(backend, Options::default()).await;
    let mut secrets = Vec::new();
    for i in 0..5 {
        let appid = if i % 2 == 0 { APP_A } else { APP_B };
        let (wx, login) = app
            .login_full(
                appid,
                &format!("stored-{i}"),
                Some(&format!("stored-union-{i}")),
            )
            .await;
        secrets.push(("a token", login.token));
        secrets.push(("a session_key", wx.session_key));
    }
    let stored = app.stored_bytes();
    for (what, secret) in &secrets {
        let raw = wxlink_crypto::decode_base64(secret).unwrap_or_default();
        let mut forms: Vec<Vec<u8>> = vec![secret.as_bytes().to_vec(), hex(secret.as_bytes())];
        if raw.len() >= 16 {
            forms.push(hex(&raw));
            forms.push(raw);
        }
        for form in forms {
            assert!(
                !stored.windows(form.len()).any(|w| w == form.as_slice()),
                "{what} is stored in clear ({} bytes searched)",
                stored.len()
            );
        }
    }
    // The search works: stored identities are there in clear.
    assert!(stored.windows(8).any(|w| w == b"stored-0"));
}

fn hex(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect()
}
