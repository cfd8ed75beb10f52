//! `wxlink-wechat-sim`: the WeChat API simulator as a process.
//!
//! Prints its base URL as the first line on stdout, then serves until SIGINT or SIGTERM.
//! Logs go to stderr (`RUST_LOG` filters them, default `info`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use wxlink_wechat_sim::{Simulator, UnionidPolicy};

/// A WeChat server API simulator: code2Session with single-use codes, session_key rotation,
/// unionid policies and fault injection, driven over HTTP under /__sim/.
#[derive(Debug, Parser)]
#[command(name = "wxlink-wechat-sim", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "WXLINK_SIM_BIND", default_value = "127.0.0.1:0")]
    bind: SocketAddr,

    /// Registers an app: APPID:SECRET[:POLICY], POLICY one of always (default), never,
    /// when_following. Repeatable.
    #[arg(long = "app", value_name = "APPID:SECRET[:POLICY]", value_parser = parse_app)]
    apps: Vec<AppArg>,
}

#[derive(Debug, Clone)]
struct AppArg {
    appid: String,
    secret: String,
    policy: UnionidPolicy,
}

fn parse_app(text: &str) -> Result<AppArg, String> {
    let (appid, rest) = text
        .split_once(':')
        .ok_or_else(|| format!("expected APPID:SECRET[:POLICY], got {text:?}"))?;
    // A trailing ":policy" is a policy only if it names one, so a secret may contain ':'.
    let (secret, policy) = match rest.rsplit_once(':') {
        Some((secret, policy)) if policy.parse::<UnionidPolicy>().is_ok() => {
            (secret, policy.parse::<UnionidPolicy>()?)
        }
        _ => (rest, UnionidPolicy::Always),
    };
    if appid.is_empty() || secret.is_empty() {
        return Err(format!("appid and secret must not be empty in {text:?}"));
    }
    Ok(AppArg {
        appid: appid.to_owned(),
        secret: secret.to_owned(),
        policy,
    })
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
        builder = builder.app(app.appid, app.secret, app.policy);
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
        assert_eq!(app.policy, UnionidPolicy::Always);
        let app = parse_app("wx1:s3cret:when_following").expect("valid");
        assert_eq!(app.policy, UnionidPolicy::WhenFollowing);
        let app = parse_app("wx1:a:b").expect("valid");
        assert_eq!(app.secret, "a:b");
        assert!(parse_app("wx1").is_err());
        assert!(parse_app(":s").is_err());
    }
}
