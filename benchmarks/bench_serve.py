"""serve: `deepmine serve` on an Adult artifact, measured from outside over loopback HTTP.

Cold start is the wall time from starting the `deepmine serve` process to the first answered ``POST /predict``
(imports, loading and checking the artifact, binding the port, the first request), polled every 5 ms; median of
a few starts. Latency: sequential single-row JSON requests on one keep-alive connection (stdlib http.client, so
the client adds little), each a different adult.test row, after a warm-up. Throughput: sequential requests of
1,000 rows each, as JSON records and as a CSV body. Answers are checked against Predictor.predict_frame.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import adult_data
from measure import deepmine_cli, run_measured
from targets import check, judge

NAME = "serve"
TITLE = "`deepmine serve` on an Adult artifact: cold start, single-row latency, batch throughput (loopback HTTP)"
COLD_START_MAX_S, P99_MAX_MS, ROWS_PER_S_MIN = 3.0, 10.0, 20_000.0
COLD_STARTS = 3
LATENCY_REQUESTS = 1_000
WARMUP_REQUESTS = 100
BATCH_ROWS = 1_000
BATCH_REQUESTS = 30
CHECKED_ROWS = 200
RUN = "deepmine serve (Adult, 1 worker)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_artifact(files: adult_data.AdultFiles, progress) -> tuple[Path, dict[str, Any]]:
    """benchmarks/work/adult/model-serve, fitted with the CLI (defaults) when missing or unusable."""
    artifact = files.train_csv.parent / "model-serve"
    if artifact.exists():
        try:
            from deepmine.artifact import load_predictor

            load_predictor(artifact).predict_frame(str(files.test_csv))
            return artifact, {"fitted_now": False}
        except Exception as err:  # an artifact from older code: fit it again
            progress(f"serve: {artifact} is unusable ({type(err).__name__}: {err}); fitting it again")
    progress(f"serve: fitting {artifact} with the CLI (defaults) ...")
    fit = run_measured(
        [*deepmine_cli(), "fit", str(files.train_csv), "--target", adult_data.TARGET, "--out", str(artifact), "--json"]
    )
    summary = fit.json()
    return artifact, {"fitted_now": True, "fit_seconds": fit.wall_seconds, "valid_roc_auc": summary.get("roc_auc")}


class Server:
    """One `deepmine serve` child process on a free loopback port."""

    def __init__(self, artifact: Path) -> None:
        self.port = free_port()
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        command = [*deepmine_cli(), "serve", str(artifact), "--port", str(self.port)]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log)
        self.command = command

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def wait_first_answer(self, body: bytes, limit_s: float = 120.0) -> float:
        """Seconds from process start to the first 200 from POST /predict."""
        while True:
            try:
                conn = self.connect()
                status, _ = post(conn, body)
                conn.close()
                if status == 200:
                    return time.perf_counter() - self.started
                raise RuntimeError(f"the first /predict answered {status}")
            except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
                if self.proc.poll() is not None or time.perf_counter() - self.started > limit_s:
                    self.log.seek(0)
                    tail = self.log.read().decode(errors="replace").strip().splitlines()[-3:]
                    raise RuntimeError(f"`{' '.join(self.command)}` did not answer: {tail}") from None
                time.sleep(0.005)

    def peak_rss_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return None

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.log.close()


def post(conn: http.client.HTTPConnection, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    conn.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
    response = conn.getresponse()
    return response.status, response.read()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def run(progress) -> dict[str, Any]:
    import pandas as pd

    from deepmine.artifact import load_predictor

    files = adult_data.prepare()
    artifact, artifact_note = ensure_artifact(files, progress)
    test = pd.read_csv(files.test_csv).drop(columns=[adult_data.TARGET])
    records = json.loads(test.to_json(orient="records"))
    one_row = [json.dumps({"records": [r]}).encode() for r in records]
    load_before = os.getloadavg()

    cold: list[float] = []
    for attempt in range(COLD_STARTS):
        server = Server(artifact)
        try:
            cold.append(server.wait_first_answer(one_row[attempt]))
        finally:
            server.stop()
        progress(f"serve: cold start {attempt + 1}/{COLD_STARTS}: {cold[-1]:.2f} s")

    server = Server(artifact)
    try:
        server.wait_first_answer(one_row[0])
        conn = server.connect()
        for i in range(WARMUP_REQUESTS):
            post(conn, one_row[-1 - i])
        latencies, answers = [], []
        for i in range(LATENCY_REQUESTS):
            body = one_row[i % len(one_row)]
            started = time.perf_counter()
            status, payload = post(conn, body)
            latencies.append((time.perf_counter() - started) * 1000.0)
            if status != 200:
                raise RuntimeError(f"single-row request {i} answered {status}: {payload[:200]!r}")
            if i < CHECKED_ROWS:
                answers.append(json.loads(payload)["predictions"][0])
        progress(f"serve: {LATENCY_REQUESTS} single-row requests: p50 {percentile(latencies, 50):.2f} ms, "
                 f"p99 {percentile(latencies, 99):.2f} ms")  # fmt: skip

        batches = [test.iloc[i * BATCH_ROWS : (i + 1) * BATCH_ROWS] for i in range(len(test) // BATCH_ROWS)]
        json_bodies = [json.dumps({"records": json.loads(b.to_json(orient="records"))}).encode() for b in batches]
        csv_bodies = [b.to_csv(index=False).encode() for b in batches]
        throughput: dict[str, float] = {}
        batch_answers: list[dict[str, Any]] = []
        for kind, bodies, content_type in (("json", json_bodies, "application/json"), ("csv", csv_bodies, "text/csv")):
            post(conn, bodies[0], content_type)  # warm-up
            rows = 0
            started = time.perf_counter()
            for i in range(BATCH_REQUESTS):
                status, payload = post(conn, bodies[i % len(bodies)], content_type)
                if status != 200:
                    raise RuntimeError(f"{kind} batch {i} answered {status}: {payload[:200]!r}")
                rows += BATCH_ROWS
                if i == 0:
                    batch_answers.append(json.loads(payload))
            throughput[kind] = rows / (time.perf_counter() - started)
            progress(f"serve: {BATCH_REQUESTS} × {BATCH_ROWS}-row {kind} requests: {throughput[kind]:,.0f} rows/s")
        conn.close()
        rss = server.peak_rss_mb()
    finally:
        code = server.stop()
    load_after = os.getloadavg()

    # correctness: the answers equal Predictor.predict_frame on the same rows (same batch composition), run
    # with the server's torch thread count (MKL's thread count changes the last bit of a matrix product)
    import torch

    torch.set_num_threads(1)
    predictor = load_predictor(artifact)
    classes = predictor.schema.classes
    single_ok = all(
        answer["prediction"] == expected["prediction"]
        and all(answer["probabilities"][str(c)] == float(expected[f"proba_{c}"]) for c in classes)
        for answer, expected in (
            (answers[i], predictor.predict_frame(test.iloc[[i]].reset_index(drop=True)).iloc[0])
            for i in range(len(answers))
        )
    )
    expected_batch = predictor.predict_frame(batches[0].reset_index(drop=True))
    batch_ok = all(
        [p["prediction"] for p in answer["predictions"]] == expected_batch["prediction"].tolist()
        and all(
            [p["probabilities"][str(c)] for p in answer["predictions"]] == expected_batch[f"proba_{c}"].tolist()
            for c in classes
        )
        for answer in batch_answers
    )

    cold_median = statistics.median(cold)
    p50, p90, p99 = (percentile(latencies, q) for q in (50, 90, 99))
    rows_per_s = throughput["json"]
    return {
        "benchmark": NAME,
        "title": TITLE,
        "rows": {"test": len(test)},
        "runs": [
            {
                "name": RUN,
                "metrics": {
                    "cold_start_s": round(cold_median, 3),
                    "p50_ms": round(p50, 3),
                    "p99_ms": round(p99, 3),
                    "rows_per_s_json": round(rows_per_s),
                    "rows_per_s_csv": round(throughput["csv"]),
                },
                "fit_seconds": None,
                "predict_seconds": None,
                "peak_rss_mb": rss,
                "rows": {"test": len(test)},
                "details": {
                    "cold_starts_s": [round(c, 3) for c in cold],
                    "latency_ms": {
                        "requests": LATENCY_REQUESTS,
                        "p50": round(p50, 3),
                        "p90": round(p90, 3),
                        "p99": round(p99, 3),
                        "max": round(max(latencies), 3),
                        "mean": round(statistics.fmean(latencies), 3),
                    },
                    "batch": {"rows_per_request": BATCH_ROWS, "requests": BATCH_REQUESTS, "rows_per_s": throughput},
                    "server_exit_code_after_sigterm": code,
                    "command": " ".join(server.command),
                    "artifact": str(artifact),
                    **artifact_note,
                },
            }
        ],
        "targets": [
            judge(RUN, "cold start", cold_median, "<=", COLD_START_MAX_S, " s"),
            judge(RUN, "single-row p99", p99, "<=", P99_MAX_MS, " ms"),
            judge(RUN, "rows/s, JSON batches of 1,000", rows_per_s, ">=", ROWS_PER_S_MIN),
        ],
        "checks": [
            check(RUN, f"first {CHECKED_ROWS} single-row answers equal predict_frame", single_ok),
            check(RUN, "batch answers equal predict_frame", batch_ok),
        ],
        "notes": [
            "Client and server share the machine (loopback); the client is stdlib http.client on one keep-alive "
            "connection, requests are sequential.",
            f"Load average (1/5/15 min) before: {', '.join(f'{v:.2f}' for v in load_before)}; after: "
            f"{', '.join(f'{v:.2f}' for v in load_after)} — other work on a shared machine inflates every figure.",
            "Cold start = process start to the first answered POST /predict (median of "
            f"{COLD_STARTS}; each: {', '.join(f'{c:.2f} s' for c in cold)}).",
            f"Server: {sys.platform}, 1 worker, 1 torch thread (`deepmine serve` defaults).",
        ],
    }
