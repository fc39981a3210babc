//! The markdown report: the machine, the command, one table per benchmark, and which
//! goals the numbers meet.

use std::fmt::Write as _;

use super::converge::Latencies;
use super::daemons::Kind;
use super::fibrate::{BirdFib, InstallBench};
use super::mesh::MeshRow;
use super::throughput::{Row, SelfTest};
use super::{median, Machine};

mod merge;
pub use merge::merge;

/// Everything one invocation measured; a part that did not run is empty or None.
#[derive(Debug, Default)]
pub struct Results {
    pub command: String,
    pub machine: Option<Machine>,
    pub load_end: String,
    pub versions: Vec<(String, String)>,
    pub runs: usize,
    pub self_tests: Vec<SelfTest>,
    pub throughput: Vec<Row>,
    /// The route reflector with every route written to the kernel.
    pub rr_fib: Vec<super::rrfib::Row>,
    /// The raw netlink writer: the same routes into a fresh namespace, no BGP.
    pub raw_fib: Vec<super::rawfib::Row>,
    /// Two reflectors and N clients with one block each.
    pub rr_clients: Vec<super::rrclients::Row>,
    pub install_bench: Option<InstallBench>,
    pub bird_fib: Option<BirdFib>,
    pub latencies: Vec<Latencies>,
    pub trials: usize,
    pub mesh: Vec<MeshRow>,
    /// CNI ADD/DEL latency rows.
    pub cni: Vec<crate::bench::cni::Row>,
    /// The etcd datastore: claim and join latency, idle load.
    pub datastore: Option<crate::bench::datastore::Row>,
    /// The etcd datastore with simulated nodes, by watch mode and size.
    pub ds_scale: Vec<crate::bench::dsscale::Row>,
    /// CPU of BFD sessions: ipipd and BIRD 2.
    pub bfd: Vec<crate::bench::bfd::Row>,
    /// New pod → outside connections per second: ipipd's NAT and one masquerade rule.
    pub nat: Vec<crate::bench::nat::Row>,
    /// Pod-to-pod TCP throughput and CPU per GB: VXLAN and no encapsulation.
    pub vxlan: Vec<crate::bench::vxlan::Row>,
    /// Parts that failed, with why.
    pub errors: Vec<String>,
    pub duration_s: f64,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".to_string(), |x| format!("{x:.digits$}"))
}

fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |x| format!("{:.0}", x))
}

/// "a/b×" to two places, or "—" when either is missing or b is not positive.
pub(super) fn ratio_cell(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

/// The same for two sizes in KiB.
pub(super) fn kb_ratio_cell(a: Option<u64>, b: Option<u64>) -> String {
    ratio_cell(a.map(|v| v as f64), b.map(|v| v as f64))
}

/// " (N failed)" after a row's run count, or nothing.
pub(super) fn failed_note(failures: &[String]) -> String {
    if failures.is_empty() {
        String::new()
    } else {
        format!(" ({} failed)", failures.len())
    }
}

fn mib(kb: Option<u64>) -> String {
    kb.map_or_else(|| "—".to_string(), |k| format!("{:.1}", k as f64 / 1024.0))
}

impl Results {
    fn bird_row(&self, r: &Row) -> Option<&Row> {
        self.throughput
            .iter()
            .find(|b| b.target == Kind::Bird && b.size == r.size && b.seconds.is_some())
    }

    fn header(&self, out: &mut String) {
        let _ = writeln!(out, "# ipipd benchmarks\n");
        let _ = writeln!(
            out,
            "Command: `{}` (total {:.0} s)\n",
            self.command, self.duration_s
        );
        if let Some(m) = &self.machine {
            let _ = writeln!(
                out,
                "Machine: {} × {}, {:.0} GiB RAM, Linux {}; load average at start {}, at end {}. \
                 The machine is shared: every time is a median, and comparisons are ratios within one run.\n",
                m.nproc, m.model, m.memory_gib, m.kernel, m.load, self.load_end
            );
        }
        if !self.versions.is_empty() {
            let v: Vec<String> = self
                .versions
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(out, "Versions: {}.\n", v.join("; "));
        }
    }

    fn throughput_table(&self, out: &mut String) {
        if self.throughput.is_empty() && self.self_tests.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Route throughput and memory (route reflector)\n");
        let _ = writeln!(
            out,
            "S senders each announce P unique /26 prefixes (inside 64.0.0.0/4, about 810 NLRI per \
             4096-octet UPDATE) to the target, a route reflector with kernel FIB writes off; a \
             monitor (its route-reflector client) must hold all S×P. Time: first UPDATE sent → \
             monitor holds every prefix. Peak RSS: the target's VmHWM. CPU: the target's user+system \
             time for the run. Medians of {} runs, run in turn (interleaved) per size.\n",
            self.runs
        );
        let _ = writeln!(out, "| size | target | time (s) | prefixes/s | time vs BIRD 2 | peak RSS (MiB) | RSS vs BIRD 2 | CPU (s) | runs |");
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for t in &self.self_tests {
            let _ = writeln!(
                out,
                "| {} | loadgen → sink (the load generator's ceiling) | {:.3} | {:.0} | | | | | 1 |",
                t.size,
                t.seconds,
                t.size.total() as f64 / t.seconds
            );
        }
        for r in &self.throughput {
            let bird = self.bird_row(r);
            let tr = ratio_cell(r.seconds, bird.and_then(|b| b.seconds));
            let mr = kb_ratio_cell(r.peak_rss_kb, bird.and_then(|b| b.peak_rss_kb));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {}{} |",
                r.size,
                r.target.name(),
                opt(r.seconds, 3),
                rate(r.rate()),
                tr,
                mib(r.peak_rss_kb),
                mr,
                opt(r.cpu_s, 2),
                r.runs,
                failed_note(&r.failures)
            );
        }
        let _ = writeln!(out);
    }

    /// The limit row of a size: the raw writer at ipipd's batch size.
    fn raw_limit(&self, size: super::throughput::Size) -> Option<f64> {
        self.raw_fib
            .iter()
            .find(|w| w.size == size && w.batch == super::rawfib::IPIPD_BATCH && !w.listen)
            .and_then(|w| w.seconds)
    }

    fn raw_fib_table(&self, out: &mut String) {
        if self.raw_fib.is_empty() {
            return;
        }
        let _ = writeln!(out, "### Time to kernel against the kernel's own limit\n");
        let _ = writeln!(
            out,
            "A raw netlink writer (`interop/src/bench/rawfib.rs`), no BGP: the same routes as \
             the target's kernel gets above, written into a fresh namespace with ipipd's FIB's \
             messages and batching ({} requests per `sendmsg`, an acknowledgement asked for on \
             the last only, the next batch after it), in the same run, interleaved with the \
             daemons (median of the runs); other batch sizes once each. \"In sendmsg\": the \
             part of the time the kernel spent inside the calls. The daemons' rows: their \
             kernel time above (which also holds BGP: from the first UPDATE) ÷ the limit.\n",
            super::rawfib::IPIPD_BATCH
        );
        let _ = writeln!(out, "| size | writer | per sendmsg | time (s) | routes/s | in sendmsg (s) | vs the limit | runs |");
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
        for w in &self.raw_fib {
            let limit = self.raw_limit(w.size);
            let label = match (w.batch == super::rawfib::IPIPD_BATCH, w.listen) {
                (_, true) => "raw netlink writer, a route listener reading meanwhile",
                (true, false) => "raw netlink writer (the limit)",
                (false, false) => "raw netlink writer",
            };
            let _ = writeln!(
                out,
                "| {} | {label} | {} | {} | {} | {} | {} | {}{} |",
                w.size,
                w.batch,
                opt(w.seconds, 3),
                rate(w.seconds.map(|s| w.size.total() as f64 / s)),
                opt(w.send_s, 3),
                ratio_cell(w.seconds, limit),
                w.runs,
                failed_note(&w.failures)
            );
        }
        for r in self.rr_fib.iter().filter(|r| r.kernel) {
            let limit = self.raw_limit(r.size);
            let _ = writeln!(
                out,
                "| {} | {} (first UPDATE → kernel) | — | {} | {} | — | {} | {} |",
                r.size,
                r.label(),
                opt(r.kernel_s, 3),
                rate(r.kernel_s.map(|s| r.size.total() as f64 / s)),
                ratio_cell(r.kernel_s, limit),
                r.runs
            );
        }
        let _ = writeln!(out);
    }

    fn rr_fib_table(&self, out: &mut String) {
        if self.rr_fib.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Route reflector with the FIB on (as deployed)\n");
        let _ = writeln!(
            out,
            "The throughput benchmark's shape (S senders, P unique /26s, a monitor client), with \
             every learned route written to the target's kernel as a node does: ipipd with \
             `kernel.install = true` and the default configuration otherwise (IPIP mode always, \
             routes `via SENDER dev tunl0 onlink` through a stand-in tunl0); BIRD 2 with \
             `protocol kernel {{ ipv4 {{ import none; export all; }}; }}`. Kernel: first UPDATE → \
             the target's kernel holds every route (its FIB prefix count, polled). Monitor: first \
             UPDATE → the monitor holds every route. \"ipipd, FIB off\" is the same daemon with \
             `kernel.install = false`: what the FIB path adds is the difference. Medians of {} \
             runs, interleaved.\n",
            self.runs
        );
        let _ = writeln!(out, "| size | target | kernel (s) | kernel vs BIRD 2 | monitor (s) | peak RSS (MiB) | RSS vs BIRD 2 | CPU (s) | runs |");
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &self.rr_fib {
            let bird = self
                .rr_fib
                .iter()
                .find(|b| b.target == Kind::Bird && b.size == r.size && b.kernel_s.is_some());
            // The reference row has no kernel time: its monitor time stands alone.
            let kernel_s = r.kernel_s.filter(|_| r.kernel);
            let tr = ratio_cell(kernel_s, bird.and_then(|b| b.kernel_s));
            let mr = kb_ratio_cell(r.peak_rss_kb, bird.and_then(|b| b.peak_rss_kb));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {}{} |",
                r.size,
                r.label(),
                opt(kernel_s, 3),
                tr,
                opt(r.monitor_s, 3),
                mib(r.peak_rss_kb),
                mr,
                opt(r.cpu_s, 2),
                r.runs,
                failed_note(&r.failures)
            );
        }
        let _ = writeln!(out);
        self.raw_fib_table(out);
    }

    fn fib_table(&self, out: &mut String) {
        if self.install_bench.is_none() && self.bird_fib.is_none() {
            return;
        }
        let n = self
            .install_bench
            .as_ref()
            .map(|i| i.routes)
            .or(self.bird_fib.as_ref().map(|b| u64::from(b.routes)))
            .unwrap_or(0);
        let _ = writeln!(out, "## FIB install rate\n");
        let _ = writeln!(
            out,
            "{n} /26 routes `via GW dev tunl0 onlink` into a fresh namespace (tunl0: a veth stand-in). \
             ipipd's installer (`fib::Installer`, timed from `set_inputs` until all are acknowledged) \
             and `ip -batch` from `fib`'s `install_bench` example; BIRD 2's kernel protocol (`birdc enable` \
             of the kernel protocol with the routes already in BIRD's table, until the kernel holds all), \
             each run paired with an `ip -batch` of the same routes. Ratios are rate ÷ ip -batch rate of \
             the same runs.\n"
        );
        let _ = writeln!(out, "| method | routes/s | vs ip -batch | runs |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        if let Some(i) = &self.install_bench {
            let _ = writeln!(
                out,
                "| ipipd installer (add) | {:.0} | {:.2} | {} |",
                i.installer, i.ratio, i.runs
            );
            let _ = writeln!(
                out,
                "| ipipd installer (delete) | {:.0} | {:.2} | {} |",
                i.installer_delete,
                i.installer_delete / i.ip_batch,
                i.runs
            );
            let _ = writeln!(
                out,
                "| ip -batch (install_bench) | {:.0} | 1.00 | {} |",
                i.ip_batch, i.runs
            );
        }
        if let Some(b) = &self.bird_fib {
            let n = f64::from(b.routes);
            let _ = writeln!(
                out,
                "| BIRD 2 kernel protocol | {:.0} | {:.2} | {} |",
                n / b.bird_s,
                b.ratio,
                b.runs
            );
            let _ = writeln!(
                out,
                "| ip -batch (paired with BIRD) | {:.0} | 1.00 | {} |",
                n / b.ip_batch_s,
                b.runs
            );
        }
        let _ = writeln!(out);
    }

    fn latency_table(&self, out: &mut String) {
        if self.latencies.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Block propagation latency (3-node lab)\n");
        let _ = writeln!(
            out,
            "{} trials each: a block is added to node A's configuration and A is told to reload \
             (ipipd: SIGHUP; BIRD: `birdc configure`); time until node B's kernel has the route \
             (`ip monitor route` in B, lines stamped on arrival). Then the block is removed; time \
             until B's kernel deleted it. BIRD runs Calico's configuration (kernel protocol with \
             `scan time 2`, static blackhole blocks, the mesh template).\n",
            self.trials
        );
        let _ = writeln!(out, "| daemon | add p50 (ms) | add p99 (ms) | withdraw p50 (ms) | withdraw p99 (ms) | timed out |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for l in &self.latencies {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                l.daemon,
                opt(l.add(0.5), 1),
                opt(l.add(0.99), 1),
                opt(l.withdraw(0.5), 1),
                opt(l.withdraw(0.99), 1),
                l.lost
            );
        }
        let _ = writeln!(out);
    }

    fn mesh_table(&self, out: &mut String) {
        if self.mesh.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Full mesh on one machine\n");
        let _ = writeln!(
            out,
            "N daemons, each in its own namespace on one bridge, each announcing one /26 to all \
             others and installing theirs in its kernel (ipipd: the default configuration, FIB on; \
             BIRD: a kernel protocol exporting the learned blocks). Converged: first start → every \
             node's kernel holds every other node's block, each checked by prefix and mask with a \
             gateway in the main table (starts are spawned one after another; their spread is \
             shown; \"half\": when half of the nodes were complete). A mesh that did not converge \
             within its limit shows the nodes complete and the blocks in kernels out of N × (N − 1) \
             at the limit. RSS per daemon after convergence; idle CPU per daemon over the idle \
             window, percent of one core. Neighbour table limits raised for the run (N × (N − 1) \
             entries and up) and restored after.\n"
        );
        let _ = writeln!(out, "| daemon | N | converged (s) | vs BIRD 2 | half (s) | starts took (s) | RSS median (MiB) | vs BIRD 2 | RSS max (MiB) | idle CPU median (%) | idle CPU max (%) | idle CPU, all (%) | vs BIRD 2 | idle window (s) |");
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for m in &self.mesh {
            let r = self.mesh_ratios(m);
            let ratio = |x: Option<f64>| x.map_or_else(|| "—".to_string(), |x| format!("{x:.2}×"));
            let mut conv = match (m.converge_s, m.missing) {
                (Some(s), _) => format!("{s:.2}"),
                (None, k) => format!(
                    "no: after {:.0} s, {} of {} nodes complete, {} of {} blocks in kernels ({:.1} %)",
                    m.limit_s,
                    m.nodes - k,
                    m.nodes,
                    m.blocks_found,
                    m.blocks_wanted,
                    100.0 * m.blocks_found as f64 / m.blocks_wanted.max(1) as f64
                ),
            };
            if !m.converge_runs.is_empty() {
                let runs: Vec<String> = m
                    .converge_runs
                    .iter()
                    .map(|c| c.map_or_else(|| "no".to_string(), |s| format!("{s:.2}")))
                    .collect();
                conv = format!("{conv} (runs: {})", runs.join(", "));
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.2} | {:.1} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {:.0} |",
                m.daemon,
                m.nodes,
                conv,
                ratio(r.and_then(|r| r.0)),
                opt(m.half_nodes_s, 1),
                m.start_spread_s,
                m.rss_kb_median as f64 / 1024.0,
                ratio(r.map(|r| r.1)),
                m.rss_kb_max as f64 / 1024.0,
                m.idle_cpu_pct_median,
                m.idle_cpu_pct_max,
                m.idle_cpu_pct_total,
                ratio(r.map(|r| r.2)),
                m.idle_s
            );
        }
        let _ = writeln!(out);
    }

    /// A mesh row against the BIRD 2 row of the same size: convergence time, median RSS
    /// and idle CPU of all daemons together, as ratios (`None` for BIRD's own row or when it is missing).
    fn mesh_ratios(&self, m: &MeshRow) -> Option<(Option<f64>, f64, f64)> {
        if m.daemon.starts_with("BIRD") {
            return None;
        }
        let b = self
            .mesh
            .iter()
            .find(|b| b.daemon.starts_with("BIRD") && b.nodes == m.nodes)?;
        let time = match (m.converge_s, b.converge_s) {
            (Some(t), Some(bt)) if bt > 0.0 => Some(t / bt),
            _ => None,
        };
        let rss = m.rss_kb_median as f64 / (b.rss_kb_median.max(1)) as f64;
        let cpu = m.idle_cpu_pct_total / b.idle_cpu_pct_total.max(1e-9);
        Some((time, rss, cpu))
    }

    /// Issue 27's large mesh: ipipd's time to every block in every kernel ≤ 0.25× BIRD's.
    /// When BIRD did not converge, its limit bounds the ratio from above.
    fn large_mesh_goal(&self, m: &MeshRow) -> Option<String> {
        let b = self
            .mesh
            .iter()
            .find(|b| b.daemon.starts_with("BIRD") && b.nodes == m.nodes)?;
        let t = m.converge_s?;
        let (ratio, bound) = match b.converge_s {
            Some(bt) => (t / bt, ""),
            None => (
                t / b.limit_s,
                " at most: BIRD 2 did not converge within its limit",
            ),
        };
        Some(format!(
            "- Large mesh of {}: time until every block is in every kernel ≤ 0.25× BIRD 2's: **{}** ({ratio:.2}×{bound}; {t:.1} s).",
            m.nodes,
            if ratio <= 0.25 { "met" } else { "missed" },
        ))
    }

    fn goals(&self, out: &mut String) {
        let mut lines = Vec::new();
        for m in self.mesh.iter().filter(|m| m.daemon == "ipipd") {
            if m.nodes >= 300 {
                lines.extend(self.large_mesh_goal(m));
                continue;
            }
            let Some((Some(t), rss, cpu)) = self.mesh_ratios(m) else {
                continue;
            };
            let met = t <= 0.5 && rss <= 1.0 && cpu <= 1.0;
            lines.push(format!(
                "- Mesh of {} with the default configuration: ≤ 0.5× BIRD 2's (Calico one-way mesh) time to converge, ≤ 1.0× its RSS and idle CPU: **{}** (time {t:.2}×, RSS {rss:.2}×, idle CPU {cpu:.2}×).",
                m.nodes,
                if met { "met" } else { "missed" },
            ));
        }
        for r in self.throughput.iter().filter(|r| r.target == Kind::Ipipd) {
            let Some(b) = self.bird_row(r) else { continue };
            let (Some(t), Some(bt), Some(m), Some(bm)) =
                (r.seconds, b.seconds, r.peak_rss_kb, b.peak_rss_kb)
            else {
                continue;
            };
            let met = t < bt && m <= bm;
            lines.push(format!(
                "- Route load {} faster than BIRD 2 with no more memory: **{}** (time {:.2}× BIRD's, memory {:.2}× BIRD's).",
                r.size,
                if met { "met" } else { "missed" },
                t / bt,
                m as f64 / bm as f64
            ));
        }
        lines.extend(super::rrclients::goal(&self.rr_clients));
        for r in self
            .rr_fib
            .iter()
            .filter(|r| r.kernel && r.target == Kind::Ipipd)
        {
            let (Some(t), Some(limit)) = (r.kernel_s, self.raw_limit(r.size)) else {
                continue;
            };
            let x = t / limit;
            lines.push(format!(
                "- Time to kernel, {} routes, ≤ 1.1× the raw netlink writer's with the same batches: **{}** ({x:.2}×: {t:.3} s against {limit:.3} s).",
                r.size.total(),
                if x <= 1.1 { "met" } else { "missed" },
            ));
        }
        if let Some(i) = &self.install_bench {
            lines.push(format!(
                "- FIB install rate ≥ 0.9 of ip -batch: **{}** ({:.2}).",
                if i.ratio >= 0.9 { "met" } else { "missed" },
                i.ratio
            ));
        }
        if let Some(l) = self.latencies.iter().find(|l| l.daemon == "ipipd") {
            let worst = [l.add(0.5), l.add(0.99), l.withdraw(0.5), l.withdraw(0.99)]
                .into_iter()
                .flatten()
                .fold(0.0, f64::max);
            lines.push(format!(
                "- Single-digit-ms block propagation: **{}** (worst of p50/p99 add/withdraw: {worst:.1} ms).",
                if worst < 10.0 && l.lost == 0 { "met" } else { "missed" }
            ));
        }
        if let Some(m) = self
            .mesh
            .iter()
            .filter(|m| m.daemon == "ipipd")
            .max_by_key(|m| m.nodes)
        {
            lines.push(format!(
                "- {}-node ipipd mesh on this {}-core machine: **{}** (converged {}, {:.1} MiB and {:.2} % of a core per idle daemon).",
                m.nodes,
                self.machine.as_ref().map_or(0, |x| x.nproc),
                if m.converge_s.is_some() && m.nodes >= 100 { "met" } else { "missed" },
                m.converge_s.map_or_else(|| "no".to_string(), |s| format!("in {s:.1} s")),
                m.rss_kb_median as f64 / 1024.0,
                m.idle_cpu_pct_median
            ));
        }
        if let Some(r) = crate::bench::bfd::ratio(&self.bfd) {
            let first = self.bfd.first().map_or(0, |r| r.sessions);
            lines.push(format!(
                "- CPU of {first} BFD sessions ≤ 1.0× BIRD 2's: **{}** ({r:.2}×).",
                if r <= 1.0 { "met" } else { "missed" }
            ));
        }
        if lines.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Goals\n\n{}\n", lines.join("\n"));
    }

    fn nat_table(&self, out: &mut String) {
        use crate::bench::nat::{IPIPD, REFERENCE};
        if self.nat.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "## Outbound NAT: new connections per second\n\nA pod opens TCP connections to a host outside the pools one after the other (connect, the server closes, close), masqueraded by ipipd's nftables table (two interval sets, one rule) or, with ipipd's table removed by a reload, by one hand-written rule `ip saddr 101.64.0.0/10 ip daddr != 101.64.0.0/10 masquerade`; the targets alternate run by run. Medians over the runs; the ratio is ipipd's rate over the reference's (1.0× or more: as fast).\n\n| target | connections per run | runs | median (conn/s) | min | max | ratio |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        let reference = self
            .nat
            .iter()
            .find(|r| r.target == REFERENCE)
            .and_then(|r| r.median());
        for r in &self.nat {
            let min = r.rates.iter().copied().fold(f64::INFINITY, f64::min);
            let max = r.rates.iter().copied().fold(0.0, f64::max);
            let ratio = match (r.median(), reference) {
                (Some(a), Some(b)) if r.target == IPIPD && b > 0.0 => format!("{:.2}×", a / b),
                _ => "—".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} | {:.0} | {} |",
                r.target,
                r.connections,
                r.rates.len(),
                opt(r.median(), 0),
                min,
                max,
                ratio
            );
        }
        let _ = writeln!(out);
    }

    fn datastore_table(&self, out: &mut String) {
        let Some(d) = &self.datastore else { return };
        let _ = writeln!(
            out,
            "## etcd datastore\n\nA 3-member etcd 3.4 and {} ipipd nodes from one config, all in network namespaces on one bridge. Block claim: a node's first pod, a CNI ADD that claims a block in etcd, plugin start to answer. Join: a new node's process starts, registers, its first pod claims a block → the route in every other node's kernel (`ip monitor route` in each, each known to listen before the join: it has reported a probe route). Medians.\n\n| measure | median | samples |\n|---|---:|---:|",
            d.nodes
        );
        let _ = writeln!(
            out,
            "| block claim (CNI ADD with a claim) | {} ms | {} |",
            opt(d.claim_p50(), 1),
            d.claim_ms.len()
        );
        let _ = writeln!(
            out,
            "| join (start → block in {} kernels) | {} ms | {} |",
            d.nodes,
            opt(d.join_p50(), 0),
            d.join_ms.len()
        );
        let _ = writeln!(
            out,
            "| the joining pod's ADD answered → block in the last kernel (negative: before the answer) | {} ms | {} |",
            opt(d.spread_p50(), 0),
            d.spread_ms.len()
        );
        let methods: Vec<String> = d
            .idle_rps_per_node
            .iter()
            .map(|(m, v)| format!("{m} {v:.3}"))
            .collect();
        let _ = writeln!(
            out,
            "\nIdle load over {} s: {:.3} etcd requests per second per node (gRPC calls started, summed over the members' `grpc_server_started_total`; by method: {}).\n",
            d.idle_s,
            d.idle_total(),
            if methods.is_empty() { "none".to_string() } else { methods.join(", ") }
        );
    }

    fn bfd_table(&self, out: &mut String) {
        let Some(first) = self.bfd.first() else {
            return;
        };
        let _ = writeln!(
            out,
            "## CPU of BFD sessions\n\nThe node under test in one namespace with {n} passive BGP peers, BFD on each at {i} ms transmit and receive, multiplier 3; the responders are {n} addresses in a second namespace, each on its own interface on the bridge, with a `peer NODE local-address R interface I` session each in one FRR bfdd (one BIRD 2 cannot be the other end: it keys BFD neighbours by remote address; nor can bfdd with the addresses on one interface: its lookup then ignores the local address). Once all {n} sessions are Up at {i} ms at the node under test (`ipipd show bfd --json`, `birdc show bfd sessions`) and 3 s more: the user+system CPU time of the node under test (ipipd: the daemon and its BFD keeper; BIRD: its one process) over the window, from `/proc/PID/stat`, percent of one core; medians of the runs, run in turn. A run without all {n} Up before the window counts as failed, not as a figure; sessions that went down during the window (their last state change moved, or not Up at its end) are counted in the last column.\n\n| daemon | sessions | CPU median (% of a core) | of which BFD keeper (%) | ratio to BIRD 2 | responder bfdd (%) | all Up after (s) | window (s) | runs | failed | sessions that went down during the window, per run |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            n = first.sessions,
            i = first.interval_ms
        );
        let bird = self
            .bfd
            .iter()
            .find(|r| r.target == crate::bench::bfd::Target::Bird)
            .and_then(|r| r.cpu_pct());
        for r in &self.bfd {
            let ratio = match (r.cpu_pct(), bird) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                _ => "—".into(),
            };
            let window = median(r.samples.iter().map(|s| s.window_s).collect());
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.target.name(),
                r.sessions,
                opt(r.cpu_pct(), 3),
                opt(r.keeper_pct(), 3),
                ratio,
                opt(r.responder_pct(), 3),
                opt(r.up_s(), 1),
                opt(window, 0),
                r.samples.len(),
                r.failures.len(),
                r.samples
                    .iter()
                    .map(|s| s.flapped.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let _ = writeln!(out);
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        self.header(&mut out);
        self.throughput_table(&mut out);
        self.rr_fib_table(&mut out);
        super::rrclients::markdown(&self.rr_clients, &mut out);
        self.fib_table(&mut out);
        self.latency_table(&mut out);
        self.mesh_table(&mut out);
        super::cni::markdown(&self.cni, &mut out);
        self.nat_table(&mut out);
        super::vxlan::markdown(&self.vxlan, &mut out);
        self.datastore_table(&mut out);
        super::dsscale::markdown(&self.ds_scale, &mut out);
        self.bfd_table(&mut out);
        self.goals(&mut out);
        if !self.errors.is_empty() {
            let _ = writeln!(out, "## Parts that failed\n");
            for e in &self.errors {
                let _ = writeln!(out, "- {}", e.replace('\n', " "));
            }
            let _ = writeln!(out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::throughput::Size;

    fn row(target: Kind, seconds: f64, kb: u64) -> Row {
        Row {
            target,
            size: Size {
                senders: 10,
                prefixes: 10_000,
            },
            runs: 3,
            seconds: Some(seconds),
            peak_rss_kb: Some(kb),
            cpu_s: Some(0.5),
            failures: Vec::new(),
        }
    }

    #[test]
    fn throughput_goal_compares_with_bird() {
        let r = Results {
            command: "./bench.sh".into(),
            throughput: vec![row(Kind::Ipipd, 0.05, 10_000), row(Kind::Bird, 0.1, 12_000)],
            ..Results::default()
        };
        let md = r.markdown();
        assert!(
            md.contains("| 10×10k | ipipd | 0.050 | 2000000 | 0.50× | 9.8 | 0.83× |"),
            "{md}"
        );
        assert!(md.contains("**met** (time 0.50× BIRD's"), "{md}");
    }
}
