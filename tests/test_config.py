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
    ("toy-star", ["sft_problems=512"], "setting 'sft_problems' was removed: an SFT round samples what its steps"),
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


def test_auto_dtype_is_bf16_on_gpu_except_for_the_toy_world(monkeypatch):
    """dtype auto: bf16 for real models on a GPU; the toy world trains in fp32 everywhere (its small
    Adam steps would round away in bf16), and the CPU always gets fp32."""
    import torch

    from score_lib.policy import compute_dtype

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert compute_dtype(build_config("toy-score")) == torch.float32
    assert compute_dtype(build_config("toy-score", ["task=gsm8k"])) == torch.bfloat16
    assert compute_dtype(build_config("toy-score", ["dtype=bfloat16"])) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert compute_dtype(build_config("toy-score", ["task=gsm8k"])) == torch.float32


def test_evaluation_only_commands_load_in_the_configs_dtype_on_the_accelerator(tiny_base, monkeypatch):
    """score eval / --reevaluate / repair: the model goes where the trainer's would (here a stand-in
    device, meta), in the config's dtype, not left on the CPU in fp32."""
    import torch

    from score_lib import policy

    monkeypatch.setattr(policy, "accelerator_device", lambda: "meta")
    model, _ = policy.load_for_eval(str(tiny_base), build_config("toy-score", ["dtype=bfloat16"]))
    p = next(model.parameters())
    assert p.device.type == "meta" and p.dtype == torch.bfloat16


def test_loaded_models_never_swap_in_hub_kernels(tiny_base):
    """transformers kernelizes a loaded model at train() when the `kernels` package is there; on a GPU
    that fetches kernels from the hub (offline: every training run fails). The workbench turns it off."""
    from score_lib.policy import load_policy

    model, _ = load_policy(str(tiny_base))
    model.train()
    assert not getattr(model, "use_kernels", False) and getattr(model, "kernels_mode", None) is None


def test_a_run_recorded_with_a_retired_setting_still_resumes(tiny_base, tmp_path):
    """Runs written before sft_problems / sft_samples were removed (they were never read) hold them in
    config.json; `score train --resume` drops them instead of refusing an unknown setting."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from score_lib.config import as_dict, recorded_settings
    from score_lib.runs import read_status

    from .conftest import TINY

    cfg = build_config("toy-star", TINY)
    old = {**json.loads(json.dumps(as_dict(cfg))), "sft_problems": 256, "sft_samples": 4, "versions": {}}
    assert build_config(None, recorded_settings(old)) == cfg
    run = tmp_path / "old-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(old))
    score = str(Path(sys.executable).with_name("score"))
    out = subprocess.run([score, "train", "--resume", str(run), "--quiet"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert read_status(run)["state"] == "finished"
