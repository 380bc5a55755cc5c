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

from fleetcast.resources import landing as landing_module
from fleetcast.resources.landing import (
    CHUNK_BYTES,
    BinaryFile,
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


def test_refusals_name_the_path_as_given_and_the_fix(land: Path, tmp_path: Path) -> None:
    root = land.resolve()
    (land / "alias").symlink_to(land / "sub", target_is_directory=True)
    cases = {
        "../outside.csv": f"../outside.csv is outside the landing folder {root}: move it there",
        "alias/c.jsonl": f"alias/c.jsonl is a symlink ({root}/alias): copy the file in instead",
        "notes.txt": (
            "notes.txt: unsupported file type '.txt' (use .csv, .jsonl, .ndjson, .parquet)"
        ),
        "missing.csv": f"missing.csv: no such file in the landing folder {land}",
        str(tmp_path / "outside.csv"): (
            f"{tmp_path}/outside.csv is outside the landing folder {root}: move it there"
        ),
    }
    assert {given: _refusal(land, Path(given)) for given in cases} == cases
    # a folder holding a link names the link
    assert _refusal(land, land) == (
        f"{land}/out.csv is a symlink ({land}/out.csv): copy the file in instead"
    )
    # reached through a symlinked parent folder: the message names the real landing folder
    parent = tmp_path / "parent-link"
    parent.symlink_to(tmp_path, target_is_directory=True)
    assert _refusal(parent / "landing", Path("../outside.csv")) == cases["../outside.csv"]


def _refusal(landing: Path, given: Path, base: Path | None = None) -> str:
    with pytest.raises(PathRefused) as info:
        resolve_inputs(landing, [given], base)
    return str(info.value)


def test_relative_paths_resolve_against_the_landing_folder_wherever_we_run(
    land: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # not the landing folder
    assert resolve_inputs(land, [Path("a.csv"), Path("sub/e.CSV")]) == [
        land / "a.csv",
        land / "sub/e.CSV",
    ]


def test_relative_paths_from_the_working_folder_and_the_did_you_mean_hint(
    land: Path, tmp_path: Path
) -> None:
    work = tmp_path  # the CLI's working folder, above the landing folder
    assert resolve_inputs(land, [Path("landing/a.csv")], base=work) == [land / "a.csv"]
    root = land.resolve()
    outside = f"is outside the landing folder {root}: move it there"
    # a.csv is not in the working folder but is in the landing folder: the old meaning
    assert _refusal(land, Path("a.csv"), work) == (
        f"a.csv {outside} (did you mean {land / 'a.csv'}?)"
    )
    # no hint when the landing folder has no such file, for '..' paths and absolute paths
    assert _refusal(land, Path("outside.csv"), work) == f"outside.csv {outside}"
    assert _refusal(land, Path("../outside.csv"), land / "sub") == f"../outside.csv {outside}"
    given = work / "outside.csv"
    assert _refusal(land, given, work) == f"{given} {outside}"
    # nor for a name that is a link in the landing folder
    assert _refusal(land, Path("out.csv"), work) == f"out.csv {outside}"


def test_the_resolved_path_is_checked_on_its_own(
    land: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: a path that passed the lexical check (say, a link made between the
    check and the read) is still refused once resolved outside the landing folder."""
    monkeypatch.setattr(landing_module, "_refuse_links", lambda *_: None)
    assert _refusal(land, Path("out.csv")) == (
        f"out.csv is outside the landing folder {land}: move it there"
    )
    assert _refusal(land, Path("a.csv"), tmp_path) == (
        f"a.csv is outside the landing folder {land}: move it there"
        f" (did you mean {land / 'a.csv'}?)"
    )


def test_binary_text_files_are_refused_whole_with_the_offset(tmp_path: Path) -> None:
    nul = "binary content (NUL byte at offset"
    cut = "not UTF-8 text (byte 0x"
    enc = "binary, or another encoding (save it as UTF-8)"
    cases = {
        "nul.csv": (b"\x00ts,value\n", f"{nul} 0), not a csv text file"),
        "nul.jsonl": (b'{"a": 1}\x00\x00\n\x00', f"{nul} 8), not a jsonl text file"),
        "latin1.csv": (b"ts,value\n\xe9t\xe9,1\n", f"{cut}e9 at offset 9): {enc}"),
        # a short file ending mid-character
        "cut.csv": (b"ts\n\xc3", f"{cut}c3 at offset 3): {enc}"),
    }  # fmt: skip
    for name, (data, why) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(BinaryFile) as info:
            read_raw(path)
        assert str(info.value) == f"{name}: unreadable: {why}"


def test_the_whole_text_file_is_checked_chunk_by_chunk(tmp_path: Path) -> None:
    # a character cut by a chunk boundary is not an encoding error
    cut = tmp_path / "cut.csv"
    cut.write_bytes(b"v\n" + b"a" * (CHUNK_BYTES - 3) + "é\n".encode())
    assert read_raw(cut)["v"].to_list() == ["a" * (CHUNK_BYTES - 3) + "é"]
    # three- and four-byte characters across several boundaries, at every alignment
    wide = tmp_path / "wide.csv"
    wide.write_bytes(b"v\n" + ("€𝄞" * (CHUNK_BYTES // 3)).encode() + b"\n")
    assert read_raw(wide)["v"].to_list() == ["€𝄞" * (CHUNK_BYTES // 3)]
    # a NUL byte past the first chunk is found, at its offset in the file
    late = tmp_path / "late.csv"
    offset = 2 + 100 * 1024
    late.write_bytes(b"v\n" + b"a" * (100 * 1024) + b"\x00b\n")
    with pytest.raises(BinaryFile, match=rf"NUL byte at offset {offset}\), not a csv text file"):
        read_raw(late)
    # bad UTF-8 past the first chunk, and a character the boundary cut that turns out invalid
    # (0xe2 opens a three-byte character; "x" is no part of one)
    far = b"v\n" + b"a" * (CHUNK_BYTES + 10)
    held = b"v\n" + b"a" * (CHUNK_BYTES - 3)  # 0xe2 is the first chunk's last byte
    for name, body in (("far.csv", far), ("held.csv", held)):
        bad = tmp_path / name
        bad.write_bytes(body + b"\xe2x\n")
        with pytest.raises(BinaryFile, match=rf"byte 0xe2 at offset {len(body)}\)"):
            read_raw(bad)


def test_tiny_and_blank_csv_files(tmp_path: Path) -> None:
    one = tmp_path / "one.csv"
    one.write_text("a")  # one byte: a header, no rows
    assert read_raw(one).columns == ["a"] and read_raw(one).height == 0
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n")  # not an error: nothing to read
    assert read_raw(blank).shape == (0, 0)


def test_json_lines_false_and_all_null_columns_stay_text(tmp_path: Path) -> None:
    jl = tmp_path / "a.jsonl"
    jl.write_text('{"b": false, "n": null, "i": 3}\n{"b": true, "n": null, "i": -1}\n')
    frame = read_raw(jl)
    assert frame.to_dicts() == [{"b": "false", "n": None, "i": "3"},
                                {"b": "true", "n": None, "i": "-1"}]  # fmt: skip
    assert frame.schema == {"b": pl.String, "n": pl.String, "i": pl.String}


def test_parser_errors_are_one_line_with_a_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pq = tmp_path / "x.parquet"
    pq.write_bytes(b"PAR1")
    txt = tmp_path / "x.txt"
    txt.write_text(CSV)
    with pytest.raises(UnreadableFile) as info:
        read_raw(txt)
    assert str(info.value) == "x.txt: unsupported file type '.txt'"
    for error, first in ((ValueError("bad footer\ndetail"), "bad footer"),
                         (OSError(""), "OSError")):  # fmt: skip

        def fail(_path: Path, error: Exception = error) -> pl.DataFrame:
            raise error

        monkeypatch.setattr(pl, "read_parquet", fail)
        with pytest.raises(UnreadableFile) as info:
            read_raw(pq)
        assert str(info.value) == f"x.parquet: cannot read as parquet: {first}"
        assert info.value.__cause__ is error
