"""deepmine's exceptions.

Every error meant for a user subclasses :class:`DeepmineError` and a builtin
(``ValueError``, ``FileNotFoundError`` ...) so ``except ValueError`` keeps working.
Messages are one line: what was received, what was expected, how to fix it.
"""

from __future__ import annotations

import difflib
import os
import sys
import warnings
from collections.abc import Iterable


class DeepmineError(Exception):
    """Base class of every error deepmine raises on purpose."""

    exit_code = 1


class DataError(DeepmineError, ValueError):
    """The data (a file, a table, a column, a value) is not what was expected."""


class SourceNotFoundError(DataError, FileNotFoundError):
    """A data file or folder does not exist."""


class ColumnError(DataError):
    """A named column is missing or unusable."""


class ConfigError(DeepmineError, ValueError):
    """A configuration key or value is wrong (a usage error)."""

    exit_code = 2


class ArtifactError(DeepmineError, ValueError):
    """An artifact folder is missing, damaged, tampered with, or from a newer deepmine."""


class ExportError(ConfigError):
    """The model cannot be exported in the asked format (for example it has text or datetime columns)."""


class ExportCheckError(DeepmineError, RuntimeError):
    """An exported graph does not reproduce the predictor's outputs within the tolerance."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or an empty string."""
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if str(name).lower() in lowered:
            close = [lowered[str(name).lower()]]
    return f" (did you mean '{close[0]}'?)" if close else ""


class DeepmineWarning(UserWarning):
    """Something the user should know that does not stop the run (shown as one line on stderr)."""


_PACKAGE = os.path.dirname(__file__) + os.sep


def warn_user(message: str) -> None:
    """Warn with a :class:`DeepmineWarning` located at the first caller outside deepmine: Python's ``file:line``
    shows the user's code, however deep in deepmine (helpers, decorators) the check runs."""
    frame, level = sys._getframe(1), 2  # level 2: the caller of warn_user
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeepmineWarning, stacklevel=level)


def __getattr__(name: str):
    # NotFittedError subclasses scikit-learn's, which would import all of scikit-learn here;
    # it lives with the estimators so `deepmine --help` stays instant.
    if name == "NotFittedError":
        from deepmine.sklearn_api import NotFittedError

        return NotFittedError
    raise AttributeError(f"module 'deepmine.exceptions' has no attribute {name!r}")
