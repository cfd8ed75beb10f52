//! The accept loop of a listener: HTTP/1.1 with hyper, the limits a client connection is held
//! to, and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::limits::ConnectionCap;

/// What the accept loop enforces on client connections.
#[derive(Debug)]
pub(crate) struct ServeLimits {
    pub(crate) header_read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) per_ip_connections: ConnectionCap,
    pub(crate) shutdown_grace: Duration,
}

/// Serves HTTP/1.1 until `stop` resolves, then stops accepting and gives open connections
/// `shutdown_grace` to finish their requests.
///
/// Unlike `axum::serve`, the loop bounds what a client can hold: hyper's header-read timeout
/// (which also runs while a keep-alive connection waits for its next request) cuts clients that
/// dribble or idle, and at `max_connections` open connections the loop stops accepting, so new
/// clients wait in the kernel's backlog (and are served as soon as a slot frees) instead of
/// being accepted into a process that has no room for them. A client address that already holds
/// its share of connections has its new one closed at once, so one host cannot take every slot;
/// and a connection whose writes make no progress for `write_timeout` (a client that does not
/// read its answers: hyper's header timer does not run while an answer is being written) is
/// closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ServeLimits,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioIo, TokioTimer};

    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Some(peer_slot) = limits.per_ip_connections.admit(peer.ip()) else {
            tracing::debug!(%peer, "closing a connection: its address holds its share of connections");
            crate::metrics::connection_closed("per_ip_cap");
            continue;
        };
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.write_timeout));
        let service = tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        );
        let connection = http.serve_connection(
            TokioIo::new(Box::pin(stream)),
            hyper_util::service::TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // Header and write timeouts, resets and parse errors of one client.
                tracing::debug!(%peer, %error, "connection ended with an error");
                if is_write_timeout(&error) {
                    crate::metrics::connection_closed("write_timeout");
                }
            }
            drop(peer_slot);
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(grace = ?limits.shutdown_grace, "in-flight requests did not finish in time; stopping");
        }
    }
    Ok(())
}

/// Whether hyper gave up on a connection because its writes timed out: `tokio-io-timeout`'s
/// `TimedOut`, which carries no OS error code (the kernel's ETIMEDOUT for a vanished peer
/// does); hyper reports its own header timeout as a kind of its own.
fn is_write_timeout(error: &hyper::Error) -> bool {
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| {
            io.kind() == std::io::ErrorKind::TimedOut && io.raw_os_error().is_none()
        }) {
            return true;
        }
        cause = e.source();
    }
    false
}
