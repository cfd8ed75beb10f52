//! The wxlink service: the HTTP API of the contract (`docs/contract.md`), configuration, and
//! the composition root that wires the domain's ports to their adapters — the diesel store,
//! the WeChat client and the crypto crate. The `wxlink` binary is a thin CLI over it.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = wxlink_api::config::Settings::load(Some("wxlink.toml".as_ref()))?;
//! let app = wxlink_api::Application::build(settings, "wxlink.key".into()).await?;
//! println!("listening on {}", app.local_addr()?);
//! app.run_until_stopped().await?;
//! # Ok(()) }
//! ```

pub mod adapters;
mod app;
pub mod cli;
pub mod config;
pub mod console;
mod http;
mod jobs;
pub mod key_rotation;
mod limits;
mod metrics;
#[cfg(feature = "sandbox")]
pub mod sandbox;
mod serve;
mod state;
pub mod tokens;
mod wechat;

pub use app::{Application, ApplicationBuilder, KeyCheck, StartError, StorePool, open_store};
pub use http::error::ApiError;
