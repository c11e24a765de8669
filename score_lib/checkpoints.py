"""Saving and loading a run's weights: resumable checkpoints, and the weights select_by=train-reward keeps.

A mixin of the Trainer (trainer.py), which owns the accelerator, policy, optimiser and run folder it uses.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from .config import STAGE2_SETTINGS, ConfigError, as_dict, differing_setting
from .distributed import sharded_weights
from .runs import RunStoreError, checkpoint_dir, latest_checkpoint, mark_checkpoint_complete, read_config, read_model
from .selection import write_best


class Checkpoints:
    """save_checkpoint / _load_checkpoint (resume), save_best / _load_weights (selection)."""

    def save_checkpoint(self, step: int, final: bool = False):
        """Weights (or adapter) with save_pretrained, optimiser state, step; COMPLETE marks it usable.

        Written by the main process alone, in a form that does not depend on the number of processes (the
        unwrapped model's weights, the optimiser's state for whole parameters), so a checkpoint resumes on
        any number of them. Under FSDP / DeepSpeed the weights are gathered first, and the optimiser state,
        sharded there, is not saved: such a checkpoint is for evaluation, not for resuming."""
        acc = self.accelerator
        # gathering the whole weights is a collective under FSDP / DeepSpeed: every process joins
        gathered = {"state_dict": acc.get_state_dict(self.model)} if sharded_weights(acc) else {}
        if acc.is_main_process:
            path = checkpoint_dir(self.run_dir, step)
            self._write_model(path, gathered)
            if not sharded_weights(acc):  # under DDP every process holds this same, whole optimiser state
                torch.save(self.opt.state_dict(), path / "optimizer.pt")
            (path / "state.json").write_text(json.dumps({"step": step, "method": self.cfg.method,
                                                         "world_size": acc.num_processes}))
            mark_checkpoint_complete(path)
            done = sorted(p for p in path.parent.glob("step-*") if (p / "COMPLETE").exists())
            kept = checkpoint_dir(self.run_dir, self.cfg.stage1_steps) if self.cfg.keep_stage1 else None
            for old in done[:-2]:  # keep the last two complete checkpoints (and Stage I's end, when asked)
                if old != kept:
                    shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()  # no process runs ahead of, or exits before, a checkpoint being written

    def _write_model(self, path: Path, gathered: dict):
        """The policy (whole weights, or the adapter) and tokenizer under path/model, replacing what is there."""
        if path.exists():
            shutil.rmtree(path)
        self.policy.save_pretrained(path / "model", safe_serialization=True, **gathered)
        self.tok.save_pretrained(path / "model")

    def save_best(self, best: dict):
        """select_by=train-reward: the weights in force as the best window's candidate, into run_dir/best
        (selection.write_best swaps it in only once complete)."""
        acc = self.accelerator
        gathered = {"state_dict": acc.get_state_dict(self.model)} if sharded_weights(acc) else {}
        if acc.is_main_process:
            write_best(self.run_dir, best, lambda path: self._write_model(path, gathered))
        acc.wait_for_everyone()

    def _load_weights(self, path: Path):
        """Weights (or adapter) saved under path/model into the policy, on every process."""
        from safetensors.torch import load_file

        model = self.policy  # every process loads the same whole weights, whatever the number that saved them
        if self.cfg.lora:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(model, load_file(path / "model" / "adapter_model.safetensors"))
        else:
            missing, unexpected = model.load_state_dict(load_file(path / "model" / "model.safetensors"),
                                                        strict=False)
            tied = {"lm_head.weight"}
            if unexpected or set(missing) - tied:
                raise RuntimeError(f"checkpoint {path}: weights do not match the model "
                                   f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
            model.tie_weights()

    def _take_stage1(self, source: Path):
        """stage1_from: this run's Stage I is `source`'s, a score run with the same settings but for Stage II's
        (config.STAGE2_SETTINGS) and the same base: its checkpoint at the end of Stage I and the logs up to it
        are copied here, and training goes on from there as a resume would (the steps' randomness comes from
        (seed, step) alone, so the numbers are those of training Stage I again)."""
        cfg, step = self.cfg, self.cfg.stage1_steps
        ckpt = checkpoint_dir(source, step)
        if not (ckpt / "COMPLETE").is_file() or not (ckpt / "optimizer.pt").is_file():
            raise RunStoreError(f"stage1_from {source}: no complete checkpoint at the end of Stage I ({ckpt}); "
                                "run that score run with keep_stage1=true")
        mine = json.loads(json.dumps(as_dict(cfg)))
        if differs := differing_setting(read_config(source), mine, ignore=STAGE2_SETTINGS):
            name, theirs = differs
            raise ConfigError(f"stage1_from {source}: that run has {name}={theirs!r} and this one "
                              f"{name}={mine[name]!r}, so its Stage I is not this run's")
        from .trainer import model_record

        their_model, my_model = read_model(source) or {}, model_record(cfg.model, self.model_path)
        if {k: their_model.get(k) for k in ("path", "toy_base")} != {k: my_model.get(k) for k in ("path", "toy_base")}:
            raise ConfigError(f"stage1_from {source}: that run started from {their_model.get('path')}, this one "
                              f"from {self.model_path}")
        if self.accelerator.is_main_process:
            for name in ("metrics.jsonl", "traces.jsonl"):  # cut back to Stage I by _load_checkpoint
                if (source / name).exists():
                    shutil.copyfile(source / name, self.run_dir / name)
            for path in sorted((source / "evals").glob("*.json")):  # eval_every: Stage I's evaluations
                if path.stem.isdigit() and int(path.stem) <= step:
                    self.run_dir.joinpath("evals").mkdir(exist_ok=True)
                    shutil.copyfile(path, self.run_dir / "evals" / path.name)
            # the marker last, as save_checkpoint does: a crash while copying leaves no checkpoint to resume from
            shutil.copytree(ckpt, checkpoint_dir(self.run_dir, step), ignore=shutil.ignore_patterns("COMPLETE"))
            mark_checkpoint_complete(checkpoint_dir(self.run_dir, step))
        self.accelerator.wait_for_everyone()
        self._load_checkpoint()

    def _load_checkpoint(self):
        path = latest_checkpoint(self.run_dir)
        if path is None:  # nothing saved yet: start from the beginning, without the lines of the first try
            self.writer.truncate_after(0)
            return
        if not (path / "optimizer.pt").is_file():
            raise RunStoreError(f"{path}: no optimizer.pt (saved under FSDP or DeepSpeed, whose optimiser state "
                                f"is sharded), so the run cannot resume; evaluate or start from {path / 'model'}")
        self._load_weights(path)
        self.opt.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
        self.start_step = json.loads((path / "state.json").read_text())["step"]
        self.writer.truncate_after(self.start_step)
