use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use wxlink_domain::AppKind;

use super::*;

fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxlink.toml");
    std::fs::write(&path, toml).unwrap();
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::load_with_env(Some(&path), Some(env))
}

const APP: &str = "[apps.wx4f4bc4dec97d474b]\nsecret = \"s3cret\"\n";

#[test]
fn defaults_are_the_contracts() {
    let settings = load(APP, &[]).unwrap();
    assert_eq!(settings.server.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.server.max_body_bytes, 65536);
    assert_eq!(settings.database.url, "sqlite://wxlink.db");
    assert_eq!(settings.database.max_connections, 16);
    assert_eq!(settings.wechat.api_base, "https://api.weixin.qq.com");
    assert_eq!(settings.wechat.timeout_ms, 5000);
    assert_eq!(settings.wechat.max_watermark_age_secs, 600);
    assert_eq!(settings.session.ttl_secs, 604_800);
    let apps = settings.validate().unwrap().apps;
    assert_eq!(apps[0].appid.as_str(), "wx4f4bc4dec97d474b");
    assert_eq!(apps[0].kind, AppKind::MiniProgram);
}

const TEST_DATA_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

#[test]
fn postgres_without_a_data_key_is_refused_naming_it() {
    let err = load(
        &format!("[database]\nurl = \"postgres://db/wxlink\"\n{APP}"),
        &[],
    )
    .unwrap()
    .validate()
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("security.data_key") && text.contains("WXLINK__SECURITY__DATA_KEY"),
        "{text}"
    );
}

#[test]
fn environment_overrides_any_key_including_secrets() {
    let settings = load(
        "[apps.wx4f4bc4dec97d474b]\n",
        &[
            ("WXLINK__DATABASE__URL", "postgres://db/wxlink"),
            ("WXLINK__SECURITY__DATA_KEY", TEST_DATA_KEY),
            ("WXLINK__SERVER__MAX_BODY_BYTES", "1024"),
            ("WXLINK__APPS__WX4F4BC4DEC97D474B__SECRET", "from-env"),
        ],
    )
    .unwrap();
    assert_eq!(settings.database.url, "postgres://db/wxlink");
    assert_eq!(settings.server.max_body_bytes, 1024);
    let apps = settings.validate().unwrap().apps;
    assert_eq!(apps[0].secret.expose_secret(), "from-env");
}

#[test]
fn previous_data_keys_come_from_the_environment_as_a_list() {
    let a = wxlink_crypto::DataKey::from_bytes([1; 32]);
    let b = wxlink_crypto::DataKey::from_bytes([2; 32]);
    let current = wxlink_crypto::DataKey::from_bytes([3; 32]);
    let list = format!(
        "{},{}",
        a.to_base64().expose_secret(),
        b.to_base64().expose_secret()
    );
    let settings = load(
        APP,
        &[
            (
                "WXLINK__SECURITY__DATA_KEY",
                current.to_base64().expose_secret(),
            ),
            ("WXLINK__SECURITY__PREVIOUS_DATA_KEYS", &list),
        ],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data_keys = settings.validate().unwrap().data_keys;
    let (ring, created) = data_keys.keyring(&dir.path().join("unused.key")).unwrap();
    assert!(created.is_none());
    assert_eq!(ring.current_key_id(), current.id());
    let sealed_under_a = wxlink_crypto::Keyring::new(a).seal(b"k");
    assert_eq!(ring.open(&sealed_under_a).unwrap(), b"k");
}

#[test]
fn an_appid_with_capitals_takes_its_secret_from_the_environment() {
    let settings = load(
        "[apps.wxABCDEF0123456789]\nkind = \"official_account\"\n",
        &[("WXLINK__APPS__WXABCDEF0123456789__SECRET", "from-env")],
    )
    .unwrap();
    let apps = settings.validate().unwrap().apps;
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].appid.as_str(), "wxABCDEF0123456789");
    assert_eq!(apps[0].secret.expose_secret(), "from-env");
    assert_eq!(apps[0].kind, AppKind::OfficialAccount);
}

#[test]
fn every_app_kind_is_configured_by_its_name_and_others_are_refused() {
    for kind in AppKind::ALL {
        let toml = format!(
            "[apps.wxabcdef0123456789]\nsecret = \"s\"\nkind = \"{}\"\n",
            kind.as_str()
        );
        let apps = load(&toml, &[]).unwrap().validate().unwrap().apps;
        assert_eq!(apps[0].kind, kind);
    }
    let err = load(
        "[apps.wxabcdef0123456789]\nsecret = \"s\"\nkind = \"applet\"\n",
        &[],
    )
    .unwrap_err();
    assert!(err.to_string().contains("`applet`"), "{err}");
    assert!(err.to_string().contains("`official_account`"), "{err}");
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let err = load(&format!("[server]\nbnid = \"x\"\n{APP}"), &[]).unwrap_err();
    assert!(err.to_string().contains("bnid"), "{err}");
    let err = load(&format!("[sever]\n{APP}"), &[]).unwrap_err();
    assert!(err.to_string().contains("sever"), "{err}");
}

#[test]
fn trusted_proxies_are_networks_and_the_old_boolean_names_its_successor() {
    let settings = load(
        &format!(
            "[rate_limit]\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"fd00::/8\"]\n{APP}"
        ),
        &[],
    )
    .unwrap();
    let nets = settings.rate_limit.proxy_networks().unwrap();
    assert_eq!(nets.len(), 3);
    assert_eq!(nets[0].to_string(), "127.0.0.1/32");
    let from_env = load(
        APP,
        &[(
            "WXLINK__RATE_LIMIT__TRUSTED_PROXIES",
            "10.0.0.0/8,192.168.0.0/16",
        )],
    )
    .unwrap();
    assert_eq!(from_env.rate_limit.proxy_networks().unwrap().len(), 2);
    let err = load(
        &format!("[rate_limit]\ntrusted_proxies = [\"10.0.0.0/33\"]\n{APP}"),
        &[],
    )
    .unwrap()
    .validate()
    .unwrap_err();
    assert!(
        err.to_string().contains("rate_limit.trusted_proxies[0]"),
        "{err}"
    );
    let err = load(
        &format!("[rate_limit]\ntrust_x_forwarded_for = true\n{APP}"),
        &[],
    )
    .unwrap()
    .validate()
    .unwrap_err();
    assert!(
        err.to_string().contains("rate_limit.trusted_proxies"),
        "{err}"
    );
}

#[test]
fn server_timeouts_and_the_connection_cap_must_be_positive() {
    let settings = load(APP, &[]).unwrap();
    assert_eq!(settings.server.header_read_timeout_ms, 10_000);
    assert_eq!(settings.server.request_timeout_ms, 30_000);
    assert_eq!(settings.server.max_connections, 1024);
    assert_eq!(settings.server.write_timeout_ms, 20_000);
    assert_eq!(settings.server.max_connections_per_ip, 64);
    for key in [
        "header_read_timeout_ms",
        "request_timeout_ms",
        "write_timeout_ms",
        "max_connections",
    ] {
        let err = load(&format!("[server]\n{key} = 0\n{APP}"), &[])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains(&format!("server.{key}")), "{err}");
    }
}

#[test]
fn urls_and_durations_are_parsed_once_by_their_owners_rules() {
    let settings = load(
        &format!("[database]\nurl = \"postgres://u:pw@db/wxlink\"\n[wechat]\napi_base = \"http://127.0.0.1:9/wx\"\ntimeout_ms = 1500\n{APP}"),
        &[("WXLINK__SECURITY__DATA_KEY", TEST_DATA_KEY)],
    )
    .unwrap();
    let valid = settings.validate().unwrap();
    assert_eq!(
        valid.database.backend(),
        wxlink_persistence::Backend::Postgres
    );
    assert!(!format!("{valid:?}").contains("pw"), "{valid:?}");
    assert_eq!(valid.wechat.api_base().as_str(), "http://127.0.0.1:9/wx");
    assert_eq!(valid.wechat.timeout(), Duration::from_millis(1500));
    assert_eq!(valid.request_timeout, Duration::from_secs(30));
    // The store's rules, not a prefix check: an in-memory SQLite database is refused here,
    // as Store::connect would refuse it.
    for (toml, key) in [
        ("[database]\nurl = \"sqlite://:memory:\"\n", "database.url"),
        ("[database]\nurl = \"mysql://db\"\n", "database.url"),
        (
            "[wechat]\napi_base = \"http://u:pw@wx\"\n",
            "wechat.api_base",
        ),
        ("[wechat]\napi_base = \"ftp://wx\"\n", "wechat.api_base"),
    ] {
        let err = load(&format!("{toml}{APP}"), &[])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains(key), "{toml}: {err}");
        assert!(!err.to_string().contains("pw"), "{toml}: {err}");
    }
}

#[test]
fn bad_apps_are_refused_by_key() {
    let err = load("[apps.wx123]\nsecret = \"s\"\n", &[])
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("apps.wx123"), "{err}");
    let err = load("[apps.wx4f4bc4dec97d474b]\n", &[])
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(
        err.to_string().contains("apps.wx4f4bc4dec97d474b.secret"),
        "{err}"
    );
    let err = load("", &[]).unwrap().validate().unwrap_err();
    assert!(err.to_string().contains("apps"), "{err}");
}

#[test]
fn service_tokens_are_long_and_never_empty() {
    let long = "t".repeat(MIN_SHARED_SECRET_CHARS);
    let refused = |toml: &str, env: &[(&str, &str)], key: &str, what: &str| {
        let err = load(toml, env).unwrap().validate().unwrap_err();
        assert!(
            err.to_string().contains(key) && err.to_string().contains(what),
            "{err}"
        );
    };
    let var = "WXLINK__INTERNAL__TOKENS";
    let two_and_empty = format!("{long},,{long}");
    refused(APP, &[(var, &two_and_empty)], "internal.tokens[1]", "empty");
    refused(APP, &[(var, "")], "internal.tokens[0]", "empty");
    let short = "t".repeat(MIN_SHARED_SECRET_CHARS - 1);
    refused(APP, &[(var, &short)], "internal.tokens[0]", "at least 16");
    let file = format!("{APP}[internal]\ntokens = [\"{long}\", \"\"]\n");
    refused(&file, &[], "internal.tokens[1]", "empty");

    let both = format!("{long},{long}x");
    let settings = load(APP, &[(var, &both)]).unwrap();
    settings.validate().unwrap();
    assert_eq!(settings.internal.tokens.len(), 2);
}

#[test]
fn named_clients_get_their_scopes_and_legacy_tokens_every_scope() {
    use crate::http::clients::Scope;
    let long = "t".repeat(MIN_SHARED_SECRET_CHARS);
    let file = format!(
        "{APP}[internal]\ntokens = [\"{long}-legacy\"]\n\
         [internal.clients.crm]\nscopes = [\"events:read\", \"users:read\"]\n\
         [internal.clients.support_desk]\ntoken = \"{long}-support\"\n\
         scopes = \"support:write users:read,users:phone\"\n"
    );
    // The token from the environment, the scopes from the file; and a whole client from
    // the environment, its scopes as one string.
    let crm_token = format!("{long}-crm");
    let resource_token = format!("{long}-rs");
    let settings = load(
        &file,
        &[
            ("WXLINK__INTERNAL__CLIENTS__CRM__TOKEN", &crm_token),
            ("WXLINK__INTERNAL__CLIENTS__RS__TOKEN", &resource_token),
            ("WXLINK__INTERNAL__CLIENTS__RS__SCOPES", "tokens:introspect"),
        ],
    )
    .unwrap();
    let clients = settings.validate().unwrap().clients;
    let found: Vec<(&str, Vec<&str>, bool)> = clients
        .iter()
        .map(|c| {
            let scopes = c.scopes.iter().map(|s| s.as_str()).collect();
            (c.name.as_str(), scopes, c.named)
        })
        .collect();
    let every: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        found,
        vec![
            ("legacy-1", every, false),
            ("crm", vec!["users:read", "events:read"], true),
            ("rs", vec!["tokens:introspect"], true),
            (
                "support_desk",
                vec!["users:read", "users:phone", "support:write"],
                true
            ),
        ]
    );
    assert_eq!(clients[1].token.expose_secret(), crm_token);
    assert!(!format!("{settings:?}").contains(&long));
}

#[test]
fn a_bad_client_stops_start_up_naming_its_key() {
    let long = "t".repeat(MIN_SHARED_SECRET_CHARS);
    let refused = |clients: &str, key: &str, what: &str| {
        let err = load(&format!("{APP}{clients}"), &[])
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains(key) && err.contains(what), "{clients}: {err}");
        assert!(!err.contains(&long), "{err}");
    };
    refused(
        &format!(
            "[internal.clients.crm]\ntoken = \"{long}\"\nscopes = [\"events:read\", \"users:write\"]\n"
        ),
        "internal.clients.crm.scopes[1]",
        "unknown scope \"users:write\"",
    );
    refused(
        &format!("[internal.clients.crm]\ntoken = \"{long}\"\n"),
        "internal.clients.crm.scopes",
        "grants nothing",
    );
    refused(
        "[internal.clients.crm]\nscopes = [\"events:read\"]\n",
        "internal.clients.crm.token",
        "is missing",
    );
    refused(
        "[internal.clients.crm]\ntoken = \"short\"\nscopes = [\"events:read\"]\n",
        "internal.clients.crm.token",
        "at least 16",
    );
    let name = "n".repeat(MAX_CLIENT_NAME_CHARS + 1);
    for bad in ["CRM", "crm.team", "crm:x", name.as_str()] {
        refused(
            &format!(
                "[internal.clients.\"{bad}\"]\ntoken = \"{long}\"\nscopes = [\"events:read\"]\n"
            ),
            &format!("internal.clients.{bad}"),
            "characters of a-z",
        );
    }
    refused(
        &format!("[internal.clients.legacy-2]\ntoken = \"{long}\"\nscopes = [\"events:read\"]\n"),
        "internal.clients.legacy-2",
        "internal.tokens",
    );
    refused(
        &format!(
            "[internal]\ntokens = [\"{long}\"]\n[internal.clients.crm]\ntoken = \"{long}\"\n\
             scopes = [\"events:read\"]\n"
        ),
        "internal.clients.crm.token",
        "same token as internal.tokens[0]",
    );
}

#[test]
fn signed_tokens_need_an_issuer_and_consistent_lifetimes() {
    let refused = |tokens: &str, key: &str| {
        let file = format!("{APP}[tokens]\nformat = \"jwt\"\n{tokens}\n");
        let err = load(&file, &[]).unwrap().validate().unwrap_err();
        assert!(err.to_string().contains(key), "{tokens}: {err}");
    };
    refused("", "tokens.issuer");
    refused("issuer = \"id.example.com\"", "tokens.issuer");
    refused("issuer = \"https://id.example.com/?a=b\"", "tokens.issuer");
    let issuer = "issuer = \"https://id.example.com\"";
    refused(
        &format!("{issuer}\naccess_ttl_secs = 0"),
        "tokens.access_ttl_secs",
    );
    refused(
        &format!("{issuer}\naccess_ttl_secs = 604801"),
        "tokens.access_ttl_secs",
    );
    refused(
        &format!("{issuer}\nkey_rotation_secs = 600\nkey_publish_secs = 600"),
        "tokens.key_publish_secs",
    );
    let paseto = format!("{APP}[tokens]\nformat = \"paseto\"\n");
    assert!(
        load(&paseto, &[]).is_err(),
        "an unknown format stops start-up"
    );

    let env = [
        ("WXLINK__TOKENS__FORMAT", "jwt"),
        ("WXLINK__TOKENS__ISSUER", "https://id.example.com"),
    ];
    let settings = load(APP, &env).unwrap();
    settings.validate().unwrap();
    assert_eq!(settings.tokens.format, TokenFormat::Jwt);
    assert_eq!(settings.tokens.access_ttl_secs, 900);
    // Opaque, the default, needs nothing.
    let settings = load(APP, &[]).unwrap();
    settings.validate().unwrap();
    assert_eq!(settings.tokens.format, TokenFormat::Opaque);
}

#[test]
fn debug_of_settings_shows_no_secret() {
    let settings = load(
        &format!("[security]\ndata_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n{APP}"),
        &[],
    )
    .unwrap();
    let debug = format!("{settings:?}");
    assert!(
        !debug.contains("s3cret") && !debug.contains("AAAAAAAA"),
        "{debug}"
    );
}

#[test]
fn a_missing_data_key_is_staged_then_kept_once_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxlink.key");
    let settings = load(APP, &[]).unwrap();
    let data_keys = || settings.validate().unwrap().data_keys;

    // Staged and dropped (the database refused it): nothing is left in the directory.
    let (_, staged) = data_keys().keyring(&path).unwrap();
    drop(staged.unwrap());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let (ring, staged) = data_keys().keyring(&path).unwrap();
    assert_eq!(staged.unwrap().keep().unwrap(), path);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let (again, staged) = data_keys().keyring(&path).unwrap();
    assert!(staged.is_none());
    assert_eq!(ring.current_key_id(), again.current_key_id());
}

#[test]
fn webhook_urls_are_shown_without_credentials_or_query() {
    let hook = WebhookSettings {
        url: "https://crmuser:hunter2@crm.example/hook?access_token=t0ken".into(),
        secret: SecretString::from("whsec-0123456789abcdef"),
        poll_ms: 1000,
    };
    let shown = format!("{hook:?}");
    for secret in ["crmuser", "hunter2", "t0ken", "whsec-0123456789abcdef"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(
        shown.contains("https://[redacted]@crm.example/hook?[redacted]"),
        "{shown}"
    );
}

#[test]
fn database_passwords_are_redacted_in_every_url_form() {
    for url in [
        "postgres://wx:hunter2@db:5432/wxlink",
        "postgres://wx:hun/ter2@db/wxlink",
        "postgres://wx:hunter2@db/wxlink?sslmode=require",
        "postgres://db/wxlink?user=wx&password=hunter2",
        "postgres://wx:hun%40ter2@db/wxlink",
        "host=db user=wx password=hunter2",
    ] {
        let settings = DatabaseSettings {
            url: url.into(),
            ..Default::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("ter2"), "{shown}");
    }
}
