//! The scenarios of the comparison (S1-S6 of issue 3, and V, the validation of
//! basalt-bench against redis-benchmark). Each returns a [`ScenarioOut`] whatever happens:
//! a server that cannot run a scenario gets n/a cells with the reason.

use super::server::{Server, ServerSpec};
use super::table::{Better, Row, ScenarioOut, Unit, median};
use super::{BASALT, Ctx, REDIS};
use crate::report::Report;
use anyhow::bail;
use basalt_proto::Frame;
use std::process::Command;
use std::time::{Duration, Instant};

fn st(v: impl ToString) -> String {
    v.to_string()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const SERVER_COLUMNS: [&str; 2] = ["basalt-server", "redis-server"];

fn columns(c: [&str; 2]) -> [String; 2] {
    [c[0].to_string(), c[1].to_string()]
}

/// Loads keys `0..keys` once each (sequential stripes, pipelined SETs).
fn load_args(keys: u64, data: usize, pad: usize, ttl: Option<u64>, prefix: &str) -> Vec<String> {
    let mut a = strs(&[
        "--clients",
        "50",
        "--pipeline",
        "64",
        "--key-pattern",
        "sequential",
        "--ratio",
        "0:1",
    ]);
    a.extend([
        st("--keyspace"),
        st(keys),
        st("--requests"),
        st(keys),
        st("--data-size"),
        st(data),
    ]);
    a.extend([st("--key-prefix"), st(prefix), st("--duration"), st(1800)]);
    if pad > 0 {
        a.extend([st("--key-pad"), st(pad)]);
    }
    if let Some(t) = ttl {
        a.extend([st("--ttl"), st(t)]);
    }
    a
}

/// Starts a server for `side` or says why it cannot run.
fn start(ctx: &Ctx, side: usize, extra: &[String]) -> Result<Server, String> {
    let spec: &ServerSpec = ctx.sides[side].as_ref().map_err(|e| e.clone())?;
    Server::start(spec, ctx.args.server_cpu, &ctx.work, extra).map_err(|e| format!("{e:#}"))
}

/// Runs a load and insists it completed cleanly.
fn clean_run(ctx: &Ctx, port: u16, args: &[String], expect: Option<u64>) -> anyhow::Result<Report> {
    let r = ctx.bench(port, args)?;
    if !r.reply_errors.is_empty() || !r.connection_errors.is_empty() {
        bail!(
            "errors during the run: replies {:?}, connections {:?}",
            r.reply_errors,
            r.connection_errors
        );
    }
    if let Some(n) = expect
        && r.commands.iter().map(|c| c.count).sum::<u64>() < n
    {
        bail!("only {} of {n} requests completed", r.requests);
    }
    Ok(r)
}

fn server_cmdlines(servers: &[&Result<Server, String>]) -> Vec<String> {
    let mut v = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        if let Ok(s) = s {
            v.push(format!("# {}\n{}", SERVER_COLUMNS[i], s.cmdline));
        }
    }
    v
}

/// The report whose throughput is the median of `reports`.
fn median_report(reports: &[Report]) -> Option<&Report> {
    let m = median(&reports.iter().map(|r| r.ops_per_sec).collect::<Vec<_>>())?;
    reports.iter().min_by(|a, b| {
        (a.ops_per_sec - m)
            .abs()
            .total_cmp(&(b.ops_per_sec - m).abs())
    })
}

/// Draws the median runs of both servers into one chart; returns its link for the docs.
fn chart(ctx: &Ctx, name: &str, title: &str, reports: &[Vec<Report>; 2]) -> Option<String> {
    let series: Vec<(String, &Report)> = (0..2)
        .filter_map(|i| median_report(&reports[i]).map(|r| (SERVER_COLUMNS[i].to_string(), r)))
        .collect();
    if series.is_empty() {
        return None;
    }
    write_plot(ctx, name, &crate::plot::render(title, &series))
}

/// Writes `svg` as `<plots_dir>/<name>.svg`; returns its link for the docs.
fn write_plot(ctx: &Ctx, name: &str, svg: &str) -> Option<String> {
    std::fs::create_dir_all(&ctx.args.plots_dir).ok()?;
    let path = ctx.args.plots_dir.join(format!("{name}.svg"));
    std::fs::write(&path, svg).ok()?;
    if path.is_absolute() {
        return Some(path.display().to_string());
    }
    // Link relative to the markdown file: one `..` per directory the file is in.
    let depth = ctx.args.out.parent().map_or(0, |p| p.components().count());
    Some(format!("{}{}", "../".repeat(depth), path.display()))
}

/// S1, S2, S3 on one pair of servers loaded with the same keys.
pub fn throughput(ctx: &Ctx, s1: bool, s2: bool, s3: bool) -> Vec<ScenarioOut> {
    let sz = &ctx.sizes;
    let keys = sz.keys;
    let load = load_args(keys, 64, 0, None, "key:");
    let mut servers: [Result<Server, String>; 2] =
        [start(ctx, BASALT, &[]), start(ctx, REDIS, &[])];
    for s in servers.iter_mut() {
        let failure = match s {
            Ok(srv) => clean_run(ctx, srv.port, &load, Some(keys))
                .err()
                .map(|e| format!("loading {keys} keys: {e:#}")),
            Err(_) => None,
        };
        if let Some(e) = failure {
            *s = Err(e);
        }
    }
    let mut common = server_cmdlines(&[&servers[0], &servers[1]]);
    common.push(format!("# load the keys\n{}", ctx.bench_cmdline(&load)));
    let closed = |pipeline: usize| {
        let mut a = strs(&["--clients", "50", "--ratio", "9:1", "--data-size", "64"]);
        a.extend([st("--pipeline"), st(pipeline), st("--keyspace"), st(keys)]);
        a.extend([
            st("--duration"),
            st(sz.duration),
            st("--warmup"),
            st(sz.warmup),
        ]);
        a
    };
    let mut outs = Vec::new();
    let mut s2_redis_ops = None;
    for (id, pipeline, wanted) in [("S1", 1usize, s1), ("S2", 16, s2 || s3)] {
        if !wanted {
            continue;
        }
        let args = closed(pipeline);
        let mut ops = Row::new("throughput (ops/s)", Unit::Ops, Better::Higher);
        let mut per_cpu = Row::new("ops per server CPU-second", Unit::Ops, Better::Higher);
        let mut p50 = Row::new("p50 latency", Unit::Ms, Better::Lower);
        let mut p99 = Row::new("p99 latency", Unit::Ms, Better::Lower);
        let mut reports: [Vec<Report>; 2] = [Vec::new(), Vec::new()];
        for _run in 0..sz.runs {
            for side in [BASALT, REDIS] {
                // Once a side is n/a, its remaining runs would only fail the same way.
                if ops.cells[side].is_err() {
                    continue;
                }
                let res = match &servers[side] {
                    Err(e) => Err(e.clone()),
                    Ok(srv) => (|| {
                        let c0 = srv.cpu_seconds()?;
                        let r = clean_run(ctx, srv.port, &args, None)?;
                        let c1 = srv.cpu_seconds()?;
                        Ok::<_, anyhow::Error>((r, c1 - c0))
                    })()
                    .map_err(|e| format!("{e:#}")),
                };
                match res {
                    Ok((r, cpu)) => {
                        ops.push(side, r.ops_per_sec);
                        if cpu > 0.0 {
                            per_cpu.push(side, r.requests as f64 / cpu);
                        }
                        p50.push(side, r.latency_ms.p50);
                        p99.push(side, r.latency_ms.p99);
                        reports[side].push(r);
                    }
                    Err(e) => {
                        for row in [&mut ops, &mut per_cpu, &mut p50, &mut p99] {
                            row.na(side, &e);
                        }
                    }
                }
            }
        }
        if id == "S2" {
            s2_redis_ops = ops.cells[REDIS].as_ref().ok().and_then(|v| median(v));
        }
        let title = format!(
            "GET/SET 90/10, {keys} keys, 64-byte values, 50 clients, pipeline {pipeline}, closed loop"
        );
        let plot = chart(
            ctx,
            &id.to_ascii_lowercase(),
            &format!("{id}: {title}"),
            &reports,
        );
        let mut commands = common.clone();
        commands.push(format!("# measure\n{}", ctx.bench_cmdline(&args)));
        if id == "S1" || s2 {
            outs.push(ScenarioOut {
                id: id.into(),
                title,
                columns: columns(SERVER_COLUMNS),
                rows: vec![ops, per_cpu, p50, p99],
                commands,
                notes: vec!["CPU-seconds: the server's utime + stime from /proc/PID/stat over the whole run (warm-up included, so the ratio is conservative).".into()],
                plot,
            });
        }
    }
    if s3 {
        outs.push(open_loop(ctx, &servers, s2_redis_ops, common));
    }
    outs
}

/// S3: open loop at 50% and 80% of redis-server's S2 throughput.
fn open_loop(
    ctx: &Ctx,
    servers: &[Result<Server, String>; 2],
    s2_redis: Option<f64>,
    common: Vec<String>,
) -> ScenarioOut {
    let sz = &ctx.sizes;
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut commands = common;
    let Some(base) = s2_redis else {
        let mut r = Row::new("p99 latency", Unit::Ms, Better::Lower);
        r.na(
            BASALT,
            "needs redis-server's S2 throughput, which could not be measured",
        );
        r.na(
            REDIS,
            "needs redis-server's S2 throughput, which could not be measured",
        );
        return ScenarioOut {
            id: "S3".into(),
            title: "open loop at 50% and 80% of redis-server's S2 throughput".into(),
            columns: columns(SERVER_COLUMNS),
            rows: vec![r],
            commands,
            notes,
            plot: None,
        };
    };
    let mut reports80: [Vec<Report>; 2] = [Vec::new(), Vec::new()];
    for pct in [50u32, 80] {
        let rate = (base * f64::from(pct) / 100.0).round();
        let mut a = strs(&["--clients", "50", "--ratio", "9:1", "--data-size", "64"]);
        a.extend([st("--rate"), st(rate), st("--keyspace"), st(sz.keys)]);
        a.extend([
            st("--duration"),
            st(sz.duration),
            st("--warmup"),
            st(sz.warmup),
        ]);
        let mut p99 = Row::new(
            format!("p99 at {pct}% ({rate:.0} ops/s)"),
            Unit::Ms,
            Better::Lower,
        );
        let mut p999 = Row::new(
            format!("p99.9 at {pct}% ({rate:.0} ops/s)"),
            Unit::Ms,
            Better::Lower,
        );
        let mut achieved = Row::new(
            format!("achieved ops/s at {pct}%"),
            Unit::Ops,
            Better::Higher,
        );
        let mut max_lag = 0.0f64;
        for _run in 0..sz.runs {
            for side in [BASALT, REDIS] {
                // Once a side is n/a, its remaining runs would only fail the same way.
                if p99.cells[side].is_err() {
                    continue;
                }
                let res = match &servers[side] {
                    Err(e) => Err(e.clone()),
                    Ok(srv) => clean_run(ctx, srv.port, &a, None).map_err(|e| format!("{e:#}")),
                };
                match res {
                    Ok(r) => {
                        p99.push(side, r.latency_ms.p99);
                        p999.push(side, r.latency_ms.p99_9);
                        achieved.push(side, r.ops_per_sec);
                        max_lag = max_lag.max(r.send_lag_ms.as_ref().map_or(0.0, |l| l.p99));
                        if pct == 80 {
                            reports80[side].push(r);
                        }
                    }
                    Err(e) => {
                        for row in [&mut p99, &mut p999, &mut achieved] {
                            row.na(side, &e);
                        }
                    }
                }
            }
        }
        notes.push(format!(
            "At {pct}%: the load generator's p99 send lag behind schedule was at most {max_lag:.3} ms over the runs (included in the latencies: a large value would mean the client, not the server, fell behind)."
        ));
        commands.push(format!("# measure at {pct}%\n{}", ctx.bench_cmdline(&a)));
        rows.extend([p99, p999, achieved]);
    }
    notes.push(format!(
        "Rates are fractions of redis-server's S2 median ({base:.0} ops/s); latency counts from each request's intended send time (no coordinated omission)."
    ));
    let title = "open loop at 50% and 80% of redis-server's S2 throughput, 50 clients".to_string();
    let plot = chart(
        ctx,
        "s3",
        "S3: open loop at 80% of redis-server's S2 throughput",
        &reports80,
    );
    ScenarioOut {
        id: "S3".into(),
        title,
        columns: columns(SERVER_COLUMNS),
        rows,
        commands,
        notes,
        plot,
    }
}

/// S4: memory per key after loading N keys (16-byte keys, 32-byte values), without and
/// with TTL, and the peak RSS during the load.
pub fn memory(ctx: &Ctx) -> ScenarioOut {
    let sz = &ctx.sizes;
    let mut rows = Vec::new();
    let mut commands = Vec::new();
    let mut shown_servers = false;
    for &n in &sz.s4_keys {
        for ttl in [None, Some(86_400u64)] {
            let label = if ttl.is_some() {
                format!("{n} keys with TTL")
            } else {
                format!("{n} keys")
            };
            let load = load_args(n, 32, 12, ttl, "key:");
            let mut per_key = Row::new(format!("RSS per key, {label}"), Unit::Bytes, Better::Lower);
            let mut total = Row::new(format!("RSS after load, {label}"), Unit::MiB, Better::Lower);
            let mut peak = Row::new(
                format!("peak RSS during load, {label}"),
                Unit::MiB,
                Better::Lower,
            );
            for _run in 0..sz.runs {
                for side in [BASALT, REDIS] {
                    // Once a side is n/a, its remaining runs would only fail the same way.
                    if per_key.cells[side].is_err() {
                        continue;
                    }
                    let res = (|| -> Result<(f64, f64, f64), String> {
                        let srv = start(ctx, side, &[])?;
                        if !shown_servers && side == REDIS {
                            commands.push(format!(
                                "# each run starts a fresh server, e.g.\n{}",
                                srv.cmdline
                            ));
                            shown_servers = true;
                        }
                        let e = |e: anyhow::Error| format!("{e:#}");
                        let base = srv.rss().map_err(e)?;
                        clean_run(ctx, srv.port, &load, Some(n)).map_err(e)?;
                        let stored = srv.client().and_then(|mut c| c.dbsize()).map_err(e)?;
                        if stored != n {
                            return Err(format!("DBSIZE is {stored} after loading {n} keys"));
                        }
                        let after = srv.rss().map_err(e)?;
                        let hwm = srv.peak_rss().map_err(e)?;
                        Ok((
                            after.saturating_sub(base) as f64 / n as f64,
                            after as f64,
                            hwm as f64,
                        ))
                    })();
                    match res {
                        Ok((k, a, p)) => {
                            per_key.push(side, k);
                            total.push(side, a);
                            peak.push(side, p);
                        }
                        Err(e) => {
                            for r in [&mut per_key, &mut total, &mut peak] {
                                r.na(side, &e);
                            }
                        }
                    }
                }
            }
            commands.push(format!("# load {label}\n{}", ctx.bench_cmdline(&load)));
            rows.extend([per_key, total, peak]);
        }
    }
    ScenarioOut {
        id: "S4".into(),
        title: "memory: 16-byte keys, 32-byte values, loaded with pipelined SETs".into(),
        columns: columns(SERVER_COLUMNS),
        rows,
        commands,
        notes: vec![
            "RSS per key = (RSS after the load − RSS of the fresh server) / keys, from /proc/PID/status VmRSS; peak = VmHWM.".into(),
        ],
        plot: None,
    }
}

/// S5: cache-aside hit ratio at equal maxmemory, Zipf 0.99 and 0.8, then again after a
/// one-shot scan of twice the cache size. Redis runs `allkeys-lru`; Basalt runs each of
/// its policies in `BASALT_S5_POLICIES` (its `allkeys-lru`, and S3-FIFO), each compared
/// with the same Redis runs.
pub fn hit_ratio(ctx: &Ctx) -> ScenarioOut {
    let sz = &ctx.sizes;
    let keys = sz.s5_keys;
    let extra = |policy: &str| {
        vec![
            st("--maxmemory"),
            st(&sz.s5_maxmemory),
            st("--maxmemory-policy"),
            st(policy),
        ]
    };
    // With stable ranks every phase of run r ranks the keys as its first warm-up does
    // (seeds are 1000 * chunk + 10 * r + phase).
    let cache = |alpha: f64, seed: u64, requests: u64| {
        let rank_seed = sz.s5_stable_ranks.then(|| seed % 1000 - seed % 10 + 1);
        let mut a = strs(&[
            "--cache-aside",
            "--clients",
            "50",
            "--pipeline",
            "16",
            "--data-size",
            "100",
        ]);
        a.extend([
            st("--keyspace"),
            st(keys),
            st("--key-pattern"),
            format!("zipf:{alpha}"),
        ]);
        a.extend([
            st("--requests"),
            st(requests),
            st("--seed"),
            st(seed),
            st("--duration"),
            st(1800),
        ]);
        if let Some(r) = rank_seed {
            a.extend([st("--rank-seed"), st(r)]);
        }
        a
    };
    // One measurement: (hit ratio, hit ratio after the scan, keys held).
    let measure =
        |side: usize, policy: &str, alpha: f64, run: u64| -> Result<(f64, f64, f64), String> {
            let srv = start(ctx, side, &extra(policy))?;
            let e = |e: anyhow::Error| format!("{e:#}");
            let mut c = srv.client().map_err(e)?;
            match c.config_get("maxmemory-policy").map_err(e)? {
                Some(p) if p == policy => {}
                other => {
                    return Err(format!(
                        "maxmemory-policy {policy} not supported (CONFIG GET says {other:?})"
                    ));
                }
            }
            // Warm up until the cache is full (the first eviction), within bounds.
            let mut chunk = 0;
            loop {
                let seed = run * 10 + 1 + 1000 * chunk;
                let warm = cache(alpha, seed, 2 * sz.s5_requests);
                clean_run(ctx, srv.port, &warm, None).map_err(e)?;
                chunk += 1;
                match check_evicting(&srv, &sz.s5_maxmemory) {
                    Ok(()) => break,
                    Err(Eviction::NotYet(_)) if chunk < 4 => continue,
                    Err(Eviction::NotYet(why) | Eviction::Unsupported(why)) => {
                        return Err(why);
                    }
                }
            }
            let m1 = clean_run(
                ctx,
                srv.port,
                &cache(alpha, run * 10 + 2, sz.s5_requests),
                None,
            )
            .map_err(e)?;
            let held = c.dbsize().map_err(e)?;
            let scan = scan_args(&(2 * held).max(1).to_string());
            clean_run(ctx, srv.port, &scan, None).map_err(e)?;
            let m2 = clean_run(
                ctx,
                srv.port,
                &cache(alpha, run * 10 + 3, sz.s5_requests),
                None,
            )
            .map_err(e)?;
            Ok((
                m1.hit_ratio.unwrap_or(0.0),
                m2.hit_ratio.unwrap_or(0.0),
                held as f64,
            ))
        };
    let mut rows = Vec::new();
    let mut commands = Vec::new();
    let mut notes = Vec::new();
    let mut chart_groups = Vec::new();
    for alpha in [0.99, 0.8] {
        let label = |what: &str, policy: &str| {
            if policy == "allkeys-lru" {
                format!("{what}, Zipf {alpha}")
            } else {
                format!("{what}, Zipf {alpha} (basalt {policy})")
            }
        };
        let mut groups: Vec<[Row; 3]> = BASALT_S5_POLICIES
            .iter()
            .map(|p| {
                [
                    Row::new(label("hit ratio", p), Unit::Percent, Better::Higher),
                    Row::new(
                        label("hit ratio after a scan of 2× the cache", p),
                        Unit::Percent,
                        Better::Higher,
                    ),
                    Row::new(
                        label(&format!("keys held in {}", sz.s5_maxmemory), p),
                        Unit::Ops,
                        Better::Higher,
                    ),
                ]
            })
            .collect();
        for run in 0..sz.runs as u64 {
            for (g, policy) in BASALT_S5_POLICIES.iter().enumerate() {
                // Once a side is n/a, its remaining runs would only fail the same way.
                if groups[g][0].cells[BASALT].is_err() {
                    continue;
                }
                match measure(BASALT, policy, alpha, run) {
                    Ok((h1, h2, held)) => {
                        groups[g][0].push(BASALT, h1);
                        groups[g][1].push(BASALT, h2);
                        groups[g][2].push(BASALT, held);
                    }
                    Err(e) => groups[g].iter_mut().for_each(|r| r.na(BASALT, &e)),
                }
            }
            if groups[0][0].cells[REDIS].is_err() {
                continue;
            }
            // Redis runs allkeys-lru once; every Basalt policy is compared with it.
            match measure(REDIS, "allkeys-lru", alpha, run) {
                Ok((h1, h2, held)) => groups.iter_mut().for_each(|g| {
                    g[0].push(REDIS, h1);
                    g[1].push(REDIS, h2);
                    g[2].push(REDIS, held);
                }),
                Err(e) => groups
                    .iter_mut()
                    .for_each(|g| g.iter_mut().for_each(|r| r.na(REDIS, &e))),
            }
        }
        for (row, name) in [
            (0, format!("Zipf {alpha}")),
            (1, format!("Zipf {alpha}, after a scan")),
        ] {
            let mut bars = Vec::new();
            if let Ok(v) = &groups[0][row].cells[REDIS]
                && let Some(m) = median(v)
            {
                bars.push(("redis-server allkeys-lru".to_string(), m));
            }
            for (g, policy) in BASALT_S5_POLICIES.iter().enumerate() {
                if let Ok(v) = &groups[g][row].cells[BASALT]
                    && let Some(m) = median(v)
                {
                    bars.push((format!("basalt-server {policy}"), m));
                }
            }
            chart_groups.push((name, bars));
        }
        for g in groups {
            rows.extend(g);
        }
        commands.push(format!(
            "# Zipf {alpha}, per run: warm up, measure, scan, measure again (fresh server each run, seeds vary by run)\n{}\n{}\n{}\n{}",
            ctx.bench_cmdline(&cache(alpha, 1, 2 * sz.s5_requests)),
            ctx.bench_cmdline(&cache(alpha, 2, sz.s5_requests)),
            ctx.bench_cmdline(&scan_args("$((2*DBSIZE))")),
            ctx.bench_cmdline(&cache(alpha, 3, sz.s5_requests)),
        ));
    }
    notes.push(format!(
        "Both servers run with `--maxmemory {}`; redis-server with `--maxmemory-policy allkeys-lru`, basalt-server once per policy ({}; rows marked with the policy compare it with the same redis runs). {keys} keys of 100 bytes, so the cache holds only a fraction of them.",
        sz.s5_maxmemory,
        BASALT_S5_POLICIES.join(", ")
    ));
    notes.push(if sz.s5_stable_ranks {
        "Stable ranks (`--s5-stable-ranks`): every phase of a run passes the warm-up's `--rank-seed`, so the same keys stay hot through warm-up, measurement, scan and second measurement.".into()
    } else {
        "Each phase's `--seed` also picks its Zipf ranks' permutation, so each measurement starts with keys ranked independently of the warm-up's: it measures how fast a cache adapts to a new popularity (see docs/eviction.md for the resulting bound on any policy); `--s5-stable-ranks` keeps one popularity per run.".into()
    });
    let title = format!(
        "hit ratio: cache-aside, {keys} keys, 100-byte values, maxmemory {}",
        sz.s5_maxmemory
    );
    let plot = if chart_groups.iter().any(|(_, b)| !b.is_empty()) {
        write_plot(
            ctx,
            "s5-hit-ratio",
            &crate::plot::bars(&format!("S5 {title}"), &chart_groups),
        )
    } else {
        None
    };
    ScenarioOut {
        id: "S5".into(),
        title,
        columns: columns(SERVER_COLUMNS),
        rows,
        commands,
        notes,
        plot,
    }
}

/// Basalt's policies measured in S5 (Redis always runs `allkeys-lru`).
const BASALT_S5_POLICIES: &[&str] = &["allkeys-lru", "allkeys-s3fifo"];

/// A one-shot sequential scan of `count` keys that are not in the Zipf keyspace (`count`
/// is a number, or a shell expression when shown in the docs).
fn scan_args(count: &str) -> Vec<String> {
    let mut a = strs(&[
        "--cache-aside",
        "--clients",
        "50",
        "--pipeline",
        "16",
        "--data-size",
        "100",
    ]);
    a.extend([
        st("--key-pattern"),
        st("sequential"),
        st("--key-prefix"),
        st("scan:"),
    ]);
    a.extend([st("--keyspace"), st(count), st("--requests"), st(count)]);
    a.extend([st("--duration"), st(1800)]);
    a
}

/// Parses `256mb`-style sizes as Redis does (k/kb/m/mb/g/gb, case-insensitive).
fn parse_memory(s: &str) -> Option<u64> {
    let l = s.trim().to_ascii_lowercase();
    let split = l.find(|c: char| !c.is_ascii_digit()).unwrap_or(l.len());
    let (num, unit) = l.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1_000_000,
        "mb" => 1024 * 1024,
        "g" => 1_000_000_000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Why a server is not evicting (yet).
enum Eviction {
    /// The cache is not full yet: keep warming up.
    NotYet(String),
    /// The server ignores maxmemory.
    Unsupported(String),
}

/// Checks that the server is evicting: some key was evicted, and memory stays near the limit.
fn check_evicting(srv: &Server, maxmemory: &str) -> Result<(), Eviction> {
    let fail = |e: anyhow::Error| Eviction::Unsupported(format!("{e:#}"));
    let limit = parse_memory(maxmemory)
        .ok_or_else(|| Eviction::Unsupported(format!("bad maxmemory {maxmemory}")))?;
    let mut c = srv.client().map_err(fail)?;
    let stats = c.info("stats").map_err(fail)?;
    let evicted: u64 = stats
        .get("evicted_keys")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let rss = srv.rss().map_err(fail)?;
    if evicted == 0 && rss > 2 * limit {
        return Err(Eviction::Unsupported(format!(
            "maxmemory eviction not implemented (evicted_keys 0, RSS {} MiB with maxmemory {maxmemory})",
            rss / (1024 * 1024)
        )));
    }
    if evicted == 0 {
        return Err(Eviction::NotYet(
            "no key was evicted during the warm-up: the cache never filled, raise --s5-requests"
                .into(),
        ));
    }
    Ok(())
}

/// S6: memory during BGSAVE under write load, relative to just before it.
pub fn snapshot(ctx: &Ctx) -> ScenarioOut {
    let sz = &ctx.sizes;
    let n = sz.s6_keys;
    let load = load_args(n, 100, 0, None, "key:");
    let write_secs = if ctx.args.quick { 4 } else { 10 };
    let mut writes = strs(&[
        "--clients",
        "50",
        "--pipeline",
        "1",
        "--ratio",
        "0:1",
        "--data-size",
        "100",
    ]);
    writes.extend([st("--keyspace"), st(n), st("--duration"), st(write_secs)]);
    let mut before = Row::new(
        "memory before BGSAVE (PSS, server + children)",
        Unit::MiB,
        Better::Lower,
    );
    let mut peak = Row::new("peak memory during BGSAVE", Unit::MiB, Better::Lower);
    let mut factor = Row::new("peak / before", Unit::Factor, Better::Lower);
    for _run in 0..sz.runs {
        for side in [BASALT, REDIS] {
            // Once a side is n/a, its remaining runs would only fail the same way.
            if before.cells[side].is_err() {
                continue;
            }
            let res = (|| -> Result<(f64, f64), String> {
                let srv = start(ctx, side, &[])?;
                let e = |e: anyhow::Error| format!("{e:#}");
                clean_run(ctx, srv.port, &load, Some(n)).map_err(e)?;
                let bg = ctx.spawn_bench(srv.port, &writes).map_err(e)?;
                let measured = measure_bgsave(&srv);
                // Always reap the background load, then report the first failure.
                let finished = ctx.finish_bench(bg).map_err(e);
                let m = measured?;
                finished?;
                Ok(m)
            })();
            match res {
                Ok((b, p)) => {
                    before.push(side, b);
                    peak.push(side, p);
                    factor.push(side, p / b);
                }
                Err(e) => {
                    for r in [&mut before, &mut peak, &mut factor] {
                        r.na(side, &e);
                    }
                }
            }
        }
    }
    ScenarioOut {
        id: "S6".into(),
        title: format!("snapshot: BGSAVE of {n} keys (100-byte values) under a SET load"),
        columns: columns(SERVER_COLUMNS),
        rows: vec![before, peak, factor],
        commands: vec![
            format!("# load\n{}", ctx.bench_cmdline(&load)),
            format!("# write load during BGSAVE (BGSAVE sent 1 s after it starts)\n{}", ctx.bench_cmdline(&writes)),
        ],
        notes: vec!["Memory is the proportional set size (smaps_rollup Pss) of the server plus its child processes, so a forked snapshot child's shared pages count once.".into()],
        plot: None,
    }
}

/// Sends BGSAVE one second into the write load and samples memory until it finishes.
fn measure_bgsave(srv: &Server) -> Result<(f64, f64), String> {
    let e = |e: anyhow::Error| format!("{e:#}");
    std::thread::sleep(Duration::from_secs(1));
    let before = srv.pss_with_children().map_err(e)? as f64;
    let mut c = srv.client().map_err(e)?;
    match c.call(&["BGSAVE"]).map_err(e)? {
        Frame::Error(msg) => return Err(format!("BGSAVE: {}", String::from_utf8_lossy(&msg))),
        Frame::Simple(_) | Frame::Bulk(_) => {}
        other => return Err(format!("BGSAVE: unexpected reply {other:?}")),
    }
    let start = Instant::now();
    let mut peak = before;
    let mut last_check = Instant::now();
    loop {
        peak = peak.max(srv.pss_with_children().map_err(e)? as f64);
        if last_check.elapsed() > Duration::from_millis(100) {
            last_check = Instant::now();
            let p = c.info("persistence").map_err(e)?;
            match p.get("rdb_bgsave_in_progress").map(String::as_str) {
                Some("0") => break,
                Some(_) => {}
                // No progress field: sample a fixed five seconds.
                None if start.elapsed() > Duration::from_secs(5) => break,
                None => {}
            }
        }
        if start.elapsed() > Duration::from_secs(120) {
            return Err("BGSAVE still running after 120 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((before, peak))
}

/// CPU seconds (user + system) of all waited-for children of this process so far.
fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes one rusage struct, which we own and zero-initialise.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs `f` (one load-generator process, run to completion) and also returns how busy the
/// server and the load generator were during it, as fractions of one core.
fn with_cpu<T>(
    srv: &Server,
    f: impl FnOnce() -> Result<T, String>,
) -> Result<(T, f64, f64), String> {
    let e = |e: anyhow::Error| format!("{e:#}");
    let (s0, c0, t0) = (
        srv.cpu_seconds().map_err(e)?,
        children_cpu_seconds(),
        Instant::now(),
    );
    let v = f()?;
    let wall = t0.elapsed().as_secs_f64().max(1e-9);
    let (s1, c1) = (srv.cpu_seconds().map_err(e)?, children_cpu_seconds());
    Ok((v, (s1 - s0) / wall, (c1 - c0) / wall))
}

/// V: basalt-bench against redis-benchmark on redis-server with the same settings, at
/// pipeline 1 (S1's setting) and 16, with how busy the server and each tool were.
pub fn validation(ctx: &Ctx) -> ScenarioOut {
    let sz = &ctx.sizes;
    let keys = sz.keys;
    // Pipelined runs go five times faster: give them five times the requests so that
    // process start-up stays a small part of each run.
    let requests = |pipeline: usize| {
        if pipeline > 1 {
            5 * sz.validate_requests
        } else {
            sz.validate_requests
        }
    };
    let load = load_args(keys, 64, 12, None, "key:");
    let bb = |ratio: &str, pipeline: usize| {
        let mut a = strs(&["--clients", "50", "--data-size", "64", "--key-pad", "12"]);
        a.extend([st("--pipeline"), st(pipeline), st("--ratio"), st(ratio)]);
        a.extend([
            st("--keyspace"),
            st(keys),
            st("--requests"),
            st(requests(pipeline)),
            st("--duration"),
            st(600),
        ]);
        a
    };
    let rb = |test: &str, pipeline: usize| {
        let mut a = vec![
            st("-c"),
            st(50),
            st("-n"),
            st(requests(pipeline)),
            st("-r"),
            st(keys),
            st("-d"),
            st(64),
        ];
        a.extend([st("-P"), st(pipeline), st("-t"), st(test), st("--csv")]);
        a
    };
    let mut rows: Vec<Row> = Vec::new();
    for p in [1usize, 16] {
        rows.push(Row::new(
            format!("GET ops/s, pipeline {p}"),
            Unit::Ops,
            Better::Higher,
        ));
        rows.push(Row::new(
            format!("SET ops/s, pipeline {p}"),
            Unit::Ops,
            Better::Higher,
        ));
        rows.push(Row::new(
            format!("GET/SET 90/10 ops/s, pipeline {p}"),
            Unit::Ops,
            Better::Higher,
        ));
        rows.push(Row::new(
            format!("server CPU busy during GET, pipeline {p}"),
            Unit::Percent,
            Better::Higher,
        ));
        rows.push(Row::new(
            format!("load generator CPU busy during GET, pipeline {p}"),
            Unit::Percent,
            Better::Lower,
        ));
    }
    let mut notes = Vec::new();
    let mut commands = Vec::new();
    let srv = match start(ctx, REDIS, &[]) {
        Ok(s) => s,
        Err(e) => {
            for r in &mut rows {
                r.na(0, &e);
                r.na(1, &e);
            }
            return validation_out(ctx, rows, commands, notes);
        }
    };
    commands.push(format!("# redis-server\n{}", srv.cmdline));
    commands.push(format!(
        "# load the keys (redis-benchmark's key names: key:%012d)\n{}",
        ctx.bench_cmdline(&load)
    ));
    if let Err(e) = clean_run(ctx, srv.port, &load, Some(keys)) {
        let e = format!("loading: {e:#}");
        for r in &mut rows {
            r.na(0, &e);
            r.na(1, &e);
        }
        return validation_out(ctx, rows, commands, notes);
    }
    for _run in 0..sz.runs {
        for (i, p) in [1usize, 16].into_iter().enumerate() {
            let base = i * 5;
            // basalt-bench: GET, SET, and the mix measured directly.
            for (k, ratio) in [(0, "1:0"), (1, "0:1"), (2, "9:1")] {
                let res = with_cpu(&srv, || {
                    clean_run(ctx, srv.port, &bb(ratio, p), Some(requests(p)))
                        .map_err(|e| format!("{e:#}"))
                });
                match res {
                    Ok((r, server_busy, tool_busy)) => {
                        rows[base + k].push(0, r.ops_per_sec);
                        if k == 0 {
                            rows[base + 3].push(0, server_busy);
                            rows[base + 4].push(0, tool_busy);
                        }
                    }
                    Err(e) => rows[base + k].na(0, &e),
                }
            }
            // redis-benchmark has no mixed workload: its 90/10 figure is the time-weighted
            // mean of its GET and SET rates, 1 / (0.9/get + 0.1/set).
            let g = with_cpu(&srv, || redis_benchmark(ctx, srv.port, &rb("get", p)));
            let s = redis_benchmark(ctx, srv.port, &rb("set", p));
            match (g, s) {
                (Ok((g, server_busy, tool_busy)), Ok(s)) => {
                    rows[base].push(1, g);
                    rows[base + 1].push(1, s);
                    rows[base + 2].push(1, 1.0 / (0.9 / g + 0.1 / s));
                    rows[base + 3].push(1, server_busy);
                    rows[base + 4].push(1, tool_busy);
                }
                (Err(e), _) | (_, Err(e)) => {
                    for r in &mut rows[base..base + 5] {
                        r.na(1, &e);
                    }
                }
            }
        }
    }
    for p in [1usize, 16] {
        commands.push(format!(
            "# basalt-bench GET, SET, 90/10 at pipeline {p}\n{}\n{}\n{}",
            ctx.bench_cmdline(&bb("1:0", p)),
            ctx.bench_cmdline(&bb("0:1", p)),
            ctx.bench_cmdline(&bb("9:1", p))
        ));
        let show = |t: &str| {
            format!(
                "taskset -c {} redis-benchmark -p $PORT {}",
                ctx.args.load_cpu,
                rb(t, p).join(" ")
            )
        };
        commands.push(format!(
            "# redis-benchmark GET, SET at pipeline {p}\n{}\n{}",
            show("get"),
            show("set")
        ));
    }
    for (i, p) in [1usize, 16].into_iter().enumerate() {
        let mix = &rows[i * 5 + 2];
        if let (Ok(a), Ok(b)) = (&mix.cells[0], &mix.cells[1])
            && let (Some(a), Some(b)) = (median(a), median(b))
        {
            let dev = (a / b - 1.0) * 100.0;
            notes.push(format!(
                "90/10 at pipeline {p}: basalt-bench {a:.0} ops/s, redis-benchmark {b:.0} ops/s: {dev:+.1}% ({} 10%).",
                if dev.abs() <= 10.0 { "within" } else { "beyond" }
            ));
        }
    }
    notes.push(
        "Same server (redis-server on its core), same keys (`key:` + 12 digits), 64-byte values, 50 connections; \
         the tools alternate run by run. Where a tool's own core is fully busy while the server's is not, that tool \
         measured itself, not the server."
            .into(),
    );
    validation_out(ctx, rows, commands, notes)
}

fn validation_out(
    ctx: &Ctx,
    rows: Vec<Row>,
    commands: Vec<String>,
    notes: Vec<String>,
) -> ScenarioOut {
    ScenarioOut {
        id: "V".into(),
        title: format!(
            "validation: basalt-bench vs redis-benchmark against redis-server, {} keys, {} requests per run ({} pipelined)",
            ctx.sizes.keys,
            ctx.sizes.validate_requests,
            5 * ctx.sizes.validate_requests
        ),
        columns: columns(["basalt-bench", "redis-benchmark"]),
        rows,
        commands,
        notes,
        plot: None,
    }
}

/// Runs redis-benchmark pinned to the load core and returns its requests per second.
fn redis_benchmark(ctx: &Ctx, port: u16, args: &[String]) -> Result<f64, String> {
    let out = Command::new("taskset")
        .arg("-c")
        .arg(ctx.args.load_cpu.to_string())
        .arg(&ctx.args.redis_benchmark_bin)
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .map_err(|e| format!("redis-benchmark: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `--csv` prints a header, then `"GET","123456.78",...`.
    text.lines()
        .filter(|l| !l.starts_with("\"test\""))
        .find_map(|l| {
            l.split(',')
                .nth(1)
                .and_then(|v| v.trim_matches('"').parse::<f64>().ok())
        })
        .ok_or_else(|| format!("redis-benchmark printed no rate: {}", text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_parse_like_redis() {
        assert_eq!(parse_memory("256mb"), Some(256 * 1024 * 1024));
        assert_eq!(parse_memory("1GB"), Some(1024 * 1024 * 1024));
        assert_eq!(parse_memory("100k"), Some(100_000));
        assert_eq!(parse_memory("42"), Some(42));
        assert_eq!(parse_memory("x"), None);
        assert_eq!(parse_memory("5tb"), None);
    }

    #[test]
    fn load_args_cover_each_key_once() {
        let a = load_args(1000, 32, 12, Some(60), "key:");
        let joined = a.join(" ");
        assert!(joined.contains("--key-pattern sequential"));
        assert!(joined.contains("--keyspace 1000 --requests 1000"));
        assert!(joined.contains("--key-pad 12"));
        assert!(joined.contains("--ttl 60"));
    }
}
