"""``python -m deepmine.train.torchrun ARGS``: torchrun (``torch.distributed.run``) for ``deepmine fit --devices``,
quiet about its own machinery. The workers report their own errors in one line; when one fails, this exits with
its exit code instead of torchrun's log lines and ChildFailedError traceback (``DEEPMINE_DEBUG=1`` keeps them)."""

from __future__ import annotations

import logging
import os
import sys


def main(argv: list[str]) -> int:
    if os.environ.get("DEEPMINE_DEBUG") != "1":
        os.environ.setdefault("LOGLEVEL", "ERROR")  # torchrun's own loggers read it when they are created
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    if os.environ.get("DEEPMINE_DEBUG") == "1":
        torchrun(argv)
        return 0
    logging.getLogger("torch.distributed").setLevel(logging.CRITICAL)
    try:
        torchrun(argv)
    except ChildFailedError as failed:
        codes = [failure.exitcode for failure in failed.failures.values()]
        return next((code for code in codes if code > 0), 1)
    except SignalException as stopped:  # Ctrl-C (or a kill) reached torchrun: the shell's code for it
        return 128 + int(stopped.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
