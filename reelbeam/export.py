"""`reelbeam export OUTPUT`: the tables in the formats other tools read.

- `--scenes-csv PATH`: PySceneDetect `list-scenes` CSV per video. PySceneDetect's "scenes" are
  cut-to-cut segments, which reelbeam calls shots, so the rows are shots by default
  (`--csv-segments scenes` writes reelbeam's scenes instead). Columns and conventions as
  PySceneDetect's `write_scene_list`: a first row `Timecode List:` with the cut timecodes (unless
  `--skip-cuts`), then `Scene Number` (1-based), `Start Frame` (1-based), `Start Timecode`,
  `Start Time (seconds)`, `End Frame` (1-based, inclusive: the 0-based exclusive end),
  `End Timecode`, `End Time (seconds)` (end of the last frame), `Length (frames)`,
  `Length (timecode)`, `Length (seconds)`. Times are relative to the video's first frame, as
  PySceneDetect normalises them to the stream's start time; timecodes are HH:MM:SS.mmm.
- `--keyframes DIR`: the shot keyframes as JPEG files at the display aspect ratio, named as
  PySceneDetect's `save-images` names them: `<video>-Scene-<shot, 1-based, 3 digits>-<01|02|03>.jpg`
  (first, middle, last frame of the shot); `--keyframe-kind iframe` writes the I-frames instead,
  as `<video>-IFrame-<frame index>.jpg`.
- `--modelscope-json DIR`: per video, `<video_id>.json` shaped as ModelScope's scene-segmentation
  output (`shot_num`, `shot_meta_list`, `scene_num`, `scene_meta_list`), rebuilt from the tables;
  the same document the pipeline writes under OUTPUT/json/.

`<video>` is the file name of the input without its extension, or `<name>-<video_id>` for names
that more than one selected video shares. `--video` names a video as `reelbeam evaluate` does
(`reelbeam.selection`): its id, URI, or file name with or without extension where one video has it.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import posixpath
import sys
from collections.abc import Iterable, Sequence

import fsspec
import pyarrow.dataset as ds

from reelbeam import api
from reelbeam.report.images import display_aspect, resample_jpeg
from reelbeam.schemas.rows import timecode

LOG = logging.getLogger("reelbeam.export")

CSV_HEADER = [
    "Scene Number",
    "Start Frame",
    "Start Timecode",
    "Start Time (seconds)",
    "End Frame",
    "End Timecode",
    "End Time (seconds)",
    "Length (frames)",
    "Length (timecode)",
    "Length (seconds)",
]


def scene_list_rows(segments: Sequence[dict], t0: float = 0.0, cut_row: bool = True) -> list[list[str]]:
    """PySceneDetect `list-scenes` rows (header included) for shot or scene rows of one video,
    in order; `t0` is the video's first-frame time, subtracted from every time."""
    rows = []
    if cut_row:
        rows.append(["Timecode List:", *(timecode(s["start_time"] - t0) for s in segments[1:])])
    rows.append(CSV_HEADER)
    for i, s in enumerate(segments):
        start, end = s["start_time"] - t0, s["end_time"] - t0
        rows.append(
            [
                str(i + 1),
                str(s["start_frame"] + 1),
                timecode(start),
                f"{start:.3f}",
                str(s["end_frame"] + 1),
                timecode(end),
                f"{end:.3f}",
                str(s["end_frame"] - s["start_frame"] + 1),
                timecode(end - start),
                f"{end - start:.3f}",
            ]
        )
    return rows


def modelscope_document(video: dict, shots: Sequence[dict], scenes: Sequence[dict]) -> dict:
    """ModelScope-shaped result of one video from its `videos` row and its shots and scenes rows
    (in order): inclusive frame spans, HH:MM:SS.mmm timestamps from the PTS times."""
    doc = {
        "video_id": video["video_id"],
        "uri": video["uri"],
        "shot_num": len(shots),
        "shot_meta_list": [
            {
                "frame": [s["start_frame"], s["end_frame"]],
                "timestamps": [timecode(s["start_time"]), timecode(s["end_time"])],
            }
            for s in shots
        ],
    }
    if scenes:
        doc["scene_num"] = len(scenes)
        doc["scene_meta_list"] = [
            {
                "shot": list(range(sc["first_shot_idx"], sc["last_shot_idx"] + 1)),
                "frame": [sc["start_frame"], sc["end_frame"]],
                "timestamps": [timecode(sc["start_time"]), timecode(sc["end_time"])],
            }
            for sc in scenes
        ]
    return doc


def file_stems(videos: Sequence[dict]) -> dict[str, str]:
    """video_id -> name for exported files: the input's file name without extension, with the
    video id appended where several selected videos share that name."""
    base = {v["video_id"]: os.path.splitext(posixpath.basename(v["uri"].rstrip("/")))[0] or v["video_id"] for v in videos}
    counts: dict[str, int] = {}
    for name in base.values():
        counts[name] = counts.get(name, 0) + 1
    return {vid: (name if counts[name] == 1 else f"{name}-{vid}") for vid, name in base.items()}


def _grouped(output: str, table: str, ids: set[str], order: str, present: list[str]) -> dict[str, list[dict]]:
    if table not in present:
        return {}
    rows: dict[str, list[dict]] = {}
    for r in api.read(output, table, filter=ds.field("video_id").isin(sorted(ids))).to_pylist():
        rows.setdefault(r["video_id"], []).append(r)
    for v in rows.values():
        v.sort(key=lambda r: r[order])
    return rows


def _one_scene_method(scenes: list[dict]) -> list[dict]:
    """Scenes of one method: the BaSSL model's when several methods wrote scenes for a video."""
    methods = sorted({s.get("method") or "" for s in scenes}, key=lambda m: (not m.startswith("bassl"), m))
    return [s for s in scenes if (s.get("method") or "") == methods[0]] if len(methods) > 1 else scenes


class ExportError(Exception):
    pass


def select_videos(output: str, wanted: Iterable[str] = ()) -> list[dict]:
    """`videos` rows, sorted by URI; `wanted` narrows them, each a video id, URI or file name
    (with or without extension) that names one video (`reelbeam.selection`, as `evaluate`)."""
    from reelbeam.selection import AmbiguousVideo, VideoSelector

    videos = sorted(api.read(output, "videos").to_pylist(), key=lambda v: (v["uri"], v["video_id"]))
    wanted = list(wanted)
    if not wanted:
        return videos
    try:
        found, missing = VideoSelector(videos).select(wanted)
    except AmbiguousVideo as e:
        raise ExportError(f"--video {e}") from None
    if missing:
        raise ExportError(f"no ok video with id, URI or file name {', '.join(map(repr, missing))} in {output!r}")
    picked = {v["video_id"] for v in found.values()}
    return [v for v in videos if v["video_id"] in picked]


def _open_out(path: str):
    fs, root = fsspec.core.url_to_fs(path)
    return fs, root.rstrip("/")


def write_scenes_csv(
    output: str, videos: Sequence[dict], path: str, segments: str = "shots", cut_row: bool = True
) -> list[str]:
    """Write PySceneDetect CSVs; `path` ending in .csv is one file (one video), else a folder with
    `<video>-Scenes.csv` per video. Returns the files written."""
    present = api.tables_present(output)
    ids = {v["video_id"] for v in videos}
    rows = _grouped(output, segments, ids, "shot_idx" if segments == "shots" else "scene_idx", present)
    if segments == "scenes":
        rows = {vid: _one_scene_method(r) for vid, r in rows.items()}
    fs, root = _open_out(path)
    single = path.lower().endswith(".csv")
    if single and len(videos) != 1:
        raise ExportError(
            f"--scenes-csv {path} names one file but {len(videos)} videos are selected; "
            "give a folder, or pick one video with --video"
        )
    stems = file_stems(videos)
    written = []
    for v in videos:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerows(scene_list_rows(rows.get(v["video_id"], []), v.get("start_time_s") or 0.0, cut_row))
        target = root if single else posixpath.join(root, f"{stems[v['video_id']]}-Scenes.csv")
        fs.makedirs(posixpath.dirname(target) or ".", exist_ok=True)
        with fs.open(target, "w") as f:
            f.write(buf.getvalue())
        written.append(target)
    return written


def write_keyframes(output: str, videos: Sequence[dict], folder: str, kind: str = "shot") -> list[str]:
    """Write keyframe JPEGs at the display aspect ratio under `folder`; returns the files written."""
    if "keyframes" not in api.tables_present(output):
        raise ExportError(
            f"{output!r} has no keyframes table: run with --shot-keyframes (shot keyframes) or --iframes"
        )
    fs, root = _open_out(folder)
    fs.makedirs(root, exist_ok=True)
    stems = file_stems(videos)
    aspects = {v["video_id"]: display_aspect(v) for v in videos}
    flt = (ds.field("kind") == kind) & ds.field("video_id").isin(sorted(aspects))
    columns = ["video_id", "frame_idx", "shot_idx", "keyframe_idx", "jpeg"]
    written = []
    for batch in api.dataset(output, "keyframes").to_batches(columns=columns, filter=flt, batch_size=64):
        for row in batch.to_pylist():
            vid = row["video_id"]
            if kind == "shot":
                name = f"{stems[vid]}-Scene-{row['shot_idx'] + 1:03d}-{(row['keyframe_idx'] or 0) + 1:02d}.jpg"
            else:
                name = f"{stems[vid]}-IFrame-{row['frame_idx']:06d}.jpg"
            jpeg, _, _ = resample_jpeg(row["jpeg"], aspects[vid])
            target = posixpath.join(root, name)
            with fs.open(target, "wb") as f:
                f.write(jpeg)
            written.append(target)
    if not written:
        LOG.warning("no %s keyframes for the selected videos in %s", kind, output)
    return sorted(written)


def write_modelscope_json(output: str, videos: Sequence[dict], folder: str) -> list[str]:
    """Write `<video_id>.json` per video under `folder`; returns the files written."""
    present = api.tables_present(output)
    ids = {v["video_id"] for v in videos}
    shots = _grouped(output, "shots", ids, "shot_idx", present)
    scenes = _grouped(output, "scenes", ids, "scene_idx", present)
    fs, root = _open_out(folder)
    fs.makedirs(root, exist_ok=True)
    written = []
    for v in videos:
        vid = v["video_id"]
        doc = modelscope_document(v, shots.get(vid, []), _one_scene_method(scenes.get(vid, [])))
        target = posixpath.join(root, f"{vid}.json")
        with fs.open(target, "w") as f:
            json.dump(doc, f, indent=1)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """`reelbeam export OUTPUT [--scenes-csv PATH] [--keyframes DIR] [--modelscope-json DIR]`."""
    parser = argparse.ArgumentParser(
        prog="reelbeam export",
        description="Export a reelbeam output as PySceneDetect list-scenes CSV, keyframe JPEG files "
        "and ModelScope-shaped JSON.",
    )
    parser.add_argument("output", metavar="OUTPUT", help="the run's --output folder or URL")
    parser.add_argument("--video", action="append", default=[], metavar="VIDEO",
                        help="export only this video: its id, URI, or file name where one video has it "
                        "(repeatable; default: every ok video)")
    parser.add_argument("--scenes-csv", metavar="PATH",
                        help="PySceneDetect list-scenes CSV: a FILE.csv for one video, else a folder of "
                        "<video>-Scenes.csv")
    parser.add_argument("--csv-segments", choices=("shots", "scenes"), default="shots",
                        help="rows of the CSV: shots (what PySceneDetect calls scenes; default) or scenes")
    parser.add_argument("--skip-cuts", action="store_true",
                        help="omit the first 'Timecode List:' row (RFC 4180 CSV), as list-scenes --skip-cuts")
    parser.add_argument("--keyframes", metavar="DIR", help="write keyframe JPEGs at the display aspect ratio")
    parser.add_argument("--keyframe-kind", choices=("shot", "iframe"), default="shot",
                        help="shot keyframes (3 per shot; default) or I-frames")
    parser.add_argument("--modelscope-json", metavar="DIR", help="write ModelScope-shaped <video_id>.json files")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not (args.scenes_csv or args.keyframes or args.modelscope_json):
        parser.error("nothing to export: give --scenes-csv, --keyframes and/or --modelscope-json")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        videos = select_videos(args.output, args.video)
        if args.scenes_csv:
            files = write_scenes_csv(args.output, videos, args.scenes_csv, args.csv_segments, not args.skip_cuts)
            print(f"reelbeam export: {len(files)} CSV file(s) -> {args.scenes_csv}")
        if args.keyframes:
            files = write_keyframes(args.output, videos, args.keyframes, args.keyframe_kind)
            print(f"reelbeam export: {len(files)} JPEG file(s) -> {args.keyframes}")
        if args.modelscope_json:
            files = write_modelscope_json(args.output, videos, args.modelscope_json)
            print(f"reelbeam export: {len(files)} JSON file(s) -> {args.modelscope_json}")
    except (ExportError, FileNotFoundError, KeyError) as e:
        print(f"reelbeam export: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
