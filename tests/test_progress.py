"""Live progress: workers' events reach the launcher's watcher through the progress file; on a
terminal one status line is redrawn, elsewhere one line per video and periodic totals."""

import io
import os
import subprocess
import sys

from reelbeam import progress


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_events_from_another_process_reach_the_watcher(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    out = io.StringIO()
    path = str(tmp_path / "p" / "events.jsonl")
    os.makedirs(os.path.dirname(path))
    with progress.Watcher(path, total=3, stream=out, interval=0.0, poll=0.05) as w:
        code = ("from reelbeam import progress\n"
                "progress.video_done('a.mp4', 250, 10.0)\n"
                "progress.video_failed('b.mp4', 'decode', 'invalid_data')\n"
                "progress.rows_written('shots', 7)\n")
        subprocess.run([sys.executable, "-c", code], check=True, env=os.environ)
    assert (w.ok, w.failed, w.frames, w.rows) == (1, 1, 250, {"shots": 7})
    text = out.getvalue()
    assert "reelbeam: [1/3] a.mp4: 250 frames" in text
    assert "reelbeam: [2/3] b.mp4: failed (decode/invalid_data)" in text
    assert "videos 2/3" in w.status() and "1 failed" in w.status() and "shots: 7 rows" in w.status()
    assert not os.path.exists(path) and progress.ENV not in os.environ  # cleaned up


def test_a_terminal_gets_one_redrawn_line(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    out = Tty()
    with progress.Watcher(str(tmp_path / "e.jsonl"), total=1, stream=out, poll=0.05, remove=False):
        progress.video_done("a.mp4", 100, 4.0)
        import time

        time.sleep(0.3)
    text = out.getvalue()
    assert text.startswith("reelbeam: videos") and text.endswith("\n") and "[1/1]" not in text
    assert "\r\x1b[J" in text  # each redraw erases the block drawn before
    assert "videos 1/1" in text.rsplit("\r", 1)[-1]


def test_without_a_watcher_events_are_log_lines(caplog, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    with caplog.at_level("INFO", logger="reelbeam.progress"):
        progress.video_done("gs://b/a.mp4", 250, 10.0)
        progress.video_failed("gs://b/c.mp4", "decode", "empty_file")
    assert [r.getMessage() for r in caplog.records] == [
        "decoded gs://b/a.mp4: 250 frames, 10.0 s of video", "failed gs://b/c.mp4: empty_file"]


def test_a_broken_progress_file_never_fails_a_video(monkeypatch, tmp_path):
    monkeypatch.setenv(progress.ENV, str(tmp_path / "missing-dir" / "e.jsonl"))
    progress.video_done("a.mp4", 1, 0.04)  # no exception


def test_the_terminal_line_is_cut_to_the_width_erased_and_a_log_line_starts_clean(tmp_path, monkeypatch):
    import logging
    import shutil
    import time

    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((40, 20)))
    out = Tty()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with progress.Watcher(str(tmp_path / "e.jsonl"), total=1, stream=out, poll=0.05, remove=False):
            progress.rows_written("a_table_with_a_long_name", 12345)
            time.sleep(0.3)
            logging.getLogger("reelbeam.test").warning("a log line")
            time.sleep(0.2)
    finally:
        root.removeHandler(handler)
    assert not handler.filters  # the watcher's filter is removed at the end
    drawn = [part.removeprefix("\x1b[J") for part in out.getvalue().split("\r")]
    drawn = [part for part in drawn if part.startswith("reelbeam:")]
    assert drawn and all(len(part.split("\x1b[K")[0]) <= 39 and "\x1b[K" in part for part in drawn)
    assert "\r\x1b[Ja log line\n" in out.getvalue()  # the block erased, the line, the block again


def test_a_note_from_several_workers_is_printed_once(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(progress.ENV, raising=False)
    out = io.StringIO()
    path = str(tmp_path / "n.jsonl")
    with progress.Watcher(path, total=2, stream=out, poll=0.05, remove=False):
        code = "from reelbeam import progress\nprogress.note('TransNetV2 precision auto: bf16 on this cpu')\n"
        for _ in range(2):  # two worker processes
            subprocess.run([sys.executable, "-c", code], check=True, env=os.environ)
    assert out.getvalue().count("reelbeam: TransNetV2 precision auto: bf16 on this cpu\n") == 1
    with caplog.at_level("INFO", logger="reelbeam.progress"):  # no watcher (a remote worker): a log line
        progress.note("hello")
    assert [r.getMessage() for r in caplog.records] == ["hello"]


def test_frames_of_a_video_being_decoded_count_at_once_and_once(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    w = progress.Watcher(str(tmp_path / "f.jsonl"), total=1, stream=io.StringIO())
    w.add({"event": "frames", "uri": "a.mp4", "frames": 250})
    w.add({"event": "frames", "uri": "a.mp4", "frames": 250})
    assert w.frames == 500 and w.ok == 0  # frames/s moves before the video is done
    w.add({"event": "video", "ok": True, "uri": "a.mp4", "frames": 620, "seconds": 24.8})
    assert w.frames == 620 and w.ok == 1  # its total, not 500 + 620


def test_a_video_a_runner_recomputes_is_counted_once(tmp_path, monkeypatch):
    # Dask reruns a lost worker's tasks elsewhere: the same video reports twice ("7/6" before)
    monkeypatch.delenv(progress.ENV, raising=False)
    out = io.StringIO()
    w = progress.Watcher(str(tmp_path / "r.jsonl"), total=2, stream=out)
    for _ in range(2):
        w.add({"event": "frames", "uri": "a.mp4", "frames": 100})
        w.add({"event": "video", "ok": True, "uri": "a.mp4", "frames": 120, "seconds": 4.8})
    w.add({"event": "video", "ok": False, "uri": "b.mp4", "stage": "decode", "error_type": "invalid_data"})
    w.add({"event": "video", "ok": False, "uri": "b.mp4", "stage": "decode", "error_type": "invalid_data"})
    assert (w.ok, w.failed, w.frames) == (1, 1, 120)
    assert "videos 2/2" in w.status() and out.getvalue().count("a.mp4") == 1


def test_a_terminal_shows_a_bar_per_video_being_decoded_then_the_stage_at_work(tmp_path, monkeypatch):
    """#25: the terminal showed `videos 0/1, 0 frames/s` for the whole decode and then only the
    rows of the last table written while later stages ran."""
    monkeypatch.delenv(progress.ENV, raising=False)
    w = progress.Watcher(str(tmp_path / "t.jsonl"), total=2, stream=Tty())
    t0 = w._started
    w.add({"event": "start", "uri": "/videos/sintel_trailer_30s.mp4", "total": 720}, now=t0)
    w.add({"event": "start", "uri": "gs://b/unknown_length.mkv", "total": None}, now=t0)
    w.add({"event": "working", "stage": "decode"}, now=t0)
    w.add({"event": "frames", "uri": "/videos/sintel_trailer_30s.mp4", "frames": 300}, now=t0 + 10)
    w.add({"event": "frames", "uri": "gs://b/unknown_length.mkv", "frames": 50}, now=t0 + 10)
    lines = w.lines(t0 + 10, width=100, height=20)
    assert lines[0].startswith("reelbeam: videos 0/2, 35 frames/s")
    bar = lines[1]
    assert bar.startswith("  sintel_trailer_30s.mp4:  42%|") and "| 300/720 frames, 30.00 frames/s, ETA 00:14" in bar
    assert lines[2] == "  unknown_length.mkv: 50 frames, 5.00 frames/s"
    assert len(lines) == 3  # no stage line while the decode's own steps are all there is
    assert all(len(line) <= 99 for line in lines)

    for uri, frames in (("/videos/sintel_trailer_30s.mp4", 720), ("gs://b/unknown_length.mkv", 200)):
        w.add({"event": "video", "ok": True, "uri": uri, "frames": frames, "seconds": frames / 24})
    w.add({"event": "working", "stage": "scene_clips"}, now=t0 + 20)
    w.add({"event": "processed", "stage": "scene_clips", "video_id": "v1"}, now=t0 + 30)
    w.add({"event": "processed", "stage": "scene_clips", "video_id": "v1"}, now=t0 + 30)  # a retry: once
    w.add({"event": "rows", "table": "keyframes", "rows": 36, "stage": "shot_keyframes"}, now=t0 + 30)
    w.add({"event": "rows", "table": "scene_clips", "rows": 7, "stage": "scene_clips"}, now=t0 + 30)
    lines = w.lines(t0 + 34, width=100, height=20)
    assert lines == [w.status(t0 + 34), "  stage scene_clips: running 14 s, on 1/2 videos, scene_clips 7 rows"]
    w.add({"event": "working", "stage": "shot_keyframes"}, now=t0 + 35)
    w.add({"event": "working", "stage": "scene_clips"}, now=t0 + 36)
    assert w.lines(t0 + 37)[1:] == [  # both at work lately (several stages run at once), in order
        "  stage scene_clips: running 17 s, on 1/2 videos, scene_clips 7 rows",
        "  stage shot_keyframes: running 2 s, keyframes 36 rows"]
    assert w.lines(t0 + 45)[1:] == ["  stage scene_clips: running 25 s, on 1/2 videos, scene_clips 7 rows"]


def test_a_bars_rate_and_eta_follow_the_latest_frames(tmp_path, monkeypatch):
    """A video's first frames wait for the models to load: its frames/s (and ETA) are over the
    last ten seconds, not since its start (and never tqdm's inverted 's/frame')."""
    monkeypatch.delenv(progress.ENV, raising=False)
    w = progress.Watcher(str(tmp_path / "r.jsonl"), total=1, stream=Tty())
    t0 = w._started
    w.add({"event": "start", "uri": "a.mp4", "total": 1000}, now=t0)
    w.add({"event": "frames", "uri": "a.mp4", "frames": 1}, now=t0 + 30)
    assert "1/1000 frames, 0.03 frames/s, ETA " in w.lines(t0 + 30)[1]
    w.add({"event": "frames", "uri": "a.mp4", "frames": 99}, now=t0 + 35)
    w.add({"event": "frames", "uri": "a.mp4", "frames": 100}, now=t0 + 40)
    assert "200/1000 frames, 19.90 frames/s, ETA 00:40" in w.lines(t0 + 40)[1]
    assert "200/1000 frames, 10.00 frames/s, ETA 01:20" in w.lines(t0 + 45)[1]  # nothing new for 5 s
    w.add({"event": "frames", "uri": "a.mp4", "frames": 100}, now=t0 + 60)  # a pause: the last known pace
    assert "300/1000 frames, 5.00 frames/s, ETA 02:20" in w.lines(t0 + 60)[1]


def test_bars_are_cut_to_the_terminal_and_many_videos_summed_up(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    w = progress.Watcher(str(tmp_path / "m.jsonl"), total=20, stream=Tty())
    for i in range(12):
        w.add({"event": "start", "uri": f"/v/{'a_very_long_video_name_' * 3}{i}.mp4", "total": 1000}, now=w._started)
    lines = w.lines(w._started + 1, width=60, height=40)
    assert len(lines) == 1 + progress.MAX_BARS + 1 and lines[-1] == "  and 4 more being decoded"
    assert all(len(line) <= 59 for line in lines) and "..." in lines[1]
    assert len(w.lines(w._started + 1, width=60, height=6)) == 1 + 3 + 1  # a short terminal: fewer bars


def test_a_note_on_a_terminal_goes_above_the_block(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    out = Tty()
    w = progress.Watcher(str(tmp_path / "n.jsonl"), total=1, stream=out)
    w._draw()
    w._draw()
    w.add({"event": "note", "message": "TransNetV2 precision auto: bf16 on this cpu"})
    w._draw()
    text = out.getvalue()
    assert "\r\x1b[Jreelbeam: TransNetV2 precision auto: bf16 on this cpu\nreelbeam: videos 0/1" in text


def test_workers_say_which_stage_they_work_on_at_most_once_a_second(tmp_path, monkeypatch):
    from reelbeam.transforms.timing import StageClock

    path = tmp_path / "w.jsonl"
    monkeypatch.setenv(progress.ENV, str(path))
    monkeypatch.setattr(progress, "_working", {})
    clock = StageClock()
    for _ in range(100):
        clock.call("scene_clips", lambda: None)
        list(clock.timed("shot_keyframes", lambda: iter([1, 2])))
    import json

    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["event"], e["stage"]) for e in events] == [("working", "scene_clips"), ("working", "shot_keyframes")]
    monkeypatch.delenv(progress.ENV)
    monkeypatch.setattr(progress, "_working", {})
    clock.call("scene_clips", lambda: None)  # a remote worker: nothing written, nothing remembered
    assert progress._working == {}


def test_a_stage_step_reports_the_videos_it_takes_up(tmp_path, monkeypatch):
    import json

    import apache_beam as beam

    from reelbeam.transforms.portable import _Checked

    class Fn(beam.DoFn):
        def process(self, element):
            yield beam.pvalue.TaggedOutput("processed", element)
            yield beam.pvalue.TaggedOutput("rows", {"video_id": element})

    path = tmp_path / "s.jsonl"
    monkeypatch.setenv(progress.ENV, str(path))
    monkeypatch.setattr(progress, "_working", {})
    step = _Checked(Fn(), "rows")
    step.timed_as = "scene_clips"
    assert [getattr(o, "tag", "main") for o in step.process("v1")] == ["processed", "main"]
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["event"], e["stage"], e.get("video_id")) for e in events] == [
        ("working", "scene_clips", None), ("processed", "scene_clips", "v1")]
