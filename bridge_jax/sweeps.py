"""Members and sweeps: many runs of one experiment, as config data.

A config trains ``sweep.num_seeds`` seeds (``seed``, ``seed + 1``, ...) of every run in
``sweep.runs``; with no runs listed it is one run of itself. Each run is a dict

    {"name": "fixed_0.25", "label": "fixed α=0.25",
     "set": {"method": "bridge", "alpha.schedule": "constant", "alpha.start": 0.25}}

whose ``set`` fields override the config (the style of big_vision's ``get_hyper``).
:func:`expand` turns a config into its *members*: one complete, validated config per
(run, seed), each runnable alone. Members whose configs differ only in
:data:`MEMBER_FIELDS` (the seed, the α path or the adaptive α controller's band, rate and
smoothing, and the method within one
:func:`bridge_jax.methods.step_family`) compile to one program and are trained
together (``jax.vmap`` over a leading member axis); :func:`group_members` finds
those groups. :func:`run_sweep` trains the groups one after another, each in its own
sub-workdir (resumable), and writes ``sweep.json`` for the report.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any

import ml_collections

from bridge_jax import configuration, methods, storage
from bridge_jax.configuration import ConfigError

log = logging.getLogger(__name__)

# Fields that may differ between the members of one compiled program: traced values of
# the step (α is read from a per-member table; the seed sets init, noise and data).
MEMBER_FIELDS = ("seed", "method", "alpha.schedule", "alpha.start", "alpha.end",
                 "alpha.transition_begin", "alpha.transition_steps", "alpha.num_stages",
                 "alpha.decay_rate", "alpha.adaptive.rate", "alpha.adaptive.target_low",
                 "alpha.adaptive.target_high", "alpha.adaptive.smoothing")
RUN_KEYS = ("name", "label", "set")
SWEEP_FILE = "sweep.json"


@dataclasses.dataclass(frozen=True)
class Member:
    """One (run, seed) of a config: its index in its group and its complete config."""

    index: int
    run: str
    label: str
    seed: int
    config: ml_collections.ConfigDict

    def record(self) -> dict[str, Any]:
        """The members.json entry: names and the member's full resolved config."""
        return {"index": self.index, "run": self.run, "label": self.label, "seed": self.seed,
                "config": json.loads(self.config.to_json_best_effort())}


def constant_alpha(alpha: float) -> dict[str, Any]:
    """A run's ``set`` fields for a constant α (the schedule and both of its ends)."""
    return {"alpha.schedule": "constant", "alpha.start": alpha, "alpha.end": alpha}


def grid_run(key: str, label: str, lr: float, knob: str, fields: dict[str, Any]
             ) -> dict[str, Any]:
    """One setting of a method in the fair test's declared grid as a sweep run: the
    method's ``fields`` with ``lr`` for both players, named ``<key>__lr<lr>__<knob>``
    (``<key>__lr<lr>`` without a knob). The part before the first ``__`` is the method key
    by which configs/sweeps/fair.py, probe.py and the report find a method's runs."""
    return {"name": f"{key}__lr{lr:g}" + (f"__{knob}" if knob else ""), "label": label,
            "set": {**fields, "generator.learning_rate": lr, "critic.learning_rate": lr}}


def method_key(run_name: str) -> str:
    """The method key of a :func:`grid_run` name (or of a run named by that key alone):
    the part before the first ``__``."""
    return run_name.split("__")[0]


def default_label(config: ml_collections.ConfigDict) -> str:
    """A run's label from its config: the method, and for α-scheduled methods the path."""
    m = methods.get(config.method)
    name = {"bridge": "α-Bridge", "fgan": "f-GAN α-family"}.get(config.method, config.method)
    if m.fixed_alpha is not None or not m.uses_alpha:
        return name
    a = config.alpha
    if a.schedule == "constant":
        return f"{name} (α={float(a.start):g})"
    return f"{name} {float(a.start):g}→{float(a.end):g} ({a.schedule})"


def _runs(config: ml_collections.ConfigDict) -> list[dict[str, Any]]:
    runs = list(config.sweep.runs) or [{"name": config.method, "set": {}}]
    names = set()
    for i, run in enumerate(runs):
        if not isinstance(run, dict) or not isinstance(run.get("name"), str) or not run["name"]:
            raise ConfigError(f"sweep.runs[{i}] must be a dict with a non-empty 'name', "
                              f"got {run!r}")
        extra = set(run) - set(RUN_KEYS)
        if extra:
            raise ConfigError(f"sweep run {run['name']!r} has unknown key(s) "
                              f"{sorted(extra)}; a run has {RUN_KEYS}")
        if run["name"] in names:
            raise ConfigError(f"sweep run name {run['name']!r} appears twice")
        if not isinstance(run.get("set", {}), dict):
            raise ConfigError(f"sweep run {run['name']!r}: 'set' must be a dict of "
                              "field=value overrides")
        names.add(run["name"])
    return runs


def member_config(config: ml_collections.ConfigDict, run: dict[str, Any],
                  seed: int) -> ml_collections.ConfigDict:
    """The complete config of one (run, seed): the sweep's config with the run's ``set``
    applied, ``seed`` set and the sweep fields cleared (it runs alone as it is)."""
    c = copy.deepcopy(config)
    c.unlock()
    c.sweep.runs = ()
    c.sweep.num_seeds = 1
    c.sweep.vmap_members = config.sweep.vmap_members
    for name, value in run.get("set", {}).items():
        if name.startswith("sweep.") or name == "seed":
            raise ConfigError(f"sweep run {run['name']!r} sets {name!r}; seeds and the sweep "
                              "are set by the sweep itself (sweep.num_seeds, seed)")
        try:
            configuration.set_field(c, name, value)
        except ConfigError as err:
            raise ConfigError(f"sweep run {run['name']!r}: {err}") from None
    c.seed = int(seed)
    return c


def expand(config: ml_collections.ConfigDict, *, num_devices: int = 1,
           process_count: int = 1) -> list[Member]:
    """Every member of ``config``, each validated (a bad run fails before anything trains)."""
    members = []
    for run in _runs(config):
        for s in range(int(config.sweep.num_seeds)):
            c = member_config(config, run, int(config.seed) + s)
            try:
                configuration.validate_config(c, num_devices=num_devices,
                                              process_count=process_count)
            except ConfigError as err:
                raise ConfigError(f"sweep run {run['name']!r}: {err}") from None
            members.append(Member(len(members), run["name"], run.get("label")
                                  or default_label(c), int(c.seed), c))
    return members


def _get(config: ml_collections.ConfigDict, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def compile_key(config: ml_collections.ConfigDict) -> str:
    """What must be equal for two members to share one compiled program: the config with
    the member fields blanked and the method replaced by its step family."""
    c = json.loads(config.to_json_best_effort())
    for dotted in MEMBER_FIELDS:
        *parents, leaf = dotted.split(".")
        node = c
        for p in parents:
            node = node[p]
        node[leaf] = None
    c["method"] = list(methods.step_family(config.method))
    return json.dumps(c, sort_keys=True)


def group_members(members: list[Member]) -> list[list[Member]]:
    """Members grouped by :func:`compile_key`, in order of first appearance; each group's
    members re-indexed 0..N−1 in sweep order."""
    groups: dict[str, list[Member]] = {}
    for m in members:
        key = compile_key(m.config) if m.config.sweep.vmap_members else str(m.index)
        groups.setdefault(key, []).append(m)
    return [[dataclasses.replace(m, index=i) for i, m in enumerate(g)]
            for g in groups.values()]


def group_dir(index: int, group: list[Member]) -> str:
    """A group's sub-workdir name: its position and its first run."""
    return f"g{index:02d}_{group[0].run}"


def sweep_record(config: ml_collections.ConfigDict, groups: list[list[Member]]) -> dict:
    """sweep.json: the runs (names, labels) in the config's order, and which
    sub-workdir trains each."""
    runs = {m.run: m.label for m in sorted((m for g in groups for m in g),
                                           key=lambda m: _run_position(config, m.run))}
    return {"name": config.sweep.name, "num_seeds": int(config.sweep.num_seeds),
            "runs": [{"name": n, "label": lbl} for n, lbl in runs.items()],
            "groups": [{"dir": group_dir(i, g), "runs": list(dict.fromkeys(m.run for m in g)),
                        "num_members": len(g)} for i, g in enumerate(groups)]}


def _run_position(config: ml_collections.ConfigDict, name: str) -> int:
    names = [r["name"] for r in _runs(config)]
    return names.index(name) if name in names else len(names)


def is_complete(workdir: str, num_steps: int | None = None) -> bool:
    """Whether ``workdir`` holds a finished run (its summary.json says complete), of
    ``num_steps`` steps if given (a sweep extended to more steps is not complete)."""
    summary = storage.read_json(storage.join(workdir, "summary.json"), {})
    return (isinstance(summary, dict) and bool(summary.get("complete"))
            and (num_steps is None or summary.get("num_steps") == num_steps))


def _check_started_groups(groups: list[list[Member]], workdir: str) -> None:
    """ConfigError unless every group that has already started in ``workdir`` may resume
    with this config (:func:`bridge_jax.resume.check_members` on its members.json), so a
    rerun with other settings is refused before sweep.json or anything else changes."""
    from bridge_jax import resume

    for i, group in enumerate(groups):
        sub = storage.join(workdir, group_dir(i, group))
        stored = storage.read_json(storage.join(sub, "members.json"))
        if stored is not None:
            resume.check_members(stored, [m.record() for m in group], sub)


def run_sweep(config: ml_collections.ConfigDict, members: list[Member], workdir: str,
              train_group: Callable[[list[Member], str], Any], *, is_chief: bool = True):
    """Trains every group of ``members`` in ``workdir/<group dir>``, one after another;
    finished groups are skipped, so rerunning the same command continues a sweep.
    Returns the result of the last group trained (None if all were finished)."""
    groups = group_members(members)
    record = sweep_record(config, groups)
    _check_started_groups(groups, workdir)
    if is_chief:
        storage.make_dirs(workdir)
        storage.write_json(storage.join(workdir, SWEEP_FILE), record)
    result = None
    for i, group in enumerate(groups):
        sub = storage.join(workdir, group_dir(i, group))
        if is_complete(sub, int(group[0].config.num_steps)):
            log.info("sweep group %s is complete; skipped", sub)
            continue
        log.info("sweep group %d/%d: %s × %d members", i + 1, len(groups),
                 "/".join(record["groups"][i]["runs"]), len(group))
        result = train_group(group, sub)
        if result.preempted:
            break
    return result
