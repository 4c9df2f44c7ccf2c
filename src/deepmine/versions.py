"""Package versions recorded in artifacts and benchmark results."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("deepmine", "torch", "numpy", "pandas", "scikit-learn", "pyarrow", "safetensors")


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of deepmine and the libraries its artifacts depend on (plus ``extra``)."""
    versions = {"python": platform.python_version()}
    for name in (*PACKAGES, *extra):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
