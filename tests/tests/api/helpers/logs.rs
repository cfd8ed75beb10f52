//! Secrets never reach the logs: the search every log-scanning test uses.

/// Fail, showing the line, if any of `secrets` ((what it is, the secret)) is in `logs` as it
/// is, URL-encoded, or with JSON's escaped slashes.
#[track_caller]
pub fn assert_no_secrets_in_logs(logs: &str, secrets: &[(&str, String)]) {
    for (what, secret) in secrets {
        assert!(!secret.is_empty(), "{what}: an empty secret proves nothing");
        // Also the form a URL or JSON encoder would give it.
        let encoded = secret
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        for form in [
            secret.as_str(),
            encoded.as_str(),
            &secret.replace('/', "\\/"),
        ] {
            if let Some(at) = logs.find(form) {
                let from = logs[..at].rfind('\n').map_or(0, |i| i + 1);
                let to = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
                panic!("{what} is in the logs:\n{}", &logs[from..to]);
            }
        }
    }
}
