//! Memory: wxlink's resident set idle and with 1,000 open connections.

use std::time::Duration;

use crate::loadgen::{self, Req};
use crate::procs;
use crate::report::MemoryResult;
use crate::services::{Service, start_service, start_sim};
use crate::{Ctx, DbKind, log};

/// The memory section.
pub async fn section(ctx: &Ctx) -> Result<MemoryResult, String> {
    let db = ctx.fresh_db(DbKind::Sqlite, "memory")?;
    let sim = start_sim().await?;
    let mut running = start_service(ctx, Service::Wxlink, "memory", &db, &sim.base_url()).await?;
    let pid = running.guard.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kib = procs::status_kib(pid, "VmRSS").ok_or("cannot read wxlink's VmRSS")?;

    // Open the connections, 50 at a time; each does one request and stays open.
    let addr = running.addr;
    let mut open = Vec::with_capacity(ctx.plan.connections);
    let mut failed = 0usize;
    let mut first_error = None;
    while open.len() + failed < ctx.plan.connections {
        let batch = (ctx.plan.connections - open.len() - failed).min(50);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..batch {
            tasks.spawn(async move {
                let mut conn = None;
                let answer = tokio::time::timeout(
                    Duration::from_secs(10),
                    loadgen::send(&mut conn, addr, &Req::get("/healthz")),
                )
                .await;
                match answer {
                    Ok(Ok((status, _))) if status.is_success() => conn.ok_or("closed".to_owned()),
                    Ok(Ok((status, _))) => Err(format!("healthz answered {status}")),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err("healthz timed out".to_owned()),
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(conn)) => open.push(conn),
                Ok(Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still_open = open.iter().filter(|c| !c.is_closed()).count();
    let connections_kib = procs::status_kib(pid, "VmRSS").ok_or("cannot read wxlink's VmRSS")?;
    drop(open);
    running.guard.check_running()?;
    running.guard.stop(Duration::from_secs(5));
    sim.shutdown().await;
    if let Some(e) = first_error {
        log(format!("  {failed} connections failed, e.g.: {e}"));
    }
    log(format!(
        "  idle {:.1} MiB, {still_open} connections {:.1} MiB",
        idle_kib as f64 / 1024.0,
        connections_kib as f64 / 1024.0
    ));
    Ok(MemoryResult {
        idle_kib,
        connections: still_open,
        connections_kib,
    })
}
