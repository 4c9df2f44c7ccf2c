"""UCI Adult → header CSVs (train.csv, test.csv) and a SQLite copy of train, in benchmarks/work/adult.

Column names come from adult.names (plus ``income`` for the class); adult.test's first line is a comment and
its labels carry a trailing '.', which is stripped; '?' is missing (written as an empty field / SQL NULL).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from env_info import WORK_DIR, require_files

TARGET = "income"
_ATTRIBUTE = re.compile(r"^([A-Za-z][\w-]*):\s")


@dataclass
class AdultFiles:
    train_csv: Path
    test_csv: Path
    train_db: Path
    table: str
    train_rows: int
    test_rows: int

    @property
    def sqlite_url(self) -> str:
        return f"sqlite:///{self.train_db}"


def column_names(names_file: Path) -> list[str]:
    """The attribute names listed in adult.names (``name: values.`` lines), then the target."""
    names = [m.group(1) for line in names_file.read_text().splitlines() if (m := _ATTRIBUTE.match(line))]
    if len(names) != 14:
        raise ValueError(f"expected 14 attributes in '{names_file}', found {len(names)}: {names}")
    return [*names, TARGET]


def read_raw(path: Path, columns: list[str], skip_first_line: bool) -> pd.DataFrame:
    frame = pd.read_csv(
        path,
        header=None,
        names=columns,
        skiprows=1 if skip_first_line else 0,
        skipinitialspace=True,
        na_values=["?"],
        keep_default_na=False,
    )
    frame = frame.dropna(how="all")
    frame[TARGET] = frame[TARGET].str.rstrip(".")
    return frame.reset_index(drop=True)


def prepare(work: Path | None = None) -> AdultFiles:
    """Write the CSVs and the database (again only when a source file is newer); return their paths."""
    data, test, names = require_files("adult", ["adult.data", "adult.test", "adult.names"])
    out = (work or WORK_DIR) / "adult"
    files = AdultFiles(out / "train.csv", out / "test.csv", out / "adult.db", "adult", 0, 0)
    newest_source = max(p.stat().st_mtime for p in (data, test, names, Path(__file__)))
    built = [files.train_csv, files.test_csv, files.train_db]
    if all(p.exists() and p.stat().st_mtime >= newest_source for p in built):
        files.train_rows = sum(1 for _ in files.train_csv.open()) - 1
        files.test_rows = sum(1 for _ in files.test_csv.open()) - 1
        return files
    out.mkdir(parents=True, exist_ok=True)
    columns = column_names(names)
    train = read_raw(data, columns, skip_first_line=False)
    test_frame = read_raw(test, columns, skip_first_line=True)
    for frame, where in ((train, data), (test_frame, test)):
        labels = set(frame[TARGET].unique())
        if labels != {"<=50K", ">50K"}:
            raise ValueError(f"unexpected labels in '{where}': {sorted(labels)}")
    train.to_csv(files.train_csv, index=False)
    test_frame.to_csv(files.test_csv, index=False)
    files.train_db.unlink(missing_ok=True)
    with sqlite3.connect(files.train_db) as conn:
        train.to_sql(files.table, conn, index=False)
    files.train_rows, files.test_rows = len(train), len(test_frame)
    return files
