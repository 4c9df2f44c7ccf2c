"""The REST service: ``deepmine serve ARTIFACT`` (FastAPI + uvicorn).

``create_app(predictor)`` builds the app; :mod:`deepmine.serve.server` runs it.
"""

from __future__ import annotations

from deepmine.serve.app import DEFAULT_MAX_BODY_BYTES, create_app

__all__ = ["create_app", "DEFAULT_MAX_BODY_BYTES"]
