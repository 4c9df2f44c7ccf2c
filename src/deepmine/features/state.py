"""Restoring an encoder's fitted state from JSON, refusing incomplete state."""

from __future__ import annotations

from typing import Any, TypeVar

from deepmine.exceptions import ArtifactError

T = TypeVar("T")


def restore(encoder: T, state: dict[str, Any]) -> T:
    """Fill ``encoder`` (a fresh instance) from ``state``; every public attribute must be present."""
    missing = sorted(k for k in vars(encoder) if not k.startswith("_") and k not in state)
    if missing:
        raise ArtifactError(
            f"the saved {type(encoder).__name__} state lacks {missing}; the artifact was written by an "
            "incompatible deepmine version — re-create it with `deepmine fit`"
        )
    encoder.__dict__.update(state)
    return encoder
