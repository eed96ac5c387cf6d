"""Every query in docs/analytics.md runs against a small output; its SQL (DuckDB over the tables
registered as the document says), pandas and Polars forms give the same answer, and that answer is
the right one, worked out here independently. The output also holds what a safe reader must not
see (a file that a re-run replaced, a file of a killed run): the documented readers skip them, a
Parquet glob does not, and after `reelbeam vacuum --retention-hours 0` a glob reads the tables.
The README's DuckDB example runs too."""

import os
import re
import shutil

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from reelbeam import read
from reelbeam.schemas.tables import schema_for
from reelbeam.store import tables as store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(REPO, "docs", "analytics.md")
README = os.path.join(REPO, "README.md")
DOC_SHOT_ID = "5efecf2cec27e2fd"  # the shot id the document uses as an example
SETUP = "Reading the tables"
QUERIES = {
    "Longest scenes",
    "Static shots by motion score",
    "Shots nearest to a given shot, by embedding",
    "Frames most relevant to a query",
    "Cutting rate per video",
}
FORMS = ("sql", "pandas", "polars")


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def sections() -> dict[str, list[tuple[str, str]]]:
    """heading -> its code blocks, for the document's sections that have some."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    out = {}
    for part in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        heading, body = part.split("\n", 1)
        if code_blocks(body):
            out[heading.strip()] = code_blocks(body)
    return out


def forms(blocks) -> dict[str, str]:
    """A query section's blocks by form: SQL, pandas (reelbeam.read) and Polars."""
    out = {}
    for lang, code in blocks:
        form = "sql" if lang == "sql" else "polars" if "import polars" in code else "pandas"
        assert form not in out, f"two {form} blocks"
        out[form] = code
    return out


SECTIONS = sections()
QUERY_FORMS = {h: forms(b) for h, b in SECTIONS.items() if h in QUERIES}


def setup_block(marker: str) -> str:
    (code,) = [c for _, c in SECTIONS[SETUP] if marker in c]
    return code


def test_the_document_has_the_queries_the_tests_check():
    assert set(QUERY_FORMS) == QUERIES
    assert all(set(f) == set(FORMS) for f in QUERY_FORMS.values())
    # the setup: the tested DuckDB form, the shell form with a view per table the queries use,
    # and the (untested) Spark form
    used = {t for f in QUERY_FORMS.values() for t in re.findall(r"(?:FROM|JOIN) (\w+)", f["sql"])} - {"query"}
    shell = setup_block("delta_scan")
    assert {t for t in used if f"CREATE VIEW {t} AS FROM delta_scan(" in shell} == used
    assert "con.register(" in setup_block("duckdb.connect()")
    spark = setup_block("pyspark")
    assert all(f'"{t}"' in spark for t in used) and 'format("delta")' in spark


@pytest.fixture(scope="module")
def workdir(full_output, tmp_path_factory):
    """A folder holding a copy of the output as `out` (the current directory while the queries
    run), plus what a safe reader must not see:
    - a re-run of the plain video's `videos` row: its earlier file stays in the folder, replaced;
    - a data file of `shots` that a killed run wrote and never committed: a long shot with motion
      score 0, which would top the static shots."""
    src, facts = full_output
    folder = tmp_path_factory.mktemp("analytics")
    out = str(folder / "out")
    shutil.copytree(src, out)
    plain = facts["plain"]

    videos = read(out, "videos")
    plain_row = videos.filter(pc.equal(videos.column("video_id"), plain))
    (decode,) = {p.stage for p in store.active_files(out, "videos")}
    settings = read(out, "stage_runs").to_pandas().query("stage == @decode and video_id == @plain").settings.item()
    rerun = store.new_run_id()
    path = store.write_data_file(store.table_uri(out, "videos"), "videos", plain_row, rerun, decode)
    store.commit_stages(out, rerun, [store.StageCommit(decode, settings, ["videos"], {"videos": [path]}, [plain])])

    killed = {"video_id": plain, "shot_idx": 99, "shot_id": "killedrun0000000", "start_frame": 0, "end_frame": 249,
              "start_time": 0.0, "end_time": 10.0, "num_frames": 250, "motion_score": 0.0}
    store.write_data_file(store.table_uri(out, "shots"), "shots",
                          pa.Table.from_pylist([killed], schema=schema_for("shots")), store.new_run_id(), "shots")
    return folder, facts


@pytest.fixture(scope="module")
def con(workdir):
    """The DuckDB connection that the document's tested setup makes."""
    folder, _ = workdir
    here = os.getcwd()
    os.chdir(folder)
    try:
        scope = {}
        exec(compile(setup_block("duckdb.connect()"), f"{DOC}:{SETUP}", "exec"), scope)  # noqa: S102
    finally:
        os.chdir(here)
    return scope["con"]


def run_python(code: str, name: str) -> pd.DataFrame:
    scope = {}
    exec(compile(code, f"{DOC}:{name}", "exec"), scope)  # noqa: S102 (the documented code is the test)
    result = scope["result"]
    if not isinstance(result, pd.DataFrame):
        result = result.to_pandas()  # Polars
    return result.reset_index(drop=True)


def run_all(heading, workdir, con, monkeypatch, replace=()):
    """The section's SQL, pandas and Polars answers, checked equal; returns the SQL one."""
    folder, _ = workdir
    monkeypatch.chdir(folder)
    code = dict(QUERY_FORMS[heading])
    for old, new in replace:
        assert all(old in c for c in code.values())
        code = {f: c.replace(old, new) for f, c in code.items()}
    by_sql = con.sql(code["sql"]).df()
    assert len(by_sql) > 0
    for form in ("pandas", "polars"):
        other = run_python(code[form], f"{heading} ({form})")
        assert list(other.columns) == list(by_sql.columns), form
        assert len(other) == len(by_sql), form
        pd.testing.assert_frame_equal(by_sql, other, check_dtype=False, check_exact=False, rtol=1e-5, atol=1e-6,
                                      obj=f"{heading}: SQL vs {form}")
    return by_sql


def test_longest_scenes(workdir, con, monkeypatch):
    result = run_all("Longest scenes", workdir, con, monkeypatch)
    scenes = read(str(workdir[0] / "out"), "scenes").to_pandas()
    durations = sorted(scenes.end_time - scenes.start_time, reverse=True)[:10]
    assert np.allclose(result.seconds, durations)


def test_static_shots_by_motion_score(workdir, con, monkeypatch):
    result = run_all("Static shots by motion score", workdir, con, monkeypatch)
    shots = read(str(workdir[0] / "out"), "shots").to_pandas()
    eligible = shots[shots.motion_score.notna() & (shots.end_time - shots.start_time >= 1.0)]
    assert np.allclose(result.motion_score, sorted(eligible.motion_score)[:10])
    assert (result.end_time - result.start_time >= 1.0).all()
    assert 99 not in set(result.shot_idx)  # the killed run's shot


def test_shots_nearest_to_a_given_shot(workdir, con, monkeypatch):
    _, facts = workdir
    shots = read(str(workdir[0] / "out"), "shots").to_pandas()
    shot0 = shots[(shots.video_id == facts["plain"]) & (shots.shot_idx == 0)].shot_id.item()
    result = run_all("Shots nearest to a given shot, by embedding", workdir, con, monkeypatch,
                     replace=[(DOC_SHOT_ID, shot0)])
    # the fixture made shot 1 of the same video a near copy of shot 0
    assert (result.video_id[0], result.shot_idx[0]) == (facts["plain"], 1)
    assert result.similarity[0] > 0.85 and shot0 not in set(result.shot_id)
    assert list(result.similarity) == sorted(result.similarity, reverse=True)


def test_frames_most_relevant_to_a_query(workdir, con, monkeypatch):
    _, facts = workdir
    result = run_all("Frames most relevant to a query", workdir, con, monkeypatch)
    best = max(score for (vid, q), (score, _) in facts["best_frame"].items() if q == "a red car")
    assert result.score[0] == pytest.approx(best)
    assert list(result.score) == sorted(result.score, reverse=True)
    assert len(result) == len(set(zip(result.uri, result.frame_idx)))  # no video counted twice


def test_cutting_rate_per_video(workdir, con, monkeypatch):
    result = run_all("Cutting rate per video", workdir, con, monkeypatch)
    videos = read(str(workdir[0] / "out"), "videos").to_pandas()
    assert len(result) == len(videos) == 2
    expected = sorted(videos.num_shots / (videos.duration_s / 60), reverse=True)
    assert np.allclose(result.shots_per_minute, expected)


def rows(table: pa.Table) -> list:
    return sorted(repr(sorted(r.items())) for r in table.to_pylist())


def test_deltalake_arrow_datasets_read_what_reelbeam_reads(workdir):
    """The document's alternative without reelbeam: `DeltaTable(...).to_pyarrow_dataset()`."""
    from deltalake import DeltaTable

    from reelbeam.api import tables_present

    out = str(workdir[0] / "out")
    present = tables_present(out)
    assert {"videos", "shots", "scenes", "shot_embeddings", "frame_scores"} <= set(present)
    for table in present:
        assert rows(DeltaTable(os.path.join(out, table)).to_pyarrow_dataset().to_table()) == rows(read(out, table)), table


def glob_views(out: str, tables) -> duckdb.DuckDBPyConnection:
    glob = duckdb.connect()
    for table in tables:
        glob.sql(f"CREATE VIEW {table} AS FROM read_parquet('{out}/{table}/*.parquet')")
    return glob


def test_a_parquet_glob_is_not_a_safe_reader(workdir, con, monkeypatch):
    """What the document warns of: over the same folder, a glob counts the replaced `videos` row
    and the killed run's shot."""
    monkeypatch.chdir(workdir[0])
    glob = glob_views("out", ("videos", "shots", "scenes"))
    assert glob.sql("SELECT count(*) FROM videos").fetchall()[0][0] == 3  # the plain video twice
    assert con.sql("SELECT count(*) FROM videos").fetchall()[0][0] == 2
    sql = QUERY_FORMS["Static shots by motion score"]["sql"]
    assert glob.sql(sql).df().shot_idx[0] == 99 != con.sql(sql).df().shot_idx[0]
    sql = QUERY_FORMS["Longest scenes"]["sql"]
    assert len(glob.sql(sql).df()) > len(con.sql(sql).df())  # the plain video's scenes twice


def test_after_vacuum_with_no_retention_a_glob_reads_the_tables(workdir, tmp_path, monkeypatch, capsys):
    from reelbeam.store.commands import vacuum_main

    out = str(tmp_path / "out")
    shutil.copytree(workdir[0] / "out", out)
    assert vacuum_main([out, "--retention-hours", "0"]) == 0
    capsys.readouterr()
    glob = duckdb.connect()
    for table in ("videos", "shots", "scenes"):
        globbed = pa.table(glob.sql(f"FROM read_parquet('{out}/{table}/*.parquet')").arrow())
        assert rows(globbed.cast(schema_for(table))) == rows(read(out, table)), table


def test_the_readme_example_reads_the_committed_rows(workdir, monkeypatch):
    with open(README, encoding="utf-8") as f:
        text = f.read()
    after = text.split("Then, for example:", 1)[1]
    lang, code = code_blocks(after)[0]
    assert lang == "python" and "*.parquet" not in code
    assert "duckdb.sql(" in code and ").show()" in code
    code = code.replace("duckdb.sql(", "result = duckdb.sql(", 1).replace(").show()", ").df()", 1)
    monkeypatch.chdir(workdir[0])
    scope = {}
    exec(compile(code, f"{README}:example", "exec"), scope)  # noqa: S102
    shots = read("out", "shots").to_pandas()
    static = shots[(shots.motion_score < 0.5) & (shots.end_time - shots.start_time >= 2)]
    assert sorted(scope["result"].shot_idx) == sorted(static.shot_idx)
    assert 99 not in set(scope["result"].shot_idx)  # the killed run's shot, which a glob would list
