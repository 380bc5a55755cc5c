"""The landing folder's checks and readers on their own (no DuckDB, no GX): which paths
resolve_inputs accepts and refuses, and what read_raw returns. Fast, so mutation testing of
fleetcast/resources/landing.py can run them for every mutant."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from fleetcast.resources.landing import (
    PathRefused,
    UnreadableFile,
    checksum,
    read_raw,
    resolve_inputs,
)

CSV = "ts,game_type,metric,value\n2024-01-01,a,players,1\n"


@pytest.fixture
def land(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A landing folder with files, a sub-folder, hidden and unsupported files, and links;
    the working folder is the landing folder (relative paths mean the same either way)."""
    root = tmp_path / "landing"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for rel in ("a.csv", "b.parquet.csv", "sub/c.jsonl", "sub/deep/d.ndjson", "sub/e.CSV",
                ".hidden/h.csv", "sub/.dot.csv", "notes.txt"):  # fmt: skip
        (root / rel).write_text(CSV)
    (tmp_path / "outside.csv").write_text(CSV)
    (root / "out.csv").symlink_to(tmp_path / "outside.csv")
    monkeypatch.chdir(root)
    return root


def test_files_and_folders_inside_are_accepted_in_order(land: Path) -> None:
    got = resolve_inputs(land, [land / "sub", Path("a.csv"), land / "a.csv"])
    assert got == [land / "sub/c.jsonl", land / "sub/deep/d.ndjson", land / "sub/e.CSV",
                   land / "a.csv"]  # fmt: skip
    # a folder: every supported file, recursively, sorted; hidden ones and others skipped
    with pytest.raises(PathRefused, match="symlink"):  # the folder holds a link: refused
        resolve_inputs(land, [land])
    (land / "out.csv").unlink()
    names = [p.relative_to(land).as_posix() for p in resolve_inputs(land, [land])]
    assert names == ["a.csv", "b.parquet.csv", "sub/c.jsonl", "sub/deep/d.ndjson", "sub/e.CSV"]


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("../outside.csv", "outside the landing folder"),
        ("sub/../../outside.csv", "outside the landing folder"),
        ("sub/../a.csv", "outside the landing folder"),  # any '..' part is refused
        ("out.csv", "symlink"),
        ("notes.txt", "unsupported file type '.txt'"),
        ("missing.csv", "no such file"),
    ],
)
def test_bad_paths_are_refused_with_the_reason(land: Path, given: str, why: str) -> None:
    with pytest.raises(PathRefused, match=why):
        resolve_inputs(land, [land / given])


def test_absolute_paths_elsewhere_and_links_on_the_way_are_refused(
    land: Path, tmp_path: Path
) -> None:
    with pytest.raises(PathRefused, match="outside"):
        resolve_inputs(land, [tmp_path / "outside.csv"])
    (land / "alias").symlink_to(land / "sub", target_is_directory=True)
    for given in (land / "alias" / "c.jsonl", land / "alias"):
        with pytest.raises(PathRefused, match="symlink"):
            resolve_inputs(land, [given])
    # nothing is returned for a list with one bad path (no partial result)
    with pytest.raises(PathRefused):
        resolve_inputs(land, [land / "a.csv", land / "alias" / "c.jsonl"])


def test_the_landing_folder_itself(tmp_path: Path, land: Path) -> None:
    with pytest.raises(PathRefused, match="does not exist"):
        resolve_inputs(tmp_path / "nope", [Path("a.csv")])
    link = tmp_path / "land-link"
    link.symlink_to(land, target_is_directory=True)
    with pytest.raises(PathRefused, match="is a symlink"):
        resolve_inputs(link, [Path("a.csv")])
    # reached through a symlinked parent folder: its own files still match
    parent = tmp_path / "parent-link"
    parent.symlink_to(tmp_path, target_is_directory=True)
    assert resolve_inputs(parent / "landing", [parent / "landing" / "a.csv"]) == [land / "a.csv"]


def test_checksum_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    data = bytes(range(256)) * 5000  # more than one read chunk
    path.write_bytes(data)
    assert checksum(path) == hashlib.sha256(data).hexdigest()


def test_read_raw_keeps_every_value_as_text(tmp_path: Path) -> None:
    csv = tmp_path / "a.csv"
    csv.write_text("ts,value\n2024-01-01T00:00:00,007\n2024-01-01T01:00:00,\n")
    assert read_raw(csv).to_dicts() == [{"ts": "2024-01-01T00:00:00", "value": "007"},
                                        {"ts": "2024-01-01T01:00:00", "value": None}]  # fmt: skip
    empty = tmp_path / "e.csv"
    empty.write_text("")
    assert read_raw(empty).height == 0
    jl = tmp_path / "a.jsonl"
    jl.write_text('{"a": 1.5, "b": true, "c": null, "d": [1]}\n\n{"a": 2, "e": "x"}\n')
    assert read_raw(jl).to_dicts() == [
        {"a": "1.5", "b": "true", "c": None, "d": "[1]", "e": None},
        {"a": "2", "b": None, "c": None, "d": None, "e": "x"},
    ]
    pq = tmp_path / "a.parquet"
    paris = ZoneInfo("Europe/Paris")
    pl.DataFrame({"ts": [datetime(2024, 1, 1, 2, tzinfo=paris)], "v": [1.25],
                  "day": [date(2024, 1, 1)]}).write_parquet(pq)  # fmt: skip
    assert read_raw(pq).to_dicts() == [
        {"ts": "2024-01-01T01:00:00", "v": "1.25", "day": "2024-01-01"}  # UTC, naive
    ]


def test_parquet_nested_cells_are_json_text(tmp_path: Path) -> None:
    pq = tmp_path / "n.parquet"
    pl.DataFrame({"l": [[1, 2], None, []], "ls": [[{"x": 1}], [], None],
                  "s": [{"a": [1], "t": datetime(2024, 1, 1)}, None, {"a": [], "t": None}]}
                 ).write_parquet(pq)  # fmt: skip
    # as a JSON-lines file would hold them; a timestamp inside a struct as its text
    assert read_raw(pq).to_dicts() == [
        {"l": "[1, 2]", "ls": '[{"x": 1}]', "s": '{"a": [1], "t": "2024-01-01 00:00:00"}'},
        {"l": None, "ls": "[]", "s": None},
        {"l": "[]", "ls": None, "s": '{"a": [], "t": null}'},
    ]


@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        ("bad.jsonl", '{"a": 1}\nnot json\n', "line 2 is not JSON"),
        ("list.jsonl", "[1, 2]\n", "line 1 is not a JSON object"),
        ("bad.parquet", "not parquet", "cannot read as parquet"),
        ("bad.csv", 'a,b\n"open,1\n', "cannot read as csv"),
    ],
)
def test_unreadable_files_say_why(tmp_path: Path, name: str, text: str, why: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UnreadableFile, match=why) as info:
        read_raw(path)
    assert str(info.value).startswith(name)
    assert json.dumps(str(info.value))  # one line of text
