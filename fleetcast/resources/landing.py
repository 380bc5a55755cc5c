"""The landing folder: which files may be read (R16) and how they are read (as text, losslessly).

Only regular files inside the configured landing folder are read. A path that escapes it
(``../x.csv``, an absolute path elsewhere) or that is, or passes through, a symlink is refused.
Relative paths resolve against ``base``: the working folder for the command line (``fleetcast
ingest landing/a.csv``, as every CLI treats paths), the landing folder for flows and library
callers that name files inside it. A directory means every supported file in it (recursively,
sorted by name).
"""

from __future__ import annotations

import codecs
import hashlib
import json
from pathlib import Path

import polars as pl

SUPPORTED_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class PathRefused(ValueError):
    """A path outside the landing folder, a symlink, or not a supported file."""


class UnreadableFile(ValueError):
    """A file that cannot be parsed as its format (broken CSV, corrupt Parquet, bad JSON)."""


class BinaryFile(UnreadableFile):
    """A text file (CSV, JSON lines) whose bytes are not text: binary garbage or not UTF-8.

    Unlike a broken file (perhaps still being copied), its bytes will never parse: it is
    rejected whole and recorded in the ledger.
    """


# how much of a text file is read at a time when checking it for binary content (all of it is)
CHUNK_BYTES = 64 * 1024


def resolve_inputs(landing: Path, paths: list[Path], base: Path | None = None) -> list[Path]:
    """The files to ingest for ``paths``, all checked to live inside ``landing``.

    A relative path is taken relative to ``base`` (the CLI passes the working folder), or to the
    landing folder when ``base`` is None. Raises PathRefused (one line, with the fix) for the
    first bad path; nothing is read then.
    """
    if landing.is_symlink():
        raise PathRefused(f"landing folder {landing} is a symlink: point --landing at a real dir")
    root = landing.resolve()
    bases = (root, landing.absolute())
    if not root.is_dir():
        raise PathRefused(f"landing folder {landing} does not exist")
    files: list[Path] = []
    for given in paths:
        candidate = given if given.is_absolute() else (base.absolute() if base else root) / given
        try:
            _refuse_links(bases, candidate, given)
        except PathRefused as exc:
            raise PathRefused(f"{exc}{_hint(landing, root, given, base)}") from None
        real = candidate.resolve()
        if not real.is_relative_to(root):
            raise PathRefused(
                f"{given} is outside the landing folder {landing}: move it there"
                f"{_hint(landing, root, given, base)}"
            )
        if real.is_dir():
            for child in sorted(real.rglob("*")):
                hidden = any(p.startswith(".") for p in child.relative_to(real).parts)
                if child.suffix.lower() in SUPPORTED_SUFFIXES and not hidden and child.is_file():
                    _refuse_links(bases, child, child)
                    files.append(child)
        elif real.is_file():
            if real.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise PathRefused(
                    f"{given}: unsupported file type {real.suffix!r} "
                    f"(use {', '.join(sorted(SUPPORTED_SUFFIXES))})"
                )
            files.append(real)
        else:
            raise PathRefused(f"{given}: no such file in the landing folder {landing}")
    return list(dict.fromkeys(files))  # each file once, in the order given


def _hint(landing: Path, root: Path, given: Path, base: Path | None) -> str:
    """' (did you mean landing/x.csv?)' when a working-folder-relative path names a file that
    exists relative to the landing folder (the old meaning of a relative path)."""
    if base is None or given.is_absolute() or ".." in given.parts:
        return ""
    inside = root / given
    if inside.exists() and not inside.is_symlink():
        return f" (did you mean {landing / given}?)"
    return ""


def _refuse_links(bases: tuple[Path, ...], path: Path, given: Path) -> None:
    """Refuse ``path`` if it is outside the landing folder (lexically: ``..`` parts count) or if
    it, or any folder between the landing folder and it, is a symlink.

    ``bases`` are the landing folder resolved and as given (made absolute), so a landing folder
    reached through a symlinked parent still matches its own files.
    """
    root = bases[0]
    for base in bases:
        absolute = path if path.is_absolute() else base / path
        try:
            rel = absolute.relative_to(base)
        except ValueError:
            continue
        current = base
        for part in rel.parts:
            if part == "..":
                raise PathRefused(f"{given} is outside the landing folder {root}: move it there")
            current = current / part
            if current.is_symlink():
                raise PathRefused(f"{given} is a symlink ({current}): copy the file in instead")
        return
    raise PathRefused(f"{given} is outside the landing folder {root}: move it there")


def checksum(path: Path) -> str:
    """sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_raw(path: Path) -> pl.DataFrame:
    """The file as a frame of text columns, one row per data row/record, nothing dropped.

    Empty cells become null. Raises UnreadableFile with the parser's reason.
    """
    fmt = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if fmt in ("csv", "jsonl"):
        _refuse_binary(path, fmt)
    try:
        if fmt == "csv":
            if path.stat().st_size == 0:
                return pl.DataFrame()
            return pl.read_csv(path, infer_schema=False, raise_if_empty=False)
        if fmt == "parquet":
            return _as_text(pl.read_parquet(path))
        if fmt == "jsonl":
            return _read_jsonl(path)
    except UnreadableFile:
        raise
    except Exception as exc:  # polars/arrow parse errors: one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableFile(f"{path.name}: cannot read as {fmt}: {first}") from exc
    raise UnreadableFile(f"{path.name}: unsupported file type {path.suffix!r}")


def _refuse_binary(path: Path, fmt: str) -> None:
    """Raise BinaryFile if a text file holds a NUL byte anywhere or is not UTF-8.

    The whole file is checked, read in chunks of CHUNK_BYTES (never all at once); the incremental
    decoder carries a multi-byte character cut by a chunk boundary over to the next chunk.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # of the chunk's first byte in the file
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(CHUNK_BYTES)
            nul = chunk.find(b"\x00")
            if nul >= 0:
                raise BinaryFile(
                    f"{path.name}: unreadable: binary content (NUL byte at offset "
                    f"{offset + nul}), not a {fmt} text file"
                )
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.start counts from the first byte the decoder still held (a character cut
                # by the previous chunk's end, at most 3 bytes) followed by this chunk
                held = len(exc.object) - len(chunk)
                raise BinaryFile(
                    f"{path.name}: unreadable: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                    f"at offset {offset - held + exc.start}): binary, or another encoding "
                    f"(save it as UTF-8)"
                ) from None
            if not chunk:
                return
            offset += len(chunk)


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as text: timestamps as ISO 8601 (UTC when zoned), numbers as written."""
    cols = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone:
                col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            col = col.dt.to_string("%Y-%m-%dT%H:%M:%S%.f")
        elif isinstance(dtype, pl.Date):
            col = col.dt.to_string("%Y-%m-%d")
        elif dtype.is_nested():
            col = col.map_elements(_nested_text, return_dtype=pl.String)
        cols.append(col.cast(pl.String).alias(name))
    return frame.select(cols)


def _nested_text(value: object) -> str:
    """A nested cell (list, array, struct) as JSON, as a JSON-lines file holds it; polars hands
    list cells over as Series, whose repr is not the data."""
    if isinstance(value, pl.Series):
        value = value.to_list()
    return json.dumps(value, default=str)


def _read_jsonl(path: Path) -> pl.DataFrame:
    """JSON lines, one object per non-blank line; values kept as text."""
    rows: list[dict[str, str | None]] = []
    columns: dict[str, None] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UnreadableFile(f"{path.name}: line {lineno} is not JSON: {exc.msg}") from exc
            if not isinstance(obj, dict):
                raise UnreadableFile(f"{path.name}: line {lineno} is not a JSON object")
            row = {k: _text(v) for k, v in obj.items()}
            columns.update(dict.fromkeys(row))
            rows.append(row)
    if not rows:
        return pl.DataFrame()
    names = list(columns)
    return pl.DataFrame(
        {n: [r.get(n) for r in rows] for n in names}, schema={n: pl.String for n in names}
    )


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value)
