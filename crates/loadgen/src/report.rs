//! Result types, markdown rendering and the `report` subcommand.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::{BoxError, ReportArgs};

/// One concurrency level of one target.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LevelResult {
    pub concurrency: usize,
    /// Measured window (warm-up excluded).
    pub duration_s: f64,
    /// Successful (HTTP 200) responses completed inside the window.
    pub requests: u64,
    /// Non-200 responses, transport errors and timeouts inside the window.
    pub errors: u64,
    /// Connections re-opened because the server closed one (or after an error).
    pub reconnects: u64,
    /// SigV4 signatures computed (warm-up included), summed over connections.
    pub signatures: u64,
    /// `requests / duration_s`.
    pub rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// CPU used by the generator during the window, in % of one core (Linux only).
    #[serde(default)]
    pub generator_cpu_pct: Option<f64>,
    /// CPU used by the server process (`--server-pid`) during the window, % of one core.
    #[serde(default)]
    pub server_cpu_pct: Option<f64>,
    /// CPU charged to all processes (user + nice + system) plus steal on the whole machine
    /// during the window, % of one core (irq/softirq excluded).
    #[serde(default)]
    pub system_cpu_pct: Option<f64>,
    /// First non-200 body or transport error seen (any phase).
    pub first_error: Option<String>,
    /// Open loop (`run --rate`): the requested rate, requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Open loop: requests due inside the window (`rate × duration`). In open loop `requests`
    /// and `errors` count the requests due inside the window, wherever they completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<u64>,
    /// Open loop: requests due inside the window that were never sent (every connection was
    /// still busy when the window ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
}

/// All levels of one target, as printed by `run --format json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    pub label: String,
    pub endpoint: String,
    pub generator_threads: usize,
    pub warmup_s: f64,
    pub results: Vec<LevelResult>,
}

impl RunReport {
    /// The level with the highest throughput.
    pub fn best(&self) -> Option<&LevelResult> {
        self.results
            .iter()
            .filter(|r| r.requests > 0)
            .max_by(|a, b| a.rps.total_cmp(&b.rps))
    }

    pub fn at(&self, concurrency: usize) -> Option<&LevelResult> {
        self.results.iter().find(|r| r.concurrency == concurrency)
    }
}

fn ms_cell(v: f64, requests: u64) -> String {
    if requests == 0 {
        "-".into()
    } else {
        format!("{v:.3}")
    }
}

fn cpu_cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.0}"))
}

impl LevelResult {
    /// CPU used by other processes (and stolen by the hypervisor) during the window, % of one
    /// core: interference with the run.
    pub fn other_cpu_pct(&self) -> Option<f64> {
        let others =
            self.system_cpu_pct? - self.generator_cpu_pct? - self.server_cpu_pct.unwrap_or(0.0);
        Some(others.max(0.0))
    }
}

/// One row per level of every report. CPU columns are % of one core during the measured
/// window: the generator, the server, and everything else on the machine.
pub fn markdown_table(reports: &[RunReport]) -> String {
    let mut out = String::new();
    out.push_str(
        "| target | concurrency | req/s | p50 ms | p99 ms | errors | generator CPU % | server CPU % | other CPU % |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for rep in reports {
        for r in &rep.results {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
                rep.label,
                r.concurrency,
                r.rps,
                ms_cell(r.p50_ms, r.requests),
                ms_cell(r.p99_ms, r.requests),
                r.errors,
                cpu_cell(r.generator_cpu_pct),
                cpu_cell(r.server_cpu_pct),
                cpu_cell(r.other_cpu_pct()),
            );
        }
    }
    out
}

/// A ratio with about three significant digits, e.g. `0.213×`, `26.1×`, `0.00812×`.
fn ratio(v: f64) -> String {
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else if v >= 1.0 {
        2
    } else if v > 0.0 {
        // 3 significant digits below 1.
        (2 - v.log10().floor() as i64).clamp(3, 8) as usize
    } else {
        2
    };
    format!("{v:.decimals$}×")
}

/// Throughput ratio `num/den`: best vs best, and both at `num`'s best concurrency.
pub fn ratio_line(reports: &[RunReport], spec: &str) -> Result<String, BoxError> {
    let (num, den) = spec
        .split_once('/')
        .ok_or_else(|| format!("--ratio must look like LABEL/LABEL, got `{spec}`"))?;
    let find = |label: &str| reports.iter().find(|r| r.label == label);
    let (n, d) = match (find(num), find(den)) {
        (Some(n), Some(d)) => (n, d),
        (n, _) => {
            let missing = if n.is_none() { num } else { den };
            return Ok(format!(
                "| {num}/{den} | pending | no `{missing}` results | |\n"
            ));
        }
    };
    let (Some(nb), Some(db)) = (n.best(), d.best()) else {
        return Ok(format!(
            "| {num}/{den} | n/a | a target had no successful requests | |\n"
        ));
    };
    let same = d
        .at(nb.concurrency)
        .filter(|r| r.rps > 0.0)
        .map(|r| {
            format!(
                "{} ({:.0} vs {:.0} req/s)",
                ratio(nb.rps / r.rps),
                nb.rps,
                r.rps
            )
        })
        .unwrap_or_else(|| "n/a".into());
    Ok(format!(
        "| {num}/{den} | {} | {num} {:.0} req/s @ c={}, {den} {:.0} req/s @ c={} | c={}: {same} |\n",
        ratio(nb.rps / db.rps),
        nb.rps,
        nb.concurrency,
        db.rps,
        db.concurrency,
        nb.concurrency,
    ))
}

pub fn main(args: ReportArgs) -> Result<(), BoxError> {
    let mut reports = Vec::with_capacity(args.files.len());
    for f in &args.files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let rep: RunReport =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        reports.push(rep);
    }
    print!("{}", render(&merge_labels(reports), &args.ratios)?);
    Ok(())
}

/// One report per label, in the order the labels first appear: files of one label (a run per
/// concurrency level, each on a fresh server, as `bench/put.sh` does) have their levels
/// joined, so the ratios compare a label's best level with another's.
fn merge_labels(reports: Vec<RunReport>) -> Vec<RunReport> {
    let mut merged: Vec<RunReport> = Vec::with_capacity(reports.len());
    for rep in reports {
        match merged.iter_mut().find(|m| m.label == rep.label) {
            Some(m) => m.results.extend(rep.results),
            None => merged.push(rep),
        }
    }
    merged
}

pub fn render(reports: &[RunReport], ratios: &[String]) -> Result<String, BoxError> {
    let mut out = markdown_table(reports);
    if !ratios.is_empty() {
        out.push('\n');
        out.push_str(
            "| ratio (req/s) | best vs best | where | at the numerator's best concurrency |\n",
        );
        out.push_str("|---|---:|---|---|\n");
        for spec in ratios {
            out.push_str(&ratio_line(reports, spec)?);
        }
    }
    let errors: Vec<String> = reports
        .iter()
        .flat_map(|rep| {
            rep.results.iter().filter_map(move |r| {
                r.first_error
                    .as_ref()
                    .map(|e| format!("- {} c={}: {e}", rep.label, r.concurrency))
            })
        })
        .collect();
    if !errors.is_empty() {
        out.push_str("\nFirst error per level:\n\n");
        for e in errors {
            out.push_str(&e);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(c: usize, rps: f64) -> LevelResult {
        LevelResult {
            concurrency: c,
            duration_s: 10.0,
            requests: (rps * 10.0) as u64,
            errors: 0,
            reconnects: 0,
            signatures: 0,
            rps,
            p50_ms: 0.5,
            p90_ms: 0.8,
            p99_ms: 1.25,
            max_ms: 3.0,
            mean_ms: 0.6,
            generator_cpu_pct: Some(50.0),
            server_cpu_pct: None,
            system_cpu_pct: Some(60.0),
            first_error: None,
            rate: None,
            scheduled: None,
            missed: None,
        }
    }

    fn rep(label: &str, levels: Vec<LevelResult>) -> RunReport {
        RunReport {
            label: label.into(),
            endpoint: "http://127.0.0.1:1".into(),
            generator_threads: 1,
            warmup_s: 2.0,
            results: levels,
        }
    }

    #[test]
    fn table_and_ratios() {
        let reps = vec![
            rep("trivial", vec![level(1, 1000.0), level(8, 4000.0)]),
            rep("coffer", vec![level(1, 500.0), level(8, 1000.0)]),
        ];
        let out = render(&reps, &["coffer/trivial".into(), "coffer/moto".into()]).unwrap();
        assert!(
            out.contains("| trivial | 8 | 4000 | 0.500 | 1.250 | 0 | 50 | - | 10 |"),
            "{out}"
        );
        assert!(out.contains("| coffer/trivial | 0.250× |"), "{out}");
        assert!(out.contains("c=8: 0.250×"), "{out}");
        assert!(out.contains("| coffer/moto | pending"), "{out}");
    }

    /// Levels measured in separate runs (one file each) of one label count as one report: the
    /// best level of each label is compared, not its first file's.
    #[test]
    fn files_of_one_label_are_one_report() {
        let reps = merge_labels(vec![
            rep("after", vec![level(1, 1500.0)]),
            rep("before", vec![level(1, 300.0)]),
            rep("after", vec![level(64, 7500.0)]),
            rep("before", vec![level(64, 1000.0)]),
        ]);
        assert_eq!(reps.len(), 2);
        let out = render(&reps, &["after/before".into()]).unwrap();
        assert!(out.contains("| after/before | 7.50× |"), "{out}");
        assert!(
            out.find("| after | 64 |").unwrap() < out.find("| before | 1 |").unwrap(),
            "{out}"
        );
    }

    #[test]
    fn ratio_digits() {
        assert_eq!(ratio(26.14), "26.1×");
        assert_eq!(ratio(0.2134), "0.213×");
        assert_eq!(ratio(0.008123), "0.00812×");
        assert_eq!(ratio(1.0), "1.00×");
        assert_eq!(ratio(250.0), "250×");
    }

    #[test]
    fn json_roundtrip() {
        let r = rep("x", vec![level(1, 10.0)]);
        let s = serde_json::to_string(&r).unwrap();
        let back: RunReport = serde_json::from_str(&s).unwrap();
        assert_eq!(back.results[0].concurrency, 1);
    }
}
