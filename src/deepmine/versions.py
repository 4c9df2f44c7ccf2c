"""Package versions recorded in artifacts and benchmark results."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("deepmine", "torch", "numpy", "pandas", "scikit-learn", "pyarrow", "safetensors")


def package_versions() -> dict[str, str]:
    """Installed versions of deepmine and the libraries its artifacts depend on."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
