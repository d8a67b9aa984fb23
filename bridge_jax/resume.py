"""What a rerun on a workdir that holds checkpoints may change, and what it must keep.

A checkpoint is only meaningful with the config that made it, so the first run's
``config.json`` and ``members.json`` are the record of the run and are never
overwritten. A rerun is compared with that record member by member:

* fields that do not change what the checkpoint means may differ (:data:`RESUMABLE`):
  the length of the run, logging, sampling, checkpoint and evaluation cadence,
  the non-finite policy, the learning rates (the documented way out of a non-finite
  stop), the schedules' explicit horizons (α's transition, the cosine learning rates',
  the instance noise's), the parallel mode and the tfds data_dir;
* any other difference (dataset, method, seed, batch size, model, α path, the adaptive
  α controller's settings ``alpha.adaptive.*``, the instance noise's σ₀, ...) is
  refused with one line naming the fields: the checkpoint holds the controller's state
  (α, smoothed signal), which only means something under the settings that made it.

Schedules whose horizon is ``-1`` ("the whole run") keep the first run's horizon when
``num_steps`` changes: extending a finished run from 4 to 8 steps continues training
at the end of the α path and the cosine decay instead of stretching both again (which
would send α back up). Setting a horizon explicitly on the rerun overrides that.
Every accepted change is appended to ``resumes.jsonl`` with the step it applies from.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import ml_collections

from bridge_jax.configuration import ConfigError, base_config
from bridge_jax.report_data import flatten

RESUMABLE = frozenset({
    "num_steps", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints",
    "num_final_samples", "progress_bar", "nonfinite_policy", "parallel", "data.data_dir",
    "data.num_workers",
    "critic.learning_rate", "generator.learning_rate",
    "alpha.transition_steps", "critic.lr_decay_steps", "generator.lr_decay_steps",
    "critic.instance_noise_steps",
})
RESUMABLE_PREFIXES = ("eval.",)


def changed_fields(stored: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Every dotted field whose value differs: name → (stored, new). A field the stored
    record lacks (added to the config since that run started) counts only when its new
    value is not the default, so a newer version of the code resumes older runs."""
    a, b = flatten(stored), flatten(new)
    defaults = _default_fields()
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and not (k not in a and b.get(k) == defaults.get(k))}


@functools.lru_cache(maxsize=1)
def _default_fields() -> dict[str, Any]:
    """base_config() flattened (built once: changed_fields runs once per member)."""
    return flatten(json.loads(base_config().to_json_best_effort()))


def _resumable(name: str) -> bool:
    return name in RESUMABLE or name.startswith(RESUMABLE_PREFIXES)


def check_members(stored: list[dict[str, Any]], new: list[dict[str, Any]],
                  workdir: str) -> dict[str, tuple[Any, Any]]:
    """The accepted changes between the stored and the new members.json records (one
    dict of fields); ConfigError naming the fields that may not change on a resume."""
    if not (isinstance(stored, list) and stored
            and all(isinstance(r, dict) and isinstance(r.get("config"), dict) for r in stored)):
        raise ConfigError(
            f"{workdir} holds checkpoints but its record (members.json) is damaged; restore "
            "it, or use a new workdir")
    names = lambda records: [(r.get("run"), r.get("seed")) for r in records]
    if names(stored) != names(new):
        raise ConfigError(
            f"{workdir} holds checkpoints of other members (runs and seeds "
            f"{names(stored)}), not {names(new)}; use a new workdir")
    changes: dict[str, tuple[Any, Any]] = {}
    for old, cur in zip(stored, new, strict=True):
        changes.update(changed_fields(old["config"], cur["config"]))
    refused = [k for k in changes if not _resumable(k)]
    if refused:
        shown = ", ".join(f"{k} ({changes[k][0]!r} → {changes[k][1]!r})" for k in refused[:6])
        more = f" and {len(refused) - 6} more" if len(refused) > 6 else ""
        raise ConfigError(
            f"{workdir} holds checkpoints made with a different config: {shown}{more} may "
            "not change on a resume; use a new workdir (fields that may change: "
            f"{', '.join(sorted(RESUMABLE))}, eval.*)")
    return changes


def _resolved_horizons(config: dict[str, Any]) -> dict[str, int]:
    """The horizons a -1 meant in a stored config: α's, each optimizer's cosine and the
    instance noise's annealing."""
    steps = int(config["num_steps"])
    return {"alpha.transition_steps": steps - int(config["alpha"]["transition_begin"]),
            "critic.lr_decay_steps": steps, "generator.lr_decay_steps": steps,
            "critic.instance_noise_steps": steps}


def pin_horizons(config: ml_collections.ConfigDict,
                 stored: dict[str, Any]) -> ml_collections.ConfigDict:
    """``config`` with every horizon left at -1 fixed to what it meant in ``stored`` (the
    first run's config), when num_steps changed; otherwise ``config`` unchanged."""
    if int(config.num_steps) == int(stored["num_steps"]):
        return config
    pinned = copy.deepcopy(config)
    for name, value in _resolved_horizons(stored).items():
        section, field = name.split(".")
        # A record older than a horizon's field ran with its default, -1.
        if pinned[section][field] == -1 and stored[section].get(field, -1) == -1:
            pinned[section][field] = max(int(value), 1)
    return pinned
