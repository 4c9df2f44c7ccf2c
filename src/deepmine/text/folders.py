"""A folder of ``.txt`` files per class (``reviews/pos/*.txt``, ``reviews/neg/*.txt``) read as a (text, label) table;
a flat folder of ``.txt`` files (new texts to predict) as a (file, text) table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from deepmine.data.csv_sniff import SAMPLE_BYTES, bom_encoding, legacy_encoding
from deepmine.exceptions import ColumnError, DataError, warn_user

TEXT_SUFFIX = ".txt"
TEXT_COLUMN, LABEL_COLUMN, FILE_COLUMN = "text", "label", "file"


def is_text_folder(data: Any) -> bool:
    """True for a folder whose files (below its class subfolders) are ``.txt`` files."""
    if not is_folder(data):
        return False
    path = Path(data)
    files = [p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path))]
    return bool(files) and all(p.suffix.lower() == TEXT_SUFFIX for p in files)


def read_text_folder(path: str | Path) -> pd.DataFrame:
    """One row per ``.txt`` file: its text (decoded by :func:`read_texts`) and its class folder's name as the
    label, rows ordered by label then file name. A folder holding only ``.txt`` files (no class folders) gives
    its files' names and texts, in name order, for prediction."""
    root = Path(path)
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = _loose_files(root)
    if loose and not classes:
        return pd.DataFrame({FILE_COLUMN: [file.name for file in loose], TEXT_COLUMN: read_texts(loose, root)})
    if loose or not classes:
        raise DataError(
            f"'{root}' holds .txt files outside class folders ({[p.name for p in loose[:3]]}) as well as class "
            "folders; put each training text in a folder named after its class, e.g. reviews/pos/1.txt"
            if loose
            else f"'{root}' has no class folders; put each text in a folder named after its class (reviews/pos/1.txt)"
        )
    files = [
        (file, folder.name)
        for folder in classes
        for file in sorted(folder.rglob(f"*{TEXT_SUFFIX}"))
        if not _hidden(file.relative_to(folder))
    ]
    if not files:
        raise DataError(f"'{root}' has class folders but no .txt files in them; add texts as <class>/<name>.txt")
    texts = read_texts([file for file, _ in files], root)
    return pd.DataFrame({TEXT_COLUMN: texts, LABEL_COLUMN: [label for _, label in files]})


def is_folder(data: Any) -> bool:
    """True for a path naming a folder: a source the table reader accepts only as a text folder."""
    return isinstance(data, str | Path) and "://" not in str(data) and Path(data).is_dir()


def is_flat_text_folder(data: Any) -> bool:
    """True for a folder with ``.txt`` files at its top level: new texts to predict, read with their file names."""
    return is_folder(data) and bool(_loose_files(Path(data)))


def _loose_files(root: Path) -> list[Path]:
    """The ``.txt`` files at the top of ``root`` (not in class folders), in name order."""
    return sorted(p for p in root.glob(f"*{TEXT_SUFFIX}") if not p.name.startswith("."))


def as_model_reads(
    frame: pd.DataFrame,
    inputs: list[str],
    texts: list[str],
    keep: str | None,
    where: str,
    target: str | None = None,
) -> pd.DataFrame:
    """A text folder's table for a model whose input columns are ``inputs`` (``texts`` of them text): the texts
    under the model's one input column (a text column of any name, or the folder's own ``text`` column however it
    was read at fit); a class folder's ``label`` under the model's ``target`` (its known answers, of any name); the
    ``file`` column only when ``keep`` (the id column echoed with the predictions) names it.
    A model with other inputs gets an error saying to predict from a table."""
    if inputs != [TEXT_COLUMN] and (len(texts) != 1 or inputs != texts):
        others = [name for name in inputs if name not in texts]
        reads = f"text column(s) {texts}" if texts else "no text column"
        reads += f" and other column(s) {others}" if texts and others else f" (its inputs: {others})" if others else ""
        raise ColumnError(
            f"{where} is a folder of .txt files, which gives one text per file, but this model reads {reads}; "
            f"predict from a table (CSV, Parquet, JSON Lines) holding the column(s) {inputs}"
        )
    names = {TEXT_COLUMN: inputs[0]}
    if target and LABEL_COLUMN in frame.columns and target not in [names.get(c, c) for c in frame.columns]:
        names[LABEL_COLUMN] = target  # renamed at once: a target named 'text' takes the labels, not the texts
    frame = frame.rename(columns=names)
    return frame if keep == FILE_COLUMN or FILE_COLUMN not in frame.columns else frame.drop(columns=FILE_COLUMN)


def _hidden(path: Path) -> bool:
    """A hidden file or one in a hidden folder (macOS ``._name.txt`` resource forks, ``.ipynb_checkpoints``)."""
    return any(part.startswith(".") for part in path.parts)


def read_texts(files: list[Path], root: Path) -> list[str]:
    """The files' texts, decoded strictly: UTF-8 (or the UTF-8/UTF-16 its byte-order mark names); the others in
    the encoding charset-normalizer finds for them together (GBK, cp1252 ...), else for each alone, else as UTF-8
    with undecodable bytes replaced. One warning under ``root`` says how many were not UTF-8 and how they were read."""
    raw = [file.read_bytes() for file in files]
    texts = [_decode(data, bom_encoding(data) or "utf-8") for data in raw]
    legacy = [i for i, text in enumerate(texts) if text is None]
    if not legacy:
        return [text or "" for text in texts]
    pooled = pooled_encoding([raw[i] for i in legacy])
    read = {i: _decode_legacy(raw[i], pooled) for i in legacy}
    used = Counter(encoding for _, encoding in read.values() if encoding)
    replaced = [files[i] for i, (_, encoding) in read.items() if encoding is None]
    warn_not_utf8(root, files[legacy[0]], len(legacy), len(files), used, replaced)
    return [read[i][0] if text is None else text for i, text in enumerate(texts)]


def _decode(data: bytes, encoding: str | None) -> str | None:
    """``data`` decoded strictly, or None when it is not valid ``encoding`` (or there is none)."""
    try:
        return data.decode(encoding) if encoding else None
    except (UnicodeDecodeError, LookupError):
        return None


def _decode_legacy(data: bytes, pooled: str | None) -> tuple[str, str | None]:
    """``(text, encoding)`` of a file that is not UTF-8: the folder's guess, else the file's own, else
    ``(UTF-8 with U+FFFD replacements, None)``."""
    text = _decode(data, pooled)
    if text is not None:
        return text, pooled
    own = legacy_encoding(data)
    text = _decode(data, own) if own != pooled else None
    return (text, own) if text is not None else (data.decode("utf-8", errors="replace"), None)


def pooled_encoding(samples: list[bytes]) -> str | None:
    """One legacy encoding for the bytes of several files that are not UTF-8, guessed from them together: short
    files alone tie between encodings (GBK text alone reads as big5 or cp949; together, as gb18030). Samples
    holding NULs (binary, UTF-16 without a byte-order mark) are left out of the guess."""
    return legacy_encoding(_pool(sample for sample in samples if b"\x00" not in sample))


def _pool(chunks: Any) -> bytes:
    """Whole files, one per line, up to about :data:`SAMPLE_BYTES`: enough text for a confident guess."""
    pooled = bytearray()
    for chunk in chunks:
        if pooled and len(pooled) + len(chunk) > SAMPLE_BYTES:
            break
        pooled += chunk + b"\n"
    return bytes(pooled)


def warn_not_utf8(root: Path, example: Path, legacy: int, total: int, used: Counter, replaced: list[Path]) -> None:
    """One line: how many files under ``root`` were not UTF-8, an example, the encoding(s) used (``used``: how many
    files each read) and any left with U+FFFD (``replaced``)."""
    name = example.relative_to(root).as_posix()
    read = ", ".join(f"{enc} ({count})" if len(used) > 1 else enc for enc, count in used.most_common())
    if not used:
        how = "no encoding matched them: their undecodable bytes were replaced by U+FFFD; re-save them as UTF-8"
    elif replaced:
        lost = replaced[0].relative_to(root).as_posix()
        how = (
            f"read them as {read}, but {len(replaced)} matched no encoding (e.g. '{lost}') and had undecodable "
            "bytes replaced by U+FFFD; re-save them as UTF-8"
        )
    else:
        how = f"read them as {read}; re-save them as UTF-8 if their texts look wrong"
    warn_user(f"'{root}': {legacy} of {total} .txt files are not UTF-8 (e.g. '{name}'); {how}")
