"""The report in a real browser: headless Chromium (Debian's package, scripts/ensure_chromium.sh)
driven by Playwright. Checks that the timeline, thumbnails and plots render with no console error
or failed request from file://, and saves screenshots under test-artifacts/ for a person to look at.

Skipped when Chromium or Playwright is missing, unless REELBEAM_BROWSER_TEST=required (the test
command sets it after installing Chromium), where their absence fails the test.
"""

import os
import re
import shutil

import pytest

from reelbeam import read
from reelbeam.report import write_report
from reelbeam.report.data import read_manifests
from reelbeam.report.html import fmt_seconds

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.environ.get("REELBEAM_TEST_ARTIFACTS", os.path.join(REPO, "test-artifacts"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    required = os.environ.get("REELBEAM_BROWSER_TEST") == "required"
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install playwright)"
    if missing is None and not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing = f"{CHROMIUM} is missing (scripts/ensure_chromium.sh installs it)"
    if missing:
        if required:
            pytest.fail(missing)
        pytest.skip(missing)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def report(full_output, tmp_path_factory):
    out, _ = full_output
    folder = tmp_path_factory.mktemp("browser-report")
    write_report(out, str(folder))
    return out, folder


def _open(browser, path):
    """A page at file://path, with every console error, page error and failed request recorded."""
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.goto(f"file://{path}")
    page.wait_for_load_state("load")
    return page, problems


def _load_all_images(page):
    # thumbnails load lazily as they scroll into view; load them all to check every one
    page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })")
    page.wait_for_function("[...document.images].every(i => i.complete)", timeout=20_000)


def test_video_page_renders_timeline_thumbnails_and_plots(browser, report):
    out, folder = report
    videos = read(out, "videos").to_pylist()
    pal = next(v for v in videos if v["sample_aspect_ratio"] == "16:11")
    page, problems = _open(browser, folder / "videos" / f"{pal['video_id']}.html")
    assert page.locator(".tracks").is_visible()
    assert page.locator("svg.bands.shots rect.band").count() == pal["num_shots"]
    assert page.locator("svg.bands.scenes rect.band").count() == sum(s["video_id"] == pal["video_id"] for s in read(out, "scenes").to_pylist())
    assert page.locator("svg.bands.summary").count() == 2
    for plot in ("transition", "motion", "boundary", "scores"):
        svg = page.locator(f"svg.plot.{plot}").first
        assert svg.is_visible(), plot
        box = svg.bounding_box()
        assert box["width"] > 800 and box["height"] > 30, (plot, box)
    # the tracks share one time scale: every lane starts and ends at the same x
    lanes = page.eval_on_selector_all(".tracks .lane", "ls => ls.map(l => [l.getBoundingClientRect().left, l.getBoundingClientRect().right])")
    assert len({round(a) for a, _ in lanes}) == 1 and len({round(b) for _, b in lanes}) == 1

    _load_all_images(page)
    images = page.eval_on_selector_all(
        "img.thumb",
        "is => is.map(i => ({w: i.naturalWidth, h: i.naturalHeight, bw: i.getBoundingClientRect().width,"
        " bh: i.getBoundingClientRect().height}))",
    )
    assert len(images) == 4 * pal["num_shots"]
    for img in images:
        assert img["w"] > 0, "an image did not load"
        # 176x144 pixels with SAR 16:11: shown 16:9, not squashed to 11:9
        assert abs(img["bw"] / img["bh"] - 16 / 9) < 0.03, img
        assert abs(img["w"] / img["h"] - 16 / 9) < 0.01, img

    # pointing at the timeline reads out time, frame, shot and scene
    box = page.locator("svg.bands.shots").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    readout = page.locator(".readout").inner_text()
    frame = int(re.search(r"frame (\d+)", readout).group(1))
    shot = next(s for s in read(out, "shots").to_pylist() if s["video_id"] == pal["video_id"] and s["start_frame"] <= frame <= s["end_frame"])
    scene = next(s for s in read(out, "scenes").to_pylist() if s["video_id"] == pal["video_id"] and s["start_frame"] <= frame <= s["end_frame"])
    assert shot["shot_idx"] == 1, readout  # 60 % into 30 + 45 + 30 frames
    assert f"shot {shot['shot_idx']}" in readout and f"scene {scene['scene_idx']}" in readout, readout
    assert page.locator(".cursor").first.is_visible()

    os.makedirs(ARTIFACTS, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=os.path.join(ARTIFACTS, "report.png"), full_page=True)
    page.close()
    assert not problems, problems


def test_index_and_failures_pages_render_without_errors(browser, report):
    out, folder = report
    page, problems = _open(browser, folder / "index.html")
    rows = page.locator("table.videos tbody tr")
    assert rows.count() == read(out, "videos").num_rows
    _load_all_images(page)
    covers = page.eval_on_selector_all("td.cover img", "is => is.map(i => i.naturalWidth)")
    assert covers and all(w > 0 for w in covers)
    # the filter box narrows the rows
    page.fill("#filter", "pal_16x11")
    assert page.locator("table.videos tbody tr:not(.hidden)").count() == 1
    page.fill("#filter", "")
    page.screenshot(path=os.path.join(ARTIFACTS, "report-index.png"), full_page=True)
    page.click("text=every failure with its reason")
    assert "broken.mp4" in page.locator("table.failures-list").inner_text()
    page.close()
    assert not problems, problems


def test_index_charts_the_time_per_stage_and_shows_the_settings_apart(browser, report):
    """The run's stage times (its manifest's `stage_times`) as bars as long as each stage's time
    relative to the longest, the decode pass's bar split by the pass stages inside it, and the
    stages' settings in a panel of their own."""
    out, folder = report
    (manifest,) = [m for m in read_manifests(out) if "stage_times" in m]
    times = manifest["stage_times"]
    page, problems = _open(browser, folder / "index.html")
    chart = page.locator(f'#stage-times figure[data-run="{manifest["run_id"]}"]')
    assert chart.is_visible()
    rows = chart.locator("tr.stage")
    assert rows.count() == len(times) and "decode" in times
    longest = max(t["wall_s"] for t in times.values())
    for i, (stage, t) in enumerate(times.items()):
        row = rows.nth(i)
        assert row.locator("th").inner_text().strip() == stage
        track, bar = row.locator("td.track").bounding_box(), row.locator(".bar").bounding_box()
        want = track["width"] * t["wall_s"] / longest
        assert abs(bar["width"] - max(want, 2)) <= 1.5, (stage, t, bar, track)
        assert bar["height"] > 8
        # the row says the stage, its time, CPU and time inside the decode pass, and nothing else
        want = f"{stage} {fmt_seconds(t['wall_s'])} CPU {fmt_seconds(t['cpu_s'])}"
        if t.get("in_decode_pass_s"):
            want += f" + {fmt_seconds(t['in_decode_pass_s'])} in the decode pass"
        assert " ".join(row.inner_text().split()) == want
    decode = rows.nth(list(times).index("decode"))
    segments = decode.locator(".seg")
    in_pass = times["decode"]["in_pass"]
    assert segments.count() == len(in_pass) > 0
    bar = decode.locator(".bar").bounding_box()
    for i, (stage, secs) in enumerate(in_pass.items()):
        seg = segments.nth(i)
        assert seg.get_attribute("title").startswith(f"{stage} inside the decode pass")
        assert abs(seg.bounding_box()["width"] - bar["width"] * secs / times["decode"]["wall_s"]) <= 1.5
    # the settings are in a panel of their own
    settings = page.locator("#stage-settings")
    assert settings.is_visible()
    shown = " ".join(settings.inner_text().split())
    for stage, text in manifest["stages"].items():
        assert f"{stage} {text or 'no settings that change its rows'}" in shown
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.locator("#stage-times").screenshot(path=os.path.join(ARTIFACTS, "report-stage-times.png"))
    page.close()
    assert not problems, problems


def test_report_works_after_the_folder_is_moved(browser, report, tmp_path):
    """Copied elsewhere (as to a bucket), the pages still find their assets and images."""
    _, folder = report
    moved = tmp_path / "copied"
    shutil.copytree(folder, moved)
    shutil.rmtree(folder / "assets")  # nothing may still point into the original folder
    try:
        video = next((moved / "videos").iterdir())
        page, problems = _open(browser, video)
        _load_all_images(page)
        styled = page.eval_on_selector("header.top", "h => getComputedStyle(h).backgroundColor")
        assert styled == "rgb(29, 35, 48)"
        page.close()
        assert not problems, problems
    finally:
        shutil.copytree(moved / "assets", folder / "assets")
