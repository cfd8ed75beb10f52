//! The `wxlink` binary: `serve`, `migrate`, `user`, key rotation.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wxlink_api::Application;
use wxlink_api::cli::{OperatorCommand, UserCommand, UserOptions};
use wxlink_api::config::Settings;
use wxlink_persistence::DatabaseTarget;

/// mimalloc instead of glibc's malloc: the request path allocates and frees many small
/// objects across tokio's workers (docs/performance.md measures it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "wxlink",
    version,
    about = "WeChat login that links every app's identity of one person to one user"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve {
        /// TOML configuration file; every key can be overridden by WXLINK__SECTION__KEY.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Try-out mode: embedded SQLite under ./wxlink-sandbox/, a built-in WeChat simulator
        /// and demo apps. Never for production.
        #[arg(long)]
        sandbox: bool,
    },
    /// Re-seal every stored session_key and phone number under the current data key (`[security] data_key`),
    /// opening old ones with `[security] previous_data_keys`. See docs/operations.md.
    RotateDataKey {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Add a new JWT signing key now (`[tokens] format = "jwt"`), e.g. after a suspected leak:
    /// it is published at once and signs after `[tokens] key_publish_secs`; the old key stays
    /// published until its last token expires. See docs/operations.md.
    RotateSigningKey {
        /// TOML configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Support's repairs on one user, against the configured database: the same transactions and
    /// events as the internal API. Commands that change something ask first unless --yes.
    User {
        #[command(subcommand)]
        command: UserCommand,
        /// TOML configuration file.
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Print one JSON object, for scripts.
        #[arg(long, global = true)]
        json: bool,
        /// Do not ask for confirmation.
        #[arg(long, global = true)]
        yes: bool,
        /// Who runs the command, for the events (`cli:NAME`); default: the OS login name.
        #[arg(long, value_name = "NAME", global = true)]
        actor: Option<String>,
    },
    /// The support console's operators, in the configured database.
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
        /// TOML configuration file.
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Print one JSON object, for scripts.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Print a new random data key (base64 of 32 bytes) for `[security] data_key`.
    NewDataKey,
    /// Apply the embedded database migrations and print what was applied.
    Migrate {
        /// TOML configuration file to read `[database] url` from.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Database URL (overrides the configuration).
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
    },
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wxlink: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed::Message(message)) => {
            tracing::error!("{message}");
            eprintln!("wxlink: {message}");
            ExitCode::FAILURE
        }
        Err(Failed::User { error, json }) => {
            if json {
                println!("{}", error.json());
            } else {
                eprintln!("wxlink: {error}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// Why a command failed: a message (exit status 1), or a `wxlink user` error with its own
/// exit status and, under `--json`, its JSON.
enum Failed {
    Message(String),
    User {
        error: wxlink_api::cli::UserError,
        json: bool,
    },
}

impl From<String> for Failed {
    fn from(message: String) -> Self {
        Failed::Message(message)
    }
}

impl From<&str> for Failed {
    fn from(message: &str) -> Self {
        Failed::Message(message.to_owned())
    }
}

/// Logs go to stderr; `WXLINK_LOG` filters them (an `EnvFilter` directive, default `info`) and
/// `WXLINK_LOG_FORMAT=json` writes one JSON object per line.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WXLINK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: a log file or collector gets plain text, and each line
    // costs less to write.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var("WXLINK_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}

#[cfg(feature = "sandbox")]
async fn serve_sandbox(config: Option<&Path>) -> Result<(), String> {
    wxlink_api::sandbox::serve(config).await
}

#[cfg(not(feature = "sandbox"))]
async fn serve_sandbox(_: Option<&Path>) -> Result<(), String> {
    Err("this wxlink was built without the sandbox (cargo feature `sandbox`)".into())
}

async fn run(cli: Cli) -> Result<(), Failed> {
    match cli.command {
        Command::Serve {
            config,
            sandbox: true,
        } => Ok(serve_sandbox(config.as_deref()).await?),
        Command::Serve {
            config,
            sandbox: false,
        } => {
            let config = config.ok_or(
                "serve needs --config FILE (or --sandbox to try wxlink with a built-in simulator)",
            )?;
            let settings = Settings::load(Some(&config)).map_err(|e| e.to_string())?;
            let app = Application::build(settings, key_file_beside(&config))
                .await
                .map_err(|e| e.to_string())?;
            let addr = app.local_addr().map_err(|e| e.to_string())?;
            tracing::info!(%addr, "wxlink listening");
            if let Some(metrics) = app.metrics_addr() {
                let addr = metrics.map_err(|e| e.to_string())?;
                tracing::info!(%addr, "metrics listening (GET /metrics)");
            }
            Ok(app.run_until_stopped().await.map_err(|e| e.to_string())?)
        }
        Command::RotateDataKey { config } => Ok(wxlink_api::key_rotation::rotate_data_key(
            &config,
            &key_file_beside(&config),
        )
        .await?),
        Command::RotateSigningKey { config } => Ok(wxlink_api::key_rotation::rotate_signing_key(
            &config,
            &key_file_beside(&config),
        )
        .await?),
        Command::User {
            command,
            config,
            json,
            yes,
            actor,
        } => {
            let key_file = key_file_beside(config.as_deref().unwrap_or(Path::new(".")));
            wxlink_api::cli::run_user(
                config.as_deref(),
                &key_file,
                command,
                UserOptions { json, yes, actor },
            )
            .await
            .map_err(|error| Failed::User { error, json })
        }
        Command::Operator {
            command,
            config,
            json,
        } => {
            let key_file = key_file_beside(config.as_deref().unwrap_or(Path::new(".")));
            wxlink_api::cli::run_operator(config.as_deref(), &key_file, command, json)
                .await
                .map_err(|error| Failed::User { error, json })
        }
        Command::NewDataKey => {
            use secrecy::ExposeSecret;
            println!(
                "{}",
                wxlink_crypto::DataKey::generate()
                    .to_base64()
                    .expose_secret()
            );
            Ok(())
        }
        Command::Migrate {
            config,
            database_url,
        } => {
            let settings = Settings::load(config.as_deref()).map_err(|e| e.to_string())?;
            let url = database_url.unwrap_or(settings.database.url);
            let database = DatabaseTarget::parse(&url).map_err(|e| e.to_string())?;
            let applied = wxlink_persistence::migrate(&database)
                .await
                .map_err(|e| e.to_string())?;
            if applied.is_empty() {
                println!("{database}: up to date");
            }
            for name in applied {
                println!("applied {name}");
            }
            Ok(())
        }
    }
}

/// The data key file lives beside the config file.
fn key_file_beside(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("wxlink.key")
}
