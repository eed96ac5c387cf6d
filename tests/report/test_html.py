"""The HTML report: every shot and scene on its video's page, images as files at the display
aspect ratio, relative links only, paged index, failures-only corpora, missing optional tables."""

import os
import re
import shutil
from html.parser import HTMLParser
from urllib.parse import urlparse

import cv2
import numpy as np
import outputs
import pytest

from reelbeam import read
from reelbeam.report import main, write_report
from reelbeam.report.data import read_manifests
from reelbeam.report.html import fmt_seconds


class Page(HTMLParser):
    """Ids, links, images and text of one HTML page."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.ids, self.links, self.images, self.text = set(), [], [], []
        self.classes = []
        with open(path, encoding="utf-8") as f:
            self.feed(f.read())

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if a.get("class"):
            self.classes.append((tag, a["class"]))
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag in ("link", "script") and (a.get("href") or a.get("src")):
            self.links.append(a.get("href") or a.get("src"))
        if tag == "img":
            self.images.append(a)

    def handle_data(self, data):
        self.text.append(data)

    @property
    def body(self):
        return " ".join(" ".join(self.text).split())

    def resolve(self, href):
        return os.path.normpath(os.path.join(os.path.dirname(self.path), href.split("#")[0]))


@pytest.fixture(scope="module")
def report(full_output, tmp_path_factory):
    out, facts = full_output
    folder = str(tmp_path_factory.mktemp("report"))
    index = write_report(out, folder)
    return out, folder, index, facts


def _video_ids(out):
    return sorted(read(out, "videos", columns=["video_id"]).column("video_id").to_pylist())


def test_video_page_lists_every_shot_and_scene(report):
    out, folder, _, _ = report
    shots, scenes = read(out, "shots").to_pylist(), read(out, "scenes").to_pylist()
    for vid in _video_ids(out):
        page = Page(os.path.join(folder, "videos", f"{vid}.html"))
        want_shots = {f"shot-{s['shot_idx']}" for s in shots if s["video_id"] == vid}
        want_scenes = {f"scene-{s['scene_idx']}" for s in scenes if s["video_id"] == vid}
        assert want_shots and want_scenes
        assert {i for i in page.ids if i.startswith("shot-")} == want_shots
        assert {i for i in page.ids if i.startswith("scene-")} == want_scenes
        # each shot band of the timeline links to its card
        assert {h[1:] for h in page.links if h.startswith("#shot-")} == want_shots
        # the plots of the per-frame and optional tables are drawn
        svgs = {cls for tag, cls in page.classes if tag == "svg"}
        for cls in ("bands shots", "bands scenes", "bands summary", "plot transition", "plot motion",
                    "plot boundary", "plot scores"):
            assert cls in svgs, (cls, svgs)
        assert "a red car" in page.body and "people talking" in page.body


def test_images_are_files_at_the_display_aspect_ratio(report):
    out, folder, _, _ = report
    videos = {v["video_id"]: v for v in read(out, "videos").to_pylist()}
    stored = {}
    for k in read(out, "keyframes", columns=["video_id", "kind", "width", "height"]).to_pylist():
        if k["kind"] == "shot":
            stored[k["video_id"]] = (k["width"], k["height"])
    for vid, v in videos.items():
        page = Page(os.path.join(folder, "videos", f"{vid}.html"))
        assert len(page.images) == 3 * v["num_shots"] + v["num_shots"]  # shot cards + scene strips
        for img in page.images:
            assert not img["src"].startswith("data:")
            path = page.resolve(img["src"])
            assert path.startswith(folder + os.sep + "img") and os.path.isfile(path), img["src"]
            pixels = cv2.imread(path)
            h, w = pixels.shape[:2]
            assert (int(img["width"]) * 2, int(img["height"]) * 2) == (w, h)
            if v["sample_aspect_ratio"] == "16:11":
                # stored 176x144 (squashed); shown 16:9 as a player shows the stream
                assert stored[vid] in ((176, 144), (256, 144))
                assert (w, h) == (256, 144)
            else:
                assert abs(w / h - v["width"] / v["height"]) < 0.02


def test_links_are_relative_and_resolve(report):
    _, folder, _, _ = report
    pages = [os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs if f.endswith(".html")]
    assert len(pages) == 1 + 1 + 2  # index, failures, 2 videos
    for path in pages:
        page = Page(path)
        for href in page.links + [i["src"] for i in page.images]:
            if href.startswith("#"):
                continue
            assert not urlparse(href).scheme and not href.startswith("/"), (path, href)
            assert os.path.exists(page.resolve(href)), (path, href)


def test_index_totals_failures_and_manifest(report):
    out, folder, index, _ = report
    assert index == os.path.join(folder, "index.html")
    page = Page(index)
    body = page.body
    for v in read(out, "videos").to_pylist():
        assert f"videos/{v['video_id']}.html" in page.links
    assert "1 videos failed" in body or re.search(r"\b1 videos failed", body)
    assert "invalid_data" in body
    assert "Time per stage" in body and "transnetv2" in body and "8.2 s" in body
    failures = Page(os.path.join(folder, "failures.html"))
    failure = read(out, "failures").to_pylist()[0]
    assert failure["uri"] in failures.body and "Invalid data" in failures.body


class Panels(HTMLParser):
    """The index's panels: the text of each `<section id=...>`, and the rows of the stage time
    charts (per run: stage, width of its bar, its segments' titles, the row's text)."""

    def __init__(self, path):
        super().__init__()
        self.text, self.charts = {}, {}
        self._section = self._run = self._row = None
        self._depth = 0
        with open(path, encoding="utf-8") as f:
            self.feed(f.read())

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self._section = a.get("id")
            self.text.setdefault(self._section, [])
        elif tag == "figure" and "data-run" in a:
            self._run = a["data-run"]
            self.charts[self._run] = []
        elif tag == "tr" and "data-stage" in a:
            self._row = {"stage": a["data-stage"], "wall_s": float(a["data-wall-s"]), "segments": [], "text": []}
            self.charts[self._run].append(self._row)
        elif self._row is not None and "bar" in (a.get("class") or "").split():
            self._row["width"] = float(re.search(r"width:([\d.]+)%", a["style"]).group(1))
        elif self._row is not None and "seg" in (a.get("class") or "").split():
            self._row["segments"].append(a["title"])

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._section is not None:
            self.text[self._section].append(data)
        if self._row is not None:
            self._row["text"].append(data)

    def body(self, section):
        return " ".join(" ".join(self.text.get(section, [])).split())


def test_index_charts_the_time_of_each_stage_and_shows_the_settings_apart(report):
    """The run manifest's stage times as one bar per stage (as long as its time relative to the
    longest), the decode pass split by the pass stages inside it; the settings in their own panel."""
    out, _, index, _ = report
    (manifest,) = [m for m in read_manifests(out) if "stage_times" in m]
    times = manifest["stage_times"]
    panels = Panels(index)
    rows = panels.charts[manifest["run_id"]]
    assert [r["stage"] for r in rows] == list(times) and "decode" in times and "commit" in times
    longest = max(t["wall_s"] for t in times.values())
    for row in rows:
        t = times[row["stage"]]
        assert row["wall_s"] == pytest.approx(t["wall_s"], abs=1e-4)
        assert row["width"] == pytest.approx(100 * t["wall_s"] / longest, abs=0.01)
        # the row says the stage, its time, CPU and time inside the decode pass, and nothing else
        want = f"{row['stage']} {fmt_seconds(t['wall_s'])} CPU {fmt_seconds(t['cpu_s'])}"
        if t.get("in_decode_pass_s"):
            want += f" + {fmt_seconds(t['in_decode_pass_s'])} in the decode pass"
        assert " ".join(" ".join(row["text"]).split()) == want
    decode = next(r for r in rows if r["stage"] == "decode")
    assert [seg.split(" ")[0] for seg in decode["segments"]] == list(times["decode"]["in_pass"])
    # the settings are in their own panel, not among the times
    settings = panels.body("stage-settings")
    for stage, text in manifest["stages"].items():
        assert f"{stage} {text or 'no settings that change its rows'}" in settings
    # an earlier manifest's shape still charts ({name: seconds} and {name: {"seconds": s}})
    legacy = panels.charts["20260101T000000Z-test"]
    assert [(r["stage"], r["wall_s"]) for r in legacy] == [("decode", 8.25), ("transnetv2", 3.5), ("write", 0.75)]


def test_index_is_paged(full_output, tmp_path):
    out, _ = full_output
    write_report(out, str(tmp_path), page_size=1)
    ids = _video_ids(out)
    pages = [Page(str(tmp_path / name)) for name in ("index.html", "index-2.html")]
    assert not (tmp_path / "index-3.html").exists()
    listed = [[h for h in p.links if h.startswith("videos/")] for p in pages]
    assert sorted(x for links in listed for x in set(links)) == sorted(f"videos/{v}.html" for v in ids)
    assert "index-2.html" in pages[0].links and "index.html" in pages[1].links
    # each video page links back to the index page that lists it
    for n, links in enumerate(listed, start=1):
        video = Page(str(tmp_path / links[0]))
        assert ("../index.html" if n == 1 else f"../index-{n}.html") in video.links


def _failures_only(folder):
    rows = [
        {"video_id": f"{i:016x}", "uri": f"/data/clip_{i}.mp4", "stage": "decode", "error_type": t,
         "message": f"reason {i} <script>alert(1)</script>", "time": None, "reelbeam_version": "0.1.0"}
        for i, t in enumerate(["invalid_data", "empty_file", "invalid_data"])
    ]
    for table, data in (("failures", rows), ("videos", [])):
        outputs.write_table(folder, table, data)


def test_a_corpus_with_failures_only(tmp_path):
    out = str(tmp_path / "out")
    _failures_only(out)
    index = write_report(out)
    assert index == os.path.join(out, "report", "index.html")
    body = Page(index).body
    assert "No video was processed successfully" in body and "empty_file" in body
    failures = Page(os.path.join(out, "report", "failures.html"))
    assert all(f"/data/clip_{i}.mp4" in failures.body for i in range(3))
    with open(os.path.join(out, "report", "failures.html")) as f:
        html = f.read()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html  # escaped
    assert not os.path.exists(os.path.join(out, "report", "videos"))


def test_an_output_lacking_optional_tables(pipeline_output, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(pipeline_output, out, ignore=shutil.ignore_patterns("keyframes", "scenes", "frames", "failures"))
    write_report(str(out), str(tmp_path / "r"))
    for vid in _video_ids(str(out)):
        page = Page(str(tmp_path / "r" / "videos" / f"{vid}.html"))
        svgs = {cls for tag, cls in page.classes if tag == "svg"}
        assert svgs == {"bands shots"}
        with open(page.path) as f:
            assert not page.images and "no keyframe stored" in f.read()
        assert not any(i.startswith("scene-") for i in page.ids)
    assert not (tmp_path / "r" / "failures.html").exists()


def test_frame_plots_keep_single_frame_peaks(full_output, tmp_path):
    """A one-frame transition peak survives the bucketing of a long video (max per bucket)."""
    from reelbeam.report import data

    out, _ = full_output
    corpus = data.load(out, buckets=7)
    frames = read(out, "frames", columns=["video_id", "transition_prob"]).to_pandas()
    for vid, series in corpus.plots["transition"].items():
        assert len(series.max) == 7
        assert np.isclose(np.nanmax(series.max), frames[frames.video_id == vid].transition_prob.max())


def test_main_reports_a_missing_output(tmp_path, capsys):
    assert main([str(tmp_path / "nothing")]) == 2
    assert "no reelbeam tables" in capsys.readouterr().err


def _jpeg(img):
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def dark_keyframes(pipeline_output, tmp_path_factory):
    """`pipeline_output` with some of plain.mp4's shot keyframes made black, a title card on black,
    or blurred; returns (output, video_id, report folder)."""
    root = tmp_path_factory.mktemp("dark")
    out = str(root / "out")
    shutil.copytree(pipeline_output, out, ignore=shutil.ignore_patterns("keyframes", "report"))
    rows = read(pipeline_output, "keyframes").to_pylist()
    vid = next(v["video_id"] for v in read(pipeline_output, "videos").to_pylist() if v["uri"].endswith("plain.mp4"))
    for r in rows:
        if r["video_id"] != vid or r["kind"] != "shot":
            continue
        img = cv2.imdecode(np.frombuffer(r["jpeg"], np.uint8), cv2.IMREAD_COLOR)
        black = np.zeros_like(img)
        card = black.copy()
        cv2.putText(card, "SINTEL", (img.shape[1] // 3, img.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
        if (r["shot_idx"], r["keyframe_idx"]) == (0, 1):
            r["jpeg"] = _jpeg(black)  # a fade's black middle
        elif r["shot_idx"] == 1:
            r["jpeg"] = _jpeg(card if r["keyframe_idx"] == 2 else black)  # all blank: the title card is the best
        elif r["shot_idx"] == 2 and r["keyframe_idx"] != 1:
            r["jpeg"] = _jpeg(cv2.GaussianBlur(img, (0, 0), 6))  # only the middle one is sharp
    outputs.write_table(out, "keyframes", rows)
    folder = str(root / "report")
    write_report(out, folder)
    return out, vid, folder


def test_thumbnails_show_the_most_informative_keyframe(dark_keyframes):
    """Scene strips and the index cover show, per shot, the sharpest keyframe that is not black or
    blank (a title card on black only when nothing better exists); shot cards leave black ones out."""
    _, vid, folder = dark_keyframes
    page = Page(os.path.join(folder, "videos", f"{vid}.html"))
    strip = {img["alt"]: os.path.basename(img["src"]) for img in page.images if "keyframe" not in img["alt"]}
    assert strip["shot 0"] != "shot-00000-1.jpg"  # not the black middle
    assert strip["shot 1"] == "shot-00001-2.jpg"  # the title card, not plain black
    assert strip["shot 2"] == "shot-00002-1.jpg"  # the sharp one
    assert strip["shot 3"] in {f"shot-00003-{k}.jpg" for k in range(3)}
    cards = {img["alt"] for img in page.images if "keyframe" in img["alt"]}
    assert "shot 0 keyframe 1" not in cards and "shot 0 keyframe 0" in cards
    assert "shot 1 keyframe 2" in cards and not {"shot 1 keyframe 0", "shot 1 keyframe 1"} & cards
    with open(page.path, encoding="utf-8") as f:
        html = f.read()
    assert html.count('class="thumb blank') == 3
    cover = next(img for img in Page(os.path.join(folder, "index.html")).images if vid in img["src"])
    assert not cover["src"].endswith(("shot-00000-1.jpg", "shot-00001-0.jpg", "shot-00001-1.jpg", "shot-00001-2.jpg"))


def test_cut_p_is_explained_and_left_out_where_no_cut_ends_the_shot(report):
    out, folder, _, _ = report
    shots = read(out, "shots").to_pylist()
    for vid in _video_ids(out):
        mine = sorted((s for s in shots if s["video_id"] == vid), key=lambda s: s["shot_idx"])
        assert all(s["max_transition_prob"] is not None for s in mine)
        with open(os.path.join(folder, "videos", f"{vid}.html"), encoding="utf-8") as f:
            html = f.read()
        cards = {int(m.group(1)): m.group(2) for m in re.finditer(r'<article class="shot" id="shot-(\d+)">(.*?)</article>', html, re.DOTALL)}
        assert len(cards) == len(mine)
        for s in mine[:-1]:
            assert f"cut p {s['max_transition_prob']:.2f}" in cards[s["shot_idx"]]
            assert 'class="cut-p" title="TransNetV2' in cards[s["shot_idx"]]
        assert "cut p" not in cards[mine[-1]["shot_idx"]]  # the video ends the last shot, no cut does
        note = Page(f.name)
        assert "cut-p-note" in note.ids and "confidence in the cut" in note.body


def test_copied_clips_much_longer_than_their_scenes_are_said_with_the_flag(tmp_path, capfd):
    """--clip-mode copy on a one-GOP video: every clip starts at frame 0, so the later scenes' clips
    hold several times their frames; the run summary, the manifest and the report say so and name
    --clip-mode exact."""
    import json

    import synthetic

    from reelbeam.pipelines.cli import main as cli

    video = synthetic.write_video(str(tmp_path / "gop.mp4"), synthetic.shot_frames((40, 30, 50, 30), 128, 72), gop=1000)
    out = str(tmp_path / "out")
    assert cli(["run", "--input", video, "--output", out, "--shot-detector", "lgss", "--scenes", "histogram",
                "--save-scene-clips", "--clip-mode", "copy", "--no-json", "--direct_running_mode=in_memory"]) == 0
    said = capfd.readouterr().out
    clips = {c["scene_idx"]: c for c in read(out, "scene_clips").to_pylist()}
    big = sorted(i for i, c in clips.items() if c["num_frames"] > 2 * (c["end_frame"] - c["start_frame"] + 1))
    assert big and len(big) < len(clips)
    note = next(line for line in said.splitlines() if "scene clips:" in line)
    assert f"{len(big)} copied clips hold more than twice" in note and "--clip-mode exact" in note
    assert f"gop.mp4 scene {big[-1]}: {clips[big[-1]]['num_frames']} frames for" in note
    (manifest,) = [json.load(open(os.path.join(out, "_runs", f))) for f in os.listdir(os.path.join(out, "_runs"))]
    assert manifest["notices"] == [note.strip().removeprefix("note: ")]
    folder = str(tmp_path / "report")
    write_report(out, folder)
    vid = next(iter(clips.values()))["video_id"]
    page = Page(os.path.join(folder, "videos", f"{vid}.html"))
    assert "notes" in page.ids
    for i in big:
        assert f"scene {i}'s clip holds {clips[i]['num_frames']} frames" in page.body
    assert page.body.count("--clip-mode exact cuts each clip") == 2 * len(big)  # the notes panel and the clip's row
    assert note.strip().removeprefix("note: ") in Page(os.path.join(folder, "index.html")).body


def test_docs_report_figures_are_generated_from_a_stored_run(pipeline_output, tmp_path):
    """docs/report.md's figures of the sample (shots, keyframes, scenes, the ModelScope example)
    are rendered from docs/sample_run.json, which `scripts/update_docs.py --sample OUTPUT` writes
    from a run; `run_figures` is checked here on a tiny run of its own (no model weights needed)."""
    import json

    from reelbeam.report.figures import SAMPLE_FIGURES, figures_line, modelscope_example, run_figures

    docs = os.path.join(os.path.dirname(__file__), "..", "..", "docs")
    with open(os.path.join(docs, SAMPLE_FIGURES), encoding="utf-8") as f:
        stored = json.load(f)
    with open(os.path.join(docs, "report.md"), encoding="utf-8") as f:
        doc = f.read()
    for begin, end, text in (("<!-- sample figures: generated -->\n", "<!-- end of sample figures -->", figures_line(stored)),
                             ("<!-- modelscope example: generated -->\n", "<!-- end of modelscope example -->", modelscope_example(stored))):
        assert doc[doc.index(begin) + len(begin) : doc.index(end)] == text, "regenerate: scripts/update_docs.py"
    assert stored["keyframes"] == 3 * stored["shots"] and stored["modelscope"]["shot_num"] == stored["shots"]
    out = tmp_path / "one"
    shutil.copytree(pipeline_output, out)
    plain = next(v for v in read(str(out), "videos").to_pylist() if v["uri"].endswith("plain.mp4"))
    for table in ("videos", "shots", "keyframes", "scenes"):
        rows = [r for r in read(str(out), table).to_pylist() if r["video_id"] == plain["video_id"]]
        shutil.rmtree(out / table)
        outputs.write_table(str(out), table, rows)
    fig = run_figures(str(out))
    shots = sorted((s for s in read(pipeline_output, "shots").to_pylist() if s["video_id"] == plain["video_id"]), key=lambda s: s["shot_idx"])
    scenes = [s for s in read(pipeline_output, "scenes").to_pylist() if s["video_id"] == plain["video_id"]]
    assert (fig["uri"], fig["frames"], fig["shots"], fig["keyframes"], fig["scenes"]) == ("plain.mp4", 150, 4, 12, len(scenes))
    assert fig["modelscope"]["shot_meta_list"][0]["frame"] == [0, shots[0]["end_frame"]]
    assert f"{fig['shots']} shots, 12 shot keyframes, {len(scenes)} scenes" in figures_line(fig)
    assert json.loads(modelscope_example(fig).split("\n", 1)[1].rsplit("```", 1)[0].replace(", ...]", "]"))["shot_num"] == 4
    with pytest.raises(ValueError, match="2 videos"):
        run_figures(pipeline_output)


def test_a_summary_that_selected_nothing_says_why_on_the_video_page(pipeline_output, tmp_path):
    """Issue #25: one KTS segment of the whole video, longer than the 15% budget: the knapsack kept
    nothing. The video page says so, why, and what to change, instead of a silent 0."""
    out = tmp_path / "out"
    shutil.copytree(pipeline_output, out, ignore=shutil.ignore_patterns("report"))
    plain = next(v for v in read(str(out), "videos").to_pylist() if v["uri"].endswith("plain.mp4"))
    n = plain["frame_count"]
    rows = [{"video_id": plain["video_id"], "query_id": "q1", "query": "a red car", "scorer": "clip", "segment_idx": 0,
             "start_frame": 0, "end_frame": n - 1, "start_time": 0.0, "end_time": n / 25, "score": 0.3,
             "selected": False, "method": "kts+knapsack", "budget": 0.15}]
    outputs.write_table(str(out), "summaries", rows)
    write_report(str(out), str(tmp_path / "r"))
    page = Page(str(tmp_path / "r" / "videos" / f"{plain['video_id']}.html"))
    said = (f"the summary for query 'a red car' (clip) selected nothing: its one segment ({n} frames) is longer than "
            f"the budget of {int(n * 0.15)} frames; --summary-segments shots splits segments to fit the budget")
    assert page.body.count(said) == 2  # in the notes and in the summaries table
    assert "notes" in page.ids and "summaries" in page.ids
