//! Runs the benchmarks side by side with BIRD 2, GoBGP and FRR and writes the markdown
//! report. `bench.sh` at the repository root builds everything and calls this.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use interop::bench::daemons::Kind;
use interop::bench::report::Results;
use interop::bench::throughput::{self, Size};
use interop::bench::{
    converge, fibrate, mesh, rawfib, rrclients, rrfib, Binaries, Machine, Sysctl,
};

#[derive(Parser)]
#[command(
    about = "ipipd benchmarks against BIRD 2, GoBGP and FRR (root, network namespaces)",
    args_override_self = true
)]
struct Cli {
    /// A few-minute smoke run: small sizes, one run each, short idle window.
    #[arg(long)]
    quick: bool,
    /// Which parts: throughput, rr-fib, rr-clients, fib, converge, mesh, cni, nat, vxlan, datastore, datastore-scale, bfd.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "throughput,rr-fib,rr-clients,fib,converge,mesh,cni,nat,vxlan,datastore,datastore-scale,bfd"
    )]
    only: Vec<String>,
    /// Throughput sizes, SENDERSxPREFIXES.
    #[arg(long, value_delimiter = ',', default_value = "10x10000,10x100000")]
    sizes: Vec<String>,
    /// Sizes of the route reflector with the FIB on (`rr-fib`), SENDERSxPREFIXES.
    #[arg(long, value_delimiter = ',', default_value = "1x100000,1x1000000")]
    rr_fib_sizes: Vec<String>,
    /// rr-fib: also write the same routes with the raw netlink writer at these batch sizes
    /// (one run each; ipipd's own batch size runs every run).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,64,256,4096,16384,65536"
    )]
    raw_sweep: Vec<usize>,
    /// Route-reflector cluster (`rr-clients`): clients, each peering with both reflectors.
    #[arg(long, default_value_t = 1000)]
    rr_clients: usize,
    /// Runs per target and size (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Throughput targets.
    #[arg(long, value_delimiter = ',', default_value = "ipipd,bird,gobgp,frr")]
    targets: Vec<String>,
    #[arg(long, default_value_t = 100_000)]
    fib_routes: u32,
    #[arg(long, default_value_t = 3)]
    fib_runs: u32,
    /// Propagation trials per daemon.
    #[arg(long, default_value_t = 100)]
    trials: usize,
    #[arg(long, value_delimiter = ',', default_value = "25,50,100")]
    mesh_sizes: Vec<usize>,
    /// Also run each mesh size with BIRD 2 as a baseline.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    mesh_bird: bool,
    /// Also run each mesh size with ipipd and `connect_retry_time = 1` (labelled row).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    mesh_tuned: bool,
    /// Runs per mesh size and daemon, interleaved (the median run is reported).
    #[arg(long, default_value_t = 1)]
    mesh_runs: usize,
    /// Longest wait for a mesh to converge, seconds (default: 120 + 1 per node).
    #[arg(long)]
    mesh_limit: Option<u64>,
    /// Seconds of idle CPU measurement per mesh.
    #[arg(long, default_value_t = 60)]
    idle: u64,
    /// Longest wait for one throughput run, seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// CNI latency: pods one after the other.
    #[arg(long, default_value_t = 100)]
    cni_sequential: usize,
    /// CNI latency: pods at once.
    #[arg(long, default_value_t = 20)]
    cni_parallel: usize,
    /// CNI latency: rounds per plugin and shape.
    #[arg(long, default_value_t = 3)]
    cni_runs: usize,
    /// Outbound NAT: connections per run.
    #[arg(long, default_value_t = 5000)]
    nat_connections: usize,
    /// Outbound NAT: runs per target (alternating).
    #[arg(long, default_value_t = 7)]
    nat_runs: usize,
    /// Pod-to-pod throughput (`vxlan`): seconds of iperf3 per run.
    #[arg(long, default_value_t = 5)]
    tput_seconds: u64,
    /// Pod-to-pod throughput: runs per set-up (alternating).
    #[arg(long, default_value_t = 7)]
    tput_runs: usize,
    /// etcd datastore: nodes in the cluster.
    #[arg(long, default_value_t = 50)]
    ds_nodes: usize,
    /// etcd datastore: nodes joining one after the other (join latency samples).
    #[arg(long, default_value_t = 5)]
    ds_joins: usize,
    /// etcd datastore: seconds of idle load measurement.
    #[arg(long, default_value_t = 30)]
    ds_idle: u64,
    /// etcd datastore at scale: simulated nodes (one run per size and mode).
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    ds_scale_nodes: Vec<usize>,
    /// etcd datastore at scale: how nodes keep their view, `apply` (watch changes) and/or
    /// `reread` (a full read per burst, the daemon before).
    #[arg(long, value_delimiter = ',', default_value = "apply")]
    ds_scale_modes: Vec<String>,
    /// etcd datastore at scale: joins one at a time (first pod and view samples).
    #[arg(long, default_value_t = 20)]
    ds_scale_joins: usize,
    /// etcd datastore at scale: nodes joining at once.
    #[arg(long, default_value_t = 100)]
    ds_scale_storm: usize,
    /// etcd datastore at scale: longest setup of the simulated cluster, seconds.
    #[arg(long, default_value_t = 600)]
    ds_scale_budget: u64,
    /// BFD CPU: sessions at the node under test.
    #[arg(long, default_value_t = 100)]
    bfd_sessions: usize,
    /// BFD CPU: transmit and receive interval, ms.
    #[arg(long, default_value_t = 100)]
    bfd_interval: u32,
    /// BFD CPU: seconds of measurement once every session is Up.
    #[arg(long, default_value_t = 30)]
    bfd_window: u64,
    /// BFD CPU: runs per daemon, interleaved (medians are reported).
    #[arg(long, default_value_t = 3)]
    bfd_runs: usize,
    #[arg(long)]
    ipipd: PathBuf,
    /// An earlier ipipd build: its throughput rows sit next to this tree's (before/after).
    #[arg(long)]
    ipipd_baseline: Option<PathBuf>,
    /// What the baseline was built from (shown in the report), e.g. a commit.
    #[arg(long, default_value = "an earlier revision")]
    baseline_label: String,
    #[arg(long)]
    loadgen: PathBuf,
    #[arg(long)]
    install_bench: Option<PathBuf>,
    /// Where the markdown goes.
    #[arg(long, default_value = "interop/bench/results.md")]
    out: PathBuf,
    /// The command line shown in the report.
    #[arg(long, default_value = "./bench.sh")]
    command: String,
}

/// Every part, in the order they run.
const PARTS: [&str; 12] = [
    "throughput",
    "rr-fib",
    "rr-clients",
    "fib",
    "converge",
    "mesh",
    "cni",
    "nat",
    "vxlan",
    "datastore",
    "datastore-scale",
    "bfd",
];

fn preflight() -> Result<()> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .map(str::to_owned)
        });
    if uid.as_deref() != Some("0") {
        bail!("the benchmarks need root (network namespaces)");
    }
    Ok(())
}

fn throughput_part(cli: &Cli, bins: &Binaries, sizes: &[Size], r: &mut Results) {
    let mut kinds: Vec<Kind> = cli.targets.iter().filter_map(|t| Kind::parse(t)).collect();
    if bins.ipipd_baseline.is_some() && !kinds.contains(&Kind::IpipdBaseline) {
        let at = kinds
            .iter()
            .position(|k| *k == Kind::Ipipd)
            .map_or(0, |i| i + 1);
        kinds.insert(at, Kind::IpipdBaseline);
    }
    let timeout = Duration::from_secs(cli.timeout);
    for size in sizes {
        eprintln!("throughput {size}: load generator into a sink");
        match throughput::self_test(bins, *size, timeout) {
            Ok(t) => {
                eprintln!("  loadgen → sink {size}: {:.3} s ({:.0} prefixes/s), senders done after {:.3} s", t.seconds, size.total() as f64 / t.seconds, t.sent_s);
                r.self_tests.push(t);
            }
            Err(e) => r.errors.push(format!("loadgen self-test {size}: {e:#}")),
        }
        let mut samples: Vec<(Vec<throughput::Sample>, Vec<String>)> =
            kinds.iter().map(|_| Default::default()).collect();
        for run in 1..=cli.runs {
            for (k, (s, f)) in kinds.iter().zip(samples.iter_mut()) {
                throughput::record(
                    *k,
                    *size,
                    run,
                    throughput::one(*k, *size, bins, timeout),
                    s,
                    f,
                );
            }
        }
        for (k, (s, f)) in kinds.iter().zip(samples) {
            r.throughput.push(throughput::summarize(*k, *size, &s, f));
        }
    }
}

/// ipipd (and its baseline build) and BIRD 2 as route reflectors writing every route to
/// the kernel, interleaved per run.
fn rr_fib_part(cli: &Cli, bins: &Binaries, r: &mut Results) {
    // (target, kernel writes): ipipd with the FIB off is the reference for what the FIB
    // path adds.
    let mut kinds = vec![(Kind::Ipipd, true)];
    if bins.ipipd_baseline.is_some() {
        kinds.push((Kind::IpipdBaseline, true));
    }
    kinds.push((Kind::Bird, true));
    kinds.push((Kind::Ipipd, false));
    let timeout = Duration::from_secs(cli.timeout);
    let sizes: Vec<Size> = if cli.quick {
        vec![Size {
            senders: 1,
            prefixes: 10_000,
        }]
    } else {
        cli.rr_fib_sizes
            .iter()
            .filter_map(|s| Size::parse(s))
            .collect()
    };
    for size in sizes {
        eprintln!("route reflector with the FIB on, {size}");
        let routes = match rawfib::routes(size) {
            Ok(routes) => routes,
            Err(e) => {
                r.errors.push(format!("rr-fib {size}: {e:#}"));
                continue;
            }
        };
        let mut samples: Vec<(Vec<rrfib::Sample>, Vec<String>)> =
            kinds.iter().map(|_| Default::default()).collect();
        let (mut raw, mut raw_failed) = (Vec::new(), Vec::new());
        for run in 1..=cli.runs {
            for ((k, kernel), (s, f)) in kinds.iter().zip(samples.iter_mut()) {
                let one = rrfib::one(*k, *kernel, size, bins, timeout);
                rrfib::record(*k, *kernel, size, run, one, s, f);
            }
            // The kernel's limit, in the same run: the same routes, no BGP.
            raw_write(
                size,
                &routes,
                rawfib::IPIPD_BATCH,
                false,
                run,
                &mut raw,
                &mut raw_failed,
            );
        }
        for ((k, kernel), (s, f)) in kinds.iter().zip(samples) {
            r.rr_fib.push(rrfib::summarize(*k, *kernel, size, &s, f));
        }
        r.raw_fib.push(rawfib::Row::of(
            size,
            rawfib::IPIPD_BATCH,
            false,
            &raw,
            raw_failed,
        ));
        if cli.quick {
            continue;
        }
        // ipipd's batches with a route listener reading meanwhile (ipipd's FIB has one).
        let (mut w, mut f) = (Vec::new(), Vec::new());
        raw_write(size, &routes, rawfib::IPIPD_BATCH, true, 1, &mut w, &mut f);
        r.raw_fib
            .push(rawfib::Row::of(size, rawfib::IPIPD_BATCH, true, &w, f));
        for batch in cli.raw_sweep.iter().filter(|b| **b != rawfib::IPIPD_BATCH) {
            let (mut w, mut f) = (Vec::new(), Vec::new());
            raw_write(size, &routes, *batch, false, 1, &mut w, &mut f);
            r.raw_fib.push(rawfib::Row::of(size, *batch, false, &w, f));
        }
    }
}

fn raw_write(
    size: Size,
    routes: &[(ipnet::Ipv4Net, std::net::Ipv4Addr)],
    batch: usize,
    listen: bool,
    run: usize,
    writes: &mut Vec<rawfib::Write>,
    failures: &mut Vec<String>,
) {
    match rawfib::write_fresh(routes, batch, listen) {
        Ok(w) => {
            eprintln!(
                "  raw netlink writer {size}, {batch} per sendmsg{}, run {run}: {:.3} s ({:.0} routes/s), {:.3} s in sendmsg, {} sends, {:?} notifications read",
                if listen { " with a route listener" } else { "" },
                w.seconds,
                w.routes as f64 / w.seconds,
                w.send_s,
                w.sends,
                w.notified
            );
            writes.push(w);
        }
        Err(e) => {
            eprintln!("  raw netlink writer {size}, {batch} per sendmsg, run {run} failed: {e:#}");
            failures.push(format!("{e:#}"));
        }
    }
}

fn fib_part(cli: &Cli, bins: &Binaries, r: &mut Results) {
    eprintln!("FIB install rate, {} routes", cli.fib_routes);
    match &bins.install_bench {
        Some(p) => match fibrate::install_bench(p, cli.fib_routes, cli.fib_runs) {
            Ok(i) => r.install_bench = Some(i),
            Err(e) => r.errors.push(format!("install_bench: {e:#}")),
        },
        None => r
            .errors
            .push("install_bench: no binary given (--install-bench)".into()),
    }
    match fibrate::bird_vs_ip_batch(cli.fib_routes, cli.fib_runs) {
        Ok(b) => r.bird_fib = Some(b),
        Err(e) => r.errors.push(format!("BIRD kernel export: {e:#}")),
    }
}

fn converge_part(cli: &Cli, bins: &Binaries, r: &mut Results) {
    r.trials = cli.trials;
    eprintln!("propagation latency, {} trials: ipipd", cli.trials);
    match converge::ipipd(bins, cli.trials) {
        Ok(l) => r.latencies.push(l),
        Err(e) => r.errors.push(format!("ipipd propagation: {e:#}")),
    }
    eprintln!("propagation latency, {} trials: BIRD 2", cli.trials);
    match converge::bird(cli.trials) {
        Ok(l) => r.latencies.push(l),
        Err(e) => r.errors.push(format!("BIRD propagation: {e:#}")),
    }
}

fn mesh_part(cli: &Cli, bins: &Binaries, r: &mut Results) {
    // The neighbour table (one for all namespaces) is raised by each mesh for its run.
    let idle = Duration::from_secs(cli.idle);
    let limit = cli.mesh_limit.map(Duration::from_secs);
    for n in &cli.mesh_sizes {
        let mut daemons = vec![mesh::MeshDaemon::Ipipd];
        if bins.ipipd_baseline.is_some() {
            daemons.push(mesh::MeshDaemon::IpipdBaseline);
        }
        if cli.mesh_tuned {
            daemons.push(mesh::MeshDaemon::IpipdTuned);
        }
        if cli.mesh_bird {
            daemons.push(mesh::MeshDaemon::Bird);
        }
        let mut rows: Vec<Vec<mesh::MeshRow>> = vec![Vec::new(); daemons.len()];
        for run in 0..cli.mesh_runs.max(1) {
            for (d, done) in daemons.iter().zip(rows.iter_mut()) {
                eprintln!("mesh {d:?} N={n} run {}", run + 1);
                match mesh::run(*d, bins, *n, idle, limit) {
                    Ok(m) => done.push(m),
                    Err(e) => r.errors.push(format!("mesh {d:?} N={n}: {e:#}")),
                }
            }
        }
        r.mesh.extend(rows.into_iter().filter_map(mesh::median_run));
    }
}

fn datastore_part(cli: &Cli, r: &mut Results) {
    // The neighbour table is global across namespaces; a big mesh on one bridge fills it.
    let guards: Result<Vec<Sysctl>> = [("1", "8192"), ("2", "32768"), ("3", "65536")]
        .iter()
        .map(|(i, v)| Sysctl::set(&format!("net.ipv4.neigh.default.gc_thresh{i}"), v))
        .collect();
    let _guards = match guards {
        Ok(g) => g,
        Err(e) => {
            r.errors.push(format!("datastore: {e:#}"));
            return;
        }
    };
    // The etcd helper starts the ipipd it finds through IPIPD_BIN.
    std::env::set_var("IPIPD_BIN", &cli.ipipd);
    eprintln!(
        "etcd datastore: {} nodes, {} joins, {} s idle",
        cli.ds_nodes, cli.ds_joins, cli.ds_idle
    );
    match interop::bench::datastore::run(
        cli.ds_nodes,
        cli.ds_joins,
        Duration::from_secs(cli.ds_idle),
    ) {
        Ok(row) => r.datastore = Some(row),
        Err(e) => r.errors.push(format!("datastore: {e:#}")),
    }
}

fn datastore_scale_part(cli: &Cli, r: &mut Results) {
    use interop::bench::dsscale::{self, Mode};
    for &nodes in &cli.ds_scale_nodes {
        for m in &cli.ds_scale_modes {
            let Some(mode) = Mode::parse(m) else {
                r.errors.push(format!(
                    "datastore-scale: no watch mode {m:?} (apply, reread)"
                ));
                continue;
            };
            eprintln!(
                "etcd datastore at scale: {nodes} simulated nodes ({m}), {} joins, a storm of {}",
                cli.ds_scale_joins, cli.ds_scale_storm
            );
            match dsscale::run(
                nodes,
                cli.ds_scale_joins,
                cli.ds_scale_storm,
                Duration::from_secs(cli.ds_idle),
                mode,
                Duration::from_secs(cli.ds_scale_budget),
            ) {
                Ok(row) => r.ds_scale.push(row),
                Err(e) => r
                    .errors
                    .push(format!("datastore-scale ({nodes}, {m}): {e:#}")),
            }
        }
    }
}

fn bfd_part(cli: &Cli, r: &mut Results) {
    // The helpers start the ipipd they find through IPIPD_BIN.
    std::env::set_var("IPIPD_BIN", &cli.ipipd);
    let rows = interop::bench::bfd::run(
        cli.bfd_sessions,
        cli.bfd_interval,
        Duration::from_secs(cli.bfd_window),
        cli.bfd_runs,
    );
    if let Err(e) = interop::bench::bfd::check(&rows) {
        r.errors.push(format!("bfd: {e:#}"));
    }
    r.bfd = rows;
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Err(e) = preflight() {
        eprintln!("ipipd-bench: {e:#}");
        return ExitCode::from(2);
    }
    if cli.quick {
        cli.sizes = vec!["10x10000".into()];
        cli.runs = 1;
        cli.fib_routes = 20_000;
        cli.fib_runs = 1;
        cli.trials = 10;
        cli.mesh_sizes = vec![10];
        cli.idle = 5;
        cli.cni_sequential = 20;
        cli.cni_parallel = 10;
        cli.cni_runs = 1;
        cli.nat_connections = 500;
        cli.nat_runs = 3;
        cli.tput_seconds = 2;
        cli.tput_runs = 3;
        cli.ds_nodes = 10;
        cli.ds_joins = 2;
        cli.ds_idle = 10;
        cli.ds_scale_nodes = vec![100];
        cli.ds_scale_joins = 5;
        cli.ds_scale_storm = 20;
        cli.bfd_window = 10;
        cli.bfd_runs = 1;
        cli.rr_clients = 100;
    }
    let sizes: Vec<Size> = cli.sizes.iter().filter_map(|s| Size::parse(s)).collect();
    let bins = Binaries {
        ipipd: cli.ipipd.clone(),
        ipipd_baseline: cli
            .ipipd_baseline
            .clone()
            .map(|p| (p, cli.baseline_label.clone())),
        loadgen: cli.loadgen.clone(),
        install_bench: cli.install_bench.clone(),
    };
    let started = Instant::now();
    let mut r = Results {
        command: cli.command.clone(),
        machine: Some(Machine::read()),
        runs: cli.runs,
        ..Results::default()
    };
    for k in Kind::ALL {
        r.versions.push((k.name().to_string(), k.version(&bins)));
    }
    if bins.ipipd_baseline.is_some() {
        let k = Kind::IpipdBaseline;
        r.versions
            .insert(1, (k.name().to_string(), k.version(&bins)));
    }
    let part = |p: &str| cli.only.iter().any(|o| o == p);
    if part("throughput") {
        throughput_part(&cli, &bins, &sizes, &mut r);
    }
    if part("rr-fib") {
        rr_fib_part(&cli, &bins, &mut r);
    }
    if part("rr-clients") {
        eprintln!(
            "route-reflector cluster: 2 reflectors, {} clients, {} runs",
            cli.rr_clients, cli.runs
        );
        match rrclients::run(
            cli.rr_clients,
            cli.runs,
            &bins,
            Duration::from_secs(cli.timeout),
        ) {
            Ok(rows) => {
                for row in rows.iter().filter(|r| !r.failures.is_empty()) {
                    r.errors.push(format!(
                        "rr-clients {}: {}",
                        row.target.name(),
                        row.failures.join("; ")
                    ));
                }
                if let Some((t, m)) = rrclients::ratios(&rows) {
                    eprintln!("  rr-clients ipipd / BIRD 2: convergence {t:.2}×, peak RSS {m:.2}×");
                }
                r.rr_clients = rows;
            }
            Err(e) => r.errors.push(format!("rr-clients: {e:#}")),
        }
    }
    if part("fib") {
        fib_part(&cli, &bins, &mut r);
    }
    if part("converge") {
        converge_part(&cli, &bins, &mut r);
    }
    if part("mesh") {
        mesh_part(&cli, &bins, &mut r);
    }
    if part("cni") {
        eprintln!(
            "CNI ADD/DEL latency: {} sequential, {} parallel, {} runs",
            cli.cni_sequential, cli.cni_parallel, cli.cni_runs
        );
        let baseline = bins
            .ipipd_baseline
            .as_ref()
            .map(|(p, label)| (p.as_path(), label.as_str()));
        match interop::bench::cni::run(
            &cli.ipipd,
            baseline,
            cli.cni_sequential,
            cli.cni_parallel,
            cli.cni_runs,
        ) {
            Ok(rows) => r.cni = rows,
            Err(e) => r.errors.push(format!("cni: {e:#}")),
        }
    }
    if part("nat") {
        eprintln!(
            "outbound NAT: {} connections a run, {} runs a target",
            cli.nat_connections, cli.nat_runs
        );
        match interop::bench::nat::run(&cli.ipipd, cli.nat_connections, cli.nat_runs) {
            Ok(rows) => r.nat = rows,
            Err(e) => r.errors.push(format!("nat: {e:#}")),
        }
    }
    if part("vxlan") {
        eprintln!(
            "pod-to-pod throughput, VXLAN and no encapsulation: {} s a run, {} runs a set-up",
            cli.tput_seconds, cli.tput_runs
        );
        match interop::bench::vxlan::run(&cli.ipipd, cli.tput_seconds, cli.tput_runs) {
            Ok(rows) => r.vxlan = rows,
            Err(e) => r.errors.push(format!("vxlan: {e:#}")),
        }
    }
    if part("datastore") {
        datastore_part(&cli, &mut r);
    }
    if part("datastore-scale") {
        datastore_scale_part(&cli, &mut r);
    }
    if part("bfd") {
        bfd_part(&cli, &mut r);
    }
    r.load_end = interop::bench::loadavg();
    r.duration_s = started.elapsed().as_secs_f64();
    let md = r.markdown();
    println!("{md}");
    if let Some(dir) = cli.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // A run of some parts only keeps the other parts' figures in the report.
    let partial = PARTS.iter().any(|p| !part(p));
    let md = match std::fs::read_to_string(&cli.out) {
        Ok(old) if partial => {
            let load = r
                .machine
                .as_ref()
                .map(|m| m.load.clone())
                .unwrap_or_default();
            let note = format!(
                "Measured by `{}` (total {:.0} s; load average at start {load}, at end {}).",
                r.command, r.duration_s, r.load_end
            );
            interop::bench::report::merge(&old, &md, &note)
        }
        _ => md,
    };
    if let Err(e) = std::fs::write(&cli.out, &md) {
        eprintln!("ipipd-bench: writing {}: {e}", cli.out.display());
        return ExitCode::from(2);
    }
    eprintln!("report written to {}", cli.out.display());
    if r.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
