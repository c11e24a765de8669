"""Presets and overrides: every bad preset, key or value gets a message that names it."""
import pytest

from score_lib.config import PRESETS, ConfigError, build_config, settings_help


def test_every_preset_builds():
    for name in PRESETS:
        cfg = build_config(name)
        assert cfg.method == PRESETS[name]["method"]


def test_overrides_are_typed():
    cfg = build_config("toy-score", ["alpha=3", "lora=true", "instruction=Try again.", "lr=2e-5"])
    assert cfg.alpha == 3.0 and cfg.lora is True and cfg.instruction == "Try again." and cfg.lr == 2e-5


@pytest.mark.parametrize("preset,overrides,msg", [
    ("toy-nope", [], "unknown preset 'toy-nope'"),
    ("toy-score", ["alpah=1"], "unknown setting 'alpah'"),
    ("toy-score", ["alpha=ten"], "setting 'alpha': expected a number, got 'ten'"),
    ("toy-score", ["steps=1.5"], "setting 'steps': expected an integer"),
    ("toy-score", ["lora=maybe"], "setting 'lora': expected true or false"),
    ("toy-score", ["method=ppo"], "unknown method 'ppo'"),
    ("toy-score", ["attempts=7"], "setting 'attempts'"),
    ("toy-st-rl", ["attempts=2"], "st-rl trains a single attempt"),
    ("toy-score", ["stage1_steps=500"], "stage1_steps"),
    ("toy-score", ["steps"], "expected key=value"),
])
def test_bad_settings_are_named(preset, overrides, msg):
    with pytest.raises(ConfigError, match=msg):
        build_config(preset, overrides)


def test_settings_help_lists_docstrings():
    text = settings_help()
    assert "alpha" in text and "Eq. 4" in text and "beta2" in text


def test_toy_base_overrides_are_typed_and_named():
    from score_lib.toy_base import config_from

    cfg = config_from(["max_steps=5", "lr_decay=true", "slip2=0.1"])
    assert (cfg.max_steps, cfg.lr_decay, cfg.slip2) == (5, True, 0.1)
    for bad, msg in [(["nope=1"], "unknown toy-base setting 'nope'"), (["max_steps=x"], "'max_steps'"),
                     (["max_steps"], "expected key=value")]:
        with pytest.raises(ValueError, match=msg):
            config_from(bad)
