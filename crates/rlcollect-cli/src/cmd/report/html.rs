//! Writing the page: one self-contained HTML file. uPlot (vendored, MIT), our
//! own script and styles are inlined, the data is one JSON block, and the
//! header's totals are plain HTML (readable even without JavaScript). The
//! file is replaced atomically, so a browser or a script never reads half.

use super::chart::{Chart, Table};
use super::fmt::{date_ms, num, pct};
use super::panels::{RunReport, Totals};
use super::source::Run;
use anyhow::{Context, Result};
use serde::Serialize;
use std::fmt::Write;
use std::io::Write as _;
use std::path::Path;

const UPLOT_JS: &str = include_str!("../../../assets/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../../assets/uplot/uPlot.min.css");
const REPORT_JS: &str = include_str!("../../../assets/report/report.js");
const REPORT_CSS: &str = include_str!("../../../assets/report/report.css");

/// Page-level settings.
pub struct PageOpts {
    /// Reload the page every N seconds (`--watch` on a live run).
    pub refresh_secs: Option<u32>,
}

/// One run as the page's data describes it.
#[derive(Serialize)]
struct RunMeta<'a> {
    label: &'a str,
    run_id: &'a str,
    path: String,
    status: String,
    live: bool,
    started_at: &'a str,
    updated_at: &'a str,
    totals: &'a Totals,
}

/// Everything the script draws.
#[derive(Serialize)]
struct PageData<'a> {
    generator: String,
    generated_at: String,
    runs: Vec<RunMeta<'a>>,
    charts: Vec<Chart>,
    tables: Vec<Table>,
}

/// Merges the runs' charts: charts with the same id become one chart with a
/// series per run, except charts drawn per run; tables concatenate rows.
fn compose(reports: &mut [RunReport]) -> (Vec<Chart>, Vec<Table>) {
    let mut charts: Vec<Chart> = Vec::new();
    let mut tables: Vec<Table> = Vec::new();
    for (i, r) in reports.iter_mut().enumerate() {
        for mut c in std::mem::take(&mut r.charts) {
            if c.per_run {
                c.id = format!("{}@{i}", c.id);
            }
            match charts.iter_mut().find(|have| have.id == c.id) {
                Some(have) => {
                    have.series.append(&mut c.series);
                    have.marks.append(&mut c.marks);
                }
                None => charts.push(c),
            }
        }
        for mut t in std::mem::take(&mut r.tables) {
            match tables.iter_mut().find(|have| have.id == t.id) {
                Some(have) => have.rows.append(&mut t.rows),
                None => tables.push(t),
            }
        }
    }
    (charts, tables)
}

/// The whole page.
pub fn page(runs: &[Run], mut reports: Vec<RunReport>, opts: &PageOpts) -> Result<String> {
    let (charts, tables) = compose(&mut reports);
    let data = PageData {
        generator: format!("rlcollect {}", env!("CARGO_PKG_VERSION")),
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        runs: runs
            .iter()
            .zip(&reports)
            .map(|(run, r)| RunMeta {
                label: &run.label,
                run_id: &run.manifest.run_id,
                path: run.dir.path().display().to_string(),
                status: run.manifest.status.to_string(),
                live: run.live,
                started_at: &run.manifest.started_at,
                updated_at: &run.manifest.updated_at,
                totals: &r.totals,
            })
            .collect(),
        charts,
        tables,
    };
    let json = serde_json::to_string(&data).context("encode the report's data")?;
    let title = runs.iter().map(|r| r.label.as_str()).collect::<Vec<_>>().join(", ");
    let mut o = String::with_capacity(json.len() + UPLOT_JS.len() + 64 * 1024);
    o.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(o, "<meta name=\"generator\" content=\"{}\">", esc(&data.generator));
    if let Some(secs) = opts.refresh_secs {
        let _ = writeln!(o, "<meta http-equiv=\"refresh\" content=\"{secs}\">");
    }
    let _ = writeln!(o, "<title>rlcollect report: {}</title>", esc(&title));
    let _ = writeln!(
        o,
        "<style>{UPLOT_CSS}</style>\n<style>{REPORT_CSS}</style>\n</head>\n<body>"
    );
    o.push_str(&header(runs, &reports, &data.generated_at));
    o.push_str("<main id=\"panels\"></main>\n");
    o.push_str("<noscript><p class=\"empty\">The charts need JavaScript; the totals above do not.</p></noscript>\n");
    // `</` cannot end the JSON block early once escaped as `<\/` (still valid JSON).
    let _ = writeln!(
        o,
        "<script id=\"rlcollect-data\" type=\"application/json\">{}</script>",
        json.replace("</", "<\\/")
    );
    let _ = writeln!(
        o,
        "<script>{UPLOT_JS}</script>\n<script>{REPORT_JS}</script>\n</body>\n</html>"
    );
    Ok(o)
}

/// Text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The header: one card per run with its state, time range and key totals.
fn header(runs: &[Run], reports: &[RunReport], generated_at: &str) -> String {
    let mut o = String::from("<header>\n<h1>rlcollect report</h1>\n");
    let _ = writeln!(
        o,
        "<p class=\"sub\">generated {} by rlcollect {}</p>",
        esc(generated_at),
        env!("CARGO_PKG_VERSION")
    );
    for (i, (run, r)) in runs.iter().zip(reports).enumerate() {
        let _ = writeln!(o, "<section class=\"run\" data-run=\"{i}\">");
        let status = if run.live {
            format!("{} · collector alive", run.manifest.status)
        } else {
            run.manifest.status.to_string()
        };
        let _ = writeln!(
            o,
            "<h2><span class=\"swatch\" data-run=\"{i}\"></span>{} <span class=\"status s-{}\">{}</span></h2>",
            esc(&run.label),
            run.manifest.status,
            esc(&status)
        );
        let _ = writeln!(o, "<p class=\"meta\">{}</p>", esc(&meta_line(run, &r.totals)));
        o.push_str("<div class=\"kpis\">\n");
        for (key, name, value, text) in kpis(run, &r.totals) {
            let _ = writeln!(
                o,
                "<div class=\"kpi\" data-run=\"{i}\" data-key=\"{key}\" data-value=\"{}\"><span class=\"k\">{}</span><span class=\"v\">{}</span></div>",
                esc(&value),
                esc(name),
                esc(&text)
            );
        }
        o.push_str("</div>\n</section>\n");
    }
    if reports.iter().all(|r| r.totals.rows.values().all(|n| *n == 0)) {
        o.push_str("<p class=\"empty\">No rows are published in this run yet: there is nothing to draw.</p>\n");
    }
    o.push_str("</header>\n");
    o
}

fn meta_line(run: &Run, t: &Totals) -> String {
    let m = &run.manifest;
    let mut s = format!(
        "{}  ·  collected {} → {}",
        run.dir.path().display(),
        short_time(&m.started_at),
        short_time(&m.updated_at)
    );
    if let (Some(a), Some(b)) = (t.data_span.first, t.data_span.last) {
        let _ = write!(s, "  ·  data {} → {} UTC", date_ms(a), date_ms(b));
    }
    s
}

/// An RFC 3339 time without its seconds' fraction: `2026-11-22 10:15:00`.
fn short_time(t: &str) -> String {
    t.get(..19).unwrap_or(t).replace('T', " ")
}

/// One key total: (data key, label, exact value, shown text).
type Kpi = (&'static str, &'static str, String, String);

/// A count, shown with thousands separators.
fn count(key: &'static str, label: &'static str, n: u64) -> Kpi {
    (key, label, n.to_string(), crate::cmd::thousands(n))
}

/// A real number: its exact JSON value, shown by `show` (`num` or `pct`).
fn real(key: &'static str, label: &'static str, x: f64, show: fn(f64) -> String) -> Kpi {
    (key, label, serde_json::to_string(&x).unwrap_or_default(), show(x))
}

/// The key totals of the header, for the streams the run has.
fn kpis(run: &Run, t: &Totals) -> Vec<Kpi> {
    let mut k = vec![count("rows", "rows", t.rows.values().sum())];
    if let Some(tr) = &t.trades {
        k.push(count("trades.count", "trades", tr.count));
        k.push(real(
            "trades.profit_abs_total",
            "profit (profit_abs)",
            tr.profit_abs_total,
            num,
        ));
        k.push(real("trades.win_rate", "win rate", tr.win_rate, pct));
        k.push(real(
            "trades.max_drawdown_abs",
            "max drawdown",
            tr.max_drawdown_abs,
            num,
        ));
    }
    if let Some(e) = &t.rl_episodes {
        k.push(count("rl_episodes.count", "episodes", e.count));
        k.push(real(
            "rl_episodes.total_reward_mean",
            "mean reward",
            e.total_reward_mean,
            num,
        ));
        if let Some(max) = e.total_reward_max {
            k.push(real("rl_episodes.total_reward_max", "best reward", max, num));
        }
    }
    if let Some(d) = &t.model_decisions {
        k.push(count("model_decisions.count", "decisions", d.count));
    }
    if let Some(p) = &t.predictions {
        k.push(count("predictions.count", "predictions", p.count));
        if let Some(s) = p.do_predict_share {
            k.push(real("predictions.do_predict_share", "do_predict = 1", s, pct));
        }
    }
    if let Some(s) = &t.signal_propagation {
        let share = s.accepted as f64 / (s.accepted + s.rejected).max(1) as f64;
        k.push(real(
            "signal_propagation.accepted_share",
            "signals accepted",
            share,
            pct,
        ));
    }
    k.push(count("rejected", "rejected lines", run.manifest.rejected));
    k.push(count("checkpoints", "checkpoints", run.manifest.checkpoints));
    k
}

/// Replaces `path` atomically: a dot-prefixed temp file in the same folder,
/// fsynced, then renamed over it (readers see the old or the new page).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("report.html");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write {}", path.display()))
}
