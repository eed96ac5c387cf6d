import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reelbeam.schemas import SCHEMA_VERSION, TABLES, schema_for
from reelbeam.schemas.records import Failure, VideoRef
from reelbeam.schemas.tables import field_docs

DESIGN_TABLES = {
    "videos", "failures", "frames", "shots", "keyframes", "shot_embeddings", "boundaries", "scenes",
    "frame_embeddings", "frame_scores", "summaries", "video_embeddings", "motion",
    "scene_clips",  # beyond DESIGN.md: written by --save-scene-clips (issue 5)
    "stage_runs",  # the resume ledger (issue 11)
}


def test_every_design_table_has_a_schema():
    assert set(TABLES) == DESIGN_TABLES


@pytest.mark.parametrize("table", sorted(DESIGN_TABLES))
def test_schema_carries_version_and_field_docs(table):
    schema = schema_for(table)
    assert schema.metadata[b"reelbeam.table"].decode() == table
    assert schema.metadata[b"reelbeam.schema_version"].decode() == SCHEMA_VERSION
    assert schema.field(0).name == "video_id"
    for name, _type, doc in field_docs(table):
        assert doc, f"{table}.{name} has no doc"


def test_unknown_table_names_the_known_ones():
    with pytest.raises(KeyError, match="known tables"):
        schema_for("shotz")


def _example(type_: pa.DataType):
    if pa.types.is_string(type_):
        return "x"
    if pa.types.is_integer(type_):
        return 1
    if pa.types.is_floating(type_):
        return 0.5
    if pa.types.is_boolean(type_):
        return True
    if pa.types.is_binary(type_):
        return b"\x00\x01"
    if pa.types.is_timestamp(type_):
        return datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    if pa.types.is_fixed_size_list(type_):
        return [_example(type_.value_type)] * type_.list_size
    if pa.types.is_list(type_):
        return [_example(type_.value_type)] * 3
    raise AssertionError(type_)


@pytest.mark.parametrize("table", sorted(DESIGN_TABLES))
def test_parquet_round_trip_keeps_schema_and_values(table, tmp_path):
    schema = schema_for(table)
    row = {f.name: _example(f.type) for f in schema}
    path = tmp_path / f"{table}.parquet"
    pq.write_table(pa.Table.from_pylist([row], schema=schema), path, compression="zstd")
    back = pq.read_table(path)
    assert back.schema.equals(schema, check_metadata=True)
    assert back.to_pylist() == [row]


def test_failure_row_matches_failures_schema():
    row = Failure.of(VideoRef("abc", "/x.mp4", 3), "decode", "invalid_data", "bad").to_row()
    table = pa.Table.from_pylist([row], schema=schema_for("failures"))
    assert table.num_rows == 1
    assert table.column("error_type").to_pylist() == ["invalid_data"]
