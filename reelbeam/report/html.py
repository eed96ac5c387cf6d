"""`reelbeam report OUTPUT`: a static HTML report of a run, from its tables alone.

Writes, under OUT (default OUTPUT/report):

    index.html, index-2.html, ...     run totals and the videos, `page_size` a page
    failures.html, failures-2.html    failures with their reasons (when there are any)
    videos/<video_id>.html            per video: timeline, plots, scenes, shots, metadata
    img/<video_id>/shot-<i>-<k>.jpg   keyframe thumbnails at the display aspect ratio
    assets/report.css, report.js      written once; the pages work without the script

Every link is relative, and nothing is fetched from the network, so the folder opens from
`file://` and from a bucket it was copied to.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.resources
import json
import logging
import math
import os
import posixpath
import sys
import time
from collections.abc import Sequence
from typing import Any

import fsspec
import jinja2
import numpy as np
from markupsafe import Markup

from reelbeam import __version__, notices
from reelbeam.report import data, svg
from reelbeam.report.images import display_aspect, display_size

LOG = logging.getLogger("reelbeam.report")

PAGE_SIZE = 100
FAILURES_PAGE_SIZE = 500
SCENE_THUMBS = 12  # thumbnails shown per scene card (its shots' middle keyframes)
NEIGHBOURS = 5  # most similar videos listed when video embeddings are present

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("reelbeam.report", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


# ---------------------------------------------------------------------------------------------
# formatting


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def fmt_num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


_env.filters.update(duration=fmt_duration, bytes=fmt_bytes, num=fmt_num, clock=lambda s: svg.fmt_time(s, True))


def video_name(uri: str) -> str:
    return posixpath.basename(uri.rstrip("/")) or uri


# ---------------------------------------------------------------------------------------------
# output folder


class _Writer:
    """Writes report files under a local folder or fsspec URL, making folders as needed."""

    def __init__(self, out: str) -> None:
        self.fs, self.root = fsspec.core.url_to_fs(out)
        self.root = self.root.rstrip("/")
        self.out = out
        self._dirs: set[str] = set()
        self.files = 0

    def path(self, rel: str) -> str:
        return posixpath.join(self.root, rel)

    def write_bytes(self, rel: str, payload: bytes) -> None:
        path = self.path(rel)
        folder = posixpath.dirname(path)
        if folder not in self._dirs:
            self.fs.makedirs(folder, exist_ok=True)
            self._dirs.add(folder)
        with self.fs.open(path, "wb") as f:
            f.write(payload)
        self.files += 1

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))


def _static(name: str) -> bytes:
    return importlib.resources.files("reelbeam.report").joinpath("static", name).read_bytes()


# ---------------------------------------------------------------------------------------------
# per-video view


@dataclasses.dataclass
class Track:
    label: str
    sub: str
    html: Markup
    kind: str  # 'band' or 'plot'


def _meta_rows(v: dict, aspect: float | None, iframes: int | None) -> list[tuple[str, str]]:
    w, h = v.get("width"), v.get("height")
    dw, dh = display_size(w, h, aspect) if w and h and aspect else (w, h)
    rotation = v.get("rotation") or 0
    if rotation % 180 == 90 and w and h:
        dw, dh = display_size(h, w, aspect)
    rows = [
        ("URI", v["uri"]),
        ("video id", v["video_id"]),
        ("size", fmt_bytes(v.get("size_bytes"))),
        ("container", v.get("container") or "–"),
        ("codec", " ".join(x for x in (v.get("codec"), v.get("profile") and f"({v['profile']})") if x) or "–"),
        ("pixel format", f"{v.get('pix_fmt') or '–'}, {v.get('bit_depth') or '?'} bit"),
        ("coded size", f"{w}×{h}" if w and h else "–"),
        ("display size", f"{dw}×{dh}" if dw and dh else "–"),
        ("sample aspect ratio", v.get("sample_aspect_ratio") or "1:1 (not set)"),
        ("display aspect ratio", v.get("display_aspect_ratio") or (f"{aspect:.4g}:1" if aspect else "–")),
        ("rotation", f"{rotation}°"),
        ("frame rate", f"{fmt_num(v.get('avg_fps'))} fps (nominal {fmt_num(v.get('nominal_fps'))})"),
        ("frames", f"{fmt_num(v.get('frame_count'))} decoded, {fmt_num(v.get('declared_frame_count'))} declared"),
        ("duration", fmt_duration(v.get("duration_s"))),
        ("first frame at", f"{fmt_num(v.get('start_time_s'))} s"),
        ("bit rate", f"{(v.get('bitrate') or 0) / 1000:,.0f} kbit/s" if v.get("bitrate") else "–"),
        ("audio", "yes" if v.get("has_audio") else "no"),
        ("motion vectors", v.get("motion_vectors") or "–"),
        ("keyframes only", "yes" if v.get("keyframes_only") else "no"),
        ("shot detector", v.get("shot_detector") or "–"),
        ("I-frames stored", fmt_num(iframes) if iframes is not None else "–"),
        ("decode time", fmt_duration(v.get("decode_seconds"))),
        ("written by", f"reelbeam {v.get('reelbeam_version') or '?'}"),
    ]
    return rows


def _video_view(corpus: data.Corpus, v: dict, thumbs: dict, neighbours: dict, failures: list[dict]) -> dict:
    vid = v["video_id"]
    t0 = v.get("start_time_s") or 0.0
    duration = v.get("duration_s") or 0.0
    fps = v.get("avg_fps") or v.get("nominal_fps") or 0.0
    aspect = display_aspect(v) or 16 / 9
    shots = corpus.rows("shots", vid)
    scenes = corpus.rows("scenes", vid)
    boundaries = {}
    boundary_model = ""
    for b in corpus.rows("boundaries", vid):
        if not boundary_model:
            boundary_model = b.get("model") or ""
        if (b.get("model") or "") == boundary_model:
            boundaries[b["shot_idx"]] = b["p_boundary"]
    scene_of = {}
    for sc in scenes:
        for i in range(sc["first_shot_idx"], sc["last_shot_idx"] + 1):
            scene_of[i] = sc["scene_idx"]

    def thumb(shot_idx: int, k: int):
        return thumbs.get((vid, shot_idx, k))

    def best(shot_idx: int):
        return data.informative(thumb(shot_idx, k) for k in range(3))

    last_shot = max((s["shot_idx"] for s in shots), default=None)
    for s in shots:
        s["t_start"], s["t_end"] = s["start_time"] - t0, s["end_time"] - t0
        s["duration"] = s["end_time"] - s["start_time"]
        s["thumbs"] = [thumb(s["shot_idx"], k) for k in range(3)]
        s["best"] = best(s["shot_idx"])
        # The last shot ends with the video, not a cut: its stored value is its last frame's probability.
        p = s.get("max_transition_prob")
        s["cut_p"] = p if p is not None and np.isfinite(p) and s["shot_idx"] != last_shot else None
        s["scene_idx"] = scene_of.get(s["shot_idx"])
        s["p_boundary"] = boundaries.get(s["shot_idx"])
    for sc in scenes:
        sc["t_start"], sc["t_end"] = sc["start_time"] - t0, sc["end_time"] - t0
        sc["duration"] = sc["end_time"] - sc["start_time"]
        idxs = list(range(sc["first_shot_idx"], sc["last_shot_idx"] + 1))
        sc["thumbs"] = [(i, best(i)) for i in idxs[:SCENE_THUMBS]]
        sc["more"] = max(0, len(idxs) - SCENE_THUMBS)

    tracks: list[Track] = []
    if shots:
        tracks.append(Track("Shots", f"{len(shots)}", Markup(svg.bands(
            [svg.Band(s["t_start"], s["t_end"], str(s["shot_idx"]),
                      f"shot {s['shot_idx']}: {svg.fmt_time(s['t_start'], True)}–{svg.fmt_time(s['t_end'], True)}, "
                      f"frames {s['start_frame']}–{s['end_frame']}", f"#shot-{s['shot_idx']}") for s in shots],
            duration, 26, "shots", "shots"
        )), "band"))
    if scenes:
        tracks.append(Track("Scenes", f"{len(scenes)}", Markup(svg.bands(
            [svg.Band(sc["t_start"], sc["t_end"], str(sc["scene_idx"]),
                      f"scene {sc['scene_idx']}: shots {sc['first_shot_idx']}–{sc['last_shot_idx']}, "
                      f"{svg.fmt_time(sc['t_start'], True)}–{svg.fmt_time(sc['t_end'], True)}",
                      f"#scene-{sc['scene_idx']}", f"c{sc['scene_idx'] % 8}") for sc in scenes],
            duration, 26, "scenes", "scenes"
        )), "band"))
    summaries: dict[str, list[dict]] = {}
    scorers = {seg.get("scorer") for seg in corpus.rows("summaries", vid)}
    for seg in corpus.rows("summaries", vid):
        query = seg.get("query") or seg.get("query_id") or ""
        summaries.setdefault(f"{query} ({seg.get('scorer')})" if len(scorers) > 1 else query, []).append(seg)
    summary_rows = corpus.rows("summaries", vid)
    empty = {(e["query"] or e["query_id"] or "", e["scorer"]): e for e in notices.empty_summaries(
        summary_rows, {vid: v.get("frame_count")} if v.get("frame_count") else None)}
    summary_views = []
    for query, segs in sorted(summaries.items()):
        segs.sort(key=lambda s: s["segment_idx"])
        kept = [s for s in segs if s.get("selected")]
        tracks.append(Track("Summary", query, Markup(svg.bands(
            [svg.Band(s["start_time"] - t0, s["end_time"] - t0, "",
                      f"segment {s['segment_idx']}: score {fmt_num(s.get('score'))}"
                      f"{', in the summary' if s.get('selected') else ''}",
                      "", "selected" if s.get("selected") else "unselected") for s in segs],
            duration, 18, "summary", f"summary: {query}"
        )), "band"))
        e = empty.get((segs[0].get("query") or segs[0].get("query_id") or "", segs[0].get("scorer")))
        summary_views.append({
            "query": query, "segments": len(segs), "selected": len(kept),
            "seconds": sum(s["end_time"] - s["start_time"] for s in kept),
            "empty": notices.summary_note(e) if e else None,
        })

    cuts = [s["t_start"] for s in shots[1:]]
    plots = corpus.plots
    if vid in plots.get("transition", {}):
        series = plots["transition"][vid]
        tracks.append(Track("Transition p", "TransNetV2, per frame", Markup(svg.series_plot(
            series.max, None, duration, 1.0, 56, "transition", "transition probability per frame", cuts, 0.5
        )), "plot"))
    if vid in plots.get("content_delta", {}):
        series = plots["content_delta"][vid]
        top = float(np.nanmax(series.max)) * 1.05
        tracks.append(Track("Content delta", f"LGSS, max {top / 1.05:.3g}", Markup(svg.series_plot(
            series.max, None, duration, top, 56, "content-delta", "content delta per frame", cuts
        )), "plot"))
    if vid in plots.get("motion", {}):
        series = plots["motion"][vid]
        # Scale to the 99th percentile of bucket means: one huge vector does not flatten the rest.
        top = float(np.nanpercentile(series.mean, 99)) * 1.25 if not np.all(np.isnan(series.mean)) else 1.0
        tracks.append(Track("Motion", f"mean |mv|, px, top {top:.3g}", Markup(svg.series_plot(
            series.mean, None, duration, top, 56, "motion", "mean motion-vector magnitude per frame", cuts
        )), "plot"))
    if boundaries and shots:
        tracks.append(Track("Scene boundary p", boundary_model or "per shot", Markup(svg.step_bars(
            [(s["t_start"], s["t_end"], s["p_boundary"]) for s in shots], duration, 40, "boundary",
            "scene-boundary probability per shot"
        )), "plot"))
    for query, series in corpus.score_plots.get(vid, []):
        tracks.append(Track("Frame score", query, Markup(svg.series_plot(
            series.max, series.mean, duration, 1.0, 48, "scores", f"frame scores: {query}", cuts, connect=True
        )), "plot"))

    embeddings = []
    for e in corpus.rows("video_embeddings", vid):
        if (e.get("granularity") or "video") != "video":
            continue  # per-shot embeddings: the page shows the video's
        vec = np.asarray(e.get("embedding") or [], np.float32)
        embeddings.append({
            "model": e.get("model") or "", "num_clips": e.get("num_clips"), "dim": len(vec),
            "norm": float(np.linalg.norm(vec)) if len(vec) else None,
            "neighbours": neighbours.get((vid, e.get("model") or ""), []),
        })
    timeline_data = {
        "duration": duration, "fps": fps,
        "shots": [round(s["t_start"], 4) for s in shots],
        "scenes": [round(sc["t_start"], 4) for sc in scenes],
    }
    clips = corpus.rows("scene_clips", vid)
    big = {c["scene_idx"] for c in notices.oversized_clips(clips)}
    for c in clips:
        c["oversized"] = notices.clip_note(c) if c["scene_idx"] in big else None
    notes = [c["oversized"] for c in clips if c["oversized"]] + [s["empty"] for s in summary_views if s["empty"]]
    meta = _meta_rows(v, display_aspect(v), corpus.iframe_counts.get(vid) if corpus.iframe_counts else None)
    return {
        "v": v,
        "name": video_name(v["uri"]),
        "aspect": aspect,
        "duration": duration,
        "shots": shots,
        "scenes": scenes,
        "tracks": tracks,
        "axis": Markup(svg.axis(duration)),
        "timeline_json": Markup(json.dumps(timeline_data).replace("</", "<\\/")),
        "meta": meta,
        "display": dict(meta)["display size"],
        "warnings": v.get("warnings") or [],
        "failures": failures,
        "summaries": summary_views,
        "embeddings": embeddings,
        "clips": clips,
        "boundary_model": boundary_model,
        "notes": notes,
    }


def _neighbours(corpus: data.Corpus, k: int = NEIGHBOURS) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """(video_id, model) -> the k most similar videos (cosine of video embeddings, same model)."""
    group = corpus.groups.get("video_embeddings")
    if group is None:
        return {}
    by_model: dict[str, list[tuple[str, list]]] = {}
    for row in group.table.to_pylist():
        if row.get("embedding") and (row.get("granularity") or "video") == "video":
            by_model.setdefault(row.get("model") or "", []).append((row["video_id"], row["embedding"]))
    out = {}
    for model, items in by_model.items():
        if len(items) < 2:
            continue
        ids = [i for i, _ in items]
        mat = np.asarray([e for _, e in items], np.float32)
        mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
        for start in range(0, len(ids), 1024):
            sims = mat[start : start + 1024] @ mat.T
            for r, row in enumerate(sims):
                i = start + r
                row[i] = -np.inf
                top = np.argsort(-row)[:k]
                out[(ids[i], model)] = [(ids[j], float(row[j])) for j in top if np.isfinite(row[j])]
    return out


# ---------------------------------------------------------------------------------------------
# corpus views


def fmt_seconds(seconds: float | None) -> str:
    """A stage's time: milliseconds below a second, then as `fmt_duration`."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return fmt_duration(seconds)


_env.filters.update(seconds=fmt_seconds)

_SECONDS_KEYS = ("wall_s", "seconds", "wall_seconds", "time_s", "duration_s")


def _seconds_of(value: Any) -> float | None:
    if isinstance(value, dict):
        value = next((value[k] for k in _SECONDS_KEYS if k in value), None)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _stage_times(manifest: dict) -> dict | None:
    """The bar chart of a run manifest's stage times, or None when it has none.

    From `stage_times` ({stage: {"wall_s", "cpu_s", "in_pass" (decode), "in_decode_pass_s"}}, what
    `reelbeam run` writes: reelbeam.transforms.timing), else from the shapes earlier manifests and
    other tools used: `stages` (or `stage_seconds`) as {name: seconds}, {name: {"seconds": s}} or
    [{"name"|"stage": n, "seconds": s}].
    """
    times = manifest.get("stage_times")
    items: list[tuple[str, Any]] = []
    if isinstance(times, dict):
        items = list(times.items())
    else:
        stages = manifest.get("stages") or manifest.get("stage_seconds") or {}
        if isinstance(stages, dict):
            items = list(stages.items())
        elif isinstance(stages, list):
            items = [(s.get("name") or s.get("stage") or "?", s) for s in stages if isinstance(s, dict)]
    rows = []
    for name, value in items:
        wall = _seconds_of(value)
        if wall is None:
            continue  # a stage's settings, not its time
        value = value if isinstance(value, dict) else {}
        cpu = value.get("cpu_s")
        rows.append({"name": str(name), "wall": max(0.0, wall), "cpu": cpu if isinstance(cpu, (int, float)) else None,
                     "in_pass": value.get("in_pass") if isinstance(value.get("in_pass"), dict) else {},
                     "in_decode_pass": _seconds_of(value.get("in_decode_pass_s"))})
    if not rows:
        return None
    longest = max(r["wall"] for r in rows) or 1.0
    colours = {}
    for r in rows:
        for stage in r["in_pass"]:
            colours.setdefault(stage, f"c{1 + len(colours) % 7}")  # c0 is close to the bars' own colour
    for r in rows:
        r["width"] = 100.0 * r["wall"] / longest
        r["segments"] = [
            {"name": stage, "seconds": secs, "cls": colours[stage], "width": 100.0 * secs / r["wall"]}
            for stage, secs in r["in_pass"].items() if isinstance(secs, (int, float)) and secs > 0 and r["wall"] > 0
        ]
        r["colour"] = colours.get(r["name"])
    return {"rows": rows, "run_wall": _seconds_of(manifest.get("wall_s")), "total": sum(r["wall"] for r in rows),
            "has_cpu": any(r["cpu"] is not None for r in rows)}


def _stage_settings(manifest: dict) -> list[tuple[str, str]]:
    """(stage, settings) from a manifest's `stages` ({stage: settings text}, as `reelbeam run`
    writes it); an empty text: the stage has no settings that change its rows."""
    stages = manifest.get("stages")
    if not isinstance(stages, dict):
        return []
    return [(str(name), value) for name, value in stages.items() if isinstance(value, str)]


def _manifest_view(m: dict) -> dict:
    scalars = [(k, fmt_num(v)) for k, v in m.items() if not k.startswith("_") and isinstance(v, (str, int, float, bool))]
    return {"file": m.get("_file", ""), "run_id": m.get("run_id") or m.get("_file", ""), "fields": scalars[:16],
            "times": _stage_times(m), "settings": _stage_settings(m),
            "notices": [str(n) for n in m.get("notices") or [] if isinstance(n, str)]}


def _totals(corpus: data.Corpus) -> dict:
    videos = corpus.videos
    seconds = sum(v.get("duration_s") or 0.0 for v in videos)
    shots = sum(v.get("num_shots") or 0 for v in videos)
    scenes = corpus.row_counts.get("scenes", 0)
    by_type: dict[tuple[str, str], int] = {}
    for f in corpus.failures:
        by_type[(f["stage"], f["error_type"])] = by_type.get((f["stage"], f["error_type"]), 0) + 1
    return {
        "videos": len(videos),
        "failed_videos": len(corpus.failed_videos()),
        "stage_failures": len(corpus.stage_failures()),
        "hours": seconds / 3600,
        "video_time": f"{seconds / 3600:,.1f} h" if seconds >= 3600 else fmt_duration(seconds),
        "seconds": seconds,
        "frames": sum(v.get("frame_count") or 0 for v in videos),
        "shots": shots,
        "scenes": scenes,
        "mean_shot": seconds / shots if shots else None,
        "decode_seconds": sum(v.get("decode_seconds") or 0.0 for v in videos),
        "failure_types": sorted(((s, e, n) for (s, e), n in by_type.items()), key=lambda x: -x[2]),
        "tables": [(t, corpus.row_counts[t]) for t in corpus.present],
        "manifests": [_manifest_view(m) for m in corpus.manifests],
    }


def _pages(n: int, size: int) -> int:
    return max(1, math.ceil(n / size))


def page_name(stem: str, page: int) -> str:
    """index.html, index-2.html, ..."""
    return f"{stem}.html" if page == 1 else f"{stem}-{page}.html"


def _index_row(corpus: data.Corpus, v: dict, thumbs: dict, stage_failures: dict) -> dict:
    vid = v["video_id"]
    shots = corpus.rows("shots", vid)
    # Cover: the most informative keyframe of the longest shot that has one that is not blank.
    cover = None
    for s in sorted(shots, key=lambda s: -(s["num_frames"] or 0)):
        t = data.informative(thumbs.get((vid, s["shot_idx"], k)) for k in range(3))
        if t is not None and (cover is None or (cover.blank and not t.blank)):
            cover = t
        if cover is not None and not cover.blank:
            break
    aspect = display_aspect(v)
    w, h = v.get("width"), v.get("height")
    if w and h and (v.get("rotation") or 0) % 180 == 90:
        w, h = h, w
    dw, dh = display_size(w, h, aspect) if w and h else (w, h)
    return {
        "v": v,
        "name": video_name(v["uri"]),
        "href": f"videos/{vid}.html",
        "cover": cover,
        "aspect": aspect or 16 / 9,
        "size": f"{dw}×{dh}" if dw and dh else "–",
        "shots": v.get("num_shots"),
        # videos.num_scenes is filled only by scenes made in the decode pass (--scenes histogram).
        "scenes": v.get("num_scenes") if v.get("num_scenes") is not None else (corpus.groups["scenes"].count(vid) or None) if "scenes" in corpus.groups else None,
        "mean_shot": (v.get("duration_s") or 0) / v["num_shots"] if v.get("num_shots") else None,
        "warnings": len(v.get("warnings") or []),
        "stage_failures": stage_failures.get(vid, 0),
    }


def write_report(
    output: str, out: str | None = None, page_size: int = PAGE_SIZE, thumb_height: int = data.THUMB_HEIGHT
) -> str:
    """Write the report of the reelbeam output `output` under `out` (default OUTPUT/report).

    Returns the path (or URL) of its index.html. Raises reelbeam.TableNotFound when `output`
    holds no reelbeam table.
    """
    started = time.monotonic()
    out = out or posixpath.join(str(output).rstrip("/"), "report")
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    corpus = data.load(output)
    writer = _Writer(out)
    writer.write_bytes("assets/report.css", _static("report.css"))
    writer.write_bytes("assets/report.js", _static("report.js"))
    thumbs = data.write_thumbnails(corpus, writer.write_bytes, height=thumb_height)
    totals = _totals(corpus)
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    common = {"version": __version__, "output": str(output), "generated": generated, "totals": totals}

    stage_fail: dict[str, list[dict]] = {}
    for f in corpus.stage_failures():
        stage_fail.setdefault(f["video_id"], []).append(f)
    stage_counts = {k: len(v) for k, v in stage_fail.items()}

    videos = corpus.videos
    n_pages = _pages(len(videos), page_size)
    n_fail_pages = _pages(len(corpus.failures), FAILURES_PAGE_SIZE) if corpus.failures else 0
    index_of = {}
    for page in range(1, n_pages + 1):
        chunk = videos[(page - 1) * page_size : page * page_size]
        for v in chunk:
            index_of[v["video_id"]] = page_name("index", page)
        rows = [_index_row(corpus, v, thumbs, stage_counts) for v in chunk]
        html = _env.get_template("index.html").render(
            **common, root="", rows=rows, page=page, pages=n_pages, first=(page - 1) * page_size + 1,
            page_href=lambda p: page_name("index", p), failure_pages=n_fail_pages,
        )
        writer.write_text(page_name("index", page), html)

    for page in range(1, n_fail_pages + 1):
        chunk = corpus.failures[(page - 1) * FAILURES_PAGE_SIZE : page * FAILURES_PAGE_SIZE]
        ok = corpus.video_ids
        rows = [{**f, "href": f"videos/{f['video_id']}.html" if f["video_id"] in ok else ""} for f in chunk]
        html = _env.get_template("failures.html").render(
            **common, root="", rows=rows, page=page, pages=n_fail_pages,
            page_href=lambda p: page_name("failures", p), failure_pages=n_fail_pages,
        )
        writer.write_text(page_name("failures", page), html)

    neighbours = _neighbours(corpus)
    names = {v["video_id"]: video_name(v["uri"]) for v in videos}
    for i, v in enumerate(videos):
        view = _video_view(corpus, v, thumbs, neighbours, stage_fail.get(v["video_id"], []))
        html = _env.get_template("video.html").render(
            **common, root="../", **view, names=names,
            index_href=f"../{index_of[v['video_id']]}",
            prev=videos[i - 1] if i > 0 else None, next=videos[i + 1] if i + 1 < len(videos) else None,
            failure_pages=n_fail_pages,
        )
        writer.write_text(f"videos/{v['video_id']}.html", html)
    LOG.info("report: %d files under %s in %.1f s", writer.files, out, time.monotonic() - started)
    return writer.path("index.html") if "://" not in out else posixpath.join(out.rstrip("/"), "index.html")


def main(argv: Sequence[str] | None = None) -> int:
    """`reelbeam report OUTPUT [--out DIR] [--page-size N]`; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="reelbeam report",
        description="Write a static HTML report of a reelbeam output (index, one page per video, "
        "keyframe thumbnails, plots), readable from file:// or a bucket, from the tables alone.",
    )
    parser.add_argument("output", metavar="OUTPUT", help="the run's --output folder or URL")
    parser.add_argument("--out", metavar="DIR", help="where to write the report (default: OUTPUT/report)")
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE, metavar="N",
                        help=f"videos per index page (default {PAGE_SIZE})")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.page_size < 1:
        parser.error("--page-size must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        index = write_report(args.output, args.out, page_size=args.page_size)
    except FileNotFoundError as e:
        print(f"reelbeam report: error: {e}", file=sys.stderr)
        return 2
    shown = index if "://" in index else "file://" + os.path.abspath(index)
    print(f"reelbeam report: {shown}")
    return 0
