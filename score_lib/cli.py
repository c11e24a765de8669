"""The `score` command: toy-base, train, eval, ablate, findings, runs, models, app."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from .config import (CODE_INSTRUCTION, MATH_INSTRUCTION, PRESETS, ConfigError, build_config, recorded_settings,
                     settings_help)
from .runs import RunStoreError
from .tasks import CODE_TASKS


def _add_settings(p):
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting (repeatable); `score train --help-settings` lists them")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="score", description="SCoRe Workbench: train and study self-correction.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("toy-base", help="build (or reuse, or install the shipped build of) the toy base model")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="toy base setting, e.g. max_seconds=60 or n_ops=3")
    p.add_argument("--force", action="store_true", help="build on this machine even if a cached or shipped copy exists")

    p = sub.add_parser("train", help="train one method and write a run directory")
    p.add_argument("--preset", choices=None, help=f"one of: {', '.join(PRESETS)}")
    _add_settings(p)
    p.add_argument("--out", help="run directory (default: <runs-dir>/<preset>-<time>)")
    p.add_argument("--runs-dir", help="root of the run store (default $SCORE_RUNS_DIR or ./runs)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--json", metavar="FILE", help="write the final evaluation metrics here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--help-settings", action="store_true", help="list every setting with its default")

    p = sub.add_parser("eval", help="evaluate a model's two-attempt self-correction")
    p.add_argument("--model", default="toy-base", help="hub id, local folder, GGUF file or toy-base")
    p.add_argument("--task", default="toy", help="task name (toy)")
    p.add_argument("--method", default="eval", choices=["eval", "self-refine"],
                   help="eval: attempt, instruction, attempt; self-refine: attempt, critique, revision")
    p.add_argument("--limit", type=int, help="number of test problems")
    _add_settings(p)
    p.add_argument("--json", metavar="FILE", help="write the metrics here")
    p.add_argument("--split", help="with --write-first-attempts: the problems' split (default test); with "
                                    "--repair: the only split to look ids up in (default: every split)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--repair", metavar="FILE",
                      help="instead: offline repair (MBPP-R style) of the given first attempts, JSONL "
                           '{"id": ..., "first": ...} per line; greedy unless --set eval_greedy=false')
    mode.add_argument("--write-first-attempts", metavar="FILE",
                      help="instead: write the model's own graded first attempts as such a file")
    p.add_argument("--only-wrong", action="store_true", help="with --write-first-attempts: only the wrong ones")
    mode.add_argument("--scaling", metavar="K1,K2,...",
                   help="instead: inference-time scaling curve (Fig. 1 right), 2K parallel samples vs K "
                        "self-corrected ones, majority vote, temperature 0.7; written to the run store")
    p.add_argument("--runs-dir", help="root of the run store (default $SCORE_RUNS_DIR or ./runs)")

    p = sub.add_parser("ablate", help="every method of the paper's tables on one world, several seeds")
    p.add_argument("--preset", default="toy", help="world preset: toy (the pick world), toy-hard (6 numbers), "
                                                   "toy-chain or toy-chain-hard (arithmetic chains)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per method")
    p.add_argument("--first-seed", type=int, default=0,
                   help="the first seed (default 0): --seeds 2 --first-seed 3 runs seeds 3 and 4, more seeds for an "
                        "earlier recording (check both as one with `score findings --pool`); with --reevaluate, the seeds "
                        "to evaluate again")
    p.add_argument("--methods", help="comma-separated subset (default: all)")
    _add_settings(p)
    p.add_argument("--out", help="folder for the run directories (default runs/ablate-<world>-<time>); the same "
                                 "--out again keeps its finished runs and resumes interrupted ones")
    p.add_argument("--workers", type=int, help="runs in parallel (default: min(2, cores))")
    p.add_argument("--json", metavar="FILE", help="write {method: {metric: {mean, std, per_seed}}} here")
    p.add_argument("--md", metavar="FILE", help="write the markdown table here")
    p.add_argument("--reevaluate", metavar="KEY=VALUE", action="append",
                   help="instead of training: evaluate the finished ablation in --out again with this evaluation "
                        "setting (eval_greedy, eval_problems, eval_samples, eval_temperature, eval_batch; "
                        "repeatable), e.g. --reevaluate eval_greedy=true")

    p.add_argument("--rule", metavar="KEY=VALUE", action="append", default=[],
                   help="a threshold of the findings check (small_fraction, near_zero, collapse_ratio; repeatable)")

    p = sub.add_parser("findings", help="check a recorded ablation (its --json file) for the paper's five findings")
    p.add_argument("json_files", metavar="FILE", nargs="+",
                   help="JSON file(s) written by `score ablate --json`, or an ablation's --out folder (its finished "
                        "runs, also mid-run); a later one only adds the methods the earlier ones lack (e.g. the base "
                        "row for a run of a few methods)")
    p.add_argument("--rule", metavar="KEY=VALUE", action="append", default=[],
                   help="a threshold of the check (small_fraction, near_zero, collapse_ratio; repeatable)")
    p.add_argument("--each", action="store_true",
                   help="check each file on its own and print one line per file (a scorecard of several ablations)")
    p.add_argument("--pool", action="store_true",
                   help="check the files as one ablation: each method's seeds from every file side by side (more "
                        "seeds, or the same seeds recorded on another machine); prints the pooled table first")
    p.add_argument("--against", metavar="RECORDED",
                   help="instead of the check: compare the file(s) with this recording seed by seed (did this machine "
                        "reproduce a recorded table, e.g. docs/ablation_toy_default_eval1024_3seeds.json?)")
    p.add_argument("--md", metavar="FILE", help="also write the findings table here")

    p = sub.add_parser("runs", help="list the runs in the run store")
    p.add_argument("--runs-dir", help="root of the run store (default $SCORE_RUNS_DIR or ./runs)")

    p = sub.add_parser("models", help="fetch and list models that work offline")
    msub = p.add_subparsers(dest="models_cmd", required=True)
    q = msub.add_parser("pull", help="fetch a known model (smollm2-135m) into the cache and register it")
    q.add_argument("name")
    q.add_argument("--force", action="store_true", help="fetch again even if registered")
    msub.add_parser("list", help="registered and known models")

    p = sub.add_parser("app", help="open the workbench app (Streamlit) on the run store")
    p.add_argument("--runs-dir", help="root of the run store (default $SCORE_RUNS_DIR or ./runs)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1", help="interface to serve on (default 127.0.0.1)")
    for name in ("train", "eval", "ablate"):
        sp = sub.choices[name]
        sp.add_argument("--data-dir", help="folder with gsm8k/, math/, math500/, humaneval/, mbpp/ data files")
        sp.add_argument("--allow-code-exec", action="store_true",
                        help="allow running model-written code in the sandbox (code tasks)")
    return ap


def _row(m: dict) -> str:
    rate = lambda k: "-" if m.get(k) is None else f"{m[k]:.3f}"  # noqa: E731 (None: nothing to condition on)
    return (f"Acc@t1 {m['acc_t1']:.3f}  Acc@t2 {m['acc_t2']:.3f}  Delta {m['delta']:+.3f}  "
            f"i->c {m['delta_i2c']:.3f}  c->i {m['delta_c2i']:.3f}  "
            f"changed {m.get('answer_change_rate', 0):.3f} (y1 right {rate('answer_change_if_right')}, "
            f"wrong {rate('answer_change_if_wrong')})  unchanged-y2 {m.get('edit_ratio_zero_share', 0):.3f}  "
            f"(n={m['n_problems']}, {m['method']})")


def _write_json(path: str | None, metrics: dict):
    if path:
        from .evaluate import json_row

        Path(path).write_text(json.dumps(json_row(metrics), indent=2) + "\n")


def cmd_toy_base(args) -> int:
    from .toy_base import build_toy_base, config_from, stop_summary

    try:
        cfg = config_from(args.overrides)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    path = build_toy_base(cfg, force=args.force)
    meta = json.loads((path / "toy_base.json").read_text())
    print(f"toy base model: {path} ({meta['parameters']:,} parameters, {meta['steps']} steps, "
          f"{meta['seconds']} s, loss {meta['final_loss']:.3f}, stopped by {meta.get('stopped_by', 'not recorded')})")
    if meta.get("checks"):
        print(stop_summary(meta))
    return 0


def cmd_train(args) -> int:
    from .runs import new_run_id, read_config, runs_root
    from .trainer import Trainer

    if args.help_settings:
        print(settings_help())
        return 0
    if args.resume:
        run_dir = Path(args.resume)
        cfg = build_config(None, recorded_settings(read_config(run_dir)))
    else:
        if not args.preset:
            raise ConfigError("train: --preset is required (or --resume RUN_DIR)")
        cfg = build_config(args.preset, args.overrides)
        run_dir = Path(args.out) if args.out else runs_root(args.runs_dir) / new_run_id(args.preset)
    trainer = Trainer(cfg, run_dir, resume=bool(args.resume), progress=not args.quiet)
    final = trainer.run()
    if trainer.accelerator.is_main_process:  # under accelerate launch: one report, one --json writer
        print(f"run {run_dir}: {_row(final)}")
        _write_json(args.json, final)
    return 0


def cmd_eval(args) -> int:
    from .evaluate import evaluate
    from .policy import load_for_eval
    from .tasks import make_task
    from .trainer import _resolve_model

    settings = {"model": args.model, "task": args.task,
                "method": "self-refine" if args.method == "self-refine" else "score"}
    if args.task != "toy":  # real benchmarks: their instruction, room to reason, the paper's greedy protocol
        code = args.task in CODE_TASKS
        settings.update(instruction=CODE_INSTRUCTION if code else MATH_INSTRUCTION, max_new_tokens="384",
                        eval_greedy="true")
    repair = args.repair or args.write_first_attempts
    if repair:
        settings["eval_greedy"] = "true"  # the paper evaluates repair greedily
    cfg = build_config(None, {**settings, **dict(o.split("=", 1) for o in args.overrides if "=" in o)})
    if repair or args.only_wrong or args.split:  # the last two: refused there without a mode
        from .repair import cmd_repair

        return cmd_repair(args, cfg, _row)
    ks = _parse_ks(args.scaling) if args.scaling else None  # refuse bad input before loading a model
    model, tok = load_for_eval(_resolve_model(cfg), cfg)
    if ks:
        return _eval_scaling(args, cfg, model, tok, ks)
    metrics, _ = evaluate(model, tok, make_task(cfg), cfg, limit=args.limit, progress=True)
    metrics["method"] = args.method if args.method == "self-refine" else f"eval {args.model}"
    print(_row(metrics))
    _write_json(args.json, metrics)
    return 0


def _parse_ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        ks = []
    if not ks or min(ks) < 1:
        raise ConfigError(f"--scaling: expected comma-separated positive integers like 1,2,4, got {text!r}")
    return sorted(set(ks))


def _eval_scaling(args, cfg, model, tok, ks: list[int]) -> int:
    import re

    from .config import as_dict
    from .runs import RunWriter, atomic_write_json, new_run_id, runs_root
    from .scaling import scaling_curve
    from .tasks import make_task

    task = make_task(cfg)
    problems = task.problems("test", args.limit or cfg.eval_problems)
    curve = scaling_curve(model, tok, task, problems, ks, cfg.instruction,
                          max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    print(f"single-sample accuracy {curve['single']:.3f}  (n={curve['n_problems']}, T={curve['temperature']})")
    print(f"{'K':>4s} {'budget':>7s} {'parallel':>9s} {'sequential':>11s}")
    for k, b, par, seq in zip(curve["ks"], curve["budget"], curve["parallel"], curve["sequential"]):
        print(f"{k:4d} {b:7d} {par:9.3f} {seq:11.3f}")
    name = re.sub(r"[^A-Za-z0-9.]+", "-", Path(args.model).name).strip("-") or "model"
    run_dir = runs_root(args.runs_dir) / new_run_id(f"scaling-{name}-{args.task}")
    writer = RunWriter(run_dir, {**as_dict(cfg), "method": "eval", "scaling_ks": ks})
    atomic_write_json(run_dir / "evals" / "scaling.json", curve)
    writer.set_status("finished", step=0)
    print(f"run {run_dir}")
    if args.json:
        Path(args.json).write_text(json.dumps(curve, indent=2) + "\n")
    return 0


def cmd_ablate(args) -> int:
    from . import findings
    from .ablate import run_ablation
    from .ablation_table import report, save_report
    from .reevaluate import reeval_dir

    for o in args.overrides:
        if "=" not in o:
            raise ConfigError(f"override {o!r}: expected key=value")
    build_config(None, args.overrides)  # refuse a bad key or value before any run starts
    try:
        rules = findings.rules_from(args.rule)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    methods = args.methods.split(",") if args.methods else None
    try:
        if args.reevaluate:
            from .reevaluate import reevaluate

            if not args.out:
                raise ValueError("ablate --reevaluate: name the finished ablation's folder with --out")
            results = reevaluate(args.preset, Path(args.out), methods, args.seeds, args.overrides, args.reevaluate,
                                 first_seed=args.first_seed)
        else:
            results = run_ablation(args.preset, args.seeds, Path(args.out) if args.out else None, methods,
                                   args.overrides, args.workers, first_seed=args.first_seed)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    doc, table = report(results, rules)
    print(table)
    folder = reeval_dir(Path(args.out), args.reevaluate) if args.reevaluate else Path(results["_meta"]["runs"])
    save_report(folder, doc, table)
    if args.md:
        Path(args.md).write_text(table)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


def cmd_findings(args) -> int:
    from . import findings

    try:
        rules = findings.rules_from(args.rule)
        loaded = {f: findings.load(f) for f in args.json_files}
        if args.each and args.pool:
            raise ValueError("--each and --pool: pick one (each file on its own, or all of them as one)")
        if args.against and (args.each or args.pool):
            raise ValueError("--against compares with one recording: drop --each / --pool")
        results = {}
        for r in loaded.values():
            results = {**r, **results}  # the first file that has a method gives its row
        if args.against:
            from . import reproduce

            names = " + ".join(Path(f).name for f in args.json_files)
            table = reproduce.markdown(Path(args.against).name, names,
                                       *reproduce.compare(findings.load(args.against), results))
        elif args.each:
            table = findings.scorecard({Path(f).name: (r, findings.check(r, rules)) for f, r in loaded.items()})
        elif args.pool:  # the pooled table exists nowhere else: it comes first
            from .ablation_table import markdown

            pooled = findings.pool(loaded)
            table = markdown(pooled) + "\n" + findings.markdown(findings.check(pooled, rules), rules)
        else:
            table = findings.markdown(findings.check(results, rules), rules)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    print(table)
    if args.md:
        Path(args.md).write_text(table)
    return 0


def cmd_models(args) -> int:
    from .models import KNOWN_MODELS, pull, registered

    if args.models_cmd == "pull":
        if args.name not in KNOWN_MODELS:
            raise ConfigError(f"models pull: unknown model {args.name!r} (known: {', '.join(KNOWN_MODELS)})")
        print(f"{args.name}: {pull(args.name, force=args.force)}")
        return 0
    reg = registered()
    for name, info in KNOWN_MODELS.items():
        print(f"{name:16s} {reg.get(name, 'not pulled (score models pull ' + name + ')')}  [{info['license']}]")
    for name in sorted(set(reg) - set(KNOWN_MODELS)):
        print(f"{name:16s} {reg[name]}")
    return 0


def cmd_app(args) -> int:
    from workbench.serve import main as serve

    serve(args.runs_dir, args.port, headless=True, address=args.address)
    return 0


def cmd_runs(args) -> int:
    from .runs import list_runs, runs_root

    root = runs_root(args.runs_dir)
    runs = list_runs(root)
    if not runs:
        print(f"no runs under {root}")
        return 0
    print(f"{'run':44s} {'state':9s} {'method':13s} {'step':>5s} {'acc_t1':>7s} {'acc_t2':>7s} {'delta':>7s}")
    for r in runs:
        f = lambda v: f"{v:7.3f}" if isinstance(v, (int, float)) else f"{'-':>7s}"  # noqa: E731
        print(f"{r['run_id'][:44]:44s} {str(r['state']):9s} {str(r['method']):13s} {str(r['step'] or 0):>5s} "
              f"{f(r.get('acc_t1'))} {f(r.get('acc_t2'))} {f(r.get('delta'))}")
        if r.get("error"):
            print(f"    error: {r['error']}")
    return 0


def _stop(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd in ("toy-base", "train", "eval", "ablate"):
        import transformers

        transformers.logging.disable_progress_bar()  # our own bars say what is happening
    if getattr(args, "data_dir", None):
        args.overrides = [*args.overrides, f"data_dir={args.data_dir}"]
    if getattr(args, "allow_code_exec", False):
        os.environ["SCORE_ALLOW_CODE_EXEC"] = "1"  # inherited by ablate's child runs too
    # a stop from the app (SIGTERM) ends a run like Ctrl-C: status "stopped", nothing half-written
    signal.signal(signal.SIGTERM, _stop)
    handler = {"toy-base": cmd_toy_base, "train": cmd_train, "eval": cmd_eval, "ablate": cmd_ablate,
               "findings": cmd_findings, "runs": cmd_runs, "models": cmd_models, "app": cmd_app}[args.cmd]
    try:
        return handler(args)
    except (ConfigError, FileNotFoundError, RunStoreError) as e:
        print(f"score {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"score {args.cmd}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `score findings ... | head`: the reader left early; no traceback for that
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush must not raise again
        return 141  # what a shell reports for a command killed by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
