//! Scale: p50 login of known users at two user counts, seeded straight into the database.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::db::{self, Db};
use crate::loadgen;
use crate::login::login_request;
use crate::report::{self, ScaleResult};
use crate::services::{Service, clean_env, start_service, start_sim};
use crate::stats::LoadSummary;
use crate::{APPID, Ctx, DbKind, log};
use wxlink_tests::now_unix;

/// The scale section on `kind`.
pub async fn section(ctx: &Ctx, kind: DbKind) -> Result<ScaleResult, String> {
    let db = ctx.fresh_db(kind, "scale")?;
    log(format!("scale on {}: migrating", kind.name()));
    let migrate_dir = ctx.run_dir(&format!("migrate-{}", kind.name()))?;
    let mut migrate = Command::new(&ctx.wxlink);
    let migrate_log = std::fs::File::create(migrate_dir.join("migrate.log"))
        .map_err(|e| format!("migrate log: {e}"))?;
    migrate
        .args(["migrate", "--database-url", &db.wxlink_url()])
        .current_dir(&migrate_dir)
        .stdout(std::process::Stdio::null())
        .stderr(migrate_log);
    clean_env(&mut migrate);
    wxlink_tests::run_bounded(&mut migrate, Duration::from_secs(60), "wxlink migrate")?;

    let now = now_unix();
    let mut points = Vec::new();
    let mut seeded = 0;
    for target in [ctx.plan.scale_small, ctx.plan.scale_large] {
        log(format!(
            "scale on {}: seeding users {seeded}..{target}",
            kind.name()
        ));
        let seed_db = db.clone();
        let from = seeded;
        let took =
            tokio::task::spawn_blocking(move || db::seed_users(&seed_db, APPID, from, target, now))
                .await
                .map_err(|e| e.to_string())??;
        log(format!("  seeded in {:.1} s", took.as_secs_f64()));
        seeded = target;
        let load = scale_point(ctx, kind, &db, target).await?;
        points.push(report::ScalePoint {
            users: target,
            seed_s: took.as_secs_f64(),
            load,
        });
    }
    Ok(ScaleResult { points })
}

/// Known-user logins (users drawn at random among the `users` seeded) against a fresh wxlink.
async fn scale_point(ctx: &Ctx, kind: DbKind, db: &Db, users: u64) -> Result<LoadSummary, String> {
    let name = format!("scale-{}-{users}", kind.name());
    let sim = start_sim().await?;
    let mut running = start_service(ctx, Service::Wxlink, &name, db, &sim.base_url()).await?;
    let draw_sim = sim.sim().clone();
    let salt = users;
    let make: Arc<loadgen::MakeReq> = Arc::new(move |i| {
        let n = db::mix(i ^ salt.rotate_left(32)) % users.max(1);
        let (_, openid, unionid) = db::seeded_user(n);
        let login = draw_sim
            .login(APPID, &openid, unionid.as_deref())
            .map_err(|e| e.to_string())?;
        Ok(login_request(&login.code))
    });
    let warm = (ctx.plan.scale_total / 10).max(100);
    let warmup = loadgen::run(
        running.addr,
        ctx.shape(warm),
        Arc::clone(&make),
        loadgen::check_login,
    )
    .await;
    if warmup.errors > 0 {
        log(format!(
            "  {} of {warm} warm-up logins failed, e.g. {:?}",
            warmup.errors,
            warmup.first_errors.first()
        ));
    }
    // Request numbers after the warm-up's, so other users are drawn.
    let offset = warm;
    let measured: Arc<loadgen::MakeReq> = Arc::new(move |i| make(i + offset));
    let outcome = loadgen::run(
        running.addr,
        ctx.shape(ctx.plan.scale_total),
        measured,
        loadgen::check_login,
    )
    .await;
    running.guard.check_running()?;
    running.guard.stop(Duration::from_secs(5));
    sim.shutdown().await;
    let summary = outcome.summary();
    log(format!(
        "  {users} users: {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, {} errors {:?}",
        summary.per_sec, summary.p50_ms, summary.p99_ms, summary.errors, summary.first_errors
    ));
    Ok(summary)
}
