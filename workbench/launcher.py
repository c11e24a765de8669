"""Start and stop `score train` runs as background processes.

A run started here is a plain `score train --preset P --set k=v ... --out DIR --quiet` process in its
own session (so stopping or reloading the app does not kill it), logging to ``<runs root>/<id>.log``.
It writes its run directory itself; the app only follows it through the run store like any other run.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from score_lib.config import build_config
from score_lib.runs import RunStoreError, RunWriter, new_run_id, read_status


@dataclass
class Launch:
    run_id: str
    run_dir: Path
    log_path: Path
    command: list[str]
    pid: int
    started: float = field(default_factory=time.time)
    process: subprocess.Popen | None = None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process is not None else None


# Launches of this app process, by run id. Module state survives Streamlit reruns (the module is
# imported once per server process), which is what lets the Runs page show a run that is still
# starting up and has no config.json yet.
LAUNCHES: dict[str, Launch] = {}


def score_command() -> list[str]:
    """The `score` entry point of this environment (falls back to ``python -m score_lib.cli``)."""
    exe = Path(sys.executable).with_name("score")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("score")
    return [found] if found else [sys.executable, "-m", "score_lib.cli"]


def build_command(preset: str, overrides: dict, out_dir: Path) -> list[str]:
    cmd = [*score_command(), "train", "--preset", preset]
    for key, value in overrides.items():
        cmd += ["--set", f"{key}={_fmt(value)}"]
    return cmd + ["--out", str(out_dir), "--quiet"]


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return str(value)


def start_run(root: Path | str, preset: str, overrides: dict | None = None, run_id: str | None = None) -> Launch:
    """Validate the settings (ConfigError names a bad one), then start `score train` in the background."""
    overrides = dict(overrides or {})
    # Refuse bad settings here, with the library's own message, instead of a run that dies at once.
    build_config(preset, {k: _fmt(v) for k, v in overrides.items()})
    root = Path(root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    run_id = run_id or new_run_id(preset)
    run_dir = root / run_id
    if run_dir.exists():
        raise FileExistsError(f"{run_dir} already exists")
    log_path = root / f"{run_id}.log"
    cmd = build_command(preset, overrides, run_dir)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True, cwd=str(root))
    # Reap the child as soon as it exits: an unreaped child is a zombie, which os.kill(pid, 0) (and
    # so read_status) still sees as alive, and a stopped run would stay "running" forever.
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{run_id}").start()
    launch = Launch(run_id, run_dir, log_path, cmd, proc.pid, process=proc)
    LAUNCHES[run_id] = launch
    return launch


def _alive(pid: int) -> bool:
    launch = next((la for la in LAUNCHES.values() if la.pid == pid and la.process is not None), None)
    if launch is not None:
        return launch.process.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _looks_like_trainer(pid: int, run_dir: Path) -> bool:
    """Guard against a recycled pid: on Linux, the process's command line must mention score."""
    if any(la.pid == pid for la in LAUNCHES.values()):
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return True  # no /proc (macOS) or already gone: nothing better to check against
    return b"score" in cmdline or run_dir.name.encode() in cmdline


def stop_run(run_dir: Path | str, timeout: float = 20.0) -> str:
    """SIGTERM the run's trainer, wait for it to exit, and make sure status.json says "stopped".

    Returns the resulting state ("stopped", or the state it already had, or "stopping" if the
    process outlived ``timeout``).
    """
    run_dir = Path(run_dir)
    try:
        status = read_status(run_dir)
    except RunStoreError:
        launch = LAUNCHES.get(run_dir.name)  # still starting: no status.json yet
        if launch is None or launch.returncode is not None:
            raise
        status = {"state": "running", "pid": launch.pid, "host": socket.gethostname()}
    if status.get("state") not in ("running", "created"):  # "crashed" died by itself: nothing to stop
        return str(status.get("state"))
    pid = status.get("pid")
    if status.get("host") not in (None, socket.gethostname()):
        raise RuntimeError(f"run {run_dir.name} runs on host {status.get('host')}; stop it there")
    if isinstance(pid, int) and pid > 0:
        if not _looks_like_trainer(pid, run_dir):
            raise RuntimeError(f"process {pid} of run {run_dir.name} does not look like `score train` "
                               "(a recycled pid?); not signalling it")
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.time() + timeout
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            return "stopping"
    # `score train` has no SIGTERM handler (it writes "stopped" only on KeyboardInterrupt), so the
    # process is gone with status.json still saying running. Record the stop for it: no writer is
    # left that could race with this one.
    try:
        state = read_status(run_dir).get("state")
    except RunStoreError:
        return "stopped"  # it never got far enough to write a status
    if state in ("running", "created", "crashed"):
        try:
            RunWriter(run_dir, resume=True).set_status("stopped", error="stopped from the workbench (SIGTERM)")
        except RunStoreError:
            pass  # killed between its status.json and its config.json: nothing to resume into
        return "stopped"
    return str(state)


def log_tail(path: Path | str, lines: int = 30) -> str:
    """The last lines of a launch log (read from the end: logs of long runs grow)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
