"""Profile a table: each column's role and why, missing share, distinct count, statistics, target balance."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepmine.config import DataConfig
from deepmine.data.schema import check_target, infer_schema, to_native
from deepmine.data.sources import DataSource, describe, load_table

TOP_VALUES = 5


def _round(value: Any) -> Any:
    value = to_native(value)
    if isinstance(value, float):
        return None if not np.isfinite(value) else round(value, 6)
    return value


def column_stats(column: pd.Series, role: str) -> dict[str, Any]:
    """Basic statistics: numbers for numeric columns, the most frequent values otherwise."""
    if role == "numeric":
        values = pd.to_numeric(column, errors="coerce")
        desc = values.describe()
        return {k: _round(desc[k]) for k in ("mean", "std", "min", "50%", "max")} | {"median": _round(desc["50%"])}
    counts = column.astype(str).where(column.notna()).value_counts().head(TOP_VALUES)
    return {"top": {str(k): int(v) for k, v in counts.items()}}


def profile_table(data: DataSource, target: str | None = None, read: DataConfig | None = None) -> dict[str, Any]:
    """Everything `deepmine profile` shows, as a JSON-ready dict."""
    frame = load_table(data, read)
    where = describe(data)
    if target is not None:
        check_target(frame, target, where)
    schema = (
        infer_schema(frame, target, where=where)
        if target is None
        else infer_schema(frame[frame[target].notna()], target, where=where)
    )
    roles = {c.name: c for c in schema.columns}
    columns = []
    for name in frame.columns:
        column = frame[name]
        if name == target:
            role, reason = "target", f"the target ({schema.task}: {schema.task_reason})"
        else:
            role, reason = roles[name].role, roles[name].reason
        columns.append(
            {
                "name": name,
                "role": role,
                "reason": reason,
                "dtype": str(column.dtype),
                "missing_share": round(float(column.isna().mean()), 6),
                "distinct": int(column.nunique(dropna=True)),
                "stats": column_stats(column, "numeric" if role == "numeric" else "other"),
            }
        )
    result: dict[str, Any] = {"source": where, "rows": len(frame), "columns": columns}
    if target is not None:
        values = frame[target].dropna()
        info: dict[str, Any] = {
            "name": target,
            "task": schema.task,
            "reason": schema.task_reason,
            "missing": int(frame[target].isna().sum()),
        }
        if schema.task == "regression":
            info["stats"] = column_stats(values, "numeric")
        else:
            shares = values.value_counts(normalize=True)
            info["balance"] = {str(k): round(float(v), 6) for k, v in shares.items()}
        result["target"] = info
    return result
