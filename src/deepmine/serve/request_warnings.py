"""Warnings raised while answering one request: sent back to the client whose data caused them, logged once per kind.

A data-quality warning (a value of a datetime column that is not a date ...) is about one request's rows, so the
answer carries its text (``"warnings"``), and the server's log gets one JSON line the first time a kind of warning
is seen: a kind is the place in the code that raised it, plus the column it names when it names one, so distinct
bad values sent by clients do not make new kinds. The kinds logged are kept in a bounded LRU, and nothing reaches
``warnings.showwarning`` (the CLI keeps every text it shows) or a module's ``__warningregistry__``: the server's
memory stays flat however many distinct bad values arrive.

``warnings.catch_warnings`` swaps process-wide state (the filter list, ``showwarning``) and is not thread-safe
(Python 3.11): two requests inside it at once would record each other's warnings, and the one leaving last could
restore the filters the other set (the scoring path enters it too, to read dates quietly), silencing warnings for
good. So requests run one at a time under a process-wide lock (:data:`SCORING`), their answers encoded outside it.
A worker runs one torch thread and a request holds the GIL for most of its time, so overlapping requests in one
worker gain nothing (measured on 2 cores: 4 client threads got as many 1-row and 1,000-row answers per second with
the lock as without it); the lock and ``catch_warnings`` add about 6 µs to a request. Throughput scales with
``--workers`` (processes), each with its own lock.
"""

from __future__ import annotations

import json
import sys
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TextIO

from deepmine.exceptions import DeepmineWarning

MAX_KINDS = 256  # kinds of warning remembered as logged; a kind pushed out is logged again when next seen
SCORING = threading.Lock()  # held while a request (or an app's warm-up) runs inside warnings.catch_warnings


class RequestWarnings:
    """Catches the warnings of one request at a time; logs each kind once to ``stream`` (default stderr)."""

    def __init__(self, stream: TextIO | None = None, max_kinds: int = MAX_KINDS) -> None:
        self.stream = stream
        self.max_kinds = max_kinds
        self.logged: OrderedDict[tuple[Any, ...], None] = OrderedDict()

    @contextmanager
    def catching(self) -> Iterator[list[str]]:
        """Run the body alone with its warnings held back. Once the body is over, the yielded list holds the texts
        of its deepmine warnings, in order and each once, for the client; every kind not logged yet is logged."""
        said: list[str] = []
        with SCORING:
            caught: list[warnings.WarningMessage] = []
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", DeepmineWarning)  # every request hears its own, every time
                    yield said
            finally:
                said.extend(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, DeepmineWarning)))
                self.log(caught)

    def log(self, caught: list[warnings.WarningMessage]) -> None:
        """One JSON line for each warning whose kind is not among the last ``max_kinds`` logged."""
        for item in caught:
            kind = (item.category, item.filename, item.lineno, getattr(item.message, "column", None))
            if kind in self.logged:
                self.logged.move_to_end(kind)
                continue
            self.logged[kind] = None
            if len(self.logged) > self.max_kinds:
                self.logged.popitem(last=False)
            record = {
                "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "event": "warning",
                "category": item.category.__name__,
                "message": str(item.message),
            }
            stream = self.stream or sys.stderr
            stream.write(json.dumps(record, default=str) + "\n")
            stream.flush()
