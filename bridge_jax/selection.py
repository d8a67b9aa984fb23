"""Selecting each method's setting by a declared rule, and the stability of outcomes.

Pure functions of the report's records (:mod:`bridge_jax.report_data`): no training, no
files. The rule and the success criterion are config data (``configs/sweeps/tuning.py``):

- a **rule** is a list of ``(metric, "max" | "min")``; a setting's score is the mean of
  each metric over its members (the selection seeds), compared lexicographically. A
  member that *diverged* (stopped on a non-finite value) scores the worst value of every
  metric: 0 for a "max" metric (counts and fractions), +∞ for a "min" one.
- a **success** criterion is a list of ``(metric, ">=" | "<=", bound)`` where the bound is a
  number or the name of another metric of the same evaluation (``num_modes``); a
  diverged member never succeeds.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from bridge_jax.report_data import Member, Run

DIRECTIONS = ("max", "min")
COMPARISONS = {">=": operator.ge, "<=": operator.le}


class SelectionError(ValueError):
    """A rule, a criterion or the records do not allow a selection (one line)."""


@dataclasses.dataclass(frozen=True)
class SettingScore:
    """One setting (run) of a method: its rule metrics' means over its members."""

    run: str
    means: tuple[float, ...]
    num_members: int
    num_diverged: int

    def key(self, rule: Sequence[tuple[str, str]]) -> tuple[float, ...]:
        """A sort key where larger is better under ``rule``."""
        return tuple(m if d == "max" else -m for m, (_, d) in zip(self.means, rule,
                                                                  strict=True))


def check_rule(rule: Sequence[Sequence[Any]]) -> list[tuple[str, str]]:
    """``rule`` as (metric, direction) pairs, or a SelectionError naming the bad entry."""
    out = []
    for entry in rule:
        if (len(entry) != 2 or not isinstance(entry[0], str)
                or entry[1] not in DIRECTIONS):
            raise SelectionError(f"a rule entry is (metric, 'max' or 'min'), got {entry!r}")
        out.append((entry[0], entry[1]))
    if not out:
        raise SelectionError("the selection rule is empty")
    return out


def check_success(criterion: Sequence[Sequence[Any]]) -> list[tuple[str, str, Any]]:
    """``criterion`` as (metric, comparison, bound) triples, or a SelectionError."""
    out = []
    for entry in criterion:
        if (len(entry) != 3 or not isinstance(entry[0], str) or entry[1] not in COMPARISONS
                or not isinstance(entry[2], (str, int, float))):
            raise SelectionError("a success entry is (metric, '>=' or '<=', number or "
                                 f"metric), got {entry!r}")
        out.append((entry[0], entry[1], entry[2]))
    return out


def diverged(member: Member) -> bool:
    """Whether the member's training stopped on a non-finite value (policy ``stop``)."""
    return member.policy == "stop" and member.nonfinite.get("count", 0) > 0


def _metric(member: Member, name: str) -> float:
    value = member.evals.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SelectionError(f"member {member.run!r} seed {member.seed} has no metric "
                             f"{name!r} (it has {sorted(member.evals)})")
    return float(value)


def member_values(member: Member, rule: Sequence[tuple[str, str]]) -> tuple[float, ...]:
    """The member's rule metrics; the worst values (0 or +∞) when it diverged."""
    if diverged(member):
        return tuple(0.0 if d == "max" else math.inf for _, d in rule)
    return tuple(_metric(member, name) for name, _ in rule)


def setting_score(run: Run, rule: Sequence[tuple[str, str]]) -> SettingScore:
    """The mean of each rule metric over the run's members."""
    values = np.array([member_values(m, rule) for m in run.members], dtype=np.float64)
    return SettingScore(run.name, tuple(float(v) for v in values.mean(axis=0)),
                        len(run.members), sum(diverged(m) for m in run.members))


def select(runs: Sequence[Run], rule: Sequence[tuple[str, str]]
           ) -> dict[str, tuple[SettingScore, list[SettingScore]]]:
    """{method label: (the selected setting, every setting's score in run order)}.

    A method is a label; its settings are the runs with that label. Ties that the whole
    rule cannot break go to the earlier run (the grid's declared order)."""
    by_label: dict[str, list[Run]] = {}
    for run in runs:
        by_label.setdefault(run.label, []).append(run)
    out = {}
    for label, settings in by_label.items():
        sizes = {len(r.members) for r in settings}
        if len(sizes) != 1:
            raise SelectionError(f"{label!r}: settings have unequal numbers of seeds "
                                 f"{sorted(sizes)}; every setting needs the same seeds")
        scores = [setting_score(r, rule) for r in settings]
        best = max(range(len(scores)), key=lambda i: (scores[i].key(rule), -i))
        out[label] = (scores[best], scores)
    return out


def succeeded(member: Member, criterion: Sequence[tuple[str, str, Any]]) -> bool:
    """Whether the member meets every entry of the success criterion (never if diverged)."""
    if diverged(member):
        return False
    for name, op, bound in criterion:
        limit = _metric(member, bound) if isinstance(bound, str) else float(bound)
        if not COMPARISONS[op](_metric(member, name), limit):
            return False
    return True


@dataclasses.dataclass(frozen=True)
class Stability:
    """A method's outcomes over its whole grid × seeds."""

    label: str
    num_members: int
    successes: int
    divergences: int
    by_value: dict[Any, tuple[int, int, int]]  # axis value → (successes, divergences, members)

    @property
    def success_rate(self) -> float:
        return self.successes / self.num_members

    @property
    def divergence_rate(self) -> float:
        return self.divergences / self.num_members


def stability(runs: Sequence[Run], criterion: Sequence[tuple[str, str, Any]],
              axis: str) -> list[Stability]:
    """Success and divergence counts per method label, also split by the value of the
    config field ``axis`` (e.g. ``generator.learning_rate``), in label order."""
    by_label: dict[str, list[Member]] = {}
    for run in runs:
        by_label.setdefault(run.label, []).extend(run.members)
    out = []
    for label, members in by_label.items():
        by_value: dict[Any, list[int]] = {}
        for m in members:
            if axis not in m.config:
                raise SelectionError(f"member {m.run!r} has no config field {axis!r}")
            counts = by_value.setdefault(m.config[axis], [0, 0, 0])
            counts[0] += succeeded(m, criterion)
            counts[1] += diverged(m)
            counts[2] += 1
        out.append(Stability(label, len(members), sum(succeeded(m, criterion)
                                                      for m in members),
                             sum(diverged(m) for m in members),
                             {k: tuple(v) for k, v in sorted(by_value.items())}))
    return out
