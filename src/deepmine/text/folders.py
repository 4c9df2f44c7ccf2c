"""A folder of ``.txt`` files per class (``reviews/pos/*.txt``, ``reviews/neg/*.txt``) read as a (text, label) table;
a flat folder of ``.txt`` files (new texts to predict) as a (file, text) table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from deepmine.exceptions import DataError

TEXT_SUFFIX = ".txt"
TEXT_COLUMN, LABEL_COLUMN, FILE_COLUMN = "text", "label", "file"


def is_text_folder(data: Any) -> bool:
    """True for a folder whose files (below its class subfolders) are ``.txt`` files."""
    if not isinstance(data, str | Path) or "://" in str(data):
        return False
    path = Path(data)
    if not path.is_dir():
        return False
    files = [p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path))]
    return bool(files) and all(p.suffix.lower() == TEXT_SUFFIX for p in files)


def read_text_folder(path: str | Path) -> pd.DataFrame:
    """One row per ``.txt`` file: its text (UTF-8, undecodable bytes replaced) and its class folder's name as the
    label, rows ordered by label then file name. A folder holding only ``.txt`` files (no class folders) gives
    its files' names and texts, in name order, for prediction."""
    root = Path(path)
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = sorted(p for p in root.glob(f"*{TEXT_SUFFIX}") if not p.name.startswith("."))
    if loose and not classes:
        texts = [{FILE_COLUMN: file.name, TEXT_COLUMN: _read(file)} for file in loose]
        return pd.DataFrame(texts, columns=[FILE_COLUMN, TEXT_COLUMN])
    if loose or not classes:
        raise DataError(
            f"'{root}' holds .txt files outside class folders ({[p.name for p in loose[:3]]}) as well as class "
            "folders; put each training text in a folder named after its class, e.g. reviews/pos/1.txt"
            if loose
            else f"'{root}' has no class folders; put each text in a folder named after its class (reviews/pos/1.txt)"
        )
    rows = [
        {TEXT_COLUMN: _read(file), LABEL_COLUMN: folder.name}
        for folder in classes
        for file in sorted(folder.rglob(f"*{TEXT_SUFFIX}"))
        if not _hidden(file.relative_to(folder))
    ]
    if not rows:
        raise DataError(f"'{root}' has class folders but no .txt files in them; add texts as <class>/<name>.txt")
    return pd.DataFrame(rows, columns=[TEXT_COLUMN, LABEL_COLUMN])


def _hidden(path: Path) -> bool:
    """A hidden file or one in a hidden folder (macOS ``._name.txt`` resource forks, ``.ipynb_checkpoints``)."""
    return any(part.startswith(".") for part in path.parts)


def _read(file: Path) -> str:
    return file.read_bytes().decode("utf-8", errors="replace")
