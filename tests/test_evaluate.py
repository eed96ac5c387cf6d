"""`reelbeam evaluate` on a tiny OUTPUT folder written with the project's schemas, against hand-made
ground truth whose figures are worked out in the comments."""

import json

import outputs
import pytest

from reelbeam.evaluate import main


def write(output, table, rows):
    outputs.write_table(str(output), table, rows)


def video(vid, uri, frames=200, fps=25.0):
    return {"video_id": vid, "uri": uri, "status": "ok", "frame_count": frames, "avg_fps": fps}


def shots_rows(vid, spans):
    return [
        {"video_id": vid, "shot_idx": i, "shot_id": f"{vid}-{i}", "start_frame": s, "end_frame": e}
        for i, (s, e) in enumerate(spans)
    ]


@pytest.fixture
def output(tmp_path):
    out = tmp_path / "out"
    write(out, "videos", [video("v1", "/corpus/a.mp4"), video("v2", "gs://bucket/dir/b.mkv", frames=100)])
    # a.mp4: cuts at 40 and 103; b.mkv: cuts at 50 and 80. Written in shuffled order.
    write(out, "shots", shots_rows("v2", [(0, 49), (50, 79), (80, 99)])[::-1] + shots_rows("v1", [(0, 39), (40, 102), (103, 199)]))
    return out


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_shots_table_and_json(output, tmp_path, capsys):
    truth = tmp_path / "truth.json"
    # a: a true cut at 42 (detected 40: 2 frames off, a hit at tolerance 2) and a dissolve (99, 112)
    # (detected 103: inside). b: true cuts at 50 (hit) and 90 (missed; 80 is a false alarm).
    # Pooled: tp 3, fp 1, fn 1 -> P = R = F1 = 0.75. "c" has no video in OUTPUT.
    truth.write_text(json.dumps({"a.mp4": {"cuts": [42], "transitions": [[99, 112]]}, "b": {"cuts": [50, 90]}, "c": {"cuts": [1]}}))
    code, out, _ = run(capsys, "shots", output, "--truth", truth, "--json", tmp_path / "r.json")
    assert code == 0
    assert "ALL (2 videos)" in out and "1 ground-truth videos not in OUTPUT: c" in out
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["overall"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "tp": 3, "fp": 1, "fn": 1}
    rows = {v["video"]: v for v in r["videos"]}
    assert (rows["a.mp4"]["tp"], rows["b"]["fp"], rows["b"]["uri"]) == (2, 1, "gs://bucket/dir/b.mkv")
    assert r["truth_without_video"] == ["c"] and r["settings"]["tolerance_frames"] == 2
    # Tolerance 1: the cut 2 frames off is now a miss and a false alarm: tp 2, fp 2, fn 2.
    code, _, _ = run(capsys, "shots", output, "--truth", truth, "--tolerance", "1", "--json", tmp_path / "r1.json")
    assert json.loads((tmp_path / "r1.json").read_text())["overall"]["tp"] == 2


def test_shots_from_frame_probabilities(output, tmp_path, capsys):
    frames = [{"video_id": "v2", "frame_idx": i, "transition_prob": 0.0} for i in range(100)]
    for i in (49, 50):
        frames[i]["transition_prob"] = 0.9  # frames 49-50 above 0.5: shots [0, 49] and [51, 99]
    frames[80]["transition_prob"] = 0.4  # above 0.3 only
    write(output, "frames", frames)
    truth = tmp_path / "t.csv"
    truth.write_text("video,frame\nb.mkv,50\nb.mkv,80\n")
    # At 0.5: transition (49, 51) hits the cut at 50; 80 missed. At 0.3 both found.
    for threshold, tp in (("0.5", 1), ("0.3", 2)):
        code, _, _ = run(capsys, "shots", output, "--truth", truth, "--threshold", threshold, "--json", tmp_path / "r.json")
        assert code == 0 and json.loads((tmp_path / "r.json").read_text())["overall"]["tp"] == tp


def test_scenes_with_a_time_tolerance(output, tmp_path, capsys):
    write(output, "scenes", [
        {"video_id": "v1", "scene_idx": i, "scene_id": str(i), "start_frame": s, "end_frame": e, "method": "histogram"}
        for i, (s, e) in enumerate([(0, 102), (103, 199)])
    ])
    truth = tmp_path / "scenes.json"
    truth.write_text(json.dumps({"a.mp4": {"scenes": [[0, 79], [80, 199]]}}))
    # Boundary 102 vs 79: 23 frames = 0.92 s at 25 fps, within 1 s: tp 1. With 0.5 s: a miss.
    # mIoU: IoU (0,79)~(0,102) = 79/102, (80,199)~(103,199) = 96/119, (80,199)~(0,102) = 22/199;
    # both sides take 79/102 and 96/119: mIoU = (79/102 + 96/119) / 2.
    code, _, _ = run(capsys, "scenes", output, "--truth", truth, "--json", tmp_path / "r.json")
    r = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and r["overall"]["tp"] == 1 and r["overall"]["miou"] == pytest.approx((79 / 102 + 96 / 119) / 2)
    run(capsys, "scenes", output, "--truth", truth, "--tolerance-s", "0.5", "--json", tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["overall"]["tp"] == 0


def test_movienet_from_boundaries(tmp_path, capsys):
    out = tmp_path / "out"
    write(out, "videos", [video("m1", "/movies/tt0000001.mp4")])
    probs = [0.1, 0.7, 0.2, 0.6]
    write(out, "boundaries", [{"video_id": "m1", "shot_idx": i, "p_boundary": p, "model": "bassl"} for i, p in enumerate(probs)])
    root = tmp_path / "movienet"
    (root / "label318").mkdir(parents=True)
    (root / "shot_movie318").mkdir()
    (root / "label318" / "tt0000001.txt").write_text("0000 0\n0001 1\n0002 0\n0003 1\n")
    (root / "shot_movie318" / "tt0000001.txt").write_text("".join(f"{24 * i} {24 * i + 23} 0 0 0\n" for i in range(4)))
    # Scores 0.7(1) 0.6(1) 0.2(0) 0.1(0): AP 1. Predictions 0 1 0 1 = truth: F1 1, recall 1,
    # Recall@3s 2/(2 + 1e-5), mIoU 1.
    code, out_text, _ = run(capsys, "movienet", out, "--truth", root, "--json", tmp_path / "r.json")
    r = json.loads((tmp_path / "r.json").read_text())["overall"]
    assert code == 0 and "tt0000001" in out_text
    assert (r["ap"], r["f1"], r["recall"], r["miou"]) == (1.0, 1.0, 1.0, 1.0)
    assert r["recall_at_3s"] == pytest.approx(2 / (2 + 1e-5))
    # A run whose shots are not MovieNet's cannot be compared shot by shot.
    (root / "shot_movie318" / "tt0000001.txt").write_text("0 23 0 0 0\n24 47 0 0 0\n48 71 0 0 0\n72 95 0 0 0\n96 99 0 0 0\n")
    code, _, err = run(capsys, "movienet", out, "--truth", root)
    assert code == 2 and "MovieNet's shots" in err


def test_summaries_and_frame_scores(tmp_path, capsys):
    out = tmp_path / "out"
    write(out, "videos", [video("s1", "/tvsum/AwmHb44_ouw.mp4", frames=20)])
    # The run's summary keeps frames 10-12 of 20.
    write(out, "summaries", [
        {"video_id": "s1", "query_id": "q", "scorer": "clip", "method": "kts+knapsack", "segment_idx": 0, "start_frame": 0, "end_frame": 9, "selected": False},
        {"video_id": "s1", "query_id": "q", "scorer": "clip", "method": "kts+knapsack", "segment_idx": 1, "start_frame": 10, "end_frame": 12, "selected": True},
    ])
    # Scores at frames 0, 10, 13: 0.2, 0.6, 0.9 -> per frame 0.2 x10, 0.6 x3, 0.9 x7.
    write(out, "frame_scores", [
        {"video_id": "s1", "frame_idx": f, "query_id": "q", "score": s, "scorer": "clip", "model": "clip"}
        for f, s in ((13, 0.9), (0, 0.2), (10, 0.6))
    ])
    users = [[0] * 10 + [1] * 6 + [0] * 4, [0] * 13 + [1] * 3 + [0] * 4]
    truth = tmp_path / "tvsum.json"
    truth.write_text(json.dumps({"AwmHb44_ouw": {
        "user_summary": users, "n_frames": 20, "change_points": [[0, 1], [2, 9], [10, 12], [13, 19]],
        "user_scores": [[1] * 10 + [2] * 3 + [3] * 7, [3] * 10 + [2] * 3 + [1] * 7],
    }}))
    code, out_text, _ = run(capsys, "summaries", out, "--truth", truth, "--json", tmp_path / "r.json", "--random-seeds", "3")
    assert code == 0, out_text
    r = json.loads((tmp_path / "r.json").read_text())
    rows = {v["group"]: v for v in r["videos"]}
    assert sorted(rows) == ["frame_scores: query_id=q model=clip scorer=clip", "summaries: query_id=q scorer=clip method=kts+knapsack"]
    summary, scores = rows["summaries: query_id=q scorer=clip method=kts+knapsack"], rows["frame_scores: query_id=q model=clip scorer=clip"]
    # Summary {10, 11, 12}: user 1 overlap 3, P 1, R 1/2, F 2/3; user 2 overlap 0. Mean 1/3.
    assert summary["fscore"] == pytest.approx(1 / 3)
    # The scores through the dataset's shots and a 3-frame budget keep shot [10, 12] too.
    assert scores["fscore_shots"] == pytest.approx(1 / 3) and scores["fscore"] is None
    # Kendall: scores rise with user 1's ratings (tau-b 1) and fall with user 2's (-1): mean 0.
    assert scores["kendall"] == pytest.approx(0.0) and scores["spearman"] == pytest.approx(0.0)
    # Random baseline: the 3-frame budget fits shot [0, 1] or [10, 12]; present and in [0, 1].
    assert 0.0 <= scores["random_fscore"] <= 1.0 and r["settings"]["random_seeds"] == 3
    assert sorted(r["overall"]) == sorted(rows)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["shots", "{out}", "--truth", "{tmp}/missing.json"], "missing.json: no such file or directory"),
        (["shots", "{out}", "--truth", "{tmp}/t.json", "--format", "edl"], "unknown shot ground-truth format 'edl'"),
        (["shots", "{tmp}/nowhere", "--truth", "{tmp}/t.json"], "no such output folder"),
        (["scenes", "{out}", "--truth", "{tmp}/s.json"], "no `scenes` table in this run"),
        (["shots", "{out}", "--truth", "{tmp}/other.json"], "no video of"),
        (["summaries", "{out}", "--truth", "{tmp}/t.json", "--format", "json"], "needs 'user_summary' or 'user_scores'"),
        (["shots", "{out}", "--truth", "{tmp}/t.json", "--tolerance", "-1"], "--tolerance: must be >= 0, got -1"),
        (["shots", "{out}", "--truth", "{tmp}/t.json", "--threshold", "2"], "--threshold: a probability between 0 and 1"),
        (["scenes", "{out}", "--truth", "{tmp}/s.json", "--tolerance-s", "-0.5"], "--tolerance-s: must be >= 0"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(output, tmp_path, capsys, argv, message):
    (tmp_path / "t.json").write_text(json.dumps({"a.mp4": {"cuts": [40]}}))
    (tmp_path / "s.json").write_text(json.dumps({"a.mp4": {"scenes": [[0, 199]]}}))
    (tmp_path / "other.json").write_text(json.dumps({"zzz.mp4": {"cuts": [40]}}))
    code, _, err = run(capsys, *[a.format(out=output, tmp=tmp_path) for a in argv])
    assert code == 2 and message in err and err.count("\n") == 1


def test_map_file_names_the_video(output, tmp_path, capsys):
    truth = tmp_path / "bbc.json"
    truth.write_text(json.dumps({"01_From_Pole_to_Pole": {"cuts": [40]}}))
    mapping = tmp_path / "map.csv"
    mapping.write_text("truth,video\n01_From_Pole_to_Pole,a.mp4\n")
    code, out, _ = run(capsys, "shots", output, "--truth", truth, "--map", mapping)
    assert code == 0 and "01_From_Pole_to_Pole" in out
    assert float(out.splitlines()[1].split()[-1]) == pytest.approx(2 / 3, abs=1e-4)  # tp 1, fp 1: F1 2/3


def test_rows_no_run_committed_are_not_scored(output, tmp_path, capsys):
    # A run that wrote data files and never committed them (killed before its commit step): its
    # shots are not the table's, so evaluate does not see them (it used to glob every Parquet file).
    import pyarrow as pa

    from reelbeam.schemas import schema_for
    from reelbeam.store import tables as store

    junk = [dict(r, shot_id=f"junk-{r['shot_id']}") for r in shots_rows("v1", [(0, 9), (10, 19), (20, 29)])]
    store.write_data_file(store.table_uri(str(output), "shots"), "shots",
                          pa.Table.from_pylist([{**r, "start_time": 0.0, "end_time": 0.0, "num_frames": 1} for r in junk],
                                               schema=schema_for("shots")),
                          store.new_run_id(), "shots")
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"a.mp4": {"cuts": [42], "transitions": [[99, 112]]}, "b": {"cuts": [50, 90]}}))
    code, _, _ = run(capsys, "shots", output, "--truth", truth, "--json", tmp_path / "r.json")
    assert code == 0
    assert json.loads((tmp_path / "r.json").read_text())["overall"]["fp"] == 1  # the committed shots' one false alarm
