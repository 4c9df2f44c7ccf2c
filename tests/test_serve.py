"""The REST service: a real uvicorn server on a free loopback port and a real httpx client.

Predictions equal Predictor.predict_frame on the same rows; user mistakes get a 4xx JSON body naming the
field; schemathesis finds no server error; concurrent clients all get correct answers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
from conftest import FAST, make_table

from deepmine.artifact import load_predictor
from deepmine.serve import create_app
from deepmine.serve.fast_path import same_blocks
from deepmine.serve.metadata import artifact_info

KEY = "s3cret-key"
SMALL_LIMIT = 8_192


# ---- a live server in a thread ----------------------------------------------------------------------
class LiveServer:
    """uvicorn serving ``app`` on a free 127.0.0.1 port from a background thread."""

    def __init__(self, app) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """A tiny binary model over numeric, categorical, binary, datetime and text columns, with an id column."""
    from deepmine.cli import main

    root = tmp_path_factory.mktemp("serve")
    data = root / "train.csv"
    make_table(160, seed=0).to_csv(data, index=False)
    out = root / "model"
    args = ["fit", str(data), "--target", "label", "--out", str(out), "--json", *FAST]
    try:
        main([*args, "--set", "columns.id=customer_id", "--set", "model.ensemble=1"])
    except SystemExit as done:
        pytest.fail(f"fitting the served model exited with {done.code}")
    return out


@pytest.fixture(scope="module")
def predictor(artifact):
    return load_predictor(artifact)


@pytest.fixture(scope="module")
def server(predictor, artifact):
    app = create_app(predictor, artifact_info=artifact_info(artifact), access_log=False)
    with LiveServer(app) as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """New rows (no label) with missing numbers, unseen categories and padded labels."""
    frame = make_table(40, seed=7).drop(columns=["label"])
    frame.loc[3, "color"] = "ultraviolet"
    frame.loc[5, "member"] = " yes "
    frame.loc[6, "income"] = np.nan
    frame.loc[8, "joined"] = None
    frame.loc[9, "note"] = None
    return frame


def records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))


def assert_same(answer: dict, expected: pd.DataFrame, classes: list) -> None:
    """Labels equal and probabilities bit-for-bit equal to predict_frame's."""
    got = answer["predictions"]
    assert len(got) == len(expected)
    assert [p["prediction"] for p in got] == expected["prediction"].tolist()
    for label in classes:
        column = np.array([p["probabilities"][str(label)] for p in got], dtype="float64")
        np.testing.assert_array_equal(column, expected[f"proba_{label}"].to_numpy(dtype="float64"))


def error_fields(response: httpx.Response) -> list[str | None]:
    body = response.json()
    assert set(body) == {"detail"} and body["detail"], body
    for item in body["detail"]:
        assert set(item) == {"loc", "field", "msg", "type"} and item["msg"], item
    return [item["field"] for item in body["detail"]]


# ---- predictions -------------------------------------------------------------------------------------
def test_json_predictions_equal_predict_frame(client, predictor, rows):
    response = client.post("/predict", json={"records": records(rows)})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["task"] == "binary" and answer["classes"] == predictor.schema.classes
    assert_same(answer, predictor.predict_frame(rows), predictor.schema.classes)
    assert [p["customer_id"] for p in answer["predictions"]] == rows["customer_id"].tolist()


def test_single_rows_equal_predict_frame(client, predictor, rows):
    for i in (0, 3, 6, 8):
        one = rows.iloc[[i]].reset_index(drop=True)
        response = client.post("/predict", json={"records": records(one)})
        assert response.status_code == 200, response.text
        assert_same(response.json(), predictor.predict_frame(one), predictor.schema.classes)


def test_fast_path_matches_pipeline_bit_for_bit(server, predictor, rows):
    inference = server.server.config.app.state.inference
    assert inference.fast is not None  # verified at start-up
    body = records(rows)
    body[10]["age"] = 1e30
    body[11]["color"] = 3
    body[12]["color"] = 4.0
    body[13]["member"] = True
    parsed = inference.parse_json(json.dumps({"records": body}).encode())
    plain = [r.__dict__ for r in parsed]
    expected = predictor.pipeline.transform(inference.records_frame(plain), "x")
    assert same_blocks(inference.fast.blocks(plain), expected)


def test_numbers_for_a_categorical_column_are_labels(client, predictor, rows):
    one = records(rows.head(1))
    one[0]["member"] = 1
    response = client.post("/predict", json={"records": one})
    assert response.status_code == 200, response.text
    expected = predictor.predict_frame(rows.head(1).assign(member="1"))
    assert_same(response.json(), expected, predictor.schema.classes)


def test_id_is_echoed_only_when_sent(client, rows):
    body = records(rows.head(2))
    for record in body:
        del record["customer_id"]
    response = client.post("/predict", json={"records": body})
    assert response.status_code == 200, response.text
    assert all("customer_id" not in p for p in response.json()["predictions"])


def test_a_request_names_the_id_field_echoed_verbatim(predictor, rows):
    from fastapi.testclient import TestClient

    keys = [f"00{i}" if i % 2 else i for i in range(5)]  # the client's own keys, strings and numbers
    body = [{**record, "order_no": key} for record, key in zip(records(rows.head(5)), keys, strict=True)]
    csv = rows.head(5).assign(order_no=[f"00{i}" for i in range(5)]).to_csv(index=False)
    with TestClient(create_app(predictor, access_log=False)) as http:
        plain = http.post("/predict", json={"records": records(rows.head(5))}).json()["predictions"]
        named = http.post("/predict", params={"id": "order_no"}, json={"records": body})
        assert named.status_code == 200, named.text
        answers = named.json()["predictions"]
        assert [p["order_no"] for p in answers] == keys and all("customer_id" not in p for p in answers)
        assert [{k: v for k, v in p.items() if k != "order_no"} for p in answers] == [
            {k: v for k, v in p.items() if k != "customer_id"} for p in plain
        ]
        from_csv = http.post("/predict", params={"id": "order_no"}, content=csv, headers={"Content-Type": "text/csv"})
        assert from_csv.status_code == 200, from_csv.text
        assert [p["order_no"] for p in from_csv.json()["predictions"]] == [f"00{i}" for i in range(5)]
        for content in (
            {"json": {"records": records(rows.head(2))}},
            {"content": csv, "headers": {"Content-Type": "text/csv"}},
        ):
            unknown = http.post("/predict", params={"id": "order"}, **content)
            assert unknown.status_code == 422 and error_fields(unknown) == ["order"]
            assert "id field 'order'" in unknown.json()["detail"][0]["msg"]


def test_csv_body_and_multipart_upload(client, predictor, rows, tmp_path):
    path = tmp_path / "rows.csv"
    rows.to_csv(path, index=False)
    expected = predictor.predict_frame(path)
    content = path.read_bytes()
    as_body = client.post("/predict", content=content, headers={"Content-Type": "text/csv"})
    assert as_body.status_code == 200, as_body.text
    assert_same(as_body.json(), expected, predictor.schema.classes)
    as_file = client.post("/predict", files={"file": ("rows.csv", content, "text/csv")})
    assert as_file.status_code == 200, as_file.text
    assert as_file.json() == as_body.json()
    ids = [p["customer_id"] for p in as_body.json()["predictions"]]  # as batch predict echoes them: as written
    assert ids == expected["customer_id"].tolist() == rows["customer_id"].astype(str).tolist()


def test_csv_upload_echoes_the_artifacts_id_column_as_written_and_reads_features_missing_words(
    client, predictor, tmp_path
):
    from conftest import make_table

    frame = make_table(4, seed=11).drop(columns=["label"]).astype({"customer_id": str, "income": object})
    frame["customer_id"] = ["007", "NA", "?", "N/A"]  # keys that look like missing-value words
    frame.loc[1, "income"] = "NA"  # a feature's missing word is still missing
    path = tmp_path / "keys.csv"
    frame.to_csv(path, index=False)
    response = client.post("/predict", content=path.read_bytes(), headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    batch = predictor.predict_frame(path)  # `deepmine predict` of the same file
    assert [p["customer_id"] for p in response.json()["predictions"]] == ["007", "NA", "?", "N/A"]
    assert batch["customer_id"].tolist() == ["007", "NA", "?", "N/A"]
    assert_same(response.json(), batch, predictor.schema.classes)
    numeric = frame.assign(income=pd.to_numeric(frame["income"], errors="coerce"))  # 'NA' income: missing
    assert np.isnan(numeric["income"][1]) and numeric["income"].notna().sum() == 3
    assert_same(response.json(), predictor.predict_frame(numeric), predictor.schema.classes)


def test_a_csv_upload_is_parsed_once(predictor, rows, monkeypatch):
    from deepmine.serve.inference import Inference
    from deepmine.serve.request_model import build_models

    inference = Inference(predictor, build_models(predictor))
    parses = []
    read_csv = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda *args, **kwargs: parses.append(kwargs) or read_csv(*args, **kwargs))
    sent = rows.head(3).assign(customer_id=["007", "NA", "?"])
    frames = []
    for body in (sent.to_csv(index=False), sent.to_csv(index=False, sep=";", lineterminator="\r")):  # old Mac lines
        parses.clear()
        frame, ids = inference.parse_csv(body.encode())
        assert len(parses) == 1  # pandas does not read the header a second time
        assert ids == ["007", "NA", "?"] and list(frame.columns) == list(sent.columns)
        frames.append(frame)
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_csv_with_semicolons_and_missing_markers(client, predictor, rows, tmp_path):
    path = tmp_path / "rows.csv"
    rows.head(5).to_csv(path, index=False, sep=";", na_rep="NA")
    response = client.post("/predict", content=path.read_bytes(), headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert_same(response.json(), predictor.predict_frame(rows.head(5)), predictor.schema.classes)


# ---- health, metadata, docs ----------------------------------------------------------------------------
def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok", "task": "binary"}


def test_metadata(client, predictor):
    meta = client.get("/metadata").json()
    assert meta["format_version"] == 1 and meta["task"] == "binary" and meta["target"] == "label"
    assert meta["classes"] == ["no", "yes"] and meta["id_column"] == "customer_id"
    roles = {c["name"]: c["role"] for c in meta["schema"]["columns"]}
    assert roles == {"customer_id": "id", "age": "numeric", "income": "numeric", "color": "categorical",
                     "member": "binary", "joined": "datetime", "note": "text"}  # fmt: skip
    inputs = {i["name"]: (i["type"], i["required"]) for i in meta["inputs"]}
    assert inputs["age"] == ("number", True) and inputs["color"] == ("string", True)
    assert inputs["customer_id"][1] is False and inputs["label"][1] is False
    assert "accuracy" in meta["metrics"]["valid"]
    assert {"deepmine", "torch", "python"} <= set(meta["versions"]) and "runtime_versions" in meta


def test_openapi_has_a_typed_field_per_column(client):
    spec = client.get("/openapi.json").json()
    record = spec["components"]["schemas"]["Record"]
    assert record["additionalProperties"] is False
    assert set(record["required"]) == {"age", "income", "color", "member", "joined", "note"}
    assert {"type": "number"} in record["properties"]["age"]["anyOf"]
    assert {"type": "string"} in record["properties"]["color"]["anyOf"]
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "text/csv", "multipart/form-data"}
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


# ---- user mistakes: 4xx with a JSON body naming the field ----------------------------------------------
def _record(rows, **changes):
    record = records(rows.head(1))[0]
    for key, value in changes.items():
        if value is KeyError:
            del record[key]
        else:
            record[key] = value
    return record


@pytest.mark.parametrize(
    ("change", "field", "type_"),
    [
        ({"age": "old"}, "age", "float_parsing"),
        ({"age": [1, 2]}, "age", None),
        ({"color": {"a": 1}}, "color", None),
        ({"note": 12}, "note", "string_type"),
        ({"age": KeyError}, "age", "missing"),
        ({"colour": "red"}, "colour", "extra_forbidden"),
        ({"age": "__INF__"}, "age", "value_error"),  # JSON 1e999 is infinite
        ({"age": True}, "age", "value_error"),  # not read as 1.0
    ],
    ids=["text-for-number", "list", "object", "number-for-text", "missing", "extra", "infinite", "boolean"],
)
def test_bad_fields_are_422_naming_the_field(client, rows, change, field, type_):
    body = json.dumps({"records": [records(rows.head(1))[0], _record(rows, **change)]}).replace('"__INF__"', "1e999")
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert field in error_fields(response)
    item = next(d for d in response.json()["detail"] if d["field"] == field)
    assert item["loc"][:3] == ["body", "records", 1]
    if type_:
        assert item["type"] == type_


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"", "application/json", 400),
        (b"   ", "application/json", 400),
        (b"{not json", "application/json", 400),
        (b'{"records": []}', "application/json", 422),
        (b'{"records": {}}', "application/json", 422),
        (b"[1, 2]", "application/json", 422),
        (b'{"rows": []}', "application/json", 422),
        (b"age,color\n1,red\n", "application/xml", 415),
        (b"", "text/csv", 400),
        (b"\xff\xfe\x00garbage", "text/csv", 400),
        (b'a,"b\n1', "text/csv", 400),
        (b"age,income,color,member,joined,note\n", "text/csv", 422),
    ],
    ids=[
        "empty",
        "blank",
        "malformed",
        "no-records",
        "records-object",
        "list",
        "wrong-key",
        "media-type",
        "empty-csv",
        "binary-csv",
        "broken-quote",
        "header-only",
    ],
)
def test_bad_bodies_get_the_right_4xx(client, content, content_type, status):
    response = client.post("/predict", content=content, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    error_fields(response)


def test_csv_unknown_and_missing_columns_are_named(client, rows):
    frame = rows.head(3).drop(columns=["color"]).assign(colour="red")
    response = client.post("/predict", content=frame.to_csv(index=False), headers={"Content-Type": "text/csv"})
    assert response.status_code == 422, response.text
    assert {"color", "colour"} <= set(error_fields(response))


def test_csv_bad_value_is_422_naming_the_column(client, rows):
    frame = rows.head(3).astype({"age": object})
    frame.loc[1, "age"] = "old"
    response = client.post("/predict", content=frame.to_csv(index=False), headers={"Content-Type": "text/csv"})
    assert response.status_code == 422, response.text
    assert error_fields(response) == ["age"]


def test_multipart_without_a_file_is_422(client):
    body = b'--XyZ\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--XyZ--\r\n'
    response = client.post("/predict", content=body, headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert response.status_code == 422, response.text
    assert error_fields(response) == ["file"]


def test_malformed_multipart_is_400(client):
    response = client.post("/predict", content=b"garbage", headers={"Content-Type": "multipart/form-data"})
    assert response.status_code == 400, response.text
    error_fields(response)


def test_unknown_route_and_method_are_json(client):
    assert client.get("/nope").status_code == 404
    response = client.get("/predict")
    assert response.status_code == 405
    error_fields(response)


@pytest.fixture(scope="module")
def strict_server(predictor):
    """The same model behind an API key and a small body limit."""
    app = create_app(predictor, api_key=KEY, max_body_bytes=SMALL_LIMIT, access_log=False)
    with LiveServer(app) as live:
        yield live


def test_huge_bodies_get_413(strict_server, rows):
    big = json.dumps({"records": records(rows) * 20}).encode()
    assert len(big) > SMALL_LIMIT
    with httpx.Client(base_url=strict_server.url, timeout=30, headers={"X-API-Key": KEY}) as http:
        declared = http.post("/predict", content=big, headers={"Content-Type": "application/json"})
        assert declared.status_code == 413, declared.text
        assert error_fields(declared) == [None] and "limit" in declared.json()["detail"][0]["msg"]
        chunked = http.post("/predict", content=iter([big[:4000], big[4000:]]), headers={"Content-Type": "text/csv"})
        assert chunked.status_code == 413, chunked.text
        upload = http.post("/predict", files={"file": ("big.csv", big, "text/csv")})
        assert upload.status_code == 413, upload.text
        small = http.post("/predict", json={"records": records(rows.head(2))})
        assert small.status_code == 200, small.text


def test_api_key_required_and_compared(strict_server, rows):
    body = {"records": records(rows.head(1))}
    with httpx.Client(base_url=strict_server.url, timeout=30) as http:
        missing = http.post("/predict", json=body)
        assert missing.status_code == 401 and error_fields(missing) == ["X-API-Key"]
        wrong = http.post("/predict", json=body, headers={"X-API-Key": KEY + "x"})
        assert wrong.status_code == 401 and error_fields(wrong) == ["X-API-Key"]
        assert http.get("/metadata", headers={"X-API-Key": "nope"}).status_code == 401
        assert http.post("/predict", json=body, headers={"X-API-Key": KEY}).status_code == 200
        assert http.get("/metadata", headers={"X-API-Key": KEY}).status_code == 200
        assert http.get("/health").status_code == 200  # liveness stays open


def test_api_key_from_the_environment(predictor, monkeypatch):
    monkeypatch.setenv("DEEPMINE_API_KEY", "from-env")
    with LiveServer(create_app(predictor, access_log=False)) as live, httpx.Client(base_url=live.url) as http:
        assert http.get("/metadata").status_code == 401
        assert http.get("/metadata", headers={"X-API-Key": "from-env"}).status_code == 200


# ---- concurrency -----------------------------------------------------------------------------------------
def test_concurrent_clients_all_get_correct_answers(server, predictor, rows):
    """8 threads × 20 requests of 1-5 rows each; every answer equals predict_frame on its rows."""
    rng = np.random.default_rng(0)
    jobs = []
    for _ in range(8 * 20):
        picked = rows.iloc[np.sort(rng.choice(len(rows), int(rng.integers(1, 6)), replace=False))]
        picked = picked.reset_index(drop=True)
        jobs.append((records(picked), predictor.predict_frame(picked)))

    def worker(part):
        failures = []
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for body, expected in part:
                response = http.post("/predict", json={"records": body})
                try:
                    assert response.status_code == 200, response.text
                    assert_same(response.json(), expected, predictor.schema.classes)
                except AssertionError as err:
                    failures.append(str(err))
        return failures

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, [jobs[i::8] for i in range(8)]))
    assert [f for part in results for f in part] == []


# ---- data-quality warnings: told to the client that sent the data, logged once per kind -----------------
def _with_date(rows, value) -> dict:
    return {"records": [_record(rows, joined=value)]}


def test_a_bad_date_is_a_warning_in_its_own_answer(client, rows):
    response = client.post("/predict", json=_with_date(rows, "soon"))
    assert response.status_code == 200, response.text
    (said,) = response.json()["warnings"]
    assert said.startswith("the request: 1 value(s) of column 'joined' could not be read as dates")
    assert "(for example 'soon')" in said and "\n" not in said
    assert client.post("/predict", json=_with_date(rows, "2021-03-04")).json()["warnings"] == []
    csv = pd.DataFrame([_record(rows, joined="later")]).to_csv(index=False)
    answer = client.post("/predict", content=csv, headers={"Content-Type": "text/csv"}).json()
    assert [w.split(" could not")[0] for w in answer["warnings"]] == ["the uploaded CSV: 1 value(s) of column 'joined'"]
    spec = client.get("/openapi.json").json()["components"]["schemas"]["PredictResponse"]
    assert spec["properties"]["warnings"]["items"] == {"type": "string"}


def test_distinct_bad_values_leave_the_servers_memory_bounded(predictor, rows):
    """Each answer names its own value; the server logs the kind once and keeps no text per value."""
    import io

    import deepmine.features.datetime as datetime_module
    from deepmine.cli import SHOWN_WARNINGS

    log = io.StringIO()
    app = create_app(predictor, access_log=False)
    app.state.inference.request_warnings.stream = log
    shown = len(SHOWN_WARNINGS)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=30) as http:
        for i in range(40):
            said = http.post("/predict", json=_with_date(rows, f"soon-{i}")).json()["warnings"]
            assert len(said) == 1 and f"'soon-{i}'" in said[0]
    assert len(app.state.inference.request_warnings.logged) == 1
    (line,) = log.getvalue().splitlines()
    assert json.loads(line)["event"] == "warning" and "'soon-0'" in json.loads(line)["message"]
    registry = getattr(datetime_module, "__warningregistry__", {})
    assert not [key for key in registry if "soon-" in str(key)]
    assert len(SHOWN_WARNINGS) == shown


def test_logged_kinds_are_an_lru_of_bounded_size():
    import io

    from deepmine.features.datetime import UnreadableDates
    from deepmine.serve.request_warnings import RequestWarnings

    log = io.StringIO()
    catcher = RequestWarnings(stream=log, max_kinds=3)
    for column in ["a", "b", "c", "d", "e", "e", "e"]:
        with catcher.catching() as said:
            warnings.warn(UnreadableDates("the request", column, 1, "x"), stacklevel=1)
        assert said == [str(UnreadableDates("the request", column, 1, "x"))]
    assert [kind[-1] for kind in catcher.logged] == ["c", "d", "e"]
    assert len(log.getvalue().splitlines()) == 5  # e is logged once


def test_concurrent_requests_hear_only_their_own_warnings(server, rows):
    def worker(part: list[int]) -> list[str]:
        failures = []
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for i in part:
                value = f"bad-{i}" if i % 3 else "2020-05-06"  # every third request is clean
                said = http.post("/predict", json=_with_date(rows, value)).json()["warnings"]
                expected = [f"(for example '{value}')"] if i % 3 else []
                if [re.search(r"\(for example '[^']*'\)", w).group() for w in said] != expected:
                    failures.append(f"request {i}: {said}")
        return failures

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, [list(range(k, 120, 8)) for k in range(8)]))
    assert [f for part in results for f in part] == []


# ---- schemathesis: no server error anywhere in the spec -------------------------------------------------
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_finds_no_server_error(server, mode):
    """Data that fits the spec and data that does not, for every operation: never a 5xx, and every answer
    (status, content type, body) is one the spec documents."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /predict", "GET /health", "GET /metadata"}
    for operation in operations:
        if mode == "negative" and operation.method.upper() == "GET":
            continue  # nothing to get wrong: these take no input

        @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=True)  # fmt: skip
        def check(case):
            case.call_and_validate(checks=checks, timeout=30)

        check()


# ---- the command: `deepmine serve` ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_command_logs_json_and_shuts_down_gracefully(artifact, rows, tmp_path):
    port = free_port()
    env = {**os.environ, "DEEPMINE_API_KEY": KEY}
    log = tmp_path / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deepmine", "serve", str(artifact), "--port", str(port)], stderr=err, env=env
        )
        try:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=10) as http:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        http.get("/health")
                        break
                    except httpx.TransportError:
                        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                        time.sleep(0.05)
                body = {"records": records(rows.head(2))}
                assert http.post("/predict", json=body).status_code == 401
                assert http.post("/predict", json=body, headers={"X-API-Key": KEY}).status_code == 200
                for value in ("soon", "later"):  # two texts, one kind: one line in the server's log
                    answer = http.post("/predict", json=_with_date(rows, value), headers={"X-API-Key": KEY}).json()
                    assert f"'{value}'" in answer["warnings"][0]
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=20)
    lines = log.read_text().splitlines()
    assert code in (0, -signal.SIGTERM), lines
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    access = [e for e in logged if e.get("event") == "request"]
    assert [(e["method"], e["path"], e["status"]) for e in access[-4:]] == [("POST", "/predict", 401)] + [
        ("POST", "/predict", 200)
    ] * 3
    assert [e["message"].split(" could not")[0] for e in logged if e.get("event") == "warning"] == [
        "the request: 1 value(s) of column 'joined'"
    ]
    assert not [line for line in lines if line.startswith("warning:")]
    assert all(isinstance(e["ms"], float) for e in access)
    assert any("shutdown complete" in e.get("message", "").lower() for e in logged)
    assert KEY not in log.read_text()


def test_serve_command_refuses_a_missing_artifact(run_cli, tmp_path):
    result = run_cli("serve", tmp_path / "nope")
    assert result.code == 1 and "does not exist" in result.err


def test_serve_command_on_a_busy_port_is_one_line_before_announcing(run_cli, artifact):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", artifact, "--port", port)
    assert result.code == 2, result
    assert result.err.startswith(f"error: cannot listen on 127.0.0.1:{port}") and result.err.count("\n") == 1
    assert "serving on" not in result.err


def test_regression_model_serves_values(tmp_path, rows):
    from deepmine.cli import main

    data = tmp_path / "train.csv"
    make_table(120, seed=1, task="regression").to_csv(data, index=False)
    out = tmp_path / "reg"
    try:
        main(["fit", str(data), "--target", "label", "--out", str(out), "--json", *FAST, "--set", "model.ensemble=1"])
    except SystemExit as done:
        pytest.fail(f"fitting the regression model exited with {done.code}")
    predictor = load_predictor(out)
    with LiveServer(create_app(predictor, access_log=False)) as live, httpx.Client(base_url=live.url) as http:
        response = http.post("/predict", json={"records": records(rows.head(7))})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["task"] == "regression" and answer["classes"] == []
        assert all(set(p) == {"prediction"} for p in answer["predictions"])
        expected = predictor.predict_frame(rows.head(7))["prediction"].tolist()
        assert [p["prediction"] for p in answer["predictions"]] == expected
        assert http.get("/metadata").json()["task"] == "regression"
