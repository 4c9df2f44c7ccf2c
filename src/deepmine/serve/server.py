"""Run the service with uvicorn: the model loads before the port opens; SIGINT/SIGTERM shut down gracefully
(uvicorn stops accepting connections and lets requests in flight finish)."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from deepmine.exceptions import ConfigError
from deepmine.serve.security import ENV_VAR

ARTIFACT_ENV = "DEEPMINE_SERVE_ARTIFACT"
MAX_BODY_ENV = "DEEPMINE_SERVE_MAX_BODY_BYTES"
THREADS_ENV = "DEEPMINE_SERVE_THREADS"
GRACEFUL_SECONDS = 10


class JsonFormatter(logging.Formatter):
    """uvicorn's own messages (start-up, shutdown, errors) as one JSON object per line, like the access log."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def log_config() -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
        },
    }


def load_app(artifact: str | Path, api_key: str | None = None, max_body_bytes: int | None = None):
    """Load the artifact and build its app (raises ArtifactError for a bad artifact)."""
    from deepmine.images.cli import is_image_artifact
    from deepmine.serve.app import DEFAULT_MAX_BODY_BYTES
    from deepmine.serve.metadata import artifact_info

    if is_image_artifact(Path(artifact)):
        from deepmine.images.predictor import ImagePredictor
        from deepmine.serve.image_app import create_image_app

        predictor: Any = ImagePredictor.load_artifact(artifact)
        create: Any = create_image_app
    else:
        from deepmine.artifact import load_predictor
        from deepmine.serve.app import create_app

        predictor, create = load_predictor(artifact), create_app
    return create(
        predictor,
        api_key=api_key,
        max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
        artifact_info=artifact_info(artifact),  # read after the load has checked the artifact
    )


def app_from_env():
    """uvicorn factory for ``--workers N``: each worker process loads the artifact named in the environment."""
    import torch

    torch.set_num_threads(int(os.environ.get(THREADS_ENV, "1")))
    max_body = os.environ.get(MAX_BODY_ENV)
    return load_app(os.environ[ARTIFACT_ENV], os.environ.get(ENV_VAR), int(max_body) if max_body else None)


def check_port(host: str, port: int) -> None:
    """A one-line error when ``host:port`` cannot be listened on (in use, not this machine's address)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ConfigError(f"--host '{host}' is not an address of this machine ({err.strerror})") from err
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as err:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {err.strerror}; choose another --port or stop what uses it"
            ) from err


def serve(
    artifact: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    api_key: str | None = None,
    max_body_bytes: int | None = None,
    threads: int = 1,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve ``artifact`` until SIGINT/SIGTERM. ``threads``: torch threads per worker; one is fastest for small
    requests, and several workers (processes) scale better than threads in one. ``on_ready`` runs once the
    artifact has loaded and the port is free, just before the server starts."""
    import torch
    import uvicorn

    torch.set_num_threads(threads)
    app = load_app(artifact, api_key, max_body_bytes)  # a bad artifact fails here, once, before any worker starts
    check_port(host, port)
    if on_ready is not None:
        on_ready()

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": False,  # deepmine writes its own JSON access log
        "log_config": log_config(),
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
        "server_header": False,
        "ws": "none",  # no websocket routes: skip importing a websocket library
    }
    if workers <= 1:
        uvicorn.run(app, **options)
        return
    os.environ[ARTIFACT_ENV] = str(Path(artifact).resolve())
    os.environ[THREADS_ENV] = str(threads)
    if api_key:
        os.environ[ENV_VAR] = api_key
    if max_body_bytes:
        os.environ[MAX_BODY_ENV] = str(max_body_bytes)
    uvicorn.run(f"{__name__}:app_from_env", factory=True, workers=workers, **options)
