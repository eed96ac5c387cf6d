from reelbeam.schemas.rows import scene_rows


def _shot(idx, s, e, kind=None, first=None, last=None):
    return {"shot_idx": idx, "start_frame": s, "end_frame": e, "start_time": s / 25, "end_time": (e + 1) / 25,
            "transition_kind": kind, "transition_first_frame": first, "transition_last_frame": last}


def test_a_scene_reports_the_span_of_the_transition_into_it_and_still_starts_at_its_first_shot():
    shots = [_shot(0, 0, 19), _shot(1, 20, 69, "cut", 19, 20), _shot(2, 70, 99, "dissolve", 49, 69)]
    rows = scene_rows("v", shots, [(0, 1), (2, 2)], [0.9, None], "m")
    assert [(r["start_frame"], r["end_frame"]) for r in rows] == [(0, 69), (70, 99)]
    assert [(r["transition_kind"], r["transition_first_frame"], r["transition_last_frame"]) for r in rows] == [
        (None, None, None), ("dissolve", 49, 69)]


def test_shots_without_transition_columns_give_nulls():
    shots = [{k: v for k, v in _shot(i, s, e).items() if not k.startswith("transition")} for i, (s, e) in enumerate([(0, 9), (10, 19)])]
    rows = scene_rows("v", shots, [(0, 0), (1, 1)], [0.5, None], "m")
    assert all(r["transition_kind"] is None and r["transition_first_frame"] is None for r in rows)
