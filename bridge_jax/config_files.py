"""Loading config files: ``path.py`` or ``path.py:variant``, every problem one ConfigError.

A config file defines ``get_config(arg=None)`` returning an
``ml_collections.ConfigDict`` and lists in ``VARIANTS`` every ``arg`` it accepts
after the ``:`` (e.g. ``VARIANTS = ("tiny",)``); without ``:`` it is called with
no argument. Any other variant is refused, so that a typo such as ``:TINY`` or
``:bogus`` does not silently run the full config. A file without ``VARIANTS``
takes no variant.

The CLI loads the ``--config`` file here first (:func:`load_experiment`), so a
missing file, a syntax error, a file without ``get_config``, a ``get_config``
that raises or returns something other than a ConfigDict, an unknown variant or
a config without the experiment's fields is one line, not a traceback.
"""

from __future__ import annotations

import importlib.util
import os
import traceback
from types import ModuleType

import ml_collections

from bridge_jax.configuration import ConfigError, field_name_problem


def split_spec(spec: str) -> tuple[str, str | None]:
    """``'configs/ring.py:tiny'`` -> ``('configs/ring.py', 'tiny')``; no ``:`` -> arg None
    (as ml_collections' config_flags splits it: at the first ``:``)."""
    path, sep, arg = spec.partition(":")
    return path, (arg if sep else None)


def load_module(path: str | os.PathLike) -> ModuleType:
    """Executes the config file at ``path`` (ConfigError if it is missing or fails to load)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist or is not a file")
    name = "_bridge_jax_config_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"config file {path!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        where = f" at line {err.lineno}" if err.lineno else ""
        raise ConfigError(f"config file {path!r} has a syntax error{where}: {err.msg}") from None
    except ConfigError:
        raise
    except Exception as err:  # any error of the file's own code
        raise ConfigError(f"config file {path!r} failed to load: {_describe(err)}") from None
    return module


def check_variant(module: ModuleType, path: str, arg: str | None) -> None:
    """ConfigError unless ``arg`` is None or one of the file's declared ``VARIANTS``."""
    variants = tuple(getattr(module, "VARIANTS", ()))
    if arg is None or arg in variants:
        return
    if not variants:
        raise ConfigError(f"config file {path!r} has no variants, got ':{arg}'; "
                          f"use --config={path} (a file lists its variants in VARIANTS)")
    listed = ", ".join(f"{path}:{v}" for v in variants)
    raise ConfigError(f"config file {path!r} has no variant {arg!r}; its variants are "
                      f"{listed} (and {path} itself, the full config)")


def load_config(path: str | os.PathLike, arg: str | None = None) -> ml_collections.ConfigDict:
    """``get_config(arg)`` of the config file at ``path`` (``get_config()`` if arg is None),
    after checking ``arg`` against the file's ``VARIANTS``."""
    path = os.fspath(path)
    module = load_module(path)
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ConfigError(f"config file {path!r} defines no get_config() function")
    check_variant(module, path, arg)
    try:
        config = get_config() if arg is None else get_config(arg)
    except ConfigError:
        raise
    except Exception as err:  # any error of the file's own code
        raise ConfigError(f"get_config({'' if arg is None else repr(arg)}) of config file "
                          f"{path!r} failed: {_describe(err)}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"get_config() of config file {path!r} returned a "
                          f"{type(config).__name__}, not an ml_collections.ConfigDict")
    return config


def load_experiment(spec: str) -> ml_collections.ConfigDict:
    """The config of ``--config=spec``: :func:`load_config`, and it must have exactly the
    fields of ``configuration.base_config()`` (a sweep's run list alone is not a config)."""
    path, arg = split_spec(spec)
    config = load_config(path, arg)
    problem = field_name_problem(config)
    if problem is not None:
        raise ConfigError(f"config file {path!r} is not an experiment config: {problem}")
    return config


def flag_value(argv: list[str], name: str) -> str | None:
    """The value of ``--name=value`` / ``--name value`` in ``argv`` (the last one, as absl
    takes it), or None if it is not given; stops at ``--``."""
    value = None
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "--":
            break
        for prefix in (f"--{name}", f"-{name}"):
            if arg.startswith(prefix + "="):
                value = arg[len(prefix) + 1:]
            elif arg == prefix and i + 1 < len(argv):
                value = argv[i + 1]
    return value


def _describe(err: BaseException) -> str:
    """``'KeyError: 'x' (at configs/a.py line 12)'``: the error and its innermost frame
    outside this module (none if it was raised here, e.g. a call with the wrong arguments)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if os.path.abspath(f.filename) != os.path.abspath(__file__)]
    where = f" (at {frames[-1].filename} line {frames[-1].lineno})" if frames else ""
    return f"{type(err).__name__}: {err}{where}"
