"""`rlcollect report` in a real browser: headless Chromium (Debian's
`chromium`, driven by the `playwright` package) opens each report, and the
test fails on any JavaScript error, any request leaving the file, or any
panel without drawn data. Each page is saved as a screenshot
(RLCOLLECT_REPORT_SHOTS, default a temp folder).

The totals the page prints are checked against summary.json (and, for the
real Freqtrade backtest, against Freqtrade's own export).
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import rlcollect

BIN = os.environ.get("RLCOLLECT_BIN", "rlcollect")
DATA = Path(__file__).resolve().parents[1] / "data"
CHROMIUM = os.environ.get("RLCOLLECT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """Chromium, or a skip where it is missing (never on CI, which installs it)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed (tests/run_all.sh installs it)")
        pytest.skip("playwright is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (.ci/run installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = os.environ.get("RLCOLLECT_REPORT_SHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("report-shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_report(browser, html: Path, shot: Path, scheme="light"):
    """Loads the page; returns what it drew, its errors and outside requests."""
    page = browser.new_page(viewport={"width": 1400, "height": 900}, color_scheme=scheme)
    errors, outside = [], []
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:")):
            return r.continue_()
        outside.append(r.request.url)
        return r.abort()

    page.route("**/*", route)
    page.goto(html.resolve().as_uri())
    page.wait_for_function("window.__rlreport && window.__rlreport.ready", timeout=20_000)
    charts = page.evaluate("""__rlreport.charts.map((c, i) => ({
        id: c.id, panel: c.panel, kind: c.kind, points: c.points, drawn: c.drawn,
        ink: __rlreport.ink(i), series: c.uplot ? c.uplot.series.length - 1 : c.series }))""")
    panels = page.evaluate("[...document.querySelectorAll('section.panel')].map(p => p.dataset.panel)")
    tables = page.evaluate("[...document.querySelectorAll('section.panel')].filter(p => p.querySelector('tbody tr')).map(p => p.dataset.panel)")
    kpis = page.evaluate("""Object.fromEntries([...document.querySelectorAll('.kpi[data-run="0"]')]
        .map(k => [k.dataset.key, [k.dataset.value, k.querySelector('.v').textContent]]))""")
    errors += page.evaluate("__rlreport.errors")
    text = page.inner_text("body")
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    return {"charts": charts, "panels": panels, "tables": tables, "kpis": kpis, "errors": errors, "outside": outside, "text": text}


def assert_drawn(seen):
    """No error, nothing fetched, and every panel's every chart drew data."""
    assert seen["errors"] == [], seen["errors"]
    assert seen["outside"] == [], seen["outside"]
    for panel in seen["panels"]:
        charts = [c for c in seen["charts"] if c["panel"] == panel]
        assert charts or panel in seen["tables"], f"panel {panel} has neither a chart nor a table"
        for c in charts:
            assert c["points"] > 0, c
            assert c["drawn"] > 0, c
            # Pixels in a series' own colour: lines or bars, not just axes.
            assert c["ink"] > (0 if c["kind"] == "hbars" else 20), c


def run_lines(out: Path, run: str, lines):
    data = "".join(line + "\n" for line in lines).encode()
    subprocess.run([BIN, "run", "--out", str(out), "--run", run, "--min-free-mb", "0"], input=data, check=True)
    return out / run


def demo(out: Path, seed: int = 7) -> Path:
    subprocess.run([BIN, "demo", "--out", str(out), "--candles", "6000", "--seed", str(seed)], check=True,
                   stdout=subprocess.DEVNULL)
    return (out / "latest").resolve()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    return demo(tmp_path_factory.mktemp("demo"))


def test_the_demo_report_draws_every_panel_and_prints_summary_json(browser, shots, demo_run):
    path = rlcollect.report(demo_run)  # the Python API calls the binary
    assert path == demo_run / "report.html"
    seen = open_report(browser, path, shots / "demo.png")
    assert_drawn(seen)
    assert seen["panels"] == ["trades", "rl", "predictions", "signals", "health"]
    s = json.loads((demo_run / "summary.json").read_text())
    for key, want in {
        "trades.count": s["trades"]["count"],
        "trades.profit_abs_total": s["trades"]["profit_abs_total"],
        "trades.win_rate": s["trades"]["win_rate"],
        "rl_episodes.count": s["rl_episodes"]["count"],
        "rl_episodes.total_reward_mean": s["rl_episodes"]["total_reward_mean"],
        "model_decisions.count": s["model_decisions"]["count"],
    }.items():
        exact, shown = seen["kpis"][key]
        assert float(exact) == want, key  # the exact value behind the printed one
        assert shown, key
    assert f"{s['trades']['count']:,}" == seen["kpis"]["trades.count"][1]
    assert f"{100 * s['trades']['win_rate']:.2f}%" == seen["kpis"]["trades.win_rate"][1]
    # The same page in dark mode draws as well.
    assert_drawn(open_report(browser, path, shots / "demo-dark.png", scheme="dark"))


def test_several_runs_are_overlaid_one_colour_per_run(browser, shots, tmp_path, demo_run):
    other = demo(tmp_path / "seed8", seed=8)
    html = rlcollect.report(demo_run, other, out=tmp_path / "both.html")
    seen = open_report(browser, html, shots / "two-runs.png")
    assert_drawn(seen)
    equity = next(c for c in seen["charts"] if c["id"] == "trades.equity")
    assert equity["series"] == 2, "one equity curve per run on a shared time axis"
    reward = next(c for c in seen["charts"] if c["id"] == "rl.reward")
    assert reward["series"] == 4, "reward and its rolling mean, per run"
    assert sum(c["id"].startswith("rl.actions@") for c in seen["charts"]) == 2, "stacked shares per run"
    assert demo_run.name in seen["text"] and other.name in seen["text"]


def test_a_run_with_only_user_streams(browser, shots, tmp_path):
    lines = [json.dumps({"stream": "my_metrics", "ts": 1_700_000_000_000 + i * 60_000, "loss": 1 / (i + 1),
                         "lr": 0.001, "epoch": i // 100}) for i in range(2000)]
    run = run_lines(tmp_path, "user", lines)
    seen = open_report(browser, rlcollect.report(run), shots / "user-streams.png")
    assert_drawn(seen)
    assert seen["panels"] == ["user:my_metrics", "health"]


def test_an_empty_run_draws_no_empty_chart(browser, shots, tmp_path):
    run = run_lines(tmp_path, "empty", [])
    seen = open_report(browser, rlcollect.report(run), shots / "empty.png")
    assert seen["errors"] == [] and seen["outside"] == []
    assert seen["panels"] == [] and seen["charts"] == []
    assert "No rows are published" in seen["text"]


def test_a_run_still_being_written(browser, shots, tmp_path):
    proc = subprocess.Popen([BIN, "run", "--out", str(tmp_path), "--run", "live", "--every-secs", "3600",
                             "--min-free-mb", "0"], stdin=subprocess.PIPE)
    try:
        for i in range(300):
            proc.stdin.write((json.dumps({"stream": "model_decisions", "ts": 1_700_000_000_000 + i * 300_000,
                                          "pair": "BTC/USDT", "episode": i // 100, "action": i % 3,
                                          "action_name": ["hold", "buy", "sell"][i % 3], "position": i % 2}) + "\n").encode())
        proc.stdin.write(b'{"stream":"control","op":"checkpoint"}\n')
        proc.stdin.flush()
        manifest = tmp_path / "live" / "manifest.json"
        deadline = time.time() + 20
        while time.time() < deadline and not (manifest.exists() and json.loads(manifest.read_text())["checkpoints"]):
            time.sleep(0.05)
        seen = open_report(browser, rlcollect.report(tmp_path / "live"), shots / "live.png")
        assert_drawn(seen)
        assert "running" in seen["text"] and "collector alive" in seen["text"]
        assert seen["kpis"]["model_decisions.count"][0] == "300"
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_a_real_freqtrade_backtest_matches_freqtrades_export(browser, shots, tmp_path):
    export = json.loads((DATA / "backtest-result.json").read_text())["strategy"]["StrategyTestV3"]
    lines = [json.dumps({**t, "stream": "trades"}) for t in export["trades"]]
    run = run_lines(tmp_path, "backtest", lines)
    seen = open_report(browser, rlcollect.report(run), shots / "freqtrade-backtest.png")
    assert_drawn(seen)
    assert seen["panels"] == ["trades", "health"]
    k = {key: float(v[0]) for key, v in seen["kpis"].items()}
    assert k["trades.count"] == export["total_trades"]
    assert abs(k["trades.profit_abs_total"] - export["profit_total_abs"]) <= 1e-12 * abs(export["profit_total_abs"])
    assert abs(k["trades.max_drawdown_abs"] - export["max_drawdown_abs"]) <= 1e-12 * export["max_drawdown_abs"]
    total = next(r for r in export["results_per_pair"] if r["key"] == "TOTAL")
    assert k["trades.win_rate"] == total["wins"] / (total["wins"] + total["losses"] + total["draws"])


def test_not_a_run_is_a_usage_error(tmp_path):
    done = subprocess.run([BIN, "report", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and "not an rlcollect run" in done.stderr
    with pytest.raises(RuntimeError, match="not an rlcollect run"):
        rlcollect.report(tmp_path)
