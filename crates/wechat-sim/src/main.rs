//! `wxlink-wechat-sim`: the WeChat API simulator as a process.
//!
//! Prints its base URL as the first line on stdout, then serves until SIGINT or SIGTERM.
//! Logs go to stderr (`RUST_LOG` filters them, default `info`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use wxlink_wechat_sim::{AppKind, AppRegistration, Simulator, UnionidPolicy};

/// A WeChat server API simulator: code2Session, the OAuth code exchange and sns/userinfo,
/// stable_token, phone numbers and checksession, with single-use codes, session_key rotation,
/// unionid policies and fault injection, driven over HTTP under /__sim/.
#[derive(Debug, Parser)]
#[command(name = "wxlink-wechat-sim", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "WXLINK_SIM_BIND", default_value = "127.0.0.1:0")]
    bind: SocketAddr,

    /// Registers an app: APPID:SECRET[:POLICY][:KIND], POLICY one of always (default), never,
    /// when_following; KIND one of mini_program (default), official_account, mobile_app,
    /// website. Repeatable.
    #[arg(long = "app", value_name = "APPID:SECRET[:POLICY][:KIND]", value_parser = parse_app)]
    apps: Vec<AppRegistration>,
}

fn parse_app(text: &str) -> Result<AppRegistration, String> {
    let (appid, mut secret) = text
        .split_once(':')
        .ok_or_else(|| format!("expected APPID:SECRET[:POLICY][:KIND], got {text:?}"))?;
    // A trailing ":word" is a policy or kind only if it names one, so a secret may contain ':'.
    let mut policy = None;
    let mut kind = None;
    while let Some((rest, word)) = secret.rsplit_once(':') {
        let as_kind = (policy.is_none() && kind.is_none())
            .then(|| word.parse::<AppKind>().ok())
            .flatten();
        let as_policy = policy
            .is_none()
            .then(|| word.parse::<UnionidPolicy>().ok())
            .flatten();
        match (as_kind, as_policy) {
            (Some(parsed), _) => kind = Some(parsed),
            (None, Some(parsed)) => policy = Some(parsed),
            (None, None) => break,
        }
        secret = rest;
    }
    if appid.is_empty() || secret.is_empty() {
        return Err(format!("appid and secret must not be empty in {text:?}"));
    }
    Ok(
        AppRegistration::new(appid, secret, policy.unwrap_or_default())
            .with_kind(kind.unwrap_or_default()),
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

    let mut builder = Simulator::builder().bind(args.bind);
    for app in args.apps {
        builder = builder.app_with(app);
    }
    let handle = match builder.start().await {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("wxlink-wechat-sim: {error}: {}", source_text(&error));
            return ExitCode::FAILURE;
        }
    };

    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{}", handle.base_url())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(stdout);

    wait_for_signal().await;
    tracing::info!("stopping");
    handle.shutdown().await;
    ExitCode::SUCCESS
}

fn source_text(error: &dyn std::error::Error) -> String {
    error
        .source()
        .map_or_else(String::new, |source| source.to_string())
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_argument_forms() {
        let app = parse_app("wx1:s3cret").expect("valid");
        assert_eq!((app.appid.as_str(), app.secret.as_str()), ("wx1", "s3cret"));
        assert_eq!(app.unionid_policy, UnionidPolicy::Always);
        assert_eq!(app.kind, AppKind::MiniProgram);
        let app = parse_app("wx1:s3cret:when_following").expect("valid");
        assert_eq!(app.unionid_policy, UnionidPolicy::WhenFollowing);
        let app = parse_app("wx1:a:b").expect("valid");
        assert_eq!(app.secret, "a:b");
        let app = parse_app("wx1:a:b:never:official_account").expect("valid");
        assert_eq!(app.secret, "a:b");
        assert_eq!(app.unionid_policy, UnionidPolicy::Never);
        assert_eq!(app.kind, AppKind::OfficialAccount);
        let app = parse_app("wx1:s:website").expect("valid");
        assert_eq!((app.secret.as_str(), app.kind), ("s", AppKind::Website));
        let app = parse_app("wx1:s:website:never").expect("valid");
        assert_eq!(app.secret, "s:website", "the kind comes last");
        assert!(parse_app("wx1").is_err());
        assert!(parse_app(":s").is_err());
    }
}
