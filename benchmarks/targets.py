"""Targets (from BENCHMARKS.md) and checks: a measured value against a bound, or a yes/no, with pass/fail."""

from __future__ import annotations

import operator
from typing import Any

OPS = {">=": operator.ge, "<=": operator.le}
SHOWN = {">=": "≥", "<=": "≤"}


def judge(run: str, name: str, value: float | None, op: str, bound: float, unit: str = "") -> dict[str, Any]:
    """One target row; a missing value fails."""
    passed = value is not None and bool(OPS[op](value, bound))
    return {"run": run, "name": name, "value": value, "op": op, "target": bound, "unit": unit, "pass": passed}


def check(run: str, name: str, ok: bool) -> dict[str, Any]:
    """A yes/no check (for example: two runs agree)."""
    return {"run": run, "name": name, "value": bool(ok), "op": "is", "target": True, "unit": "", "pass": bool(ok)}


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.4f}"


def describe(target: dict[str, Any]) -> str:
    """``accuracy 0.8612 ≥ 0.86 pass``, ``fit 12.3 s ≤ 120 s pass`` or ``weights identical: yes pass``."""
    verdict = "pass" if target["pass"] else "FAIL"
    value = target["value"]
    if target["op"] == "is":
        return f"{target['name']}: {'yes' if value else 'no'} {verdict}"
    unit = target.get("unit") or ""
    shown = "n/a" if value is None else _number(value)
    return f"{target['name']} {shown}{unit} {SHOWN[target['op']]} {target['target']:g}{unit} {verdict}"
