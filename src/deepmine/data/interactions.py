"""Interaction logs: read them (tab, pipe, comma or '::' separated, with or without a header), find the user,
item, rating and time columns, encode ids, merge duplicates, hold out per-user items and sample negatives."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from deepmine.config import DataConfig
from deepmine.data.csv_sniff import read_sample, sniff_encoding, sniff_header
from deepmine.data.sources import DataSource, describe, is_sql_url, load_table
from deepmine.exceptions import ColumnError, DataError, DeepmineWarning, SourceNotFoundError, did_you_mean

USER_NAMES = ("user", "userid", "uid", "customer", "customerid", "visitor", "visitorid", "member", "client", "reviewer")
ITEM_NAMES = (
    "item",
    "itemid",
    "iid",
    "movie",
    "movieid",
    "product",
    "productid",
    "sku",
    "article",
    "asin",
    "book",
    "isbn",
    "song",
    "track",
    "business",
)
RATING_NAMES = ("rating", "ratings", "score", "stars", "rate", "preference", "value")
TIME_NAMES = ("timestamp", "time", "ts", "date", "datetime", "unixtime", "unixtimestamp", "eventtime", "createdat")
_HEADERLESS = re.compile(r"^column_(\d+)$")
UNIX_SECONDS_MIN = 1e8  # values this large in a headerless third column are timestamps, not ratings


# ---- reading -------------------------------------------------------------------------------------
def read_interactions(source: DataSource, data: DataConfig | None = None) -> pd.DataFrame:
    """Read a table; '::'-separated files (MovieLens ``ratings.dat``) included. Headerless columns are
    named ``column_1``, ``column_2`` ..."""
    data = data or DataConfig()
    if isinstance(source, pd.DataFrame) or is_sql_url(source):
        return load_table(source, data)
    path = Path(source)
    if path.is_file() and path.stat().st_size > 0 and (data.sep == "::" or (data.sep is None and _double_colon(path))):
        return _read_double_colon(path, data)
    return load_table(source, data)


def _double_colon(path: Path) -> bool:
    if path.name.lower().endswith((".parquet", ".pq", ".jsonl", ".ndjson", ".json")):
        return False
    lines = read_sample(path, 8192).decode("latin-1").splitlines()[:5]
    return bool(lines) and all("::" in line for line in lines if line.strip()) and "\t" not in lines[0]


def _read_double_colon(path: Path, data: DataConfig) -> pd.DataFrame:
    encoding = data.encoding or sniff_encoding(read_sample(path), path)
    lines = read_sample(path).decode(encoding, errors="ignore").splitlines()[:50]
    header = data.header if data.header is not None else sniff_header([line.split("::") for line in lines])
    try:
        frame = pd.read_csv(
            path, sep="::", engine="python", header=0 if header else None, encoding=encoding, na_values=data.na_values
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"file '{path}' could not be read as '::'-separated: {str(err).splitlines()[0]}") from err
    if not header:
        frame.columns = [f"column_{i + 1}" for i in range(frame.shape[1])]
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise DataError(f"file '{path}' has no data rows")
    return frame


# ---- columns -------------------------------------------------------------------------------------
def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _pick(frame: pd.DataFrame, wanted: str | None, names: tuple[str, ...], role: str, where: str) -> str | None:
    columns = list(frame.columns)
    if wanted is not None:
        if wanted in columns:
            return wanted
        if wanted.isdigit() and 1 <= int(wanted) <= len(columns):  # --user 1 on a headerless file
            return columns[int(wanted) - 1]
        raise ColumnError(
            f"{role} column '{wanted}' is not in {where}{did_you_mean(wanted, columns)}; columns: {columns}"
        )
    by_norm = {_norm(c): c for c in columns}
    for name in names:
        if name in by_norm:
            return by_norm[name]
    return None


@dataclass(frozen=True)
class ColumnRoles:
    user: str
    item: str
    rating: str | None
    time: str | None

    def positions(self, frame: pd.DataFrame) -> dict[str, int]:
        columns = list(frame.columns)
        roles = {"user": self.user, "item": self.item, "rating": self.rating, "time": self.time}
        return {role: columns.index(name) for role, name in roles.items() if name is not None}


def infer_columns(
    frame: pd.DataFrame,
    user: str | None = None,
    item: str | None = None,
    rating: str | None = None,
    time: str | None = None,
    where: str = "the data",
) -> ColumnRoles:
    """Which columns hold user, item, rating and time: given names, else common names, else (headerless
    files) positions 1, 2, 3, 4 as in MovieLens ``u.data``. ``'none'`` for rating or time means no such column."""
    headerless = all(_HEADERLESS.match(str(c)) for c in frame.columns)
    columns = list(frame.columns)
    user_col = _pick(frame, user, USER_NAMES, "user", where)
    item_col = _pick(frame, item, ITEM_NAMES, "item", where)
    if headerless:
        user_col = user_col or columns[0]
        item_col = item_col or (columns[1] if len(columns) > 1 else None)
    for role, col, flag in (("user", user_col, "--user"), ("item", item_col, "--item")):
        if col is None:
            raise ColumnError(
                f"could not tell which column of {where} holds the {role}s (columns: {columns}); name it with {flag}"
            )
    if user_col == item_col:
        raise ColumnError(f"the user and item columns are both '{user_col}'; name two different columns")
    rest = [c for c in columns if c not in (user_col, item_col)]
    rating_col = None if _is_none(rating) else _pick(frame, rating, RATING_NAMES, "rating", where)
    time_col = None if _is_none(time) else _pick(frame, time, TIME_NAMES, "time", where)
    if headerless:
        numeric = [c for c in rest if pd.api.types.is_numeric_dtype(frame[c]) and c not in (rating_col, time_col)]
        if numeric and frame[numeric[0]].abs().max() < UNIX_SECONDS_MIN:  # ratings stand before times
            if rating is None and rating_col is None:
                rating_col = numeric[0]
            numeric = numeric[1:]  # with --rating none too: a column of ratings is no time
        if time is None and time_col is None and numeric:
            time_col = numeric[0]
    return ColumnRoles(user_col, item_col, rating_col, time_col)


def _is_none(value: str | None) -> bool:
    return value is not None and value.lower() in ("none", "off", "no", "")


# ---- ids -----------------------------------------------------------------------------------------
def id_keys(values: pd.Series) -> np.ndarray:
    """Ids as strings, so 7, 7.0 and '7' are one id (files, DataFrames and --users 7 all agree)."""
    if pd.api.types.is_float_dtype(values):
        as_int = values.dropna()
        if (as_int == np.floor(as_int)).all():
            return np.array([str(int(v)) if pd.notna(v) else "" for v in values], dtype=object)
    return values.astype(str).str.strip().to_numpy(dtype=object)


def restore_ids(keys: list[str], integer: bool) -> list[object]:
    return [int(k) for k in keys] if integer else list(keys)


def blank_ids(values: pd.Series) -> np.ndarray:
    """Which ids are missing or blank (empty or whitespace only)."""
    return (values.isna() | values.astype(str).str.strip().eq("")).to_numpy()


def strip_blank_ends(values: pd.Series) -> pd.Series:
    """``values`` without the blank ids they start and end with — the blank lines around a one-column list of ids —
    and, when those blanks made integer ids floats (``1.0``), as integers again. The index is kept (the rows'
    positions); blanks between ids stay, and all-blank ``values`` come back unchanged."""
    filled = np.flatnonzero(~blank_ids(values))
    if not len(filled):
        return values
    kept = values.iloc[filled[0] : filled[-1] + 1]
    if pd.api.types.is_float_dtype(kept) and kept.notna().all() and _is_integer_ids(kept):
        kept = kept.astype("int64")
    return kept


# ---- the encoded log ---------------------------------------------------------------------------------
@dataclass
class Interactions:
    """An interaction log with users and items as indices into ``user_ids`` / ``item_ids``."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray | None
    times: np.ndarray | None

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, index: np.ndarray) -> Interactions:
        return Interactions(
            self.users[index],
            self.items[index],
            None if self.ratings is None else self.ratings[index],
            None if self.times is None else self.times[index],
        )


@dataclass
class Vocabulary:
    """Users and items seen in training, in index order."""

    user_ids: list[str]
    item_ids: list[str]
    user_int: bool = False
    item_int: bool = False

    def __post_init__(self) -> None:
        self._users = {u: i for i, u in enumerate(self.user_ids)}
        self._items = {v: i for i, v in enumerate(self.item_ids)}

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def user_index(self, keys) -> np.ndarray:
        """Index of each user key; -1 for users not seen in training."""
        return _lookup(self._users, keys, self.user_int)

    def item_index(self, keys) -> np.ndarray:
        """Index of each item key; -1 for items not seen in training."""
        return _lookup(self._items, keys, self.item_int)

    def users_out(self, index: np.ndarray) -> list[object]:
        return restore_ids([self.user_ids[i] for i in index], self.user_int)

    def items_out(self, index: np.ndarray) -> list[object]:
        return restore_ids([self.item_ids[i] for i in index], self.item_int)

    def to_dict(self) -> dict:
        return {"users": self.user_ids, "items": self.item_ids, "user_int": self.user_int, "item_int": self.item_int}

    @classmethod
    def from_dict(cls, state: dict) -> Vocabulary:
        return cls(state["users"], state["items"], state["user_int"], state["item_int"])


def _integer_key(key: str) -> str:
    """``'7.0'`` / ``'7e0'`` as ``'7'``, for vocabularies of integer ids (exact for ids past 2**53); other keys
    unchanged."""
    try:
        number = Decimal(key)
    except ArithmeticError:
        return key
    return str(int(number)) if number.is_finite() and number == number.to_integral_value() else key


def _lookup(index: dict[str, int], keys, integer: bool) -> np.ndarray:
    """Index of each key (-1 when unseen); in an integer vocabulary ``1.0`` typed for id ``1`` is that id."""
    found = np.fromiter((index.get(str(k), -1) for k in keys), dtype=np.int64, count=len(keys))
    if integer:
        for row in np.flatnonzero(found < 0):
            found[row] = index.get(_integer_key(str(keys[row])), -1)
    return found


def _is_integer_ids(values: pd.Series) -> bool:
    if pd.api.types.is_integer_dtype(values):
        return True
    if pd.api.types.is_float_dtype(values):
        clean = values.dropna()
        return bool(len(clean)) and bool((clean == np.floor(clean)).all())
    return False


def to_numeric_ratings(values: pd.Series, column: str, where: str) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() & values.notna()
    if bad.all():
        raise DataError(
            f"rating column '{column}' of {where} holds no numbers (for example {values.iloc[0]!r}); "
            "name the right column with --rating, or --rating none for implicit feedback"
        )
    if bad.any():
        raise DataError(
            f"rating column '{column}' of {where} holds {int(bad.sum())} value(s) that are not numbers "
            f"(for example {values[bad].iloc[0]!r}); fix them or drop those rows"
        )
    if np.isinf(numbers.to_numpy(dtype="float64")).any():
        raise DataError(f"rating column '{column}' of {where} holds infinite values; fix or drop those rows")
    return numbers.to_numpy(dtype="float64")


def to_times(values: pd.Series, column: str, where: str) -> np.ndarray:
    """Seconds as float64 (numbers are taken as they are; dates and datetimes are parsed)."""
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype="float64")
    parsed = pd.to_datetime(values, errors="coerce", utc=True)
    bad = parsed.isna() & values.notna()
    if bad.any():
        raise DataError(
            f"time column '{column}' of {where} holds {int(bad.sum())} value(s) that are neither numbers nor dates "
            f"(for example {values[bad].iloc[0]!r}); name the right column with --time, or --time none"
        )
    seconds = (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype="float64")


def clean_frame(frame: pd.DataFrame, roles: ColumnRoles, where: str) -> pd.DataFrame:
    """Drop rows missing a user, item or rating (with a warning)."""
    needed = [c for c in (roles.user, roles.item, roles.rating) if c is not None]
    missing = frame[needed].isna().any(axis=1)
    if missing.all():
        raise DataError(f"every row of {where} lacks a user, item or rating; check the column names")
    if missing.any():
        warnings.warn(
            f"{where}: dropping {int(missing.sum())} row(s) with no user, item or rating",
            DeepmineWarning,
            stacklevel=3,
        )
        frame = frame[~missing].reset_index(drop=True)
    return frame


def build_vocabulary(frame: pd.DataFrame, roles: ColumnRoles) -> Vocabulary:
    users = pd.unique(id_keys(frame[roles.user]))
    items = pd.unique(id_keys(frame[roles.item]))
    return Vocabulary(
        sorted(users, key=_natural), sorted(items, key=_natural), _is_integer_ids(frame[roles.user]),
        _is_integer_ids(frame[roles.item]),
    )  # fmt: skip


def _natural(key: str) -> tuple:
    return (0, int(key), "") if key.lstrip("-").isdigit() else (1, 0, key)


def encode(frame: pd.DataFrame, roles: ColumnRoles, vocab: Vocabulary, where: str) -> Interactions:
    """Indices (-1 = unknown), ratings and times of every row, in row order."""
    users = vocab.user_index(id_keys(frame[roles.user]))
    items = vocab.item_index(id_keys(frame[roles.item]))
    ratings = None if roles.rating is None else to_numeric_ratings(frame[roles.rating], roles.rating, where)
    times = None if roles.time is None else to_times(frame[roles.time], roles.time, where)
    return Interactions(users, items, ratings, times)


def merge_duplicates(log: Interactions, how: str, where: str) -> Interactions:
    """One row per (user, item): keep the latest (by time, else by row order), average ratings, or refuse."""
    if not len(log):
        return log
    keys = log.users.astype(np.int64) * (int(log.items.max()) + 2) + log.items
    n_dup = len(keys) - len(np.unique(keys))
    if n_dup == 0:
        return log
    if how == "error":
        raise DataError(
            f"{where} holds {n_dup} repeated (user, item) row(s); remove them, or set duplicates=last or mean"
        )
    averaged = how == "mean" and log.ratings is not None
    note = "averaged their ratings" if averaged else "kept the latest of each"
    warnings.warn(f"{where}: merged {n_dup} repeated (user, item) row(s); {note}", DeepmineWarning, stacklevel=3)
    rows = np.arange(len(log))
    order = np.lexsort((rows, log.times)) if log.times is not None else rows
    keep = np.sort(order[_last_of_each(keys[order])])
    merged = log.subset(keep)
    if averaged:
        means = pd.Series(log.ratings).groupby(keys).mean()
        merged.ratings = means.reindex(keys[keep]).to_numpy(dtype="float64")
    return merged


def _last_of_each(sorted_by_time_keys: np.ndarray) -> np.ndarray:
    """Positions (in time order) of the last occurrence of each key."""
    reverse = sorted_by_time_keys[::-1]
    _, first_in_reverse = np.unique(reverse, return_index=True)
    return len(reverse) - 1 - first_in_reverse


# ---- per-user structure ------------------------------------------------------------------------------
def time_order(log: Interactions) -> np.ndarray:
    """Row order by user, then time (ties: row order), then row."""
    rows = np.arange(len(log))
    if log.times is None:
        return np.lexsort((rows, log.users))
    return np.lexsort((rows, log.times, log.users))


def histories(log: Interactions, n_users: int) -> list[np.ndarray]:
    """Each user's items in time order (row order when there is no time)."""
    order = time_order(log)
    users, items = log.users[order], log.items[order]
    bounds = np.searchsorted(users, np.arange(n_users + 1))
    return [items[bounds[u] : bounds[u + 1]] for u in range(n_users)]


def holdout_last(log: Interactions, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hold out one interaction per user with at least two: the latest (by time), else a random one."""
    order = time_order(log)
    users = log.users[order]
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
    ends = np.r_[starts[1:], len(users)]
    sizes = ends - starts
    eligible = sizes >= 2
    if log.times is not None:
        picks = ends[eligible] - 1
    else:
        picks = starts[eligible] + (rng.random(int(eligible.sum())) * sizes[eligible]).astype(np.int64)
    valid = np.sort(order[picks])
    mask = np.ones(len(log), dtype=bool)
    mask[valid] = False
    return np.flatnonzero(mask), valid


def random_holdout(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n_valid = max(1, int(round(fraction * n)))
    perm = rng.permutation(n)
    return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])


class SeenPairs:
    """Which (user, item) pairs occurred, for membership tests and per-user lists (CSR)."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> None:
        self.n_users, self.n_items = n_users, n_items
        keys = np.unique(users.astype(np.int64) * n_items + items.astype(np.int64))
        self.keys = keys
        self.indptr = np.searchsorted(keys, np.arange(n_users + 1, dtype=np.int64) * n_items)
        self.indices = keys % n_items

    @classmethod
    def from_keys(cls, keys: np.ndarray, n_users: int, n_items: int) -> SeenPairs:
        keys = np.asarray(keys, dtype=np.int64)
        return cls(keys // n_items, keys % n_items, n_users, n_items)

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        query = users.astype(np.int64) * self.n_items + items.astype(np.int64)
        pos = np.minimum(np.searchsorted(self.keys, query), max(len(self.keys) - 1, 0))
        return self.keys[pos] == query if len(self.keys) else np.zeros(len(query), dtype=bool)

    def items_of(self, user: int) -> np.ndarray:
        return self.indices[self.indptr[user] : self.indptr[user + 1]]

    def counts(self) -> np.ndarray:
        return np.diff(self.indptr)


def sample_negatives(
    users: np.ndarray, seen: SeenPairs, count: int, rng: np.random.Generator
) -> np.ndarray:  # fmt: skip
    """``count`` distinct items per user that the user has not interacted with; -1 pads users with fewer."""
    out = np.full((len(users), count), -1, dtype=np.int64)
    n_items = seen.n_items
    for row, user in enumerate(users):
        n_seen = len(seen.items_of(user))
        free = n_items - n_seen
        if free <= 0:
            continue
        if free <= 2 * count:
            candidates = np.setdiff1d(np.arange(n_items), seen.items_of(user), assume_unique=True)
            take = min(count, free)
            out[row, :take] = rng.choice(candidates, take, replace=False)
            continue
        picked: list[int] = []
        taken: set[int] = set()
        while len(picked) < count:
            draw = rng.integers(0, n_items, 2 * count)
            ok = ~seen.contains(np.full(len(draw), user), draw)
            for item in draw[ok]:
                if item not in taken:
                    taken.add(int(item))
                    picked.append(int(item))
                    if len(picked) == count:
                        break
        out[row] = picked
    return out


# ---- side features --------------------------------------------------------------------------------
MAX_ONE_HOT = 50


@dataclass
class SideFeatures:
    """A dense float matrix aligned to the vocabulary, and what each column came from."""

    matrix: np.ndarray
    used: list[str]
    dropped: list[str]


def read_side_table(source: DataSource, data: DataConfig, key: str | None, kind: str) -> tuple[pd.DataFrame, str]:
    where = describe(source)
    if not isinstance(source, pd.DataFrame) and not is_sql_url(source) and not Path(source).exists():
        raise SourceNotFoundError(f"{kind} attribute file '{source}' does not exist; check the path")
    frame = read_interactions(source, data.model_copy(update={"sep": None, "header": None}))
    key_col = _pick(frame, key, (), f"{kind} key", where) if key else frame.columns[0]
    return frame, key_col


def encode_side_features(frame: pd.DataFrame, key_col: str, ids: list[str], where: str) -> SideFeatures:
    """Numeric columns standardized (missing → 0), low-cardinality text one-hot; other columns dropped."""
    keys = id_keys(frame[key_col])
    if pd.Series(keys).duplicated().any():
        frame = frame[~pd.Series(keys).duplicated().to_numpy()]
        keys = id_keys(frame[key_col])
    position = {k: i for i, k in enumerate(keys)}
    rows = np.array([position.get(k, -1) for k in ids])
    blocks: list[np.ndarray] = []
    used: list[str] = []
    dropped: list[str] = []
    for col in frame.columns:
        if col == key_col:
            continue
        values = frame[col]
        if values.isna().all() or values.nunique(dropna=True) <= 1:
            dropped.append(col)
            continue
        if pd.api.types.is_numeric_dtype(values):
            x = values.to_numpy(dtype="float64")
            mean, std = np.nanmean(x), np.nanstd(x) or 1.0
            blocks.append(np.nan_to_num((x - mean) / std)[:, None])
            used.append(col)
        elif values.nunique(dropna=True) <= MAX_ONE_HOT:
            codes, uniques = pd.factorize(values)
            onehot = np.zeros((len(values), len(uniques)))
            onehot[np.arange(len(values))[codes >= 0], codes[codes >= 0]] = 1.0
            blocks.append(onehot)
            used.append(col)
        else:
            dropped.append(col)
    table = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0))
    matrix = np.zeros((len(ids), table.shape[1]), dtype=np.float32)
    found = rows >= 0
    matrix[found] = table[rows[found]]
    if not found.any():
        raise DataError(f"no key in column '{key_col}' of {where} matches an id of the interaction log")
    return SideFeatures(matrix, used, dropped)
