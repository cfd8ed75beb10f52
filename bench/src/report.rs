//! The results of one run: kept as JSON, printed as a Markdown table with the targets.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

pub use crate::db::CommitRun;
pub use crate::decrypt::DecryptFigures;
use crate::stats::{LoadSummary, ratio};
pub use crate::syscalls::WritesPerLogin;

/// Where and when the run happened.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub mode: &'static str,
    pub cpus: usize,
    pub load_average_before: Option<f64>,
    pub load_average_after: Option<f64>,
    pub started_unix: i64,
    pub duration_s: f64,
    pub clients: usize,
    /// How the peer was served.
    pub peer_server: String,
}

/// One service's login run.
#[derive(Debug, Clone, Serialize)]
pub struct LoginResult {
    pub load: LoadSummary,
    /// Failed logins of the (unmeasured) warm-up, which creates the known users.
    pub warmup_errors: u64,
    /// wxlink's peak RSS during the run (VmHWM).
    pub peak_rss_kib: Option<u64>,
    /// RSS at the end of the run (for the peer: master and all workers).
    pub rss_kib: Option<u64>,
    /// The service's CPU time (user + system; for the peer summed over gunicorn's processes)
    /// during the measured run ÷ its successful logins: a cost that holds on a shared machine,
    /// where a rate does not.
    pub cpu_us_per_login: Option<f64>,
    /// The benchmark's own CPU time (the load generator and the in-process simulator) during
    /// the measured run ÷ the service's successful logins: what the machine spends per login
    /// besides the service and its database.
    pub harness_cpu_us_per_login: Option<f64>,
    /// What PostgreSQL did per measured login (wxlink only).
    pub postgres_per_login: Option<PgPerLogin>,
    /// wxlink's write system calls per measured login.
    pub writes_per_login: Option<WritesPerLogin>,
}

/// PostgreSQL's work per login over a measured run, for the capacity model.
#[derive(Debug, Clone, Serialize)]
pub struct PgPerLogin {
    pub commits: f64,
    pub rollbacks: f64,
    pub wal_bytes: f64,
    /// CPU of the postmaster and the backends.
    pub server_cpu_us: f64,
    /// Statements sent (round trips), when `pg_stat_statements` counted them.
    pub statements: Option<f64>,
}

/// A service's runs per database.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceRuns {
    pub sqlite: Option<LoginResult>,
    pub postgres: Option<LoginResult>,
}

impl ServiceRuns {
    pub fn set(&mut self, postgres: bool, result: LoginResult) {
        if postgres {
            self.postgres = Some(result);
        } else {
            self.sqlite = Some(result);
        }
    }

    fn get(&self, postgres: bool) -> Option<&LoginResult> {
        if postgres {
            self.postgres.as_ref()
        } else {
            self.sqlite.as_ref()
        }
    }
}

/// The floors: durable commits per database and writer count, and the upstream alone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CommitFloors {
    pub sqlite: Vec<CommitRun>,
    pub postgres: Vec<CommitRun>,
    pub upstream: Option<LoadSummary>,
}

impl CommitFloors {
    pub fn push(&mut self, postgres: bool, run: CommitRun) {
        if postgres {
            self.postgres.push(run);
        } else {
            self.sqlite.push(run);
        }
    }

    /// The best rate over the writer counts tried.
    pub fn best(&self, postgres: bool) -> Option<&CommitRun> {
        let runs = if postgres {
            &self.postgres
        } else {
            &self.sqlite
        };
        runs.iter().max_by(|a, b| a.per_sec.total_cmp(&b.per_sec))
    }
}

/// p50 login at one user count.
#[derive(Debug, Clone, Serialize)]
pub struct ScalePoint {
    pub users: u64,
    pub seed_s: f64,
    pub load: LoadSummary,
}

/// The scale runs of one database.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleResult {
    pub points: Vec<ScalePoint>,
}

impl ScaleResult {
    /// p50 at the largest count ÷ p50 at the smallest.
    pub fn p50_ratio(&self) -> f64 {
        match (self.points.first(), self.points.last()) {
            (Some(small), Some(large)) => ratio(large.load.p50_ms, small.load.p50_ms),
            _ => f64::NAN,
        }
    }
}

/// wxlink's memory.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    pub idle_kib: u64,
    pub connections: usize,
    pub connections_kib: u64,
}

/// One target of the issue and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub goal: String,
    pub value: String,
    /// None when the run did not measure it.
    pub met: Option<bool>,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub environment: Environment,
    pub decrypt: Option<DecryptFigures>,
    pub floors: Option<CommitFloors>,
    pub wxlink: ServiceRuns,
    /// wxlink with production's rate limits (the per-app cap raised above the load).
    pub wxlink_limits: ServiceRuns,
    pub peer: ServiceRuns,
    pub scale_sqlite: Option<ScaleResult>,
    pub scale_postgres: Option<ScaleResult>,
    pub memory: Option<MemoryResult>,
    pub targets: Vec<Target>,
    /// Sections that failed or were skipped (out of time), with why.
    pub failures: Vec<String>,
}

impl Report {
    /// The most logins per second the machine's CPUs could serve if the whole machine did
    /// nothing but this run's work at this run's costs per login: wxlink's, its PostgreSQL
    /// server's and the benchmark's own (the clients and WeChat, which share the machine).
    pub fn capacity(&self, run: &LoginResult) -> Option<f64> {
        let server = run
            .postgres_per_login
            .as_ref()
            .map_or(0.0, |p| p.server_cpu_us);
        let per_login = run.cpu_us_per_login? + run.harness_cpu_us_per_login? + server;
        (per_login > 0.0).then(|| self.environment.cpus as f64 * 1e6 / per_login)
    }

    pub fn new(quick: bool, load_average_before: Option<f64>) -> Self {
        Self {
            environment: Environment {
                mode: if quick { "quick" } else { "full" },
                cpus: std::thread::available_parallelism().map_or(1, usize::from),
                load_average_before,
                load_average_after: None,
                started_unix: wxlink_tests::now_unix(),
                duration_s: 0.0,
                clients: crate::CLIENTS,
                peer_server: String::new(),
            },
            decrypt: None,
            floors: None,
            wxlink: ServiceRuns::default(),
            wxlink_limits: ServiceRuns::default(),
            peer: ServiceRuns::default(),
            scale_sqlite: None,
            scale_postgres: None,
            memory: None,
            targets: Vec::new(),
            failures: Vec::new(),
        }
    }

    pub fn finish(&mut self, took: Duration, load_average_after: Option<f64>) {
        self.environment.duration_s = took.as_secs_f64();
        self.environment.load_average_after = load_average_after;
        self.targets = self.evaluate();
    }

    fn wx(&self, postgres: bool) -> Option<&LoadSummary> {
        self.wxlink.get(postgres).map(|r| &r.load)
    }

    fn pe(&self, postgres: bool) -> Option<&LoadSummary> {
        self.peer.get(postgres).map(|r| &r.load)
    }

    fn evaluate(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let wx = self.wx(false);
        let throughput = match (wx, self.pe(false)) {
            (Some(w), Some(p)) => ratio(w.per_sec, p.per_sec),
            _ => f64::NAN,
        };
        t.push(target(
            "login throughput vs wechatpy peer (SQLite, 64 clients)",
            "≥ 10×",
            throughput,
            fmt_x(throughput),
            |v| v >= 10.0,
        ));
        let p99 = wx.map_or(f64::NAN, |w| w.p99_ms);
        t.push(target(
            "login p99 (SQLite, 64 clients)",
            "≤ 25 ms",
            p99,
            if p99.is_finite() {
                format!("{} ms", fmt_ms(p99))
            } else {
                "–".to_owned()
            },
            |v| v <= 25.0,
        ));
        let wx_pg = self.wx(true);
        if let Some(w) = wx_pg {
            let throughput = self
                .pe(true)
                .map_or(f64::NAN, |p| ratio(w.per_sec, p.per_sec));
            t.push(target(
                "login throughput vs wechatpy peer (PostgreSQL, 64 clients)",
                "≥ 5×",
                throughput,
                fmt_x(throughput),
                |v| v >= 5.0,
            ));
            t.push(target(
                "login p99 (PostgreSQL, 64 clients)",
                "≤ 40 ms",
                w.p99_ms,
                format!("{} ms", fmt_ms(w.p99_ms)),
                |v| v <= 40.0,
            ));
        }
        let cpu = self
            .wxlink
            .get(false)
            .and_then(|r| r.cpu_us_per_login)
            .unwrap_or(f64::NAN);
        t.push(target(
            "wxlink CPU per login (SQLite, process CPU ÷ logins)",
            "≤ 120 µs",
            cpu,
            if cpu.is_finite() {
                format!("{} µs", fmt_rate(cpu))
            } else {
                "–".to_owned()
            },
            |v| v <= 120.0,
        ));
        self.production_targets(&mut t);
        for (postgres, db) in [(false, "SQLite"), (true, "PostgreSQL")] {
            let floor = self
                .floors
                .as_ref()
                .and_then(|f| f.best(postgres))
                .map_or(f64::NAN, |r| r.per_sec);
            let fraction = self
                .wx(postgres)
                .map_or(f64::NAN, |w| ratio(w.per_sec, floor));
            if self.wx(postgres).is_some() || !postgres {
                t.push(target(
                    &format!("logins/s vs durable-commit floor ({db})"),
                    "within 2× (≥ 0.5)",
                    fraction,
                    fmt_frac(fraction),
                    |v| v >= 0.5,
                ));
            }
        }
        let (vs_py, vs_bare) = self.decrypt.as_ref().map_or((f64::NAN, f64::NAN), |d| {
            (
                ratio(d.wechatpy_ns, d.wxlink_ns),
                ratio(d.wxlink_ns, d.bare_aes_json_ns),
            )
        });
        t.push(target(
            "decrypt+verify vs wechatpy",
            "≥ 20× faster",
            vs_py,
            fmt_x(vs_py),
            |v| v >= 20.0,
        ));
        let ns = self.decrypt.as_ref().map_or(f64::NAN, |d| d.wxlink_ns);
        t.push(target(
            "decrypt+verify of one payload",
            "≤ 1,600 ns",
            ns,
            if ns.is_finite() {
                format!("{} ns", fmt_rate(ns))
            } else {
                "–".to_owned()
            },
            |v| v <= 1600.0,
        ));
        t.push(target(
            "decrypt+verify vs bare AES+JSON",
            "≤ 1.5×",
            vs_bare,
            fmt_x(vs_bare),
            |v| v <= 1.5,
        ));
        for (scale, db) in [
            (&self.scale_sqlite, "SQLite"),
            (&self.scale_postgres, "PostgreSQL"),
        ] {
            if let Some(s) = scale {
                let r = s.p50_ratio();
                let users = s.points.last().map_or(0, |p| p.users);
                t.push(target(
                    &format!("p50 login at {} users ÷ at 10³ ({db})", fmt_count(users)),
                    "≤ 1.3×",
                    r,
                    fmt_x(r),
                    |v| v <= 1.3,
                ));
            }
        }
        let (idle, busy) = self.memory.as_ref().map_or((f64::NAN, f64::NAN), |m| {
            (mib(m.idle_kib), mib(m.connections_kib))
        });
        t.push(target("RSS idle", "≤ 30 MiB", idle, fmt_mib(idle), |v| {
            v <= 30.0
        }));
        t.push(target(
            "RSS at 1,000 keep-alive connections",
            "≤ 100 MiB",
            busy,
            fmt_mib(busy),
            |v| v <= 100.0,
        ));
        t
    }

    /// Issue 24's targets beside the older ones: PostgreSQL's costs per login, production
    /// limits ÷ none, and errors.
    fn production_targets(&self, t: &mut Vec<Target>) {
        let wx_pg = self.wxlink.get(true);
        if let Some(r) = wx_pg {
            let cpu = r.cpu_us_per_login.unwrap_or(f64::NAN);
            t.push(target(
                "wxlink CPU per login (PostgreSQL, process CPU ÷ logins)",
                "≤ 180 µs",
                cpu,
                fmt_us(cpu),
                |v| v <= 180.0,
            ));
            let pg = r.postgres_per_login.as_ref();
            let server = pg.map_or(f64::NAN, |p| p.server_cpu_us);
            t.push(target(
                "PostgreSQL server CPU per login",
                "≤ 250 µs",
                server,
                fmt_us(server),
                |v| v <= 250.0,
            ));
            let statements = pg.and_then(|p| p.statements).unwrap_or(f64::NAN);
            t.push(target(
                "statements (round trips) per login, PostgreSQL",
                "1, merges aside (≤ 1.05)",
                statements,
                if statements.is_finite() {
                    format!("{statements:.2}")
                } else {
                    "–".to_owned()
                },
                |v| v <= 1.05,
            ));
        }
        for (postgres, db) in [(false, "SQLite"), (true, "PostgreSQL")] {
            if postgres && wx_pg.is_none() {
                continue;
            }
            let r = match (self.wx(postgres), self.wxlink_limits.get(postgres)) {
                (Some(w), Some(l)) => ratio(l.load.per_sec, w.per_sec),
                _ => f64::NAN,
            };
            t.push(target(
                &format!("logins/s with production limits ÷ without ({db})"),
                "≥ 0.9",
                r,
                if r.is_finite() {
                    format!("{r:.2}")
                } else {
                    "–".to_owned()
                },
                |v| v >= 0.9,
            ));
        }
        let runs = [&self.wxlink, &self.wxlink_limits];
        let measured: Vec<&LoginResult> = runs
            .iter()
            .flat_map(|r| [r.get(false), r.get(true)])
            .flatten()
            .collect();
        let errors = measured
            .iter()
            .map(|r| r.load.errors + r.warmup_errors)
            .sum::<u64>();
        let errors = if measured.is_empty() {
            f64::NAN
        } else {
            errors as f64
        };
        t.push(target(
            "errors, all of wxlink's login runs (warm-ups included)",
            "0",
            errors,
            fmt_rate(errors),
            |v| v == 0.0,
        ));
    }

    /// The whole report as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let e = &self.environment;
        let _ = writeln!(
            s,
            "wxlink benchmark, {} run: {} CPUs, load average {} before / {} after, {:.0} s, \
             {} concurrent clients; peer served by {}.\n",
            e.mode,
            e.cpus,
            e.load_average_before
                .map_or("?".to_owned(), |l| format!("{l:.2}")),
            e.load_average_after
                .map_or("?".to_owned(), |l| format!("{l:.2}")),
            e.duration_s,
            e.clients,
            e.peer_server
        );
        self.login_table(&mut s);
        self.scale_table(&mut s);
        self.decrypt_table(&mut s);
        self.memory_table(&mut s);
        let _ = writeln!(s, "| target | goal | this run | met |\n|---|---|---|---|");
        for t in &self.targets {
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(s, "| {} | {} | {} | {met} |", t.name, t.goal, t.value);
        }
        for failure in &self.failures {
            let one_line = failure.split_whitespace().collect::<Vec<_>>().join(" ");
            let _ = writeln!(s, "\n**Not measured** — {one_line}");
        }
        s
    }

    fn login_table(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "| login (POST /v1/wechat/login, fresh codes, ½ known users, ½ with unionid) | SQLite | PostgreSQL |\n|---|---|---|"
        );
        let both = |f: &dyn Fn(bool) -> String| (f(false), f(true));
        let mut row = |label: &str, cells: (String, String)| {
            let _ = writeln!(s, "| {label} | {} | {} |", cells.0, cells.1);
        };
        for (name, runs) in [
            ("wxlink", &self.wxlink),
            ("wxlink, production limits", &self.wxlink_limits),
            ("wechatpy peer", &self.peer),
        ] {
            row(
                &format!("{name}: logins/s"),
                both(&|pg| {
                    runs.get(pg)
                        .map_or("–".into(), |r| fmt_rate(r.load.per_sec))
                }),
            );
            row(
                &format!("{name}: p50 / p99 / max ms"),
                both(&|pg| {
                    runs.get(pg).map_or("–".into(), |r| {
                        format!(
                            "{} / {} / {}",
                            fmt_ms(r.load.p50_ms),
                            fmt_ms(r.load.p99_ms),
                            fmt_ms(r.load.max_ms)
                        )
                    })
                }),
            );
            row(
                &format!("{name}: requests ok / errors"),
                both(&|pg| {
                    runs.get(pg).map_or("–".into(), |r| {
                        let capped = if r.load.hit_time_cap {
                            " (time cap)"
                        } else {
                            ""
                        };
                        let warm = if r.warmup_errors > 0 {
                            format!(" (+{} in warm-up)", r.warmup_errors)
                        } else {
                            String::new()
                        };
                        format!("{} / {}{warm}{capped}", r.load.ok, r.load.errors)
                    })
                }),
            );
        }
        row(
            "CPU per login, µs: wxlink / peer (process CPU time ÷ logins)",
            both(&|pg| {
                let cpu = |runs: &ServiceRuns| {
                    runs.get(pg)
                        .and_then(|r| r.cpu_us_per_login)
                        .map_or("–".into(), fmt_rate)
                };
                format!("{} / {}", cpu(&self.wxlink), cpu(&self.peer))
            }),
        );
        row(
            "wxlink ÷ peer: CPU per login",
            both(&|pg| {
                let cpu = |runs: &ServiceRuns| runs.get(pg).and_then(|r| r.cpu_us_per_login);
                match (cpu(&self.wxlink), cpu(&self.peer)) {
                    (Some(w), Some(p)) => fmt_x(ratio(w, p)),
                    _ => "–".into(),
                }
            }),
        );
        row(
            "PostgreSQL per wxlink login: statements (round trips) / commits / rollbacks / WAL bytes / server CPU µs",
            both(&|pg| {
                self.wxlink
                    .get(pg)
                    .and_then(|r| r.postgres_per_login.as_ref())
                    .map_or("–".into(), |p| {
                        format!(
                            "{} / {:.2} / {:.3} / {} / {}",
                            p.statements.map_or("–".into(), |s| format!("{s:.2}")),
                            p.commits,
                            p.rollbacks,
                            fmt_rate(p.wal_bytes),
                            fmt_rate(p.server_cpu_us)
                        )
                    })
            }),
        );
        row(
            "CPU per wxlink login, µs: load generator and simulator (the benchmark's process)",
            both(&|pg| {
                self.wxlink
                    .get(pg)
                    .and_then(|r| r.harness_cpu_us_per_login)
                    .map_or("–".into(), fmt_rate)
            }),
        );
        row(
            "capacity: logins/s this machine's CPUs allow at this run's costs (wxlink + PostgreSQL server + load generator and simulator)",
            both(&|pg| {
                self.wxlink
                    .get(pg)
                    .and_then(|r| self.capacity(r))
                    .map_or("–".into(), fmt_rate)
            }),
        );
        row(
            "wxlink write system calls per login: pwrite64 (perf stat) / all (/proc syscw)",
            both(&|pg| {
                self.wxlink
                    .get(pg)
                    .and_then(|r| r.writes_per_login)
                    .map_or("–".into(), |w| {
                        let count = |n: Option<f64>| n.map_or("–".into(), |n| format!("{n:.1}"));
                        format!("{} / {}", count(w.pwrite64), count(w.write_calls))
                    })
            }),
        );
        row(
            "wxlink, production limits: CPU per login µs; PostgreSQL statements / server CPU µs per login",
            both(&|pg| {
                self.wxlink_limits.get(pg).map_or("–".into(), |r| {
                    let cpu = r.cpu_us_per_login.map_or("–".into(), fmt_rate);
                    match &r.postgres_per_login {
                        Some(p) => format!(
                            "{cpu}; {} / {}",
                            p.statements.map_or("–".into(), |s| format!("{s:.2}")),
                            fmt_rate(p.server_cpu_us)
                        ),
                        None => cpu,
                    }
                })
            }),
        );
        row(
            "wxlink, production limits ÷ without: logins/s",
            both(&|pg| match (self.wxlink_limits.get(pg), self.wx(pg)) {
                (Some(l), Some(w)) => format!("{:.2}", ratio(l.load.per_sec, w.per_sec)),
                _ => "–".into(),
            }),
        );
        row(
            "wxlink ÷ peer: throughput",
            both(&|pg| match (self.wx(pg), self.pe(pg)) {
                (Some(w), Some(p)) => fmt_x(ratio(w.per_sec, p.per_sec)),
                _ => "–".into(),
            }),
        );
        row(
            "wxlink ÷ peer: p99",
            both(&|pg| match (self.wx(pg), self.pe(pg)) {
                (Some(w), Some(p)) => fmt_x(ratio(w.p99_ms, p.p99_ms)),
                _ => "–".into(),
            }),
        );
        let floors = self.floors.as_ref();
        let upstream = floors.and_then(|f| f.upstream.as_ref());
        row(
            "upstream floor: code2Session on the simulator alone, req/s (p50 / p99 ms)",
            both(&|_| {
                upstream.map_or("–".into(), |u| {
                    format!(
                        "{} ({} / {})",
                        fmt_rate(u.per_sec),
                        fmt_ms(u.p50_ms),
                        fmt_ms(u.p99_ms)
                    )
                })
            }),
        );
        row(
            "wxlink ÷ upstream floor",
            both(&|pg| match (self.wx(pg), upstream) {
                (Some(w), Some(u)) => fmt_frac(ratio(w.per_sec, u.per_sec)),
                _ => "–".into(),
            }),
        );
        row(
            "durable-commit floor: 1-row INSERT transactions/s (best writer count)",
            both(&|pg| {
                floors.and_then(|f| f.best(pg)).map_or("–".into(), |r| {
                    format!("{} ({} writers)", fmt_rate(r.per_sec), r.writers)
                })
            }),
        );
        row(
            "wxlink ÷ durable-commit floor",
            both(&|pg| match (self.wx(pg), floors.and_then(|f| f.best(pg))) {
                (Some(w), Some(f)) => fmt_frac(ratio(w.per_sec, f.per_sec)),
                _ => "–".into(),
            }),
        );
        row(
            "wxlink peak RSS during the run (VmHWM)",
            both(&|pg| {
                self.wxlink
                    .get(pg)
                    .and_then(|r| r.peak_rss_kib)
                    .map_or("–".into(), |k| format!("{:.1} MiB", mib(k)))
            }),
        );
        row(
            "peer RSS after the run (all gunicorn processes)",
            both(&|pg| {
                self.peer
                    .get(pg)
                    .and_then(|r| r.rss_kib)
                    .map_or("–".into(), |k| format!("{:.1} MiB", mib(k)))
            }),
        );
        s.push('\n');
    }

    fn scale_table(&self, s: &mut String) {
        if self.scale_sqlite.is_none() && self.scale_postgres.is_none() {
            return;
        }
        let _ = writeln!(
            s,
            "| scale: known-user logins, users seeded in bulk | SQLite | PostgreSQL |\n|---|---|---|"
        );
        let cell = |r: &Option<ScaleResult>, i: usize| {
            r.as_ref()
                .and_then(|r| r.points.get(i))
                .map_or("–".into(), |p| {
                    format!(
                        "{} ms p50, {} ms p99, {}/s (seeded in {:.1} s)",
                        fmt_ms(p.load.p50_ms),
                        fmt_ms(p.load.p99_ms),
                        fmt_rate(p.load.per_sec),
                        p.seed_s
                    )
                })
        };
        let users = |i: usize| {
            self.scale_sqlite
                .as_ref()
                .or(self.scale_postgres.as_ref())
                .and_then(|r| r.points.get(i))
                .map_or(0, |p| p.users)
        };
        for i in 0..2 {
            let _ = writeln!(
                s,
                "| at {} users | {} | {} |",
                fmt_count(users(i)),
                cell(&self.scale_sqlite, i),
                cell(&self.scale_postgres, i)
            );
        }
        let r = |x: &Option<ScaleResult>| x.as_ref().map_or("–".into(), |r| fmt_x(r.p50_ratio()));
        let _ = writeln!(
            s,
            "| p50 ratio, large ÷ small | {} | {} |\n",
            r(&self.scale_sqlite),
            r(&self.scale_postgres)
        );
    }

    fn decrypt_table(&self, s: &mut String) {
        let Some(d) = &self.decrypt else {
            return;
        };
        let _ = writeln!(
            s,
            "| decrypt+verify one getUserInfo payload ({} bytes of ciphertext) | ns/op | ÷ wxlink |\n|---|---|---|",
            d.ciphertext_bytes
        );
        for (label, ns) in [
            (
                "wxlink-crypto (decrypt, JSON, signature, watermark)",
                d.wxlink_ns,
            ),
            (
                "… of which wxlink_crypto::decrypt_user_data alone",
                d.wxlink_decrypt_only_ns,
            ),
            (
                "wechatpy WeChatWxaCrypto + the same checks (CPython)",
                d.wechatpy_ns,
            ),
            (
                "lean Rust: the same steps, JSON read into borrowed fields only",
                d.lean_ns,
            ),
            (
                "bare base64 + AES-128-CBC + JSON parse (Rust)",
                d.bare_aes_json_ns,
            ),
            ("bare AES-128-CBC of the same bytes (Rust)", d.bare_aes_ns),
        ] {
            let _ = writeln!(
                s,
                "| {label} | {} | {} |",
                fmt_rate(ns),
                fmt_x(ratio(ns, d.wxlink_ns))
            );
        }
        s.push('\n');
    }

    fn memory_table(&self, s: &mut String) {
        let Some(m) = &self.memory else {
            return;
        };
        let _ = writeln!(
            s,
            "| wxlink memory (VmRSS, SQLite) | MiB |\n|---|---|\n| idle after start | {:.1} |\n| with {} keep-alive connections open | {:.1} |\n",
            mib(m.idle_kib),
            m.connections,
            mib(m.connections_kib)
        );
    }
}

fn target(name: &str, goal: &str, value: f64, shown: String, ok: impl Fn(f64) -> bool) -> Target {
    Target {
        name: name.to_owned(),
        goal: goal.to_owned(),
        value: shown,
        met: value.is_finite().then(|| ok(value)),
    }
}

/// Microseconds, "–" when unknown.
fn fmt_us(v: f64) -> String {
    if v.is_finite() {
        format!("{} µs", fmt_rate(v))
    } else {
        "–".to_owned()
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// MiB with one decimal, "–" when unknown.
pub fn fmt_mib(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1} MiB")
    } else {
        "–".to_owned()
    }
}

/// A rate or count with thousands separators, "–" when unknown.
pub fn fmt_rate(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    group_thousands(v.round() as u64)
}

/// An integer with thousands separators.
pub fn fmt_count(v: u64) -> String {
    group_thousands(v)
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds: 2 decimals under 10 ms, 1 under 100, none above.
pub fn fmt_ms(v: f64) -> String {
    if !v.is_finite() {
        "–".to_owned()
    } else if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// A ratio as "12.3×".
pub fn fmt_x(v: f64) -> String {
    if !v.is_finite() {
        "–".to_owned()
    } else if v < 10.0 {
        format!("{v:.2}×")
    } else {
        format!("{v:.1}×")
    }
}

/// A fraction as "0.42 (42 %)".
pub fn fmt_frac(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2} ({:.0} %)", v * 100.0)
    } else {
        "–".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(per_sec: f64, p50: f64, p99: f64) -> LoadSummary {
        LoadSummary {
            ok: 100,
            errors: 0,
            elapsed_s: 1.0,
            per_sec,
            p50_ms: p50,
            p90_ms: p99,
            p99_ms: p99,
            max_ms: p99,
            hit_time_cap: false,
            first_errors: Vec::new(),
        }
    }

    #[test]
    fn numbers_are_formatted_for_the_table() {
        assert_eq!(fmt_rate(1_234_567.4), "1,234,567");
        assert_eq!(fmt_rate(999.0), "999");
        assert_eq!(fmt_rate(f64::NAN), "–");
        assert_eq!(fmt_count(1_000_000), "1,000,000");
        assert_eq!(fmt_ms(3.25159), "3.25");
        assert_eq!(fmt_ms(32.4159), "32.4");
        assert_eq!(fmt_ms(324.159), "324");
        assert_eq!(fmt_x(12.345), "12.3×");
        assert_eq!(fmt_x(1.2345), "1.23×");
        assert_eq!(fmt_frac(0.4242), "0.42 (42 %)");
    }

    #[test]
    fn targets_are_judged_from_the_figures() {
        let mut report = Report::new(true, None);
        report.wxlink.set(
            false,
            LoginResult {
                load: summary(3000.0, 10.0, 20.0),
                warmup_errors: 0,
                peak_rss_kib: None,
                rss_kib: None,
                cpu_us_per_login: Some(100.0),
                harness_cpu_us_per_login: Some(40.0),
                postgres_per_login: None,
                writes_per_login: None,
            },
        );
        report.peer.set(
            false,
            LoginResult {
                load: summary(200.0, 100.0, 400.0),
                warmup_errors: 0,
                peak_rss_kib: None,
                rss_kib: None,
                cpu_us_per_login: Some(3000.0),
                harness_cpu_us_per_login: Some(40.0),
                postgres_per_login: None,
                writes_per_login: None,
            },
        );
        report.wxlink_limits.set(
            false,
            LoginResult {
                load: summary(2850.0, 10.0, 20.0),
                warmup_errors: 0,
                peak_rss_kib: None,
                rss_kib: None,
                cpu_us_per_login: Some(105.0),
                harness_cpu_us_per_login: Some(40.0),
                postgres_per_login: None,
                writes_per_login: None,
            },
        );
        report.memory = Some(MemoryResult {
            idle_kib: 20 * 1024,
            connections: 1000,
            connections_kib: 120 * 1024,
        });
        report.finish(Duration::from_secs(1), None);
        let met = |name: &str| {
            report
                .targets
                .iter()
                .find(|t| t.name.starts_with(name))
                .and_then(|t| t.met)
        };
        assert_eq!(met("login throughput"), Some(true)); // 15×
        assert_eq!(met("login p99"), Some(true));
        assert_eq!(met("RSS idle"), Some(true));
        assert_eq!(met("RSS at 1,000"), Some(false));
        assert_eq!(met("decrypt+verify vs wechatpy"), None);
        let table = report.markdown();
        assert!(
            table.contains("| wxlink: logins/s | 3,000 | – |"),
            "{table}"
        );
        assert!(
            table.contains("| wxlink ÷ peer: throughput | 15.0× | – |"),
            "{table}"
        );
        // Two CPUs ÷ (100 µs of wxlink + 40 µs of the benchmark's own) per login.
        let cpus = report.environment.cpus as f64;
        let capacity = report.wxlink.get(false).and_then(|r| report.capacity(r));
        assert_eq!(
            capacity.map(|c| c.round()),
            Some((cpus * 1e6 / 140.0).round())
        );
        assert!(
            table.contains(
                "| CPU per login, µs: wxlink / peer (process CPU time ÷ logins) | 100 / 3,000 | – / – |"
            ),
            "{table}"
        );
        assert_eq!(met("wxlink CPU per login"), Some(true));
        assert_eq!(
            met("logins/s with production limits ÷ without (SQLite)"),
            Some(true)
        );
        assert_eq!(met("errors, all of wxlink's login runs"), Some(true));
        assert!(
            table.contains("| wxlink, production limits ÷ without: logins/s | 0.95 | – |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| RSS at 1,000 keep-alive connections | ≤ 100 MiB | 120.0 MiB | **no** |"
            ),
            "{table}"
        );
    }
}
