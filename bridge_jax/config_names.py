"""Config names: ``--config=ring`` means the config file shipped with the package.

The experiment configs live in the repository's top-level ``configs/`` folder, which
``pyproject.toml`` maps into the wheel as the subpackage ``bridge_jax.configs``. So a
pip-installed trainer needs no checkout:

    bridge-jax-train --config=ring:tiny --workdir=/tmp/ring     # configs/ring.py, arg 'tiny'
    bridge-jax-train --config=sweeps/ring --workdir=runs/sweep  # configs/sweeps/ring.py

A ``--config`` value that names an existing file is used as it is (``file.py[:arg]``, as
ml_collections reads it). Otherwise a name (``ring``, ``sweeps/ring``, or the README's
``configs/ring.py``) resolves to the shipped file; anything else is an
:class:`UnknownConfigError` listing the shipped names.
"""

from __future__ import annotations

import os
import pathlib
import re

_NAME = re.compile(r"[A-Za-z0-9_]+(?:/[A-Za-z0-9_]+)*")


class UnknownConfigError(ValueError):
    """A ``--config`` value that is neither a file nor the name of a shipped config."""


def configs_dir() -> pathlib.Path:
    """The folder of the shipped configs: ``bridge_jax/configs/`` in an installed wheel,
    else the repository's top-level ``configs/`` beside the package (a checkout or an
    editable install)."""
    package = pathlib.Path(__file__).resolve().parent
    installed = package / "configs"
    return installed if installed.is_dir() else package.parent / "configs"


def shipped_names() -> list[str]:
    """Every shipped config name (``ring``, ``sweeps/ring``, ...), sorted."""
    root = configs_dir()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.py")
                  if p.name != "__init__.py")


def resolve(value: str) -> str:
    """The ``--config`` value ml_collections should load: ``value`` itself when its file
    exists, else the shipped file it names (keeping any ``:arg``). A missing file path
    (``.py``, or not a plain name) is returned unchanged for the config loader to report;
    a plain name that is not shipped is an :class:`UnknownConfigError`."""
    path, colon, arg = value.partition(":")
    if os.path.exists(path):
        return value
    name = path.removeprefix("configs/").removesuffix(".py")
    if not _NAME.fullmatch(name):
        return value
    if name in shipped_names():
        return f"{configs_dir() / name}.py{colon}{arg}"
    if path.endswith(".py"):
        return value
    raise UnknownConfigError(
        f"--config={value}: no such file, and no shipped config named {name!r} "
        f"(shipped: {', '.join(shipped_names())})")


def resolve_config_flag(argv: list[str]) -> list[str]:
    """``argv`` with its ``--config=VALUE`` (or ``--config VALUE``) resolved by
    :func:`resolve`; ``--config.field=...`` overrides and arguments after ``--`` are
    left alone."""
    out = list(argv)
    for i in range(1, len(out)):
        if out[i] == "--":
            break
        if out[i].startswith("--config="):
            out[i] = "--config=" + resolve(out[i].removeprefix("--config="))
        elif out[i] == "--config" and i + 1 < len(out):
            out[i + 1] = resolve(out[i + 1])
    return out
