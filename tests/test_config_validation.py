"""Bad input: every rule of ``configuration.validate_config``, each refused with one line
that starts with the field it names (in-process; the CLI's refusals are in
test_config_errors.py and test_reliability.py)."""

from __future__ import annotations

import math

import ml_collections
import pytest

from bridge_jax import configuration
from tests.train_helpers import load_config


def _ring_config(arg: str | None = "tiny") -> ml_collections.ConfigDict:
    return load_config("ring", arg)


# (overrides, field the message must name); "<tmp>" is replaced by an existing directory.
BAD_CONFIGS = [
    ({"method": "gan"}, "method"),
    ({"method": 3}, "method"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"seed": 2**32}, "seed"),
    ({"num_steps": 0}, "num_steps"),
    ({"num_steps": -5}, "num_steps"),
    ({"num_steps": "100"}, "num_steps"),
    ({"num_steps": 10.0}, "num_steps"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": True}, "batch_size"),
    ({"parallel": "xmap"}, "parallel"),
    ({"nonfinite_policy": "ignore"}, "nonfinite_policy"),
    ({"data.name": "imagenet"}, "data.name"),
    ({"data.name": "tfds", "model.arch": "dcgan"}, "data.tfds_name"),
    ({"data.name": "tfds", "data.tfds_name": "mnist", "model.arch": "dcgan"}, "data.data_dir"),
    ({"data.name": "tfds", "data.tfds_name": "mnist", "model.arch": "dcgan",
      "data.data_dir": "/nonexistent/tfds"}, "data.data_dir"),
    ({"data.name": "tfds", "data.tfds_name": "mnist", "model.arch": "dcgan",
      "data.data_dir": "<tmp>", "data.split": ""}, "data.split"),
    ({"data.image_size": -1}, "data.image_size"),
    ({"data.image_size": 32}, "data.image_size"),
    ({"data.num_workers": -1}, "data.num_workers"),
    ({"data.num_workers": 1.5}, "data.num_workers"),
    ({"model.arch": "resnet"}, "model.arch"),
    ({"model.arch": "dcgan"}, "model.arch"),
    ({"data.name": "mnist"}, "model.arch"),
    ({"model.latent_dim": 0}, "model.latent_dim"),
    ({"model.width": -8}, "model.width"),
    ({"model.depth": 0}, "model.depth"),
    ({"model.likelihood": "poisson"}, "model.likelihood"),
    ({"model.likelihood": "bernoulli"}, "model.likelihood"),
    ({"model.scale": "matrix"}, "model.scale"),
    ({"model.upsample": "nearest"}, "model.upsample"),
    ({"model.dtype": "float16"}, "model.dtype"),
    ({"model.init_log_scale": -10.0}, "model.init_log_scale"),
    ({"model.min_log_scale": math.nan}, "model.init_log_scale"),
    ({"alpha.schedule": "exp"}, "alpha.schedule"),
    ({"alpha.start": 1.5}, "alpha.start"),
    ({"alpha.end": -0.1}, "alpha.end"),
    ({"alpha.start": math.nan}, "alpha.start"),
    ({"alpha.end": "0.5"}, "alpha.end"),
    ({"alpha.transition_begin": -1}, "alpha.transition_begin"),
    ({"alpha.transition_begin": 4}, "alpha.transition_begin"),
    ({"alpha.transition_steps": 0}, "alpha.transition_steps"),
    ({"alpha.transition_steps": -2}, "alpha.transition_steps"),
    ({"alpha.num_stages": 0}, "alpha.num_stages"),
    ({"alpha.decay_rate": 0.0}, "alpha.decay_rate"),
    ({"alpha.decay_rate": 1.0}, "alpha.decay_rate"),
    ({"alpha.mix": "cubic"}, "alpha.mix"),
    ({"alpha.self_normalize": "yes"}, "alpha.self_normalize"),
    ({"critic.loss": "hinge"}, "critic.loss"),
    ({"critic.steps": 0}, "critic.steps"),
    ({"critic.gradient_penalty": -1.0}, "critic.gradient_penalty"),
    ({"critic.learning_rate": 0.0}, "critic.learning_rate"),
    ({"generator.learning_rate": -1e-3}, "generator.learning_rate"),
    ({"critic.learning_rate": math.inf}, "critic.learning_rate"),
    ({"generator.learning_rate": "1e-3"}, "generator.learning_rate"),
    ({"critic.b1": 1.0}, "critic.b1"),
    ({"critic.b2": 1.5}, "critic.b2"),
    ({"generator.b1": -0.5}, "generator.b1"),
    ({"generator.b2": -0.1}, "generator.b2"),
    ({"critic.clip_norm": 0.0}, "critic.clip_norm"),
    ({"generator.clip_norm": -1.0}, "generator.clip_norm"),
    ({"generator.lr_schedule": "linear"}, "generator.lr_schedule"),
    ({"critic.final_lr_fraction": 1.5}, "critic.final_lr_fraction"),
    ({"generator.scale_lr_multiplier": 0.0}, "generator.scale_lr_multiplier"),
    ({"generator.lr_decay_steps": 0}, "generator.lr_decay_steps"),
    ({"hybrid_weight": -1.0}, "hybrid_weight"),
    ({"log_every": 0}, "log_every"),
    ({"sample_every": -1}, "sample_every"),
    ({"checkpoint_every": 0}, "checkpoint_every"),
    ({"keep_checkpoints": 0}, "keep_checkpoints"),
    ({"num_final_samples": -1}, "num_final_samples"),
    ({"progress_bar": "yes"}, "progress_bar"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_CONFIGS,
                         ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD_CONFIGS)])
def test_validate_config_names_the_bad_field(overrides, field, tmp_path):
    # type_safe=False: a config file can hold a value of any type; validation must catch it.
    config = ml_collections.ConfigDict(_ring_config().to_dict(), type_safe=False)
    for key, value in overrides.items():
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = str(tmp_path) if value == "<tmp>" else value
    with pytest.raises(configuration.ConfigError) as err:
        configuration.validate_config(config)
    message = str(err.value)
    assert message.startswith(field), message
    assert "\n" not in message


def test_validate_config_rejects_unknown_and_missing_fields():
    typo = _ring_config()
    typo.num_step = 100  # meant num_steps: would otherwise be ignored silently
    with pytest.raises(configuration.ConfigError, match=r"unknown config field\(s\) num_step "):
        configuration.validate_config(typo)
    partial = _ring_config().to_dict()
    del partial["alpha"]["mix"], partial["log_every"]
    with pytest.raises(configuration.ConfigError, match="alpha.mix, log_every missing"):
        configuration.validate_config(ml_collections.ConfigDict(partial))


@pytest.mark.parametrize(("kwargs", "phrase"), [
    ({"num_devices": 3}, "not divisible by the 3 devices"),
    ({"process_count": 3}, "not divisible by the 3 hosts"),
])
def test_validate_config_batch_must_split_evenly(kwargs, phrase):
    with pytest.raises(configuration.ConfigError, match=phrase):
        configuration.validate_config(_ring_config(), **kwargs)


def test_validate_config_rejects_an_unwritable_workdir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(configuration.ConfigError, match="workdir"):
        configuration.validate_config(_ring_config(), workdir=str(blocker / "run"))
    configuration.validate_config(_ring_config(), workdir=str(tmp_path / "new" / "run"))


@pytest.mark.parametrize("arg", [None, "tiny"])
def test_shipped_ring_configs_are_valid(arg):
    configuration.validate_config(_ring_config(arg))
