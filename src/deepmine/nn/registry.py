"""A registry of model builders: a decorator that returns what it registers and fails loudly."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from deepmine.exceptions import ConfigError, did_you_mean

T = TypeVar("T", bound=Callable)
_MODELS: dict[str, Callable] = {}


def register_model(name: str) -> Callable[[T], T]:
    """Register a model builder under ``name``; a duplicate name is a programming error."""

    def decorate(builder: T) -> T:
        if name in _MODELS:
            raise ValueError(f"model '{name}' is registered twice")
        _MODELS[name] = builder
        return builder

    return decorate


def get_model_builder(name: str) -> Callable:
    """The builder registered under ``name``, or a ConfigError that suggests the closest name."""
    _load_builtin_models()
    if name not in _MODELS:
        raise ConfigError(f"unknown model '{name}'{did_you_mean(name, _MODELS)}; registered: {sorted(_MODELS)}")
    return _MODELS[name]


def registered_models() -> list[str]:
    _load_builtin_models()
    return sorted(_MODELS)


def _load_builtin_models() -> None:
    from deepmine.nn import tabular  # noqa: F401  (registers on import)
