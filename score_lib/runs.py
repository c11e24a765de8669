"""The run store: the only contract between the trainer (writer) and the app / notebooks / CLI (readers).

One run lives in ``runs/<run_id>/``::

    config.json          full resolved config, written once (atomic)
    model.json           the model folder the run started from (its KL reference too), written at start
    status.json          state, pid, host, step, times, error; rewritten atomically
    metrics.jsonl        one JSON object per line, append-only
    traces.jsonl         sampled episodes, one JSON object per line, append-only
    evals/<step>.json    full eval results, step zero-padded to 8 digits (atomic)
    checkpoints/step-<8 digits>/   a checkpoint counts only once it holds a COMPLETE marker

Two rules make concurrent reading safe without locks: whole JSON files are replaced atomically (readers
see the old or the new file, never half of one), and JSONL lines are appended whole and fsynced, so the
only damage a crash can do is a torn last line, which readers leave unconsumed.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
import time
from pathlib import Path

MODEL_FILE = "model.json"
STATES = ("created", "running", "finished", "failed", "stopped")  # what a writer may set
# Readers may additionally report "crashed" (status says running, process is gone) and "corrupt" (list_runs).


class RunStoreError(Exception):
    """A run directory is missing, malformed or misused. The message names the path and the problem."""


def runs_root(cli_value: str | None = None) -> Path:
    """The runs directory: the --runs-dir value if given, else $SCORE_RUNS_DIR, else ./runs.

    Returned absolute, so a later chdir (e.g. by a subprocess launcher) does not move it.
    """
    value = cli_value or os.environ.get("SCORE_RUNS_DIR") or "runs"
    return Path(value).expanduser().absolute()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Temp file in the same directory (same filesystem, so the rename is atomic), fsync, os.replace."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the app may run as another user
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Never leave temp files behind; the previous version of `path` is untouched.
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write text so readers never see a half-written file."""
    _atomic_write_bytes(Path(path), text.encode("utf-8"))


def atomic_write_json(path: Path, obj) -> None:
    """Write ``obj`` as JSON so readers never see a half-written file (old or new, nothing between)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str, allow_nan=True) + "\n")


def _append_lines(path: Path, records: list[dict]) -> None:
    """Append records as compact JSON lines with ONE write() so a crash tears at most the last line."""
    if not records:
        return
    data = "".join(
        json.dumps(r, separators=(",", ":"), default=str, allow_nan=True) + "\n" for r in records
    ).encode("utf-8")
    with open(path, "ab") as f:  # binary: no newline translation, byte offsets stay exact
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def new_run_id(prefix: str) -> str:
    """``<prefix>-YYYYMMDD-HHMMSS-<4 hex>`` in UTC; the random suffix keeps same-second launches apart."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


class RunWriter:
    """Writes one run directory. Used only by the trainer process that owns the run."""

    def __init__(self, run_dir: Path | str, config: dict | None = None, resume: bool = False):
        self.run_dir = Path(run_dir)
        self.evals_dir = self.run_dir / "evals"
        self.checkpoints_dir = self.run_dir / "checkpoints"
        self.started = time.time()
        self._step: int | None = None
        config_path = self.run_dir / "config.json"
        if resume:
            if not config_path.is_file():
                raise RunStoreError(f"{config_path}: cannot resume, config.json not found")
            # The original config is kept (a passed `config` is ignored); remember the last step so a
            # status update without a step does not erase it.
            try:
                self._step = read_status(self.run_dir).get("step")
            except RunStoreError:
                pass
            self.evals_dir.mkdir(exist_ok=True)
            self.checkpoints_dir.mkdir(exist_ok=True)
            return
        if config_path.exists():
            raise RunStoreError(f"{config_path}: run already exists (pass resume=True to continue it)")
        self.evals_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoints_dir.mkdir(exist_ok=True)
        # status before config: list_runs only looks at dirs with config.json, so it never sees a run
        # whose status.json does not exist yet.
        self.set_status("created")
        atomic_write_json(config_path, config if config is not None else {})

    def set_status(self, state: str, step: int | None = None, error: str | None = None, **extra) -> None:
        """Rewrite status.json atomically. ``step=None`` keeps the last step reported by this writer."""
        if state not in STATES:
            raise ValueError(f"{self.run_dir / 'status.json'}: unknown state {state!r}, expected one of {STATES}")
        if step is not None:
            self._step = step
        status = {
            "state": state,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "step": self._step,
            "updated": time.time(),
            "started": self.started,
            "error": error,
            **extra,
        }
        atomic_write_json(self.run_dir / "status.json", status)

    def log_metrics(self, record: dict) -> None:
        """Append one record (one training step) to metrics.jsonl."""
        _append_lines(self.run_dir / "metrics.jsonl", [record])

    def log_traces(self, records: list[dict]) -> None:
        """Append sampled episodes to traces.jsonl, all in one write."""
        _append_lines(self.run_dir / "traces.jsonl", list(records))

    def write_model(self, record: dict) -> None:
        """Write model.json atomically: which model folder the run starts from (trainer.model_record)."""
        atomic_write_json(self.run_dir / MODEL_FILE, record)

    def write_eval(self, step: int, result: dict) -> Path:
        """Write evals/<step:08d>.json atomically and return its path."""
        path = self.evals_dir / f"{int(step):08d}.json"
        atomic_write_json(path, result)
        return path

    def truncate_after(self, step: int) -> None:
        """Before resuming from the checkpoint at ``step``: drop JSONL lines with "step" > step, a torn
        last line and unparseable lines, since the resumed run writes those steps again. Lines without a
        "step" are kept. Readers polling with an offset should restart from 0 if the file shrank."""
        for name in ("metrics.jsonl", "traces.jsonl"):
            path = self.run_dir / name
            if not path.exists():
                continue
            kept = []
            for line in path.read_bytes().split(b"\n")[:-1]:  # [:-1]: the torn tail (or b"" after the last \n)
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and not (isinstance(rec.get("step"), (int, float)) and rec["step"] > step):
                    kept.append(line + b"\n")
            _atomic_write_bytes(path, b"".join(kept))


# ---------------------------------------------------------------- readers


def read_jsonl_with_errors(path: Path | str, offset: int = 0) -> tuple[list[dict], int, int]:
    """Read complete lines from byte ``offset``. Returns (records, new_offset, n_bad_lines).

    ``new_offset`` points just past the last complete line, so a poller passes it back next time and
    gets only what was appended. A last line without "\\n" is torn (mid-write or crashed) and is left
    for the next call. Complete lines that are not a JSON object are skipped and counted.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset, 0
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset, 0
    records, bad = [], 0
    for line in data[: end + 1].split(b"\n")[:-1]:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:  # includes UnicodeDecodeError
            bad += 1
            continue
        if isinstance(rec, dict):
            records.append(rec)
        else:
            bad += 1
    return records, offset + end + 1, bad


def read_jsonl(path: Path | str, offset: int = 0) -> tuple[list[dict], int]:
    """Like read_jsonl_with_errors without the bad-line count."""
    records, new_offset, _ = read_jsonl_with_errors(path, offset)
    return records, new_offset


def _read_json_file(path: Path) -> dict:
    """Load a JSON object, turning every failure into a RunStoreError that names the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunStoreError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunStoreError(f"{path}: cannot read ({e})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise RunStoreError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(obj, dict):
        raise RunStoreError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_config(run_dir) -> dict:
    return _read_json_file(Path(run_dir) / "config.json")


def model_key(path: str) -> str:
    """What makes two runs' models the same: the model folder's name (a toy base's is its cache key, the
    hash of every setting), so the same build in another cache counts as the same model."""
    return Path(path).name


def model_build(path: str) -> str:
    """Which build of a model: its key and, for a toy base, the steps its build took. The same recipe rebuilt
    on another CPU rounds differently and can stop elsewhere under the same cache key (8bf629a21f: 2000
    steps on one machine, 1700 on another; RESULTS.md), and tables from the two builds differ."""
    built = Path(path) / "toy_base.json"
    if not built.exists():
        return model_key(path)
    meta = _read_json_file(built)
    shipped = ", shipped" if meta.get("source") == "shipped" else ""  # the workbench's build, not this machine's
    return f"{model_key(path)} ({meta.get('steps')} steps{shipped})"


def weights_digest(path: str) -> str | None:
    """A toy base's identity by its weights (sha256 of model.safetensors, 16 hex digits), None for another
    model. A cache key names a recipe, not its weights: rebuilt on another CPU it can stop elsewhere or end
    elsewhere in the same steps, and the shipped build and a rebuild on a CPU that rounds alike are one base.
    A 4 MB hash; a hub model's gigabytes are not read."""
    import hashlib

    folder = Path(path)
    if not (folder / "toy_base.json").exists() or not (folder / "model.safetensors").exists():
        return None
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()[:16]


def read_model(run_dir) -> dict | None:
    """The run's model.json, or None for a run written before runs recorded their model."""
    path = Path(run_dir) / MODEL_FILE
    return _read_json_file(path) if path.exists() else None


def _pid_is_gone(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0 or os.name == "nt":  # on Windows os.kill would kill the process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def read_status(run_dir) -> dict:
    """status.json; a "running" run on this host whose process no longer exists is reported "crashed".
    (A recycled pid can hide a crash; the check is a best effort.)"""
    status = _read_json_file(Path(run_dir) / "status.json")
    if (
        status.get("state") == "running"
        and status.get("host") == socket.gethostname()
        and _pid_is_gone(status.get("pid"))
    ):
        status = {**status, "state": "crashed", "error": f"process {status['pid']} is gone"}
    return status


def read_metrics(run_dir) -> list[dict]:
    return read_jsonl(Path(run_dir) / "metrics.jsonl")[0]


def read_traces(run_dir, step: int | None = None, split: str | None = None) -> list[dict]:
    """Trace records, optionally only those of one step and/or one split."""
    records = read_jsonl(Path(run_dir) / "traces.jsonl")[0]
    return [
        r for r in records
        if (step is None or r.get("step") == step) and (split is None or r.get("split") == split)
    ]


def _eval_files(run_dir) -> list[tuple[int, Path]]:
    """(step, path) of evals/<digits>.json, sorted by step; temp files and other names are ignored."""
    evals_dir = Path(run_dir) / "evals"
    if not evals_dir.is_dir():
        return []
    found = [(int(p.stem), p) for p in evals_dir.glob("*.json") if p.stem.isdigit()]
    return sorted(found)


def read_evals(run_dir) -> dict[int, dict]:
    return {step: _read_json_file(path) for step, path in _eval_files(run_dir)}


def latest_eval(run_dir) -> dict | None:
    """The eval with the highest step, reading only that file (list_runs calls this for every run)."""
    files = _eval_files(run_dir)
    return _read_json_file(files[-1][1]) if files else None


def list_runs(root) -> list[dict]:
    """One summary dict per run directory under ``root``, newest first. Never raises for a bad run:
    it is listed with state "corrupt" and the error message."""
    root = Path(root)
    if not root.is_dir():
        return []
    summaries = []
    for d in root.iterdir():
        if not d.is_dir() or not (d / "config.json").exists():
            continue
        summary = {"run_id": d.name, "path": str(d), "state": None, "method": None, "task": None,
                   "model": None, "step": None, "updated": None, "error": None,
                   "acc_t1": None, "acc_t2": None, "delta": None}
        try:
            config, status, ev = read_config(d), read_status(d), latest_eval(d) or {}
        except RunStoreError as e:
            summary.update(state="corrupt", error=str(e))
        else:
            summary.update({k: config.get(k) for k in ("method", "task", "model")})
            summary.update({k: status.get(k) for k in ("state", "step", "updated", "error")})
            summary.update({k: ev.get(k) for k in ("acc_t1", "acc_t2", "delta")})
        summaries.append(summary)
    summaries.sort(key=lambda s: s["updated"] if isinstance(s["updated"], (int, float)) else 0, reverse=True)
    return summaries


def checkpoint_dir(run_dir, step) -> Path:
    """checkpoints/step-<8 digits> (not created)."""
    return Path(run_dir) / "checkpoints" / f"step-{int(step):08d}"


def mark_checkpoint_complete(path: Path) -> None:
    """Write the COMPLETE marker. Call it last, after every checkpoint file is written and flushed:
    its presence is what makes the checkpoint visible to latest_checkpoint."""
    atomic_write_json(Path(path) / "COMPLETE", {"completed": time.time()})


def latest_checkpoint(run_dir) -> Path | None:
    """The complete checkpoint with the highest step, or None. Half-saved ones (no COMPLETE) are ignored."""
    ckpt_root = Path(run_dir) / "checkpoints"
    if not ckpt_root.is_dir():
        return None
    best = None
    for d in ckpt_root.glob("step-*"):
        digits = d.name[len("step-"):]
        if digits.isdigit() and (d / "COMPLETE").is_file():
            if best is None or int(digits) > best[0]:
                best = (int(digits), d)
    return best[1] if best else None
