"""Profile a table: each column's role and why, missing share, distinct count, statistics, target balance."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepmine.config import ColumnsConfig, DataConfig
from deepmine.data.schema import Schema, check_target, column_settings, infer_schema, to_native
from deepmine.data.sources import DataSource, describe, load_table

TOP_VALUES = 5
PLOT_SAMPLE = 100_000  # rows sampled for histograms and correlations
HISTOGRAM_BINS = 30
MAX_CORRELATED = 30


def _round(value: Any) -> Any:
    value = to_native(value)
    if isinstance(value, float):
        return None if not np.isfinite(value) else round(value, 6)
    return value


def column_stats(column: pd.Series, role: str) -> dict[str, Any]:
    """Basic statistics: numbers for numeric columns, the most frequent values otherwise. An integer column's
    min, max and median are exact Python ints (a median between two integers is a float)."""
    if role == "numeric":
        values = pd.to_numeric(column, errors="coerce")
        desc = values.describe()
        stats = {k: _round(desc[k]) for k in ("mean", "std", "min", "50%", "max")} | {"median": _round(desc["50%"])}
        present = values.dropna()
        if pd.api.types.is_integer_dtype(values) and len(present):  # describe() rounds through float64 above 2**53
            ordered = np.sort(present.to_numpy())
            low, high = int(ordered[(len(ordered) - 1) // 2]), int(ordered[len(ordered) // 2])
            median = (low + high) // 2 if (low + high) % 2 == 0 else (low + high) / 2
            stats |= {"min": int(ordered[0]), "max": int(ordered[-1]), "50%": median, "median": median}
        return stats
    counts = column.astype(str).where(column.notna()).value_counts().head(TOP_VALUES)
    return {"top": {str(k): int(v) for k, v in counts.items()}}


def profile_table(
    data: DataSource,
    target: str | None = None,
    read: DataConfig | None = None,
    *,
    detail: bool = False,
    columns: ColumnsConfig | None = None,
    task: str = "auto",
) -> dict[str, Any]:
    """Everything `deepmine profile` shows, as a JSON-ready dict (``detail`` adds histograms and correlations).

    ``columns`` (id, weight, roles, drop; its target is ``target``) and ``task`` set roles as fit's config does."""
    frame = load_table(data, read)
    where = describe(data)
    if target is not None:
        check_target(frame, target, where)
    labelled = frame if target is None else frame[frame[target].notna()]
    settings = column_settings(columns or ColumnsConfig())
    schema = infer_schema(labelled, target, task=task, where=where, **settings)
    return profile_frame(frame, schema, where, detail=detail)


def profile_frame(frame: pd.DataFrame, schema: Schema, where: str, *, detail: bool = False) -> dict[str, Any]:
    """The profile of a loaded frame whose schema is known (roles as inferred or set in the config)."""
    target = schema.target if schema.target in frame.columns else None
    roles = {c.name: c for c in schema.columns}
    columns = []
    for name in frame.columns:
        column = frame[name]
        if name in roles and roles[name].missing:  # words read as missing values count as missing here too
            column = column.mask(column.astype(str).isin(roles[name].missing))
        if name == target:
            role, reason = "target", f"the target ({schema.task}: {schema.task_reason})"
        elif name in roles:
            role, reason = roles[name].role, roles[name].reason
        else:
            role, reason = "ignored", "not in the model's schema"
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
    if detail:
        result["distributions"] = distributions(frame, columns, regression=schema.task == "regression")
    return result


def _sample(frame: pd.DataFrame, rows: int, seed: int = 0) -> pd.DataFrame:
    return frame.sample(n=rows, random_state=seed) if len(frame) > rows else frame


def distributions(
    frame: pd.DataFrame, columns: list[dict[str, Any]], *, regression: bool = False, sample_rows: int = PLOT_SAMPLE
) -> dict[str, Any]:
    """Histograms of the numeric columns and their Pearson correlations, on a random sample of rows.

    Plots need no more than a sample; the exact counts (missing share, distinct values, top categories)
    are in the columns of :func:`profile_frame`."""
    sample = _sample(frame, sample_rows)
    histograms: dict[str, Any] = {}
    numeric: list[str] = []
    for col in columns:
        if not (col["role"] == "numeric" or (col["role"] == "target" and regression)):
            continue
        values = pd.to_numeric(sample[col["name"]], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            continue
        counts, edges = np.histogram(finite, bins=int(min(HISTOGRAM_BINS, max(col["distinct"], 1))))
        histograms[col["name"]] = {"edges": [_round(e) for e in edges], "counts": counts.tolist()}
        numeric.append(col["name"])
    numeric = numeric[:MAX_CORRELATED]
    correlation = None
    if len(numeric) >= 2:
        matrix = sample[numeric].apply(pd.to_numeric, errors="coerce").corr(method="pearson")
        correlation = {"columns": numeric, "matrix": [[_round(v) for v in row] for row in matrix.to_numpy()]}
    return {"sample_rows": len(sample), "histograms": histograms, "correlation": correlation}
