//! Results leave the tool three ways: a table on stdout (each figure with its ratio to parleyd,
//! the server we care about, or in a cluster run to the smallest cluster), a JSON file with
//! everything measured, and an SVG bar chart written by hand (no plotting crate, so no font or
//! system library is needed to draw it).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::cluster::ClusterResult;
use crate::scenario::connect::ConnectResult;
use crate::scenario::dm::DmResult;
use crate::scenario::fanout::FanoutResult;
use crate::scenario::history::HistoryResult;
use crate::scenario::idle::IdleResult;
use crate::scenario::joinstorm::JoinstormResult;
use crate::scenario::Latency;

/// One scenario's result against one target.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "scenario", rename_all = "lowercase")]
pub enum Outcome {
    Fanout(FanoutResult),
    Dm(DmResult),
    Idle(IdleResult),
    Connect(ConnectResult),
    Joinstorm(JoinstormResult),
    History(HistoryResult),
    Cluster(ClusterResult),
}

/// A number in a table: its name, value, unit, and whether more is better.
pub struct Figure {
    pub name: &'static str,
    pub value: f64,
    pub unit: &'static str,
    pub higher_is_better: bool,
}

/// KiB as MiB, or NaN (shown as "-") when not measured.
fn mib(kib: Option<u64>) -> f64 {
    kib.map_or(f64::NAN, |k| k as f64 / 1024.0)
}

fn fig(name: &'static str, value: f64, unit: &'static str, higher_is_better: bool) -> Figure {
    Figure {
        name,
        value,
        unit,
        higher_is_better,
    }
}

impl Outcome {
    pub fn target(&self) -> &str {
        match self {
            Outcome::Fanout(r) => &r.target,
            Outcome::Dm(r) => &r.target,
            Outcome::Idle(r) => &r.target,
            Outcome::Connect(r) => &r.target,
            Outcome::Joinstorm(r) => &r.target,
            Outcome::History(r) => &r.target,
            Outcome::Cluster(r) => &r.target,
        }
    }

    pub fn ok(&self) -> bool {
        match self {
            Outcome::Fanout(r) => r.ok,
            Outcome::Dm(r) => r.ok,
            Outcome::Idle(r) => r.ok,
            Outcome::Connect(r) => r.ok,
            Outcome::Joinstorm(r) => r.ok,
            Outcome::History(r) => r.ok,
            Outcome::Cluster(r) => r.ok,
        }
    }

    /// The scenario's figures, and for every scenario run against a server (a cluster run and a
    /// connect run report theirs in their own way) the server's peak resident memory.
    pub fn figures(&self) -> Vec<Figure> {
        let mut figures = self.scenario_figures();
        let peak = match self {
            Outcome::Fanout(r) => Some(r.server_rss_peak_kib),
            Outcome::Dm(r) => Some(r.server_rss_peak_kib),
            Outcome::Idle(r) => Some(r.server_rss_peak_kib),
            Outcome::Joinstorm(r) => Some(r.server_rss_peak_kib),
            Outcome::History(r) => Some(r.server_rss_peak_kib),
            Outcome::Connect(_) | Outcome::Cluster(_) => None,
        };
        if let Some(peak) = peak {
            figures.push(fig("server RSS peak", mib(peak), "MiB", false));
        }
        figures
    }

    fn scenario_figures(&self) -> Vec<Figure> {
        match self {
            Outcome::Fanout(r) if r.nodes > 1 => {
                let mut f = fanout_figures(r);
                f.extend(node_split_figures(r));
                f
            }
            Outcome::Fanout(r) => fanout_figures(r),
            Outcome::Cluster(r) => {
                let f = &r.fanout;
                let mut figures = vec![
                    fig("deliveries/s", f.deliveries_per_sec, "", true),
                    fig("sends/s", f.sends_per_sec, "", true),
                ];
                figures.extend(node_split_figures(f));
                figures.extend([
                    fig("latency p50", f.latency.p50_ms, "ms", false),
                    fig("latency p99", f.latency.p99_ms, "ms", false),
                    fig("latency p99.9", f.latency.p999_ms, "ms", false),
                    fig(
                        "server CPU, nodes + NATS",
                        f.server_cpu_cores.unwrap_or(f64::NAN),
                        "cores",
                        false,
                    ),
                    fig(
                        "NATS CPU",
                        r.nats_cpu_cores.unwrap_or(f64::NAN),
                        "cores",
                        false,
                    ),
                    fig(
                        "bench CPU",
                        f.bench_cpu_cores.unwrap_or(f64::NAN),
                        "cores",
                        false,
                    ),
                    fig(
                        "deliveries per server CPU-s",
                        f.deliveries_per_server_cpu_sec.unwrap_or(f64::NAN),
                        "",
                        true,
                    ),
                    fig("missing", f.missing as f64, "", false),
                ]);
                figures
            }
            Outcome::Dm(r) => {
                let mut f = vec![
                    fig("round trips", r.round_trips as f64, "", true),
                    fig("rtt p50", r.round_trip.p50_ms, "ms", false),
                    fig("rtt p99", r.round_trip.p99_ms, "ms", false),
                    fig("rtt max", r.round_trip.max_ms, "ms", false),
                ];
                if let Some(b) = &r.background {
                    f.push(fig(
                        "background deliveries/s",
                        b.deliveries_per_sec,
                        "",
                        true,
                    ));
                }
                f
            }
            Outcome::Idle(r) => vec![
                fig("establish", r.establish_secs, "s", false),
                fig("connections/s", r.connections_per_sec, "", true),
                fig(
                    "RSS per connection",
                    r.rss_per_connection_kib.unwrap_or(f64::NAN),
                    "KiB",
                    false,
                ),
                fig(
                    "RSS after",
                    r.rss_after_kib.map_or(f64::NAN, |k| k as f64 / 1024.0),
                    "MiB",
                    false,
                ),
            ],
            Outcome::Connect(r) => {
                vec![
                    fig("registrations/s", r.registrations_per_sec, "", true),
                    fig("register p50", r.latency.p50_ms, "ms", false),
                    fig("register p99", r.latency.p99_ms, "ms", false),
                    fig("failures", r.failures as f64, "", false),
                    fig(
                        "server RSS before",
                        mib(r.server_rss_before_kib),
                        "MiB",
                        false,
                    ),
                    fig(
                        "server RSS after",
                        mib(r.server_rss_after_kib),
                        "MiB",
                        false,
                    ),
                    fig("server RSS peak", mib(r.server_rss_peak_kib), "MiB", false),
                    fig(
                        "server CPU per registration",
                        r.server_cpu_ms_per_registration.unwrap_or(f64::NAN),
                        "ms",
                        false,
                    ),
                ]
            }
            Outcome::Joinstorm(r) => vec![
                fig("last 366", r.last_names_secs, "s", false),
                fig("median 366", r.median_names_secs, "s", false),
                fig(
                    "bytes received",
                    r.bytes_received as f64 / 1048576.0,
                    "MiB",
                    false,
                ),
            ],
            Outcome::History(r) => vec![
                fig("queries/s", r.total.queries_per_sec, "", true),
                fig("lines/s", r.total.lines_per_sec, "", true),
                fig("LATEST queries/s", r.latest.queries_per_sec, "", true),
                fig("LATEST p50", r.latest.latency.p50_ms, "ms", false),
                fig("LATEST p99", r.latest.latency.p99_ms, "ms", false),
                fig("LATEST p99.9", r.latest.latency.p999_ms, "ms", false),
                fig("LATEST max", r.latest.latency.max_ms, "ms", false),
                fig("BEFORE queries/s", r.before.queries_per_sec, "", true),
                fig("BEFORE p50", r.before.latency.p50_ms, "ms", false),
                fig("BEFORE p99", r.before.latency.p99_ms, "ms", false),
                fig("BEFORE p99.9", r.before.latency.p999_ms, "ms", false),
                fig("BEFORE max", r.before.latency.max_ms, "ms", false),
                fig(
                    "server CPU",
                    r.server_cpu_cores.unwrap_or(f64::NAN),
                    "cores",
                    false,
                ),
                fig("fill lines/s", r.fill.lines_per_sec, "", true),
                fig("stored lines", r.stored_lines as f64, "", true),
                fig("violations", r.violations as f64, "", false),
            ],
        }
    }
}

/// The fanout figures every run shows.
fn fanout_figures(r: &FanoutResult) -> Vec<Figure> {
    vec![
        fig("deliveries/s", r.deliveries_per_sec, "", true),
        fig("sends/s", r.sends_per_sec, "", true),
        fig(
            "deliveries per server CPU-s",
            r.deliveries_per_server_cpu_sec.unwrap_or(f64::NAN),
            "",
            true,
        ),
        fig(
            "server CPU",
            r.server_cpu_cores.unwrap_or(f64::NAN),
            "cores",
            false,
        ),
        fig(
            "bench CPU",
            r.bench_cpu_cores.unwrap_or(f64::NAN),
            "cores",
            false,
        ),
        fig("latency p50", r.latency.p50_ms, "ms", false),
        fig("latency p99", r.latency.p99_ms, "ms", false),
        fig("latency p99.9", r.latency.p999_ms, "ms", false),
        fig("latency max", r.latency.max_ms, "ms", false),
        fig("missing", r.missing as f64, "", false),
    ]
}

/// How many deliveries crossed nodes, and the latency on the sender's node and across.
fn node_split_figures(r: &FanoutResult) -> Vec<Figure> {
    let (same, cross) = (r.latency_same_node.as_ref(), r.latency_cross_node.as_ref());
    let ms = |latency: Option<&Latency>, pick: fn(&Latency) -> f64| latency.map_or(f64::NAN, pick);
    let crossed = cross.map_or(0, |l| l.samples) as f64;
    let all = r.latency.samples as f64;
    vec![
        fig(
            "cross-node deliveries",
            if all > 0.0 {
                100.0 * crossed / all
            } else {
                f64::NAN
            },
            "%",
            false,
        ),
        fig("p50 same node", ms(same, |l| l.p50_ms), "ms", false),
        fig("p99 same node", ms(same, |l| l.p99_ms), "ms", false),
        fig("p50 cross node", ms(cross, |l| l.p50_ms), "ms", false),
        fig("p99 cross node", ms(cross, |l| l.p99_ms), "ms", false),
    ]
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v.abs() >= 100.0 {
        format!("{:.0}", v)
    } else {
        format!("{:.2}", v)
    }
}

/// Which column the ratios are to: parleyd, or in a cluster run the smallest cluster.
fn reference(outcomes: &[Outcome]) -> Option<usize> {
    let smallest_cluster = || {
        outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                Outcome::Cluster(r) => Some((r.nodes, i)),
                _ => None,
            })
            .min()
            .map(|(_, i)| i)
    };
    outcomes
        .iter()
        .position(|o| o.target() == "parleyd")
        .or_else(smallest_cluster)
}

/// A Markdown table: one row per figure, one column per target, ratios to the reference column
/// (parleyd, or the smallest cluster).
pub fn table(outcomes: &[Outcome]) -> String {
    let Some(first) = outcomes.first() else {
        return String::new();
    };
    let reference = reference(outcomes);
    let mut out = String::new();
    let _ = write!(out, "| figure |");
    for o in outcomes {
        let _ = write!(out, " {} |", o.target());
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(outcomes.len()));
    out.push('\n');
    let all: Vec<Vec<Figure>> = outcomes.iter().map(Outcome::figures).collect();
    for (row, figure) in first.figures().iter().enumerate() {
        let unit = if figure.unit.is_empty() {
            String::new()
        } else {
            format!(" ({})", figure.unit)
        };
        let _ = write!(out, "| {}{} |", figure.name, unit);
        for (col, figures) in all.iter().enumerate() {
            let value = figures.get(row).map_or(f64::NAN, |f| f.value);
            let ratio = match reference {
                Some(r) if r != col => {
                    let base = all[r].get(row).map_or(f64::NAN, |f| f.value);
                    if base > 0.0 && value.is_finite() {
                        format!(" ({:.2}x)", value / base)
                    } else {
                        String::new()
                    }
                }
                _ => String::new(),
            };
            let _ = write!(out, " {}{} |", format_value(value), ratio);
        }
        out.push('\n');
    }
    let _ = write!(out, "| correct |");
    for o in outcomes {
        let _ = write!(out, " {} |", if o.ok() { "yes" } else { "**NO**" });
    }
    out.push('\n');
    out
}

const PALETTE: [&str; 5] = ["#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1"];

/// Horizontal bars, one panel per figure, one bar per target.
pub fn svg(title: &str, outcomes: &[Outcome]) -> String {
    let width = 760.0;
    let label_w = 110.0;
    let bar_h = 18.0;
    let panel_gap = 34.0;
    let Some(first) = outcomes.first() else {
        return String::new();
    };
    let figures: Vec<Vec<Figure>> = outcomes.iter().map(Outcome::figures).collect();
    let rows = first.figures().len();
    let panel_h = bar_h * outcomes.len() as f64 + panel_gap;
    let height = 40.0 + panel_h * rows as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for (row, figure) in first.figures().iter().enumerate() {
        let top = 40.0 + panel_h * row as f64;
        let max = figures
            .iter()
            .filter_map(|f| f.get(row).map(|f| f.value))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let better = if figure.higher_is_better {
            "higher is better"
        } else {
            "lower is better"
        };
        let unit = if figure.unit.is_empty() {
            String::new()
        } else {
            format!(" ({})", figure.unit)
        };
        let _ = writeln!(
            s,
            r##"<text x="10" y="{:.1}" font-weight="bold">{}{} <tspan font-weight="normal" fill="#666">{}</tspan></text>"##,
            top + 12.0,
            escape(figure.name),
            escape(&unit),
            better
        );
        for (col, o) in outcomes.iter().enumerate() {
            let value = figures[col].get(row).map_or(f64::NAN, |f| f.value);
            let y = top + 18.0 + bar_h * col as f64;
            let span = width - label_w - 120.0;
            let w = if max > 0.0 && value.is_finite() {
                span * value / max
            } else {
                0.0
            };
            let color = PALETTE[col % PALETTE.len()];
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{label_w}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                label_w - 6.0,
                y + 13.0,
                escape(o.target()),
                y + 2.0,
                bar_h - 4.0,
                label_w + w + 6.0,
                y + 13.0,
                format_value(value)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What machine the numbers came from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn this() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: mem_kib / 1048576.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    label: &'a str,
    command: String,
    machine: Machine,
    results: &'a [Outcome],
}

/// Write `<dir>/<label>.json` and `<dir>/<label>.svg`.
pub fn save(dir: &Path, label: &str, outcomes: &[Outcome]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let report = Report {
        label,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Machine::this(),
        results: outcomes,
    };
    let json = serde_json::to_string_pretty(&report).context("encoding the results")?;
    let json_path = dir.join(format!("{label}.json"));
    std::fs::write(&json_path, json).with_context(|| format!("writing {}", json_path.display()))?;
    let svg_path = dir.join(format!("{label}.svg"));
    std::fs::write(&svg_path, svg(label, outcomes))
        .with_context(|| format!("writing {}", svg_path.display()))?;
    Ok(())
}
