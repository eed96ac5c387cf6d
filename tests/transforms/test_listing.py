import collections
import os

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from reelbeam.transforms.listing import (
    VIDEO_EXTENSIONS,
    ListVideos,
    canonical_uri,
    check_input_spec,
    expand_input_spec,
    make_video_id,
    skipped_files,
)


@pytest.fixture()
def tree(tmp_path):
    """a.mp4, sub/b.MKV, sub/deeper/c.webm, notes.txt (not a video), with sizes 1, 2, 3."""
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "a.mp4").write_bytes(b"1")
    (tmp_path / "sub" / "b.MKV").write_bytes(b"22")
    (tmp_path / "sub" / "deeper" / "c.webm").write_bytes(b"333")
    (tmp_path / "readme.md").write_text("not a video")
    return tmp_path


def _uris(spec):
    return sorted(u for u, _s, _e in expand_input_spec(spec))


def test_video_id_is_deterministic_and_depends_on_size():
    assert make_video_id("gs://b/x.mp4", 10) == make_video_id("gs://b/x.mp4", 10)
    assert make_video_id("gs://b/x.mp4", 10) != make_video_id("gs://b/x.mp4", 11)
    assert len(make_video_id("x", None)) == 16


def test_single_file(tree):
    assert list(expand_input_spec(str(tree / "a.mp4"))) == [(str(tree / "a.mp4"), 1, None)]


def test_folder_is_recursive_and_keeps_only_video_extensions(tree):
    assert _uris(str(tree)) == sorted(
        [str(tree / "a.mp4"), str(tree / "sub" / "b.MKV"), str(tree / "sub" / "deeper" / "c.webm")]
    )


def test_glob(tree):
    assert _uris(str(tree / "sub" / "**" / "*.webm")) == [str(tree / "sub" / "deeper" / "c.webm")]


def test_text_manifest_with_comments_relative_entries_and_missing_file(tree):
    manifest = tree / "list.txt"
    manifest.write_text(f"# corpus\n{tree / 'a.mp4'}\nsub/b.MKV\n\nmissing.mp4\n")
    got = {u: (s, e) for u, s, e in expand_input_spec(str(manifest))}
    assert got[str(tree / "a.mp4")] == (1, None)
    assert got[f"{tree}/sub/b.MKV"] == (2, None)
    size, error = got[f"{tree}/missing.mp4"]
    assert size is None and "FileNotFoundError" in error


def test_csv_manifest_uses_uri_column(tree):
    manifest = tree / "list.csv"
    manifest.write_text(f"title,uri\nA,{tree / 'a.mp4'}\nC,{tree / 'sub/deeper/c.webm'}\n")
    assert _uris(str(manifest)) == [str(tree / "a.mp4"), str(tree / "sub/deeper/c.webm")]


def test_parquet_manifest(tree):
    manifest = tree / "list.parquet"
    pq.write_table(pa.table({"uri": [str(tree / "a.mp4")]}), manifest)
    assert _uris(str(manifest)) == [str(tree / "a.mp4")]


def test_fsspec_memory_folder_and_file_url(tree):
    fs = fsspec.filesystem("memory")
    fs.pipe("/corpus/x.mp4", b"12345")
    fs.pipe("/corpus/y.txt", b"no")
    assert list(expand_input_spec("memory://corpus")) == [("memory:///corpus/x.mp4", 5, None)]
    url = "file://" + str(tree / "a.mp4")
    assert list(expand_input_spec(url)) == [(str(tree / "a.mp4"), 1, None)]  # the canonical path


def test_canonical_uri_makes_local_paths_absolute_and_keeps_remote_urls(tree, monkeypatch):
    monkeypatch.chdir(tree)
    a = str(tree / "a.mp4")
    spellings = ["a.mp4", "./a.mp4", "sub/../a.mp4", a, f"{tree}//a.mp4"]
    spellings += ["file://" + a, "local://" + a, "file://a.mp4"]
    for spelling in spellings:
        assert canonical_uri(spelling) == a, spelling
    remote = ["gs://b/x/../y.mp4", "s3://b/y.mp4", "https://h/y.mp4?t=1", "memory:///c/x.mp4"]
    remote += ["simplecache::gs://b/y.mp4"]
    for url in remote:
        assert canonical_uri(url) == url
    assert canonical_uri(canonical_uri("a.mp4")) == a


def test_one_file_in_three_spellings_is_one_video_with_one_id(tree, monkeypatch):
    monkeypatch.chdir(tree)
    a = str(tree / "a.mp4")
    want = [(a, 1, make_video_id(a, 1))]
    for spec in ["a.mp4", a, "file://" + a]:
        assert [(u, s, make_video_id(u, s)) for u, s, _e in expand_input_spec(spec)] == want, spec
    assert make_video_id("a.mp4", 1) == make_video_id("file://" + a, 1) == make_video_id(a, 1)
    with TestPipeline() as p:
        out = p | ListVideos(["a.mp4", a, "file://" + a])
        assert_that(out["videos"] | beam.Map(lambda r: (r.uri, r.size_bytes, r.video_id)), equal_to(want))


def test_relative_folders_globs_and_manifests_list_absolute_paths(tree, monkeypatch):
    monkeypatch.chdir(tree / "sub")
    b, c = str(tree / "sub" / "b.MKV"), str(tree / "sub" / "deeper" / "c.webm")
    assert _uris(".") == _uris("file://" + str(tree / "sub")) == sorted([b, c])
    assert _uris("deeper/*.webm") == _uris("./deeper/../deeper/*.webm") == [c]
    (tree / "sub" / "list.txt").write_text("b.MKV\ndeeper/c.webm\n../sub/b.MKV\n")
    # The third entry is the first one spelled differently: one file, listed once.
    assert _uris("list.txt") == _uris("file://" + str(tree / "sub" / "list.txt")) == sorted([b, c])


def test_symlinks_are_kept_as_named_not_resolved(tree):
    link = tree / "link.mp4"
    link.symlink_to(tree / "a.mp4")
    assert canonical_uri(str(link)) == str(link)
    assert list(expand_input_spec(str(link))) == [(str(link), 1, None)]


def test_check_input_spec_rejects_what_names_nothing(tree):
    check_input_spec(str(tree))
    with pytest.raises(ValueError, match="no such file"):
        check_input_spec(str(tree / "nope"))
    with pytest.raises(ValueError, match="matches no file"):
        check_input_spec(str(tree / "*.avi"))


def test_list_videos_transform_dedups_and_reports_missing(tree):
    manifest = tree / "list.txt"
    manifest.write_text("missing.mp4\n")
    a = str(tree / "a.mp4")
    with TestPipeline() as p:
        out = p | ListVideos([a, a, str(tree / "sub"), str(manifest)])
        assert_that(
            out["videos"] | beam.Map(lambda r: (r.uri, r.size_bytes, r.video_id)),
            equal_to(
                [
                    (a, 1, make_video_id(a, 1)),
                    (str(tree / "sub" / "b.MKV"), 2, make_video_id(str(tree / "sub" / "b.MKV"), 2)),
                    (
                        str(tree / "sub" / "deeper" / "c.webm"),
                        3,
                        make_video_id(str(tree / "sub" / "deeper" / "c.webm"), 3),
                    ),
                ]
            ),
            label="videos",
        )
        assert_that(
            out["failures"] | beam.Map(lambda f: (os.path.basename(f["uri"]), f["stage"], f["error_type"])),
            equal_to([("missing.mp4", "list", "not_found")]),
            label="failures",
        )


def test_a_folder_that_holds_no_video_fails_before_the_run(tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="the folder is empty"):
        check_input_spec(str(empty))
    stills = tmp_path / "stills"
    (stills / "sub").mkdir(parents=True)
    for name in ["a.webp", "sub/b.webp", "notes.txt"]:
        (stills / name).write_bytes(b"x")
    counted = r"no file with a video extension; 3 files \(2 \.webp, 1 \.txt\)"
    with pytest.raises(ValueError, match=counted) as e:
        check_input_spec(str(stills))
    # The glob the message suggests takes them (and then they are rows in `failures` if not videos).
    hint = str(e.value).split("--input '")[2].split("'")[0]
    assert hint == f"{stills}/**/*.webp"
    check_input_spec(hint)
    assert _uris(hint) == [str(stills / "a.webp"), str(stills / "sub" / "b.webp")]


def test_a_glob_matching_only_folders_and_an_empty_manifest_name_nothing(tree):
    with pytest.raises(ValueError, match="matches no file"):
        check_input_spec(str(tree / "su*"))
    manifest = tree / "list.txt"
    manifest.write_text("# nothing yet\n\n")
    with pytest.raises(ValueError, match="the manifest names no file"):
        check_input_spec(str(manifest))
    manifest.write_text("a.mp4\n")
    check_input_spec(str(manifest))


def test_animated_gif_is_a_video_and_webp_is_not():
    assert ".gif" in VIDEO_EXTENSIONS and ".webp" not in VIDEO_EXTENSIONS


def test_a_folder_listing_counts_the_files_it_passes_over(tree):
    (tree / "anim.gif").write_bytes(b"gif")
    (tree / "sub" / "still.webp").write_bytes(b"webp")
    (tree / "sub" / "README").write_bytes(b"")
    skipped = collections.Counter()
    uris = sorted(u for u, _s, _e in expand_input_spec(str(tree), skipped))
    assert str(tree / "anim.gif") in uris and len(uris) == 4
    want = {".md": 1, ".webp": 1, "(none)": 1}
    assert dict(skipped) == want
    assert skipped_files(str(tree)) == want
    assert skipped_files(str(tree / "sub" / "*")) == {} and skipped_files(str(tree / "a.mp4")) == {}


def test_the_listing_says_how_many_files_it_passed_over(tree):
    (tree / "sub" / "still.webp").write_bytes(b"webp")
    lister = ListVideos([str(tree), str(tree / "sub"), str(tree / "a.mp4")])
    # readme.md once, still.webp twice (listed by both folder specs); each video once.
    assert lister.listing.skipped == {".md": 1, ".webp": 2}
    assert lister.listing.count == 3
    with TestPipeline() as p:
        out = p | lister
        names = out["videos"] | beam.Map(lambda r: os.path.basename(r.uri))
        assert_that(names, equal_to(["a.mp4", "b.MKV", "c.webm"]))


def test_an_empty_folder_as_input_is_a_configuration_error(tmp_path, capsys):
    from reelbeam.pipelines.cli import main

    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    assert main(["run", "--input", str(tmp_path / "empty"), "--output", str(out)]) == 2
    assert "the folder is empty" in capsys.readouterr().err
    assert not out.exists()
