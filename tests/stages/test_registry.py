"""The registry: every stage keeps the contract, and the docs' stage graph is generated from it."""

import os
import re

import pytest

from reelbeam import stages
from reelbeam.schemas.tables import TABLES
from reelbeam.stages.base import STREAMS, PassStage

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs")


@pytest.mark.parametrize("cls", stages.REGISTRY, ids=lambda c: c.name)
def test_every_stage_declares_known_tables_and_a_way_to_turn_it_on(cls):
    assert re.fullmatch(r"[a-z][a-z0-9_]*", cls.name)
    assert cls.title and cls.enabled_by
    for table in (*cls.reads, *cls.optional_reads):
        assert table in TABLES or table in STREAMS, table
    for table in cls.writes:
        assert table in TABLES, table
    if issubclass(cls, PassStage):
        assert not cls.reads, "pass stages read decoded frames"
        for tag, table in cls.streams.items():
            assert table is None or table in cls.writes, tag


def test_names_are_unique_and_reads_come_from_earlier_stages():
    names = [c.name for c in stages.REGISTRY]
    assert len(names) == len(set(names))
    made = set()
    for cls in stages.REGISTRY:
        for table in cls.reads:
            assert table in made, f"{cls.name} reads {table} before any stage writes it"
        made |= set(cls.writes) | ({t for t, d in cls.streams.items() if d is None} if cls.in_decode_pass else set())


def test_architecture_doc_shows_the_registry():
    text = open(os.path.join(DOCS, "architecture.md"), encoding="utf-8").read()
    begin, end = "<!-- stage graph: generated -->\n", "<!-- end of stage graph -->"
    section = text[text.index(begin) + len(begin) : text.index(end)]
    assert section == stages.graph_markdown(), "regenerate the stage graph in docs/architecture.md"
