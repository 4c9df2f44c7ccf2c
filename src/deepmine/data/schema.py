"""Schema inference: a role per column (with the reason) and the task from the target."""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepmine.exceptions import ColumnError, ConfigError, DataError, DeepmineWarning, did_you_mean
from deepmine.tasks.multilabel import DEFAULT_DELIMITER, detect_delimiter, label_set, multilabel_hint

if TYPE_CHECKING:
    from deepmine.config import ColumnsConfig

ROLES = ("numeric", "categorical", "binary", "text", "datetime", "id", "constant")
FEATURE_ROLES = ("numeric", "categorical", "binary", "text", "datetime")
TASKS = ("binary", "multiclass", "regression", "multilabel")
_ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|guid|key)$|^id[_\s-]|Id$|ID$")
MAX_CLASSES_FOR_INTEGER_TARGET = 10


@dataclass
class ColumnSpec:
    """One input column: its role and why (``missing``: words a numeric column holds among its numbers, such as
    '-', read as missing values)."""

    name: str
    role: str
    reason: str
    missing: list[str] = field(default_factory=list)


@dataclass
class Schema:
    """Column roles, the target and the task."""

    columns: list[ColumnSpec]
    target: str | None = None
    task: str | None = None
    task_reason: str = ""
    classes: list[Any] = field(default_factory=list)
    label_sep: str | None = None  # multilabel: the delimiter between the labels of one value

    @property
    def features(self) -> list[ColumnSpec]:
        """Columns that feed the model."""
        return [c for c in self.columns if c.role in FEATURE_ROLES]

    def names(self, role: str) -> list[str]:
        """Names of the feature columns with ``role``."""
        return [c.name for c in self.columns if c.role == role]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Schema:
        cols = [ColumnSpec(**c) for c in state["columns"]]
        return cls(
            cols,
            state.get("target"),
            state.get("task"),
            state.get("task_reason", ""),
            state["classes"],
            state.get("label_sep"),
        )


def to_native(value: Any) -> Any:
    """numpy scalar → plain Python value (JSON-safe)."""
    return value.item() if isinstance(value, np.generic) else value


def _is_integral(values: pd.Series) -> bool:
    if pd.api.types.is_integer_dtype(values):
        return True
    if pd.api.types.is_float_dtype(values):
        finite = values[np.isfinite(values)]
        return bool(len(finite)) and bool(np.all(np.mod(finite, 1) == 0))
    return False


def _numeric_view(column: pd.Series) -> pd.Series | None:
    """The column as numbers when (almost) every value parses as one."""
    if pd.api.types.is_bool_dtype(column):
        return None
    if pd.api.types.is_numeric_dtype(column):
        return column.astype("float64")
    nonnull = column.dropna()
    if not len(nonnull):
        return None
    # parse each distinct value once and weigh it by its count: the same share, far faster on long columns
    counts = nonnull.value_counts(sort=False)
    parsed = pd.to_numeric(pd.Series(counts.index.to_numpy(dtype=object)), errors="coerce").notna().to_numpy()
    if counts.to_numpy()[parsed].sum() >= 0.99 * len(nonnull):
        return pd.to_numeric(column, errors="coerce").astype("float64")
    return None


def _mean_over_rows(nonnull: pd.Series, measure) -> float:
    """Mean of ``measure`` (a function of the values as text) over rows, computed once per distinct value."""
    counts = nonnull.value_counts(sort=False)
    text = pd.Series(counts.index.to_numpy(dtype=object)).astype(str)
    weights = counts.to_numpy()
    return float((measure(text).to_numpy(dtype="float64") * weights).sum() / weights.sum())


def _looks_datetime(nonnull: pd.Series) -> bool:
    from deepmine.features.datetime import DOTTED_DATE, parse_dates

    sample = nonnull.astype(str).head(200)
    marked = sample.str.contains(r"[-/:]") | sample.str.match(DOTTED_DATE)  # 2020-01-13, 13/01/2020, 13.01.2020
    if not sample.str.contains(r"\d").all() or not marked.mean() > 0.9:
        return False
    return parse_dates(sample).notna().mean() >= 0.95


MARKER_SHARE = 0.1  # at most this share of a numeric column's values may be words that mean "missing"
MAX_MARKERS = 3


def stray_markers(nonnull: pd.Series) -> list[str]:
    """The few words without digits (``-``, ``n/a?``, ``unknown``) in a column that otherwise holds numbers —
    stand-ins for missing values — or [] when the column is not such a column."""
    if not len(nonnull) or not (pd.api.types.is_object_dtype(nonnull) or pd.api.types.is_string_dtype(nonnull)):
        return []
    if pd.to_numeric(nonnull.head(200), errors="coerce").notna().mean() < 0.8:  # cheap: words, not numbers
        return []
    counts = nonnull.value_counts(sort=False)
    keys = pd.Series(counts.index.to_numpy(dtype=object))
    numbers = pd.to_numeric(keys, errors="coerce").notna().to_numpy()
    words = keys[~numbers].astype(str)
    if not numbers.any() or not 0 < len(words) <= MAX_MARKERS or words.str.contains(r"\d").any():
        return []
    if counts.to_numpy()[~numbers].sum() > MARKER_SHARE * len(nonnull) or (words.str.len() > 20).any():
        return []
    return sorted(str(word) for word in keys[~numbers])


def infer_role(column: pd.Series, name: str) -> tuple[str, str, list[str]]:
    """Return ``(role, reason, missing words)`` for one column: the words are those a numeric column holds among
    its numbers (:func:`stray_markers`), read as missing values."""
    markers = stray_markers(column.dropna())
    if markers:
        shown = ", ".join(_quoted(m) for m in markers)
        distinct = column.dropna().nunique() - len(markers)
        return "numeric", f"numbers ({distinct} distinct); {shown} read as missing", markers
    return (*_role_and_reason(column, name), [])


def _role_and_reason(column: pd.Series, name: str) -> tuple[str, str]:
    """``(role, reason)`` of a column without stray missing words."""
    n = len(column)
    nonnull = column.dropna()
    distinct = nonnull.nunique()
    if len(nonnull) == 0:
        return "constant", "every value is missing"
    if distinct == 1:
        return "constant", f"every value is {_quoted(nonnull.iloc[0])}"
    if pd.api.types.is_bool_dtype(column) or distinct == 2:
        shown = ", ".join(_quoted(v) for v in sorted(nonnull.unique(), key=str))
        return "binary", f"two distinct values ({shown})"
    if pd.api.types.is_datetime64_any_dtype(column):
        return "datetime", "stored as date/time"
    numeric = _numeric_view(column)
    if numeric is not None:
        unique = distinct == len(nonnull) == n
        if unique and _is_integral(numeric.dropna()) and (_ID_NAME.search(name) or _is_step_sequence(numeric)):
            return "id", "unique integers in every row (an identifier, dropped)"
        return "numeric", f"numbers ({distinct} distinct)"
    if _looks_datetime(nonnull):
        return "datetime", "values parse as dates/times"
    words = _mean_over_rows(nonnull, lambda text: text.str.count(r"\s+")) + 1
    if words >= 4 or (_mean_over_rows(nonnull, lambda text: text.str.len()) >= 40 and distinct > 0.5 * len(nonnull)):
        return "text", f"free text ({words:.1f} words per value on average)"
    if len(nonnull) >= 20 and distinct >= 0.95 * len(nonnull):
        return "id", f"{distinct} distinct values in {len(nonnull)} rows (an identifier, dropped)"
    if _ID_NAME.search(name) and distinct >= 0.5 * len(nonnull):
        return "id", f"named like an identifier with {distinct} distinct values (dropped)"
    return "categorical", f"{distinct} distinct labels"


def _is_step_sequence(values: pd.Series) -> bool:
    diffs = np.diff(np.sort(values.to_numpy()))
    return bool(len(diffs)) and bool(np.all(diffs == diffs[0]))


def class_labels(target: pd.Series) -> pd.Series:
    """The target's present labels as classes: text with surrounding whitespace stripped, as the target is
    encoded (``as_keys``), so 'pos ' and 'pos' are one class rather than two."""
    labels = target.dropna()
    return labels.map(lambda v: v.strip() if isinstance(v, str) else v)


def infer_task(target: pd.Series, name: str, forced: str = "auto", label_sep: str | None = None) -> tuple[str, str]:
    """Binary, multiclass, multilabel or regression from the target's values (or the forced task);
    a target of delimited label lists (or any target when ``label_sep`` is set) is multilabel."""
    if forced == "multilabel" or (forced == "auto" and (label_sep or detect_delimiter(target))):
        return "multilabel", "set in the config" if forced == "multilabel" or label_sep else "label lists"
    nonnull = class_labels(target)
    distinct = nonnull.nunique()
    numeric = _numeric_view(target)
    if forced != "auto":
        if forced not in TASKS:
            raise ConfigError(f"unknown task '{forced}'{did_you_mean(forced, TASKS)}; expected one of {TASKS}")
        if forced == "regression" and numeric is None:
            raise DataError(
                f"target column '{name}' holds labels like {to_native(nonnull.iloc[0])!r}, not numbers; "
                "regression needs a numeric target (use task binary or multiclass)"
            )
        return forced, "set in the config"
    if distinct == 2:
        return "binary", "the target has two distinct values"
    if numeric is None:
        return "multiclass", f"the target holds {distinct} distinct labels{multilabel_hint(target)}"
    if _is_integral(numeric.dropna()) and distinct <= MAX_CLASSES_FOR_INTEGER_TARGET:
        return "multiclass", f"the target holds {distinct} distinct integers"
    return "regression", f"the target holds numbers ({distinct} distinct)"


def shorten(text: str, width: int = 40) -> str:
    """``text`` on one line, cut to at most ``width`` characters (ending in …) for tables and messages."""
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _quoted(value: Any) -> str:
    native = to_native(value)
    return repr(shorten(native) if isinstance(native, str) else native)


def check_target(frame: pd.DataFrame, target: str | None, where: str) -> None:
    """Raise a clear error when the target is missing from the table or unusable."""
    if target is None:
        raise ConfigError(f"no target column given; pass --target COLUMN (columns in {where}: {list(frame.columns)})")
    if target not in frame.columns:
        raise ColumnError(
            f"target column '{target}' is not in {where}{did_you_mean(target, frame.columns)}; "
            f"columns: {list(frame.columns)}"
        )
    values = frame[target]
    if values.notna().sum() == 0:
        raise DataError(f"target column '{target}' in {where} has no values (all {len(values)} rows are missing)")


def column_settings(columns: ColumnsConfig) -> dict[str, Any]:
    """:func:`infer_schema`'s keyword arguments for a run's ``columns`` settings (all but the target)."""
    return {
        "roles": columns.roles,
        "drop": columns.drop,
        "id_column": columns.id,
        "weight_column": columns.weight,
        "label_sep": columns.label_sep,
    }


def infer_schema(
    frame: pd.DataFrame,
    target: str | None,
    *,
    task: str = "auto",
    roles: dict[str, str] | None = None,
    drop: list[str] | None = None,
    id_column: str | None = None,
    where: str = "the data",
    label_sep: str | None = None,
    weight_column: str | None = None,
) -> Schema:
    """Infer a role for every column, and the task when there is a target."""
    roles = roles or {}
    for col, role in roles.items():
        if col not in frame.columns:
            raise ColumnError(
                f"columns.roles names column '{col}', which is not in {where}{did_you_mean(col, frame.columns)}"
            )
        if role not in ROLES:
            raise ConfigError(
                f"unknown role '{role}' for column '{col}'{did_you_mean(role, ROLES)}; expected one of {ROLES}"
            )
    for col in [*(drop or []), *([id_column] if id_column else []), *([weight_column] if weight_column else [])]:
        if col not in frame.columns:
            raise ColumnError(f"column '{col}' is not in {where}{did_you_mean(col, frame.columns)}")
    if weight_column is not None and weight_column in (target, id_column):
        kind = "target" if weight_column == target else "id column"
        raise ConfigError(f"columns.weight '{weight_column}' is also the {kind}; name a column of row weights")
    if weight_column is not None and weight_column in roles:  # roles come first below: it would be a feature too
        raise ConfigError(
            f"columns.weight '{weight_column}' also has the role '{roles[weight_column]}' in columns.roles, but the "
            f"weight column is never a feature; remove columns.roles.{weight_column}"
        )
    specs: list[ColumnSpec] = []
    for name in frame.columns:
        if name == target:
            continue
        if name in roles:
            specs.append(ColumnSpec(name, roles[name], "set in the config"))
        elif drop and name in drop:
            specs.append(ColumnSpec(name, "constant", "dropped in the config"))
        elif name == weight_column:
            specs.append(
                ColumnSpec(name, "weight", "chosen as the row-weight column (weights training, not a feature)")
            )
        elif name == id_column:
            specs.append(ColumnSpec(name, "id", "chosen as the id column (kept in predictions, not a feature)"))
        else:
            specs.append(ColumnSpec(name, *infer_role(frame[name], name)))
            if specs[-1].missing:
                warnings.warn(
                    f"column '{name}' of {where} holds numbers and the word(s) "
                    f"{', '.join(_quoted(m) for m in specs[-1].missing)}, read as missing values (to keep the "
                    f"column as categories: --set columns.roles.{name}=categorical)",
                    DeepmineWarning,
                    stacklevel=2,
                )
    schema = Schema(specs, target=target)
    if target is None:
        return schema
    check_target(frame, target, where)
    schema.task, schema.task_reason = infer_task(frame[target], target, task, label_sep)
    if schema.task == "multilabel":
        schema.label_sep = label_sep or detect_delimiter(frame[target], 0.0) or DEFAULT_DELIMITER
        schema.classes = label_set(frame[target], schema.label_sep, target, where)
        how = "" if schema.task_reason == "label lists" else f", {schema.task_reason}"
        schema.task_reason = f"{len(schema.classes)} labels, delimiter {schema.label_sep!r}{how}"
    elif schema.task != "regression":
        labels = class_labels(frame[target])
        classes = sorted(labels.unique().tolist(), key=lambda v: (str(type(v)), v))
        if len(classes) < 2:
            raise DataError(
                f"target column '{target}' in {where} has a single value {to_native(classes[0])!r} in every "
                "row; a classifier needs at least two classes (check the target or the file)"
            )
        schema.classes = [to_native(c) for c in classes]
    if not schema.features:
        raise DataError(f"{where} has no usable feature columns besides the target '{target}'")
    return schema
