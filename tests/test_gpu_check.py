"""benchmarks/gpu_check.py: its --tiny CPU run goes through the real Trainer and writes sane numbers."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_tiny_gpu_check_writes_positive_numbers(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OUT": str(tmp_path)}
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--tiny", "--steps", "3"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert res["device"] == "cpu" and res["model"]["parameters"] > 0
    hf = res["hf"]
    assert "error" not in hf, hf
    assert hf["steps_run"] == 3 and hf["steps_kept"] == 2
    assert [s["stage"] for s in hf["per_step"]] == ["stage1", "stage2", "stage2"]  # both SCoRe stages ran
    for key in ("step_s_median", "generate_s_median", "update_s_median", "rollout_tokens_per_s",
                "step_tokens_per_s", "peak_rss_gib", "setup_s"):
        assert hf[key] > 0, key
    # a random model never says its stop token: every attempt runs to the 8-token cap
    assert hf["generated_tokens_per_step"] == 2 * 2 * 2 * 8
    assert hf["rollout_tokens_per_s"] > hf["step_tokens_per_s"]
    assert hf["peak_gpu_memory_gib"] is None  # no GPU here
    assert res["vllm"].get("skipped") and "hf:" in proc.stdout


def test_levenshtein_fallback_matches_rapidfuzz(monkeypatch):
    """Where rapidfuzz is missing (the GPU image), the stand-in must give the same distances."""
    import importlib.util

    from rapidfuzz.distance import Levenshtein

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    real = Levenshtein.distance
    for name in [n for n in sys.modules if n.startswith("rapidfuzz")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert gpu_check.ensure_rapidfuzz() == "fallback"
    fake = sys.modules["rapidfuzz.distance"].Levenshtein.distance
    for a, b in [("kitten", "sitting"), ("", "abc"), ("3+5=8;8+9=17#17", "3+5=8;8+9=16#16"), ("ab", "ba")]:
        assert fake(a, b) == real(a, b)
