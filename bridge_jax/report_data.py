"""Reading training workdirs for :mod:`bridge_jax.report`: groups, members, runs, statistics.

Everything here comes from the files the trainer wrote; nothing is reconstructed from
override lists or defaults:

    G/config.json     the group's resolved config
    G/members.json    [{"index", "run", "label", "seed", "config"}, ...] in member order
    G/summary.json    {"complete", "evals" (dict, or a list per member), "evals_reference",
                       "nonfinite" (per member), "total_wall_time_s", ...}
    G/metrics.jsonl   training lines {"step", ...} and eval lines {"step", "member", "eval/m"}
    G/samples.npy     (N, n, *shape) for N > 1 members, (n, *shape) for one
    W/sweep.json      {"name", "description", "runs": [{"name", "label"}],
                       "groups": [{"dir", "runs", "num_members"}]}: a sweep of groups

A WORKDIR is a sweep (it holds ``sweep.json``) or a single group (a plain run). A *run*
is one row of a table: the members of one run name in one workdir (its seeds).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import numpy as np

NONFINITE_STRINGS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


class ReportError(ValueError):
    """The input is not a workdir, is malformed, or holds nothing to report."""


def refuse_uris(*paths: str) -> None:
    """ReportError for a URI (``gs://...``): the report reads and writes local folders,
    and must never turn a URI into a local folder named ``gs:``."""
    for path in paths:
        if "://" in path:
            raise ReportError(f"{path} is a URI; the report reads and writes local folders: "
                              f"copy it first (gcloud storage cp -r {path} DIR)")


def from_json(x: Any) -> Any:
    """The stored values back to numbers: the strings "inf", "-inf", "nan" → floats."""
    if isinstance(x, dict):
        return {k: from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [from_json(v) for v in x]
    if isinstance(x, str) and x in NONFINITE_STRINGS:
        return NONFINITE_STRINGS[x]
    return x


def read_json(path: str) -> Any:
    """``from_json`` of a JSON file; a malformed file is a :class:`ReportError`."""
    try:
        with open(path) as f:
            return from_json(json.load(f))
    except (OSError, ValueError) as e:  # ValueError: bad JSON, or bytes that are not UTF-8
        raise ReportError(f"cannot read {path}: {e}") from None


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config dict → {"a.b.c": leaf}; lists are leaves."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def canonical(value: Any) -> str:
    """A config value as comparable text (lists, dicts and floats alike): JSON, keys sorted."""
    return json.dumps(value, sort_keys=True, default=str)


@dataclasses.dataclass(frozen=True)
class Stat:
    """mean and population std (ddof 0) of the finite values; the others are counted."""

    mean: float
    std: float
    count: int  # finite values
    num_nonfinite: int


def finite_stats(values) -> Stat:
    """Stat of ``values``: mean ± std over the finite ones (nan when there are none)."""
    v = np.asarray(list(values), np.float64).ravel()
    fin = v[np.isfinite(v)]
    if not fin.size:
        return Stat(math.nan, math.nan, 0, int(v.size))
    return Stat(float(fin.mean()), float(fin.std()), int(fin.size), int(v.size - fin.size))


@dataclasses.dataclass
class Member:
    """One trained model of a group: its run, seed, resolved config and final evaluation."""

    group: Group
    index: int  # position in the group (the leading axis of samples.npy)
    run: str
    label: str
    seed: int
    config: dict[str, Any]  # flattened
    evals: dict[str, Any]  # {} when the group has none
    nonfinite: dict[str, Any]  # {"count", "first_step", "what"}

    @property
    def policy(self) -> str:
        return str(self.config.get("nonfinite_policy", "stop"))

    def samples(self, limit: int | None = None) -> np.ndarray | None:
        """This member's final samples from samples.npy, the first ``limit`` of them (read
        through a memory map: only those are loaded); None when absent or unreadable."""
        path = os.path.join(self.group.path, "samples.npy")
        if not os.path.exists(path):
            return None
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError):
            return None
        if len(self.group.members) > 1:
            return np.asarray(arr[self.index, :limit]) if self.index < arr.shape[0] else None
        return np.asarray(arr[:limit])


@dataclasses.dataclass
class Group:
    """One group directory: one compiled program training its members together."""

    path: str
    run_names: list[str]
    config: dict[str, Any] = dataclasses.field(default_factory=dict)  # flattened
    members: list[Member] = dataclasses.field(default_factory=list)
    summary: dict[str, Any] | None = None
    problem: str | None = None  # why it is left out of the tables; None: reported

    @property
    def name(self) -> str:
        return os.path.basename(os.path.normpath(self.path))

    @property
    def wall_time_s(self) -> float:
        s = self.summary or {}
        return float(s.get("total_wall_time_s", s.get("wall_time_s", 0.0)) or 0.0)

    @property
    def reference(self) -> dict[str, Any]:
        return dict((self.summary or {}).get("evals_reference") or {})

    def eval_lines(self) -> list[dict]:
        """The evaluation lines of metrics.jsonl ({"step", "member", "eval/<m>": v})."""
        path = os.path.join(self.path, "metrics.jsonl")
        if not os.path.exists(path):
            return []
        lines = []
        with open(path, errors="replace") as f:  # a torn or binary line is skipped below
            for text in f:
                text = text.strip()
                if not text:
                    continue
                try:
                    row = from_json(json.loads(text))
                except json.JSONDecodeError:
                    continue  # a line cut short by a preemption
                if isinstance(row, dict) and "member" in row:
                    lines.append(row)
        return lines


@dataclasses.dataclass
class Run:
    """One table row: the members (seeds) of one run name in one workdir."""

    workdir: str
    name: str
    label: str
    members: list[Member]

    @property
    def dataset(self) -> str:
        return dataset_of(self.members[0].config)


def dataset_of(config: dict[str, Any]) -> str:
    """The table a member belongs to: ``data.name`` (``tfds:<tfds_name>`` for TFDS)."""
    name = str(config.get("data.name", "unknown"))
    return f"tfds:{config.get('data.tfds_name', '')}" if name == "tfds" else name


def _member_list(path: str, config: dict) -> list[dict]:
    """members.json, or for a plain run written without it: one member from config.json."""
    members_path = os.path.join(path, "members.json")
    if os.path.exists(members_path):
        members = read_json(members_path)
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise ReportError(f"{members_path}: expected a list of member objects")
        return members
    run = os.path.basename(os.path.normpath(path))
    return [{"index": 0, "run": run, "label": run, "seed": config.get("seed", 0),
             "config": config}]


def _evals_per_member(summary: dict, n: int) -> tuple[list[dict] | None, str | None]:
    """(summary["evals"] as one dict per member, None) — stored as a dict when n == 1, a
    list when n > 1 — or (None, why there is nothing to report)."""
    evals = summary.get("evals")
    if isinstance(evals, dict):
        evals = [evals]
    if not evals or not any(evals):
        return None, "no evaluations in summary.json"
    if not isinstance(evals, list) or len(evals) != n:
        count = len(evals) if isinstance(evals, list) else "malformed"
        return None, f"summary.json has {count} evals for {n} members"
    return [dict(e or {}) for e in evals], None


def _incomplete_reason(summary: dict | None) -> str | None:
    """Why a group's summary does not describe a finished run (None: it does)."""
    if summary is None:
        return "no summary.json"
    if summary.get("complete"):
        return None
    done = f"step {int(summary.get('steps_run', 0)):,} of {int(summary.get('num_steps', 0)):,}"
    return f"preempted at {done}" if summary.get("preempted") else f"not complete ({done})"


def load_group(path: str, run_names: list[str] | None = None) -> Group:
    """Reads one group directory; a missing or unfinished one gets ``problem`` set."""
    group = Group(path=path, run_names=list(run_names or []))
    if not os.path.isdir(path):
        group.problem = "directory missing"
        return group
    config_path = os.path.join(path, "config.json")
    nested = read_json(config_path) if os.path.exists(config_path) else {}
    group.config = flatten(nested)
    has_members = os.path.exists(os.path.join(path, "members.json"))
    # A plain run may predate members.json; a sweep's group without it has not started.
    raw = _member_list(path, nested) if has_members or (nested and not run_names) else []
    names = list(dict.fromkeys(str(m.get("run", "")) for m in raw))
    group.run_names = names or group.run_names
    summary_path = os.path.join(path, "summary.json")
    group.summary = read_json(summary_path) if os.path.exists(summary_path) else None
    if group.summary is not None and not isinstance(group.summary, dict):
        raise ReportError(f"{summary_path}: expected a JSON object, got "
                          f"{type(group.summary).__name__}")
    group.problem = _incomplete_reason(group.summary)
    evals, problem = _evals_per_member(group.summary or {}, len(raw))
    group.problem = group.problem or problem
    nonfinite = list((group.summary or {}).get("nonfinite") or [])
    for i, m in enumerate(raw):
        event = nonfinite[i] if i < len(nonfinite) and isinstance(nonfinite[i], dict) else {}
        group.members.append(Member(
            group=group, index=int(m.get("index", i)), run=str(m.get("run", "")),
            label=str(m.get("label") or m.get("run", "")), seed=int(m.get("seed", 0)),
            config=flatten(m.get("config") or nested), evals=(evals[i] if evals else {}),
            nonfinite={"count": int(event.get("count", 0) or 0),
                       "first_step": event.get("first_step"), "what": event.get("what")}))
    return group


@dataclasses.dataclass
class Workdir:
    """One WORKDIR argument: a sweep of groups, or a single group (a plain run)."""

    path: str
    name: str
    description: str
    groups: list[Group]
    run_order: list[str]  # run names in sweep order
    run_labels: dict[str, str]  # from sweep.json

    def runs(self) -> list[Run]:
        """The reportable runs (groups without a problem) in sweep order; a run name
        trained on two datasets is one run per dataset."""
        by_key: dict[tuple[str, str], list[Member]] = {}
        for group in self.groups:
            if group.problem is None:
                for m in group.members:
                    by_key.setdefault((m.run, dataset_of(m.config)), []).append(m)
        rank = {name: i for i, name in enumerate(self.run_order)}
        keys = sorted(by_key, key=lambda k: rank.get(k[0], len(rank)))  # stable
        return [Run(self.path, name, self.run_labels.get(name) or by_key[name, d][0].label,
                    sorted(by_key[name, d], key=lambda m: m.seed))
                for name, d in keys]

    def missing(self) -> list[tuple[Group, list[str]]]:
        """(group, its run names) of every group left out of the tables."""
        return [(g, g.run_names or [g.name]) for g in self.groups if g.problem is not None]


def load_workdir(path: str) -> Workdir:
    """A sweep directory (sweep.json) or a single group; anything else is a ReportError."""
    if not os.path.isdir(path):
        raise ReportError(f"{path!r} is not a directory")
    name = os.path.basename(os.path.normpath(path))
    sweep_path = os.path.join(path, "sweep.json")
    if os.path.exists(sweep_path):
        sweep = read_json(sweep_path)
        if not isinstance(sweep, dict) or not isinstance(sweep.get("groups"), list):
            raise ReportError(f"{sweep_path}: expected an object with a 'groups' list")
        runs = [r for r in sweep.get("runs") or [] if isinstance(r, dict)]
        groups = [load_group(os.path.join(path, str(g.get("dir", ""))), g.get("runs"))
                  for g in sweep["groups"]]
        return Workdir(path, str(sweep.get("name") or name), str(sweep.get("description", "")),
                       groups, [str(r.get("name")) for r in runs],
                       {str(r.get("name")): str(r.get("label", "")) for r in runs})
    if not any(os.path.exists(os.path.join(path, f))
               for f in ("config.json", "members.json", "summary.json")):
        raise ReportError(f"{path!r} is not a workdir (no sweep.json, config.json, "
                          "members.json or summary.json)")
    return Workdir(path, name, "", [load_group(path)], [], {})


def load_workdirs(paths: list[str]) -> list[Workdir]:
    """Every WORKDIR; a ReportError when none of their groups has evaluations."""
    if not paths:
        raise ReportError("no workdir given")
    workdirs = [load_workdir(p) for p in paths]
    if not any(w.runs() for w in workdirs):
        raise ReportError("no group with evaluations in " + ", ".join(map(repr, paths))
                          + " (every group is incomplete or has no evals)")
    return workdirs


def runs_by_dataset(workdirs: list[Workdir]) -> dict[str, list[Run]]:
    """{dataset: runs in argument and sweep order}; equal labels get their workdir's name."""
    out: dict[str, list[Run]] = {}
    for w in workdirs:
        for run in w.runs():
            out.setdefault(run.dataset, []).append(run)
    for runs in out.values():
        labels = [r.label for r in runs]
        for r in runs:
            if labels.count(r.label) > 1:
                r.label = f"{r.label} ({os.path.basename(os.path.normpath(r.workdir))})"
    return out


def is_scalar(value: Any) -> bool:
    """A number a table cell can average (lists such as mode_counts are not)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool)


def metric_stat(evals: list[dict[str, Any]], key: str) -> Stat | None:
    """finite_stats of ``key`` over the dicts holding it as a number; None when none do."""
    values = [e[key] for e in evals if is_scalar(e.get(key))]
    return finite_stats(values) if values else None


def groups_of(runs: list[Run]) -> list[Group]:
    """The distinct groups the members of ``runs`` were trained in, in order."""
    return list({id(m.group): m.group for r in runs for m in r.members}.values())


def num_modes(evals: list[dict]) -> int | None:
    """K of the dataset: the mixture evaluator's ``num_modes``, or 10^channels (Stacked
    MNIST: one digit class per channel, ``kl_channel_marginals`` has one KL per channel)."""
    for e in evals:
        if isinstance(e.get("num_modes"), (int, float)):
            return int(e["num_modes"])
        if isinstance(e.get("kl_channel_marginals"), list):
            return 10 ** len(e["kl_channel_marginals"])
    return None


RECORD_FILES = ("config.json", "members.json", "summary.json", "metrics.jsonl", "samples.npy")


def save_records(path: str, dest: str) -> list[str]:
    """Copies what the report reads of the workdir ``path`` (a sweep or a single run) to
    ``dest``: sweep.json and each group's RECORD_FILES, without checkpoints, TensorBoard
    events or pictures, so that a results table can be rewritten (and checked) from the
    repository alone. Returns the files written."""
    import shutil

    workdir = load_workdir(path)
    written = []
    if os.path.exists(os.path.join(path, "sweep.json")):
        os.makedirs(dest, exist_ok=True)
        written.append(shutil.copy2(os.path.join(path, "sweep.json"), dest))
    for group in workdir.groups:
        target = dest if group.path == workdir.path else os.path.join(
            dest, os.path.relpath(group.path, workdir.path))
        os.makedirs(target, exist_ok=True)
        for name in RECORD_FILES:
            if os.path.exists(os.path.join(group.path, name)):
                written.append(shutil.copy2(os.path.join(group.path, name), target))
    return written
