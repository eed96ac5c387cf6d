"""`reelbeam export`: PySceneDetect list-scenes CSV, keyframe JPEGs, ModelScope-shaped JSON."""

import csv
import json
import os

import cv2
import pytest
from conftest import SHOTS

from reelbeam import read
from reelbeam.export import CSV_HEADER, main, scene_list_rows, timecode

# PySceneDetect's own test (tests/test_cli.py, test_cli_list_scenes) expects, for a 23.976 fps
# video cut at 0-based frames 48, 90 and 144 (exclusive end):
PYSCENEDETECT_ROWS = [
    ["Timecode List:", "00:00:03.754"],
    CSV_HEADER,
    ["1", "49", "00:00:02.002", "2.002", "90", "00:00:03.754", "3.754", "42", "00:00:01.752", "1.752"],
    ["2", "91", "00:00:03.754", "3.754", "144", "00:00:06.006", "6.006", "54", "00:00:02.252", "2.252"],
]


def test_csv_rows_match_pyscenedetect_conventions():
    fps = 24000 / 1001
    shots = [
        {"start_frame": 48, "end_frame": 89, "start_time": 48 / fps, "end_time": 90 / fps},
        {"start_frame": 90, "end_frame": 143, "start_time": 90 / fps, "end_time": 144 / fps},
    ]
    assert scene_list_rows(shots) == PYSCENEDETECT_ROWS
    assert scene_list_rows(shots, cut_row=False) == PYSCENEDETECT_ROWS[1:]
    # times are relative to the first frame, as PySceneDetect normalises them
    shifted = [{**s, "start_time": s["start_time"] + 1.4, "end_time": s["end_time"] + 1.4} for s in shots]
    assert scene_list_rows(shifted, t0=1.4) == PYSCENEDETECT_ROWS


def test_timecode():
    assert timecode(0) == "00:00:00.000"
    assert timecode(3725.0016) == "01:02:05.002"
    assert timecode(-1) == "00:00:00.000"


def _plain(out):
    return next(v for v in read(out, "videos").to_pylist() if v["uri"].endswith("plain.mp4"))


def test_scenes_csv_of_a_run(pipeline_output, tmp_path):
    assert main([pipeline_output, "--scenes-csv", str(tmp_path / "csv")]) == 0
    files = sorted(os.listdir(tmp_path / "csv"))
    assert files == ["pal_16x11-Scenes.csv", "plain-Scenes.csv"]
    with open(tmp_path / "csv" / "plain-Scenes.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[1] == CSV_HEADER
    starts = [0, 40, 70, 120]  # the synthetic video's cuts (conftest.SHOTS, 25 fps)
    assert rows[0] == ["Timecode List:"] + [timecode(s / 25) for s in starts[1:]]
    body = rows[2:]
    assert [int(r[1]) for r in body] == [s + 1 for s in starts]  # 1-based start frames
    assert [int(r[4]) for r in body] == [s for s in starts[1:]] + [sum(SHOTS)]  # inclusive, 1-based
    assert [int(r[7]) for r in body] == list(SHOTS)
    assert [float(r[6]) for r in body] == pytest.approx([s / 25 for s in starts[1:]] + [sum(SHOTS) / 25])


def test_scenes_csv_to_one_file_needs_one_video(pipeline_output, tmp_path, capsys):
    target = tmp_path / "one.csv"
    assert main([pipeline_output, "--scenes-csv", str(target)]) == 2
    assert "--video" in capsys.readouterr().err
    plain = _plain(pipeline_output)
    assert main([pipeline_output, "--video", plain["uri"], "--scenes-csv", str(target), "--skip-cuts",
                 "--csv-segments", "scenes"]) == 0
    with open(target, newline="") as f:
        rows = list(csv.reader(f))
    scenes = [s for s in read(pipeline_output, "scenes").to_pylist() if s["video_id"] == plain["video_id"]]
    assert rows[0] == CSV_HEADER and len(rows) == 1 + len(scenes)
    assert main([pipeline_output, "--video", "nope", "--scenes-csv", str(target)]) == 2


def test_video_is_named_as_evaluate_names_it(pipeline_output, tmp_path, capsys):
    """`--video` takes what `reelbeam evaluate` matches: id, URI, or file name with or without
    its extension (one selector, reelbeam.selection)."""
    plain = _plain(pipeline_output)
    for name in (plain["video_id"], plain["uri"], "plain.mp4", "plain", "/elsewhere/plain.mp4"):
        target = tmp_path / f"{abs(hash(name))}.csv"
        assert main([pipeline_output, "--video", name, "--scenes-csv", str(target)]) == 0, capsys.readouterr().err
        assert target.exists()


def test_a_file_name_two_videos_share_is_refused_naming_both():
    from reelbeam.selection import AmbiguousVideo, VideoSelector

    videos = [{"video_id": "a1", "uri": "gs://b/x/clip.mp4"}, {"video_id": "b2", "uri": "gs://b/y/clip.mp4"},
              {"video_id": "c3", "uri": "/data/other.mkv"}]
    selector = VideoSelector(videos)
    assert selector.find("gs://b/y/clip.mp4")["video_id"] == "b2"
    assert selector.find("b2")["video_id"] == "b2"
    assert selector.find("other")["video_id"] == "c3" and selector.find("other.mkv")["video_id"] == "c3"
    assert selector.find("nope.mp4") is None
    with pytest.raises(AmbiguousVideo, match="gs://b/x/clip.mp4, gs://b/y/clip.mp4"):
        selector.find("clip.mp4")


def test_keyframes_are_files_at_the_display_aspect_ratio(pipeline_output, tmp_path):
    assert main([pipeline_output, "--keyframes", str(tmp_path / "kf")]) == 0
    files = sorted(os.listdir(tmp_path / "kf"))
    videos = read(pipeline_output, "videos").to_pylist()
    assert len(files) == 3 * sum(v["num_shots"] for v in videos)
    assert "plain-Scene-001-01.jpg" in files and "plain-Scene-004-03.jpg" in files
    for name in files:
        h, w = cv2.imread(str(tmp_path / "kf" / name)).shape[:2]
        if name.startswith("pal_16x11"):
            assert (w, h) == (256, 144)  # 176x144 with SAR 16:11, as a player shows it
        else:
            assert (w, h) == (160, 90)
    assert main([pipeline_output, "--keyframes", str(tmp_path / "if"), "--keyframe-kind", "iframe"]) == 0
    assert all("-IFrame-" in n for n in os.listdir(tmp_path / "if"))


def test_modelscope_json_equals_the_pipelines_documents(pipeline_output, tmp_path):
    assert main([pipeline_output, "--modelscope-json", str(tmp_path / "json")]) == 0
    ours = sorted(os.listdir(tmp_path / "json"))
    theirs = sorted(os.listdir(os.path.join(pipeline_output, "json")))
    assert ours == theirs and len(ours) == 2
    for name in ours:
        with open(tmp_path / "json" / name) as a, open(os.path.join(pipeline_output, "json", name)) as b:
            doc = json.load(a)
            assert doc == json.load(b)
        assert doc["shot_num"] == len(doc["shot_meta_list"]) and doc["scene_num"] == len(doc["scene_meta_list"])


def test_nothing_to_export_is_an_error(pipeline_output):
    with pytest.raises(SystemExit) as e:
        main([pipeline_output])
    assert e.value.code == 2


def test_keyframes_without_the_table(pipeline_output, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(pipeline_output, out, ignore=shutil.ignore_patterns("keyframes"))
    assert main([str(out), "--keyframes", str(tmp_path / "kf")]) == 2
    assert "--shot-keyframes" in capsys.readouterr().err
