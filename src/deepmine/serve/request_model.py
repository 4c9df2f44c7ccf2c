"""Typed request and response models built from an artifact's schema (pydantic.create_model).

One field per input column, keyed by the column's name (an alias: column names need not be Python
identifiers). Feature columns are required but may be null (missing); the id, dropped and target
columns the model knows are optional and ignored; any other field is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from deepmine.data.schema import FEATURE_ROLES
from deepmine.features.numeric import NumericEncoder
from deepmine.predictor import Predictor

Label = str | int | float | bool


@dataclass(frozen=True)
class InputField:
    """One column a request may send."""

    name: str
    role: str
    feature: bool  # required (the model reads it) or optional (known but ignored)
    attr: str  # the attribute name on the pydantic model


def category_key(value: Any) -> Any:
    """Numbers sent for a categorical column become the keys training used: 3, 3.0 and '3' agree."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else str(value)
    return value


def _finite(column: str):
    def check(value: float | None) -> float | None:
        if value is not None and math.isinf(value):
            raise ValueError(
                f"column '{column}' got an infinite value; expected a finite number or null "
                "(the model was trained with preprocess.infinite=error)"
            )
        return value

    return check


def _not_bool(column: str):
    def check(value: Any) -> Any:
        if isinstance(value, bool):  # pydantic would read true as 1.0
            raise ValueError(f"column '{column}' got {str(value).lower()}; expected a number or null")
        return value

    return check


def input_fields(predictor: Predictor) -> list[InputField]:
    """Feature columns first (in schema order), then the optional known columns."""
    schema = predictor.schema
    features = [c for c in schema.columns if c.role in FEATURE_ROLES]
    known = [c for c in schema.columns if c.role not in FEATURE_ROLES]
    fields = [InputField(c.name, c.role, True, f"f{i}") for i, c in enumerate(features)]
    fields += [InputField(c.name, c.role, False, f"o{i}") for i, c in enumerate(known)]
    names = {f.name for f in fields}
    if schema.target and schema.target not in names:
        fields.append(InputField(schema.target, "target", False, "target"))
    return fields


def _field_type(field: InputField, predictor: Predictor) -> Any:
    if not field.feature:
        return Label | None
    if field.role == "numeric":
        encoder = predictor.pipeline.numeric.get(field.name)
        no_bool = BeforeValidator(_not_bool(field.name))
        if isinstance(encoder, NumericEncoder) and encoder.infinite == "error":
            return Annotated[float | None, no_bool, AfterValidator(_finite(field.name))]
        return Annotated[float | None, no_bool]
    if field.role in ("categorical", "binary"):
        return Annotated[str | None, BeforeValidator(category_key)]
    return str | None  # text and datetime: strings only


def _describe(field: InputField, reason: str) -> str:
    if not field.feature:
        return f"{field.role} column, optional and not used by the model"
    if field.role == "numeric":
        kind = "a number"
    elif field.role in ("categorical", "binary"):
        kind = "a string (numbers are accepted)"
    else:
        kind = "a string"
    return f"{field.role} column ({reason}): {kind}, or null when missing"


def example_record(predictor: Predictor, fields: list[InputField]) -> dict[str, Any]:
    """A plausible record for the docs: medians for numbers, the first category for labels."""
    example: dict[str, Any] = {}
    pipeline = predictor.pipeline
    for field in fields:
        if not field.feature:
            continue
        numeric = pipeline.numeric.get(field.name)
        categorical = pipeline.categorical.get(field.name)
        if isinstance(numeric, NumericEncoder):
            example[field.name] = numeric.median
        elif categorical is not None and categorical.categories:
            example[field.name] = categorical.categories[0]
        else:
            example[field.name] = None
    return example


@dataclass
class Models:
    """The pydantic models of one artifact's API."""

    fields: list[InputField]
    record: type[BaseModel]
    request: type[BaseModel]
    prediction: type[BaseModel]
    response: type[BaseModel]


def build_models(predictor: Predictor) -> Models:
    fields = input_fields(predictor)
    reasons = {c.name: c.reason for c in predictor.schema.columns}
    definitions: dict[str, Any] = {}
    for field in fields:
        default = ... if field.feature else None
        definitions[field.attr] = (
            _field_type(field, predictor),
            Field(default, alias=field.name, description=_describe(field, reasons.get(field.name, ""))),
        )
    example = example_record(predictor, fields)
    record = create_model(
        "Record",
        __config__=ConfigDict(extra="forbid", populate_by_name=False, json_schema_extra={"examples": [example]}),
        __doc__="One input row: a field per column of the training table.",
        **definitions,
    )
    request = create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [{"records": [example]}]}),
        __doc__="Rows to predict, as JSON records.",
        records=(list[record], Field(..., min_length=1, description="The rows to predict, one object per row.")),
    )
    prediction_fields: dict[str, Any] = {
        "prediction": (Label, Field(..., description="Predicted label (classification) or value (regression).")),
        "probabilities": (
            dict[str, float] | None,
            Field(None, description="Probability of each class (classification only), keyed by the class label."),
        ),
    }
    id_column = predictor.config.columns.id
    if id_column:
        prediction_fields["row_id"] = (
            Label | None,
            Field(None, alias=id_column, description=f"The request's '{id_column}' value, when it was sent."),
        )
    prediction = create_model(
        "Prediction",
        __doc__="The prediction for one input row, after the row's key when the request sent one: the field "
        "named by the `id` query parameter, else the artifact's id column.",
        **prediction_fields,
    )
    response = create_model(
        "PredictResponse",
        __doc__="One prediction per input row, in input order.",
        task=(str, Field(..., description="binary, multiclass or regression")),
        classes=(list[Label], Field(..., description="The class labels (empty for regression).")),
        predictions=(list[prediction], ...),
        warnings=(
            list[str],
            Field(
                default_factory=list,
                description="Problems found in this request's own rows, one line each, naming the column and a "
                "value (for example values of a datetime column that are not dates, read as missing); the rows "
                "are still predicted. Empty when there are none.",
            ),
        ),
    )
    return Models(fields, record, request, prediction, response)
