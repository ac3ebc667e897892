"""Settings: flags generated from TrainConfig's fields, validation in the dataclass, layered resolution, round trips."""

from __future__ import annotations

import dataclasses
import re

import pytest

from catsdogs.config import AugmentParams, ConfigError, TrainConfig
from catsdogs.errors import UserError, flag_for
from catsdogs.train import build_parser, config_from_args, parse_arguments
from catsdogs.training.settings import resolve_config


def parse(*flags: str) -> TrainConfig:
    return config_from_args(parse_arguments(list(flags)))


def option_help(help_text: str) -> dict[str, str]:
    """``--flag`` -> its help paragraph, from argparse's formatted help."""
    entries: dict[str, str] = {}
    current = None
    for line in help_text.splitlines():
        match = re.match(r"\s{2}(--[\w-]+)", line)
        if match:
            current = match.group(1)
            entries[current] = line
        elif current and line.startswith(" " * 10):
            entries[current] += " " + line.strip()
        else:
            current = None
    return entries


def test_every_field_and_model_option_is_a_flag_with_its_default_shown_once():
    from catsdogs.models.registry import option_fields

    entries = option_help(build_parser(model_options=True).format_help())
    nested = [f.name for f in dataclasses.fields(AugmentParams)] + list(option_fields())
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("augment_params", "model_options")]
    assert {"alpha", "batchnorm", "units", "depth", "width"} <= set(option_fields())
    for name in names + nested:
        flag = flag_for(name)
        assert flag in entries, f"{flag} has no flag"
        assert entries[flag].count("(default:") == 1, entries[flag]
    assert "(default: 150)" in entries["--image-size"] and "(default: rmsprop)" in entries["--optimizer"]


def test_flags_given_override_the_defaults_and_nothing_else():
    config = parse("--epochs", "3", "--rotation-range", "10", "--no-augment", "--devices", "/cpu:0,/cpu:1")
    defaults = resolve_config({})  # the field defaults under small_cnn's recipe
    assert (config.epochs, config.augment, config.devices) == (3, False, ["/cpu:0", "/cpu:1"])
    assert config.augment_params == dataclasses.replace(defaults.augment_params, rotation_range=10.0)
    assert config.lr == defaults.lr and config.image_size == defaults.image_size


def test_resolution_order_is_default_recipe_file_flag():
    recipe = {"optimizer": "adam", "lr": 1e-3, "epochs": 20, "augment_params": {"rotation_range": 20}}
    config_file = {"lr": 5e-4, "epochs": 10, "augment_params": {"zoom_range": 0.1}}
    flags = {"epochs": 2}
    config = TrainConfig.resolve(recipe, config_file, flags)
    assert (config.optimizer, config.lr, config.epochs) == ("adam", 5e-4, 2)
    assert (config.augment_params.rotation_range, config.augment_params.zoom_range) == (20.0, 0.1)
    assert config.augment_params.shear_range == AugmentParams().shear_range  # untouched keys keep their default


@pytest.mark.parametrize("values,words", [
    ({"epochs": "6"}, "--epochs must be a whole number, not '6'"),
    ({"epochs": 0}, "--epochs must be at least 1"),
    ({"batch_size": 0}, "--batch-size must be at least 1"),
    ({"image_size": -3}, "--image-size must be at least 8"),
    ({"lr": "abc"}, "--lr must be a number"),
    ({"lr": 0}, "--lr must be above 0"),
    ({"ema": 1.0}, "--ema must be below 1"),
    ({"augment": "yes"}, "--augment must be true or false"),
    ({"optimizer": "adamw2"}, "--optimizer must be one of rmsprop, adam, adamw, sgd"),
    ({"epoch": 5}, "unknown setting 'epoch' in test; did you mean 'epochs'"),
    ({"name": "../../x"}, "--name must be a plain name"),
    ({"name": "/abs/path"}, "--name must be a plain name"),
    ({"augment_params": {"rotation_range": -1}}, "--rotation-range must be at least 0"),
    ({"augment_params": {"fill": "nearest"}}, "unknown setting 'fill'"),
])
def test_odd_values_are_one_line_errors_naming_the_setting(values, words):
    """On the command line the flag (``worded``); to a Python caller the setting's name (``str``)."""
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict(values, "test")
    assert words in caught.value.worded(), caught.value.worded()
    assert isinstance(caught.value, UserError) and "\n" not in str(caught.value) and "--" not in str(caught.value)
    assert words.replace("--", "").split()[0].replace("-", "_") in str(caught.value)


def test_whole_numbers_are_accepted_where_numbers_go_and_none_means_no_weights():
    config = TrainConfig.from_dict({"lr": 1, "dropout": 0, "weights": "none"})
    assert config.lr == 1.0 and isinstance(config.lr, float) and config.weights is None


def test_a_saved_config_loads_back_equal(tmp_path):
    config = parse("--model", "mobilenet", "--alpha", "0.25", "--zoom-range", "0.3", "--seed", "7")
    config.save(tmp_path / "config.json", run={"anything": "recorded"})
    assert TrainConfig.load(tmp_path / "config.json") == config


def test_a_broken_config_file_is_a_user_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        TrainConfig.load(path)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        TrainConfig.load(path)
