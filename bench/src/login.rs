//! Login runs: throughput, latency and cost of wxlink's and the peer's logins on a mix of
//! known and new users, and the users of that mix.

use std::sync::Arc;
use std::time::Duration;

use wxlink_wechat_sim::SimHandle;

use crate::db::{self, Db};
use crate::loadgen::{self, Req};
use crate::procs;
use crate::report::{LoginResult, PgPerLogin};
use crate::services::{Service, start_service, start_sim};
use crate::syscalls::WriteCounter;
use crate::{APPID, CLIENTS, Ctx, DbKind, log};

/// A WeChat-like id: `prefix` and 27 characters that look random (WeChat's ids are random,
/// and sequential ones would pile every insert onto one index page, which makes PostgreSQL's
/// serializable transactions conflict far more than real traffic does).
fn random_looking_id(prefix: char, seed: u64) -> String {
    format!(
        "{prefix}{:016x}{:011x}",
        db::mix(seed),
        db::mix(seed ^ 0x5bd1_e995) >> 20
    )
}

/// The known user number `k`: half of them have a unionid.
pub fn known_user(k: u64) -> (String, Option<String>) {
    let seed = k.wrapping_mul(4) ^ 0x6b6e_6f77_6e00_0000;
    (
        random_looking_id('o', seed),
        k.is_multiple_of(2)
            .then(|| random_looking_id('u', seed ^ 1)),
    )
}

/// The new user of request `i` in run `tag`: half of them have a unionid.
fn new_user(tag: &str, i: u64) -> (String, Option<String>) {
    let salt = tag.bytes().fold(0x6e65_7700_0000_0000_u64, |acc, b| {
        db::mix(acc ^ u64::from(b))
    });
    let seed = i.wrapping_mul(4) ^ salt;
    (
        random_looking_id('o', seed),
        (i / 2)
            .is_multiple_of(2)
            .then(|| random_looking_id('u', seed ^ 1)),
    )
}

/// Who request `i` of a measured run logs in: even requests a known user (of `known`), odd ones
/// a new user; half of each have a unionid.
fn mixed_user(tag: &str, known: u64, i: u64) -> (String, Option<String>) {
    if i.is_multiple_of(2) {
        known_user((i / 2) % known.max(1))
    } else {
        new_user(tag, i)
    }
}

/// Requests carrying fresh codes of the mixed users, built by `request` from the code.
pub fn fresh_code_requests(
    sim: &SimHandle,
    tag: &'static str,
    known: u64,
    request: fn(&str) -> Req,
) -> Arc<loadgen::MakeReq> {
    let sim = sim.sim().clone();
    Arc::new(move |i| {
        let (openid, unionid) = mixed_user(tag, known, i);
        let login = sim
            .login(APPID, &openid, unionid.as_deref())
            .map_err(|e| e.to_string())?;
        Ok(request(&login.code))
    })
}

pub fn login_request(code: &str) -> Req {
    Req::post_json(
        "/v1/wechat/login",
        format!(r#"{{"appid":"{APPID}","code":"{code}"}}"#),
    )
}

/// One login run of `service` on `kind`.
pub async fn run(ctx: &Ctx, service: Service, kind: DbKind) -> Result<LoginResult, String> {
    let name = format!("{}-{}", service.name(), kind.name());
    let (total, known) = if service.is_wxlink() {
        (ctx.plan.login_total, ctx.plan.login_known)
    } else {
        (ctx.plan.peer_total, ctx.plan.peer_known)
    };
    log(format!(
        "login: {} on {}, {CLIENTS} clients, {total} requests after {known} warm-up logins",
        service.name(),
        kind.name()
    ));
    let db = ctx.fresh_db(kind, &format!("login_{}", service.name()))?;
    let sim = start_sim().await?;
    let mut running = start_service(ctx, service, &name, &db, &sim.base_url()).await?;

    // Warm-up: the known users log in once (so they exist), not measured.
    let warm_sim = sim.sim().clone();
    let warm: Arc<loadgen::MakeReq> = Arc::new(move |k| {
        let (openid, unionid) = known_user(k);
        let login = warm_sim
            .login(APPID, &openid, unionid.as_deref())
            .map_err(|e| e.to_string())?;
        Ok(login_request(&login.code))
    });
    let warmup = loadgen::run(running.addr, ctx.shape(known), warm, loadgen::check_login).await;
    if warmup.errors > 0 {
        log(format!(
            "  {} of {known} warm-up logins failed, e.g. {:?}",
            warmup.errors,
            warmup.first_errors.first()
        ));
    }
    let tag = match service {
        Service::Wxlink => "w",
        Service::WxlinkLimits => "l",
        Service::Peer => "p",
    };
    if service.is_wxlink() {
        // A fresh process for the measured run: its CPU time is then the run's alone, and the
        // warm-up's database connections are closed, so PostgreSQL has counted their commits.
        running.guard.stop(Duration::from_secs(5));
        running = start_service(ctx, service, &name, &db, &sim.base_url()).await?;
    }
    let pg_before = match &db {
        Db::Postgres(url) if service.is_wxlink() => Some(db::pg_counters(url)?),
        _ => None,
    };
    let writes = if service.is_wxlink() {
        let dir = ctx.run_dir(&format!("{name}-writes"))?;
        Some(WriteCounter::start(running.guard.id(), &dir))
    } else {
        None
    };
    let cpu_before = procs::group_cpu_us(running.guard.id());
    let harness_before = procs::own_cpu_us();
    let make = fresh_code_requests(&sim, tag, known, login_request);
    let outcome = loadgen::run(running.addr, ctx.shape(total), make, loadgen::check_login).await;
    running.guard.check_running()?;
    let cpu_after = procs::group_cpu_us(running.guard.id());
    let harness_after = procs::own_cpu_us();
    let logins = outcome.summary().ok.max(1) as f64;
    let writes_per_login = writes.map(|w| w.finish(logins));
    let per = |after: u64, before: u64| after.saturating_sub(before) as f64 / logins;
    let cpu_us_per_login = cpu_after.zip(cpu_before).map(|(a, b)| per(a, b));
    let harness_cpu_us_per_login = harness_after.zip(harness_before).map(|(a, b)| per(a, b));
    let (peak_rss_kib, rss_kib) = if service.is_wxlink() {
        (
            procs::status_kib(running.guard.id(), "VmHWM"),
            procs::status_kib(running.guard.id(), "VmRSS"),
        )
    } else {
        (None, procs::group_rss_kib(running.guard.id()))
    };
    running.guard.stop(Duration::from_secs(5));
    sim.shutdown().await;
    // After the stop: the closed connections have reported their commits.
    let postgres_per_login = match (&db, pg_before) {
        (Db::Postgres(url), Some(before)) => {
            let after = db::pg_counters(url)?;
            Some(PgPerLogin {
                commits: per(after.commits, before.commits),
                rollbacks: per(after.rollbacks, before.rollbacks),
                wal_bytes: per(after.wal_bytes, before.wal_bytes),
                server_cpu_us: per(after.server_cpu_us, before.server_cpu_us),
                statements: after
                    .statements
                    .zip(before.statements)
                    .map(|(a, b)| per(a, b)),
            })
        }
        _ => None,
    };
    let summary = outcome.summary();
    log(format!(
        "  {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, {} errors {:?}, CPU {:.0} µs/login (load generator and simulator {:.0}) {:?} {:?}",
        summary.per_sec,
        summary.p50_ms,
        summary.p99_ms,
        summary.errors,
        summary.first_errors,
        cpu_us_per_login.unwrap_or(f64::NAN),
        harness_cpu_us_per_login.unwrap_or(f64::NAN),
        postgres_per_login,
        writes_per_login
    ));
    Ok(LoginResult {
        load: summary,
        warmup_errors: warmup.errors,
        peak_rss_kib,
        rss_kib,
        cpu_us_per_login,
        harness_cpu_us_per_login,
        postgres_per_login,
        writes_per_login,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_half_known_half_new_and_half_with_unionid() {
        let users: Vec<_> = (0..1000).map(|i| mixed_user("t", 100, i)).collect();
        let known_ids: std::collections::HashSet<_> = (0..100).map(|k| known_user(k).0).collect();
        let known = users.iter().filter(|(o, _)| known_ids.contains(o)).count();
        let with_unionid = users.iter().filter(|(_, u)| u.is_some()).count();
        assert_eq!(known, 500);
        assert_eq!(with_unionid, 500);
        let new_with_unionid = users
            .iter()
            .filter(|(o, u)| !known_ids.contains(o) && u.is_some())
            .count();
        assert_eq!(new_with_unionid, 250);
        // New users are new: no openid repeats among them, nor across runs.
        let new: std::collections::HashSet<_> = users
            .iter()
            .filter(|(o, _)| !known_ids.contains(o))
            .map(|(o, _)| o.clone())
            .collect();
        assert_eq!(new.len(), 500);
        assert!((0..1000).all(|i| !new.contains(&new_user("u", i).0)));
    }

    #[test]
    fn ids_are_valid_for_wxlink_and_the_simulator() {
        let (openid, unionid) = new_user("w", 123_456);
        for id in [openid, unionid.unwrap_or_default()] {
            assert_eq!(id.len(), 28, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        assert_eq!(APPID.len(), 18);
        assert!(APPID.starts_with("wx") && APPID.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
