"""From a request body to predictions: JSON records or a CSV file → a frame → the predictor → JSON bytes.

The frame goes through the same FeaturePipeline and model as ``Predictor.predict_frame``, so the service
answers exactly what batch prediction answers for the same rows.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import threading
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, Field, ValidationError, create_model

from deepmine.data.sources import reparse_csv_text, skips_blank_lines, verbatim_options
from deepmine.exceptions import DataError, DeepmineWarning
from deepmine.features.datetime import UnreadableDates
from deepmine.features.numeric import NumericEncoder
from deepmine.features.pipeline import Blocks
from deepmine.predictor import Predictor
from deepmine.serve.errors import ApiError, detail, from_data_error, from_validation
from deepmine.serve.fast_path import JSON_WHERE, FastBlocks, same_blocks
from deepmine.serve.request_model import InputField, Label, Models
from deepmine.serve.request_warnings import SCORING, RequestWarnings

DELIMITERS = (",", ";", "\t", "|")
CSV_WHERE = "the uploaded CSV"
ECHO_ATTR = "echo_id"  # the attribute of a request-named id field the model does not know
ANSWER_KEYS = ("prediction", "probabilities")

_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\r?\n)+")
_LINE_END = re.compile(r"\r\n?|\n")  # as pandas ends lines: the header of an old Mac file ends at \r
_thread_state = threading.local()


def match_torch_threads() -> None:
    """Give this worker thread the process's torch thread count.

    ``torch.set_num_threads`` reaches MKL only in the thread that calls it: without this, requests
    answered from worker threads would run matrix products with MKL's default thread count (slower on
    a busy machine, and 1 ulp away from what ``Predictor.predict_frame`` gives in the main thread).
    """
    threads = torch.get_num_threads()
    if getattr(_thread_state, "threads", None) != threads:
        torch.set_num_threads(threads)
        _thread_state.threads = threads


class Inference:
    """Everything a request needs from one loaded artifact, prepared once."""

    def __init__(self, predictor: Predictor, models: Models) -> None:
        self.predictor = predictor
        self.models = models
        self.features = [f for f in models.fields if f.feature]
        self.known = {f.name for f in models.fields}
        self.id_column = predictor.config.columns.id
        self.attrs = {f.name: f.attr for f in models.fields}
        self.id_attr = self.attrs.get(self.id_column) if self.id_column else None
        self._id_request = functools.lru_cache(maxsize=64)(self._request_with_id)
        scored = predictor.is_classifier or predictor.is_multilabel  # a probability per class or label
        self.class_keys = [str(c) for c in predictor.schema.classes] if scored else []
        self.na_values = list(predictor.config.data.na_values)
        self.fast: FastBlocks | None = None  # set by warm_up once checked against the pipeline
        self.request_warnings = RequestWarnings()

    # ---- the id echoed with each answer ---------------------------------------------------------------
    def check_id_field(self, id_field: str | None) -> None:
        """422 for an ``id`` query parameter that cannot name an echoed field."""
        if id_field is None:
            return
        if not id_field.strip():
            message = "the id query parameter is empty; name the field that holds each row's key"
            raise ApiError(422, message, "id_field", field="id", loc=["query", "id"])
        if id_field in ANSWER_KEYS:
            message = f"id field '{id_field}' would clash with the answer's own '{id_field}'; rename it"
            raise ApiError(422, message, "id_field", field=id_field, loc=["query", "id"])

    def _request_with_id(self, id_field: str) -> type[BaseModel]:
        """The request model whose records may also carry ``id_field``, a field the model does not know."""
        record = create_model(
            "Record", __base__=self.models.record, **{ECHO_ATTR: (Label | None, Field(None, alias=id_field))}
        )
        return create_model(
            "PredictRequest", __base__=self.models.request, records=(list[record], Field(..., min_length=1))
        )

    def _id_attr(self, id_field: str | None) -> str | None:
        if id_field is None:
            return self.id_attr
        return self.attrs.get(id_field, ECHO_ATTR)

    # ---- JSON ----------------------------------------------------------------------------------------
    def parse_json(self, body: bytes, id_field: str | None = None) -> list[BaseModel]:
        """Validate ``{"records": [...]}``: 400 for malformed JSON, 422 naming each bad field.

        ``id_field`` (the ``id`` query parameter) is a field the records may carry besides the columns."""
        self.check_id_field(id_field)
        known = id_field is None or id_field in self.attrs
        model = self.models.request if known else self._id_request(id_field)
        try:
            request = model.model_validate_json(body)
        except ValidationError as err:
            errors = err.errors()
            if errors and errors[0].get("type") == "json_invalid":
                raise ApiError(
                    400, f"the body is not valid JSON ({errors[0].get('msg', '')})", "json_invalid"
                ) from None
            raise from_validation(err) from None
        records = request.records  # type: ignore[attr-defined]
        if id_field is not None and self.records_ids(records, id_field) is None:
            raise ApiError(
                422,
                f"id field '{id_field}' is in none of the records; name the field that holds each row's key",
                "id_field",
                field=id_field,
                loc=["query", "id"],
            )
        return records

    def records_frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """Validated field values as the frame ``Predictor.predict_frame`` would read (NaN/None for null)."""
        columns: dict[str, np.ndarray] = {}
        for field in self.features:
            values = [row[field.attr] for row in rows]
            columns[field.name] = np.array(values, dtype="float64" if field.role == "numeric" else object)
        return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))

    def records_ids(self, records: list[BaseModel], id_field: str | None = None) -> list[Any] | None:
        """The values of ``id_field`` (else the artifact's id column), when the request sent them."""
        attr = self._id_attr(id_field)
        if attr is None or not any(attr in r.model_fields_set for r in records):
            return None
        return [getattr(r, attr, None) for r in records]

    def records_blocks(self, rows: list[dict[str, Any]]) -> Blocks:
        """Model inputs for validated rows: the fast path when it was verified at start-up, else the pipeline."""
        if self.fast is not None:
            return self.fast.blocks(rows)
        return self.predictor.pipeline.transform(self.records_frame(rows), JSON_WHERE)

    def score_records(self, records: list[BaseModel]) -> tuple[np.ndarray | None, np.ndarray]:
        """``(probabilities or None, predictions)`` for validated records (422 for a bad value)."""
        try:
            blocks = self.records_blocks([r.__dict__ for r in records])
        except DataError as err:
            raise from_data_error(err) from None
        return self.predictor.predict_blocks(blocks)

    # ---- CSV -----------------------------------------------------------------------------------------
    def parse_csv(
        self, body: bytes, charset: str | None = None, id_field: str | None = None
    ) -> tuple[pd.DataFrame, list[Any] | None]:
        """A CSV with a header row, read like `deepmine predict` reads a file (missing markers included);
        ``id_field`` names a column to echo besides the model's columns. The echoed column (``id_field``, else the
        artifact's ``columns.id``) is echoed as written ('007', 'NA'), as `deepmine predict --id` does."""
        self.check_id_field(id_field)
        if not body.strip():
            raise ApiError(400, "the CSV is empty; send a header row and data rows", "empty_body")
        encoding = charset or "utf-8-sig"
        try:
            text = body.decode(encoding)
        except (UnicodeDecodeError, LookupError) as err:
            raise ApiError(
                400, f"the CSV is not valid {encoding} text ({err}); send UTF-8 or name the charset", "bad_encoding"
            ) from None
        echoed = id_field or self.id_column
        text = _LEADING_BLANK_LINES.sub("", text)  # blank lines before the header are not rows
        sep, names = self._header(text)
        options: dict[str, Any] = {
            "sep": sep,
            "skipinitialspace": True,
            "na_values": self.na_values,
            "keep_default_na": False,
            "low_memory": False,
            "skip_blank_lines": skips_blank_lines(len(names)),  # as `deepmine predict` reads a file
        }
        if echoed is not None:  # the echoed key reads as text, missing-value words included
            options.update(verbatim_options(names, True, echoed, self.na_values))
        try:
            frame = pd.read_csv(io.StringIO(text), **options)
        except Exception as err:  # pandas raises many types for malformed text; all are the sender's
            message = (str(err).strip().splitlines() or [type(err).__name__])[-1]
            raise ApiError(400, f"the CSV could not be parsed: {message}", "csv_invalid") from None
        frame.columns = [str(c).strip() for c in frame.columns]
        if id_field is not None and id_field not in frame.columns:
            raise ApiError(
                422,
                f"id field '{id_field}' is not a column of the CSV; name the column that holds each row's key",
                "id_field",
                field=id_field,
                loc=["query", "id"],
            )
        self._check_csv_columns(frame, id_field)
        if len(frame) == 0:
            raise ApiError(422, "the CSV has a header but no data rows", "no_rows")
        ids = frame[echoed].tolist() if echoed and echoed in frame.columns else None
        if id_field is not None and id_field not in self.known:
            frame = frame.drop(columns=[id_field])  # the client's own key: echoed, not read by the model
        elif ids is not None and echoed in {f.name for f in self.features}:  # a model input: read as the others
            frame[echoed] = reparse_csv_text(frame[echoed], self.na_values)
        return frame, ids

    def _header(self, text: str) -> tuple[str, list[str]]:
        """The delimiter that splits the header into the most known column names (ties: the first), and the
        header's names as it splits them (read here once, so pandas parses the CSV once)."""
        header = _LINE_END.split(text.lstrip("\ufeff"), maxsplit=1)[0]
        best, best_names, best_hits = ",", [header], -1
        for sep in DELIMITERS:
            try:
                names = next(csv.reader([header], delimiter=sep, skipinitialspace=True), [])
            except csv.Error:
                continue
            hits = sum(name.strip() in self.known for name in names)
            if hits > best_hits:
                best, best_names, best_hits = sep, names, hits
        return best, best_names

    def _check_csv_columns(self, frame: pd.DataFrame, id_field: str | None = None) -> None:
        errors = []
        seen: set[str] = set()
        for name in frame.columns:
            if name in seen:
                errors.append(detail(f"column '{name}' appears twice in the header", "duplicate_column", field=name))
            seen.add(name)
            if name not in self.known and name != id_field:
                errors.append(
                    detail(
                        f"unknown column '{name}': the model was not trained on such a column",
                        "extra_forbidden",
                        field=name,
                    )
                )
        for field in self.features:
            if field.name not in seen:
                errors.append(
                    detail(
                        f"column '{field.name}' is required (leave its values empty when missing)",
                        "missing",
                        field=field.name,
                    )
                )
        if errors:
            raise ApiError.many(422, errors)

    # ---- prediction ----------------------------------------------------------------------------------
    def score(self, frame: pd.DataFrame, where: str) -> tuple[np.ndarray | None, np.ndarray]:
        """``(probabilities or None, predictions)`` for ``frame`` through the pipeline (422 for a bad value)."""
        try:
            return self.predictor.predict_loaded(frame, where)
        except DataError as err:
            raise from_data_error(err) from None

    def answer(
        self,
        proba: np.ndarray | None,
        values: np.ndarray,
        ids: list[Any] | None,
        id_field: str | None = None,
        said: list[str] | None = None,
    ) -> bytes:
        """The JSON answer; each row's id (from ``id_field``, else the artifact's id column) first, when sent;
        ``said``: the warnings scoring these rows raised, one line each."""
        scores = proba if proba is not None else values
        finite = np.isfinite(np.asarray(scores, dtype="float64"))
        if not finite.all():
            row = int(np.argwhere(~finite)[0][0])
            raise ApiError(
                422,
                f"the model's output for row {row} is not a finite number; check that row's values "
                "(for example numbers too large to scale)",
                "non_finite_output",
                loc=["body", "records", row],
            )
        labels = values.tolist()
        if proba is not None:
            keys = self.class_keys
            rows: list[dict[str, Any]] = [
                {"prediction": label, "probabilities": dict(zip(keys, p, strict=True))}
                for label, p in zip(labels, proba.tolist(), strict=True)
            ]
        else:
            rows = [{"prediction": label} for label in labels]
        if ids is not None:
            key = id_field or self.id_column
            rows = [{key: _plain(i), **row} for i, row in zip(ids, rows, strict=True)]
        payload = {
            "task": self.predictor.task,
            "classes": self.predictor.schema.classes,
            "predictions": rows,
            "warnings": said or [],
        }
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()

    # ---- start-up ------------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Check the fast path against the pipeline on sample rows, then predict them once, so the first
        real request pays no first-call costs."""
        rows = sample_rows(self.predictor, self.features)
        fast = FastBlocks(self.predictor.pipeline, {f.name: f.attr for f in self.features})
        with SCORING, warnings.catch_warnings():  # the sample's 'not a date' is there on purpose: no warning
            warnings.simplefilter("ignore", UnreadableDates)
            expected = self.predictor.pipeline.transform(self.records_frame(rows), "sample rows")
            try:
                same = same_blocks(fast.blocks(rows), expected)
            except Exception:
                same = False
        self.fast = fast if same else None
        if not same:
            warnings.warn(
                "the pandas-free input path disagrees with the pipeline on sample rows; using the pipeline",
                DeepmineWarning,
                stacklevel=2,
            )
        self.predictor.predict_blocks(expected)


def sample_rows(predictor: Predictor, features: list[InputField]) -> list[dict[str, Any]]:
    """Rows exercising every encoder's branches: missing, typical, edge and out-of-range values,
    known, unknown and padded labels."""
    pipeline = predictor.pipeline
    columns: dict[str, list[Any]] = {}
    for field in features:
        numeric = pipeline.numeric.get(field.name)
        categorical = pipeline.categorical.get(field.name)
        if field.role == "numeric" and isinstance(numeric, NumericEncoder):
            edges = list(numeric.edges) or [numeric.median]
            knots = list(numeric.knots_x) or [numeric.median]
            values: list[Any] = [None, numeric.median, edges[0], edges[-1], edges[len(edges) // 2], knots[0] - 1.0]
            values += [knots[-1] + 1.0, -1e30, 1e30, 0.0, 0.5]
        elif categorical is not None:
            cats = categorical.categories or ["a"]
            values = [None, cats[0], cats[-1], f"  {cats[0]} ", "never-seen-label", "", "3", cats[len(cats) // 2]]
        elif field.role == "datetime":
            values = [None, "2020-01-31", "2021-06-15 13:45:00", "not a date"]
        else:
            values = [None, "a few words of text", "", "many many many many words"]
        columns[field.attr] = values
    n = max((len(v) for v in columns.values()), default=1)
    return [{attr: values[i % len(values)] for attr, values in columns.items()} for i in range(n)]


def _plain(value: Any) -> Any:
    """numpy scalars and NaN to JSON-safe values."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
