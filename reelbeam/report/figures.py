"""Figures of a run, for the docs: the counts docs/report.md quotes for the bundled sample are
generated from a run, as the flag reference in docs/cli.md is generated from the parser.

`run_figures(OUTPUT)` reads a run's tables (frames, shots, shot keyframes, scenes per method, and
the start of the ModelScope-shaped document `reelbeam export --modelscope-json` writes) for its
one video; `scripts/update_docs.py --sample OUTPUT` stores them in docs/sample_run.json (run
`./run_local.sh` first), and renders the generated blocks of docs/report.md from that file. A test
keeps the blocks equal to the stored figures and checks `run_figures` on a run of its own, so no
test needs the models that made the sample's figures.
"""

from __future__ import annotations

import json

from reelbeam import api

SAMPLE_FIGURES = "sample_run.json"  # under docs/


def run_figures(output: str) -> dict:
    """{uri, frames, duration_s, shots, keyframes, scenes, scene_method, modelscope} of the one
    video of `output` (ValueError when it holds another number of videos)."""
    from reelbeam.export import _one_scene_method, modelscope_document

    videos = api.read(output, "videos").to_pylist()
    if len(videos) != 1:
        raise ValueError(f"{output!r} holds {len(videos)} videos; the figures are of a run of one")
    (v,) = videos
    present = api.tables_present(output)
    shots = sorted(api.read(output, "shots").to_pylist(), key=lambda r: r["shot_idx"]) if "shots" in present else []
    scenes = _one_scene_method(api.read(output, "scenes").to_pylist()) if "scenes" in present else []
    scenes.sort(key=lambda r: r["scene_idx"])
    keyframes = 0
    if "keyframes" in present:
        kinds = api.read(output, "keyframes", columns=["kind"]).column("kind").to_pylist()
        keyframes = sum(k == "shot" for k in kinds)
    doc = modelscope_document(v, shots, scenes)
    doc["shot_meta_list"] = doc["shot_meta_list"][:1]
    if "scene_meta_list" in doc:
        doc["scene_meta_list"] = doc["scene_meta_list"][:1]
    return {
        "uri": v["uri"].replace("\\", "/").rsplit("/", 1)[-1],
        "frames": v["frame_count"],
        "duration_s": round(v["duration_s"] or 0.0, 3),
        "shots": len(shots),
        "keyframes": keyframes,
        "scenes": len(scenes),
        "scene_method": (scenes[0].get("method") or "") if scenes else "",
        "modelscope": {k: doc[k] for k in ("shot_num", "shot_meta_list", "scene_num", "scene_meta_list") if k in doc},
    }


def figures_line(fig: dict) -> str:
    """The sentence docs/report.md quotes: what the sample's run holds."""
    method = fig["scene_method"].split("(", 1)[0]
    return (f"The bundled sample (`{fig['uri']}`, {fig['frames']} frames, {fig['duration_s']:g} s) as `./run_local.sh` "
            f"processes it: {fig['shots']} shots, {fig['keyframes']} shot keyframes, {fig['scenes']} scenes"
            f"{f' ({method})' if method else ''}.\n")


def modelscope_example(fig: dict) -> str:
    """The ModelScope-shaped JSON example of docs/report.md: the sample's, first shot and scene."""
    m = fig["modelscope"]
    head = {"video_id": "...", "uri": "...", "shot_num": m["shot_num"]}
    lines = ["```json", json.dumps(head)[:-1] + ",",
             f' "shot_meta_list": [{json.dumps(m["shot_meta_list"][0])}, ...],']
    if "scene_num" in m:
        lines += [f' "scene_num": {m["scene_num"]},', f' "scene_meta_list": [{json.dumps(m["scene_meta_list"][0])}, ...]}}']
    else:
        lines[-1] = lines[-1].rstrip(",") + "}"
    return "\n".join([*lines, "```", ""])
