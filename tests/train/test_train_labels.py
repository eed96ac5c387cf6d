"""Scene label formats for `reelbeam train scenes`, each guessed from its path and read."""

import json

import numpy as np
import pytest

from reelbeam.train import TrainError
from reelbeam.train.labels import check_against_shots, read_scene_labels


def test_every_format_is_guessed_and_read(tmp_path):
    mn = tmp_path / "movienet"
    (mn / "label318").mkdir(parents=True)
    (mn / "shot_movie318").mkdir()
    (mn / "label318" / "tt01.txt").write_text("0000 0\n0001 1\n0002 -1\n")
    (mn / "shot_movie318" / "tt01.txt").write_text("0 9 1 4 8\n10 19 11 14 18\n20 29 21 24 28\n30 39 31 34 38\n")
    got = read_scene_labels(str(mn))["tt01"]
    assert got.labels == {0: 0, 1: 1, 2: 1} and got.num_shots == 4 and got.shots[3].tolist() == [30, 39]

    rows = [{"video_id": "tt01", "shot_id": f"{i:04d}", "num_shot": 3, "boundary_label": int(i == 1)} for i in range(4)]
    (tmp_path / "anno.train.ndjson").write_text("\n".join(map(json.dumps, rows)))
    (tmp_path / "train.json").write_text(json.dumps(rows))
    for path in ("anno.train.ndjson", "train.json"):
        got = read_scene_labels(str(tmp_path / path))["tt01"]
        assert got.labels == {0: 0, 1: 1, 2: 0, 3: 0} and got.num_shots == (3, 4)

    (tmp_path / "mn.json").write_text(json.dumps({"tt01": {"labels": [0, 1], "shots": [[0, 9], [10, 19]]}}))
    assert read_scene_labels(str(tmp_path / "mn.json"))["tt01"].labels == {0: 0, 1: 1}
    (tmp_path / "scenes.json").write_text(json.dumps({"a.mp4": {"scenes": [[0, 19], [20, 39]]}}))
    (tmp_path / "scenes.csv").write_text("video,start_frame,end_frame\na.mp4,0,19\na.mp4,20,39\n")
    frames = np.array([[0, 9], [10, 19], [20, 29], [30, 39]])
    for path in ("scenes.json", "scenes.csv"):
        got = read_scene_labels(str(tmp_path / path))["a.mp4"]
        assert check_against_shots("a.mp4", "a.mp4", got, frames) == {0: 0, 1: 1, 2: 0, 3: 0}


def test_num_shot_may_be_the_count_or_the_last_index(tmp_path):
    rows = [{"video_id": "v", "shot_id": "0000", "num_shot": 9, "boundary_label": 0}]
    (tmp_path / "a.ndjson").write_text(json.dumps(rows[0]))
    labels = read_scene_labels(str(tmp_path / "a.ndjson"))["v"]
    frames = np.zeros((10, 2), np.int64)
    assert check_against_shots("v", "v.mp4", labels, frames) == {0: 0}  # 9 = last index of 10
    assert check_against_shots("v", "v.mp4", labels, frames[:9]) == {0: 0}  # 9 = count
    with pytest.raises(TrainError, match="the labels count 9 shots, the shots table 12"):
        check_against_shots("v", "v.mp4", labels, np.zeros((12, 2), np.int64))


def test_unknown_or_bad_labels_are_one_line(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(TrainError, match="cannot tell its label format"):
        read_scene_labels(str(tmp_path / "x.txt"))
    (tmp_path / "bad.ndjson").write_text('{"video_id": "v", "shot_id": "0000", "boundary_label": 2}\n')
    with pytest.raises(TrainError, match="boundary_label must be 0, 1 or -1"):
        read_scene_labels(str(tmp_path / "bad.ndjson"))
    with pytest.raises(TrainError, match="no such labels"):
        read_scene_labels(str(tmp_path / "missing.json"))
