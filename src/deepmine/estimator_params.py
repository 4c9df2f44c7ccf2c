"""scikit-learn parameters for deepmine's estimators: named arguments plus routed ``prefix__key`` settings.

Nested settings route by prefix (skorch-style, e.g. ``optimizer__lr=0.01``): they are stored as attributes
unchanged, reported by ``get_params`` (so ``clone`` and grid searches keep them) and set by ``set_params``.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

from deepmine.exceptions import did_you_mean


class RoutedParamsEstimator(BaseEstimator):
    """A BaseEstimator whose ``**routed`` keyword arguments (names holding ``__``) are parameters too."""

    def _store_routed(self, routed: dict[str, Any]) -> None:
        plain = [key for key in routed if "__" not in key]
        if plain:  # stored, it would be neither a parameter (get_params, clone) nor a setting of the fit
            name = plain[0]
            raise TypeError(
                f"{type(self).__name__} got an unexpected keyword argument '{name}'"
                f"{did_you_mean(name, self._get_param_names())}; its parameters are {self._get_param_names()}, "
                "and other settings route as section__key (for example trainer__patience=3)"
            )
        for key, value in routed.items():
            setattr(self, key, value)

    def _routed(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if "__" in k and not k.endswith("_")}

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {**super().get_params(deep=deep), **self._routed()}

    def set_params(self, **params: Any) -> RoutedParamsEstimator:
        plain = {}
        for key, value in params.items():
            if "__" in key:
                setattr(self, key, value)
            else:
                plain[key] = value
        super().set_params(**plain)
        return self
