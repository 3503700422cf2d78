//! The results: one JSON document per scenario (`<timestamp>-<scenario>.json`), all of them
//! in `latest.json`, a chart in `latest.svg` (drawn by hand: no fonts needed), and a text
//! table on standard output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::floor::{FloorCosts, ScenarioFloor};
use crate::machine::Machine;
use crate::runner::{Preparation, RunResult, Scenario};

/// The version of the results' shape; raise it when a field changes meaning.
pub const SCHEMA: &str = "doorward-bench/1";

/// What was measured and how.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// `all-in-one`, `split` or `external` (a running server given with `--target`).
    pub mode: String,
    /// `sqlite`, a PostgreSQL URL (password hidden), or `unknown` for an external target.
    pub database: String,
    /// auth-web's base URL.
    pub http_base: String,
    /// token-service's URL.
    pub grpc_url: String,
    /// token-service's gRPC port speaks TLS: with `--tls`, auth-web reaches it over
    /// mutual TLS and the harness's gRPC clients over TLS; for `--target`, whether
    /// `--grpc` is `https://`.
    pub tls: bool,
    /// The binaries that were started, if any.
    pub bin_dir: Option<String>,
    /// gRPC channels the workers share.
    pub grpc_channels: usize,
    /// Sizes of what was prepared, and the time limits.
    pub preparation: Preparation,
    /// Configuration the harness gave the services it started (`DOORWARD_*` variables),
    /// beyond addresses and the database; empty for an external target.
    pub server_env: BTreeMap<String, String>,
    /// The harness runs on the same cores as the server: its own CPU seconds over all runs
    /// (preparation included), so that readers can judge how much it took from the server.
    pub harness_cpu_seconds: Option<f64>,
}

impl Setup {
    /// The mode as the table and the chart name it: `split`, or `split, TLS`.
    pub fn mode_label(&self) -> String {
        if self.tls {
            format!("{}, TLS", self.mode)
        } else {
            self.mode.clone()
        }
    }
}

/// The floor as the results carry it.
#[derive(Debug, Clone, Serialize)]
pub struct FloorReport {
    /// Per-operation costs read from criterion (empty when missing).
    pub costs: FloorCosts,
    /// Per scenario: floor cost and rate, `None` when a component is missing.
    pub scenarios: BTreeMap<String, Option<ScenarioFloor>>,
    /// What to do when results are missing.
    pub note: String,
}

/// A results document.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The machine.
    pub machine: Machine,
    /// The setup.
    pub setup: Setup,
    /// The floor (criterion micro-benchmarks).
    pub floor: FloorReport,
    /// Every run, in the order they ran.
    pub runs: Vec<RunResult>,
}

impl Results {
    /// The same document with only the runs of `scenario`.
    pub fn only(&self, scenario: Scenario) -> Self {
        Self {
            runs: self
                .runs
                .iter()
                .filter(|r| r.scenario == scenario)
                .cloned()
                .collect(),
            ..self.clone()
        }
    }

    /// Writes `<stamp>-<scenario>.json` per scenario, `latest.json` and `latest.svg` to
    /// `dir`; returns the paths written.
    pub fn write(&self, dir: &Path, stamp: &str) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        let mut scenarios: Vec<Scenario> = self.runs.iter().map(|r| r.scenario).collect();
        scenarios.dedup();
        for scenario in scenarios {
            let path = dir.join(format!("{stamp}-{}.json", scenario.name()));
            std::fs::write(&path, serde_json::to_string_pretty(&self.only(scenario))?)?;
            written.push(path);
        }
        let latest = dir.join("latest.json");
        std::fs::write(&latest, serde_json::to_string_pretty(self)?)?;
        written.push(latest);
        let svg = dir.join("latest.svg");
        std::fs::write(&svg, self.svg())?;
        written.push(svg);
        Ok(written)
    }

    /// The text table printed after a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<19} {:>4} {:>9} {:>8} {:>8} {:>8} {:>6}  {:<32} {:>7}",
            "scenario",
            "conc",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "errors",
            "CPU s/1000 req | peak RSS MiB",
            "floor"
        );
        for run in &self.runs {
            let (p50, p99, p999) = run
                .latency
                .as_ref()
                .map_or((0.0, 0.0, 0.0), |l| (l.p50_ms, l.p99_ms, l.p999_ms));
            let procs = if run.processes.is_empty() {
                "not measured (external)".to_owned()
            } else {
                run.processes
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {} | {}",
                            p.name,
                            p.cpu_seconds_per_1000_requests
                                .map_or("-".into(), |c| format!("{c:.3}")),
                            p.peak_rss_kib
                                .map_or("-".into(), |k| format!("{:.0}", k as f64 / 1024.0))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let floor = run
                .floor_fraction
                .map_or("-".to_owned(), |f| format!("{:.0}%", f * 100.0));
            let _ = writeln!(
                out,
                "{:<19} {:>4} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>6}  {:<32} {:>7}",
                run.scenario.name(),
                run.concurrency,
                run.requests_per_second,
                p50,
                p99,
                p999,
                run.errors,
                procs,
                floor
            );
            let attempts = run.requests + run.errors;
            for (kind, n) in &run.error_kinds {
                let _ = writeln!(
                    out,
                    "    error x{n} ({} of requests): {kind}",
                    share(*n, attempts)
                );
            }
            for (kind, n) in &run.warmup_error_kinds {
                let _ = writeln!(out, "    warm-up error x{n}: {kind}");
            }
            if let Some(statements) = run.db_statements_per_request {
                let _ = writeln!(out, "    database statements per request: {statements:.2}");
            }
            if let Some(db) = &run.db_per_request {
                let _ = writeln!(
                    out,
                    "    database per request: {} statements, {:.2} transactions, rows {:.2} inserted, {:.2} updated, {:.2} deleted, {:.2} fetched, {:.1} returned",
                    db.statements.map_or("?".to_owned(), |n| format!("{n:.2}")),
                    db.transactions,
                    db.rows_inserted,
                    db.rows_updated,
                    db.rows_deleted,
                    db.rows_fetched,
                    db.rows_returned
                );
            }
            for note in &run.notes {
                let _ = writeln!(out, "    note: {note}");
            }
        }
        let _ = writeln!(
            out,
            "database statements per request: {}",
            self.runs
                .first()
                .map_or("not measured", |r| r.db_statements_note.as_str())
        );
        if !self.floor.costs.missing.is_empty() {
            let _ = writeln!(out, "floor: {}", self.floor.note);
        }
        out
    }

    /// A grouped bar chart of requests per second (bars) with p99 latency (labels), one
    /// group per scenario and one bar per concurrency, with the machine in the title.
    pub fn svg(&self) -> String {
        let mut scenarios: Vec<Scenario> = self.runs.iter().map(|r| r.scenario).collect();
        scenarios.dedup();
        let mut levels: Vec<usize> = self.runs.iter().map(|r| r.concurrency).collect();
        levels.sort_unstable();
        levels.dedup();
        let colors = [
            "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
        ];

        let (left, top, plot_h) = (80.0, 90.0, 320.0);
        let group_w = ((levels.len().max(1) as f64) * 34.0 + 30.0).max(130.0);
        let plot_w = group_w * scenarios.len().max(1) as f64;
        let width = (left + plot_w + 40.0).max(820.0);
        let height = top + plot_h + 110.0;
        // A log scale, in whole decades, so that the argon2-bound password grant and the
        // cached gRPC validation both show.
        let rates: Vec<f64> = self
            .runs
            .iter()
            .map(|r| r.requests_per_second)
            .filter(|&r| r > 0.0)
            .collect();
        let (low, high) = decades(&rates);
        let y_of = |rate: f64| {
            if rate <= 0.0 {
                return top + plot_h;
            }
            let frac = (rate.log10() - f64::from(low)) / f64::from(high - low);
            top + plot_h - plot_h * frac.clamp(0.0, 1.0)
        };

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="24" font-size="16" font-weight="bold">Doorward: requests per second (bars, log scale) and p99 latency (labels)</text>"#
        );
        let m = &self.machine;
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="44">{} · {} cores · {} · {} · {}</text>"#,
            escape(&m.cpu_model),
            m.cores,
            escape(&m.date),
            escape(&self.setup.mode_label()),
            escape(&self.setup.database)
        );
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="62">commit {} · harness on the same cores · errors must be 0</text>"#,
            escape(
                m.commit
                    .as_deref()
                    .map_or("unknown", |c| &c[..c.len().min(12)])
            )
        );
        // Axis and grid, one line per decade.
        for exponent in low..=high {
            let value = 10f64.powi(exponent);
            let y = y_of(value);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + plot_w,
                left - 6.0,
                y + 4.0,
                thousands(value)
            );
        }
        let _ = writeln!(
            s,
            r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="black"/>"#,
            top + plot_h
        );
        for (g, scenario) in scenarios.iter().enumerate() {
            let gx = left + group_w * g as f64 + 15.0;
            for (b, level) in levels.iter().enumerate() {
                let Some(run) = self
                    .runs
                    .iter()
                    .find(|r| r.scenario == *scenario && r.concurrency == *level)
                else {
                    continue;
                };
                let y = y_of(run.requests_per_second);
                let h = top + plot_h - y;
                let x = gx + 34.0 * b as f64;
                let fill = if run.errors > 0 {
                    "#999"
                } else {
                    colors[b % colors.len()]
                };
                let _ = writeln!(
                    s,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="28" height="{h:.1}" fill="{fill}"><title>{} c={} {:.0} req/s, {} errors</title></rect>"#,
                    scenario.name(),
                    level,
                    run.requests_per_second,
                    run.errors
                );
                let p99 = run
                    .latency
                    .as_ref()
                    .map_or("-".to_owned(), |l| format!("{:.1}ms", l.p99_ms));
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle" fill="#555">{p99}</text>"##,
                    x + 14.0,
                    y - 14.0,
                    thousands(run.requests_per_second),
                    x + 14.0,
                    y - 3.0
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                gx + group_w / 2.0 - 15.0,
                top + plot_h + 18.0,
                scenario.name()
            );
        }
        // Legend.
        for (b, level) in levels.iter().enumerate() {
            let x = left + 130.0 * b as f64;
            let y = top + plot_h + 50.0;
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{y:.1}">concurrency {level}</text>"#,
                y - 10.0,
                colors[b % colors.len()],
                x + 16.0
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{left}" y="{:.1}" fill="#555">grey bar: the run had errors. Full numbers: latest.json</text>"##,
            top + plot_h + 80.0
        );
        s.push_str("</svg>\n");
        s
    }
}

/// `n` as a percentage of `of`, with one decimal (`<0.1%` for a few in many).
fn share(n: u64, of: u64) -> String {
    let percent = 100.0 * n as f64 / of.max(1) as f64;
    if n > 0 && percent < 0.1 {
        "<0.1%".to_owned()
    } else {
        format!("{percent:.1}%")
    }
}

/// The errors of a run in a few words, for the progress line: `""` when there were none,
/// else the commonest kind and its count.
pub fn error_summary(run: &RunResult) -> String {
    match run.error_kinds.iter().max_by_key(|(_, n)| **n) {
        Some((kind, n)) if run.error_kinds.len() == 1 => format!(" ({n} x {kind})"),
        Some((kind, n)) => format!(
            " (most: {n} x {kind}; {} kinds, see the table)",
            run.error_kinds.len()
        ),
        None => String::new(),
    }
}

/// The decades (powers of ten) that hold every rate: at least one decade, from at least 1.
pub fn decades(rates: &[f64]) -> (i32, i32) {
    let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rates.iter().copied().fold(0.0_f64, f64::max);
    if !min.is_finite() || max <= 0.0 {
        return (0, 1);
    }
    let low = (min.max(1.0).log10().floor() as i32).max(0);
    let high = (max.log10().ceil() as i32).max(low + 1);
    (low, high)
}

fn thousands(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k", value / 1_000.0)
    } else if value >= 1_000.0 {
        format!("{:.1}k", value / 1_000.0)
    } else {
        format!("{value:.0}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procstat::ProcessUsage;
    use crate::stats::LatencySummary;

    fn run(scenario: Scenario, concurrency: usize, rps: f64, errors: u64) -> RunResult {
        RunResult {
            scenario,
            concurrency,
            warmup_s: 2.0,
            duration_s: 10.0,
            elapsed_s: 10.0,
            requests: (rps * 10.0) as u64,
            errors,
            error_kinds: if errors > 0 {
                BTreeMap::from([("HTTP 503".to_owned(), errors)])
            } else {
                BTreeMap::new()
            },
            warmup_errors: 0,
            warmup_error_kinds: BTreeMap::new(),
            requests_per_second: rps,
            latency: LatencySummary::of(vec![1_000_000, 2_000_000, 3_000_000]),
            processes: vec![ProcessUsage {
                name: "doorward".into(),
                pid: 42,
                cpu_seconds: Some(1.5),
                cpu_seconds_per_1000_requests: Some(0.05),
                cores_busy: Some(0.15),
                idle_rss_kib: Some(20_000),
                peak_rss_kib: Some(40_000),
                peak_rss_reset: true,
            }],
            db_per_request: None,
            db_statements_per_request: None,
            db_statements_note: "not measured".into(),
            notes: Vec::new(),
            floor_fraction: Some(0.25),
        }
    }

    fn results() -> Results {
        Results {
            schema: SCHEMA,
            machine: Machine {
                cpu_model: "Test CPU <1>".into(),
                cores: 2,
                kernel: "6.1".into(),
                date: "2026-11-28T15:00:00Z".into(),
                commit: Some("0123456789abcdef".into()),
            },
            setup: Setup {
                mode: "all-in-one".into(),
                database: "sqlite".into(),
                http_base: "http://127.0.0.1:1".into(),
                grpc_url: "http://127.0.0.1:2".into(),
                tls: false,
                bin_dir: Some("target/release".into()),
                grpc_channels: 1,
                preparation: Preparation {
                    working_set: 10_000,
                    token_pool: 1_000,
                    code_rate_hint: 5_000,
                    request_timeout_s: 10.0,
                    prepare_timeout_s: 120.0,
                },
                server_env: BTreeMap::new(),
                harness_cpu_seconds: Some(3.0),
            },
            floor: FloorReport {
                costs: FloorCosts {
                    missing: vec!["floor_grpc_round_trip".into()],
                    ..FloorCosts::default()
                },
                scenarios: BTreeMap::new(),
                note: "missing".into(),
            },
            runs: vec![
                run(Scenario::ClientCredentials, 1, 900.0, 0),
                run(Scenario::ClientCredentials, 16, 4_000.0, 0),
                run(Scenario::GrpcValidate, 16, 12_000.0, 3),
            ],
        }
    }

    #[test]
    fn json_has_its_documented_shape() {
        let value = serde_json::to_value(results()).expect("serialises");
        assert_eq!(value["schema"], "doorward-bench/1");
        for key in ["cpu_model", "cores", "kernel", "date", "commit"] {
            assert!(value["machine"].get(key).is_some(), "machine.{key}");
        }
        for key in [
            "mode",
            "database",
            "http_base",
            "grpc_url",
            "tls",
            "preparation",
        ] {
            assert!(value["setup"].get(key).is_some(), "setup.{key}");
        }
        let first = &value["runs"][0];
        assert_eq!(first["scenario"], "client_credentials");
        assert_eq!(first["concurrency"], 1);
        assert_eq!(first["requests_per_second"], 900.0);
        assert_eq!(first["errors"], 0);
        for key in ["p50_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms"] {
            assert!(first["latency"][key].is_f64(), "latency.{key}");
        }
        let process = &first["processes"][0];
        for key in [
            "name",
            "pid",
            "cpu_seconds",
            "cpu_seconds_per_1000_requests",
            "idle_rss_kib",
            "peak_rss_kib",
        ] {
            assert!(process.get(key).is_some(), "processes[].{key}");
        }
        assert!(first["db_statements_per_request"].is_null());
        assert_eq!(first["db_statements_note"], "not measured");
        assert_eq!(value["runs"][2]["error_kinds"]["HTTP 503"], 3);
    }

    #[test]
    fn files_per_scenario_plus_latest() {
        let dir =
            std::env::temp_dir().join(format!("doorward-bench-report-{}", std::process::id()));
        let written = results().write(&dir, "20261128T150000Z").expect("writes");
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "20261128T150000Z-client_credentials.json",
                "20261128T150000Z-grpc_validate.json",
                "latest.json",
                "latest.svg"
            ]
        );
        let one: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&written[0]).expect("read"))
                .expect("json");
        assert_eq!(one["runs"].as_array().expect("runs").len(), 2);
        let latest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&written[2]).expect("read"))
                .expect("json");
        assert_eq!(latest["runs"].as_array().expect("runs").len(), 3);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn the_chart_names_the_machine_and_every_bar() {
        let svg = results().svg();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("Test CPU &lt;1&gt;"), "machine escaped");
        assert!(svg.contains("2 cores"));
        assert!(svg.contains("2026-11-28T15:00:00Z"));
        assert_eq!(svg.matches("<title>").count(), 3);
        // The run with errors is drawn grey.
        assert!(svg.contains(r##"fill="#999"><title>grpc_validate c=16"##));
        // Nothing stray between elements: only what is inside <text> and <title> is text.
        let mut stray = String::new();
        let mut rest = svg.as_str();
        let mut depth_in_text = 0;
        while let Some(open) = rest.find('<') {
            if depth_in_text == 0 {
                stray.push_str(&rest[..open]);
            }
            let close = rest[open..].find('>').expect("a closed tag") + open;
            let tag = &rest[open + 1..close];
            if (tag.starts_with("text") || tag.starts_with("title")) && !tag.ends_with('/') {
                depth_in_text += 1;
            } else if tag.starts_with("/text") || tag.starts_with("/title") {
                depth_in_text -= 1;
            }
            rest = &rest[close + 1..];
        }
        stray.push_str(rest);
        assert_eq!(stray.trim(), "", "text outside any element");
    }

    #[test]
    fn table_reports_errors_and_missing_floor() {
        let table = results().table();
        assert!(table.contains("client_credentials"));
        assert!(table.contains("error x3 (<0.1% of requests): HTTP 503"));
        assert!(table.contains("floor: missing"));
        assert!(table.contains("database statements per request: not measured"));
    }

    #[test]
    fn the_log_axis_spans_whole_decades() {
        assert_eq!(decades(&[]), (0, 1));
        assert_eq!(decades(&[120.0, 4_200.0, 53_000.0]), (2, 5));
        assert_eq!(decades(&[100.0]), (2, 3));
        assert_eq!(decades(&[0.5, 9.0]), (0, 1));
    }
}
