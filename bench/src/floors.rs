//! The floors: durable commits of SQLite and PostgreSQL alone, and the simulator's code2Session
//! alone, under the load a login run puts on them.

use crate::db;
use crate::loadgen::{self, Req};
use crate::login::fresh_code_requests;
use crate::report::CommitFloors;
use crate::services::start_sim;
use crate::{APPID, Ctx, DbKind, SECRET, log};

/// The floors section.
pub async fn section(ctx: &Ctx, kinds: &[DbKind]) -> Result<CommitFloors, String> {
    let mut floors = CommitFloors::default();
    for &kind in kinds {
        let db = ctx.fresh_db(kind, "floor")?;
        // SQLite runs one writer at a time whatever the count; PostgreSQL commits concurrent
        // writers' WAL flushes together (group commit), so more writers help until the disk
        // or the CPUs are saturated.
        let writer_counts: &[usize] = match kind {
            DbKind::Sqlite => &[1, 4],
            DbKind::Postgres => &[1, 16, 64],
        };
        for &writers in writer_counts {
            log(format!(
                "durable-commit floor: {} with {writers} writer(s)",
                kind.name()
            ));
            let db = db.clone();
            let window = ctx.plan.commit_window;
            let run = tokio::task::spawn_blocking(move || {
                db::commit_floor(&db, writers, window, 2_000_000)
            })
            .await
            .map_err(|e| e.to_string())??;
            floors.push(kind == DbKind::Postgres, run);
        }
    }
    log("upstream floor: code2Session against the simulator alone");
    let sim = start_sim().await?;
    let make = fresh_code_requests(&sim, "f", ctx.plan.login_known, |code| {
        Req::get(format!(
            "/sns/jscode2session?appid={APPID}&secret={SECRET}&js_code={code}\
             &grant_type=authorization_code"
        ))
    });
    let outcome = loadgen::run(
        sim.addr(),
        ctx.shape(ctx.plan.upstream_total),
        make,
        loadgen::check_code2session,
    )
    .await;
    sim.shutdown().await;
    floors.upstream = Some(outcome.summary());
    Ok(floors)
}
