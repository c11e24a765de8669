"""Hostile programs against score_lib.sandbox.

Each hostile case pairs a program with "tests" that assert the attack's goal, so "passed" would
mean the attack worked; every case must end failed / timeout / killed / error. Around each case
a guard checks that files outside the sandbox are unchanged, that no process of a sandbox uid and
no new child of this test process is left, and that a normal program still passes afterwards.

Safety: timeouts are 1-2 s, and the fork bomb refuses to start unless it runs as a non-root uid
under a hard RLIMIT_NPROC of at most 64 (so a broken sandbox fails the test instead of the machine).
"""
from __future__ import annotations

import fcntl
import os

import pytest

from score_lib import sandbox as sb

ROOT = os.geteuid() == 0
CANARY = "/tmp/score-sandbox-canary"
BACKENDS = ["process", pytest.param("bwrap", marks=pytest.mark.skipif(
    not sb.bwrap_available(), reason="bubblewrap not installed (apt-get install bubblewrap)"))]


@pytest.fixture(autouse=True)
def allow_exec(monkeypatch):
    monkeypatch.setenv(sb.ENV_ALLOW, "1")


def isolated(backend: str) -> bool:
    """Whether the child is kept away from our files and processes: root drops to a sandbox uid;
    bwrap has its own mount and pid namespaces. A non-root "process" sandbox is neither."""
    return ROOT or backend == "bwrap"


def free_sandbox_uids() -> list[int]:
    """Sandbox uids no other process holds right now (another test run may be using some)."""
    if not ROOT or not os.path.isdir(sb.LOCK_DIR):
        return []
    free = []
    for uid in range(sb.UID_BASE, sb.UID_BASE + sb.UID_COUNT):
        path = os.path.join(sb.LOCK_DIR, f"{uid}.lock")
        if not os.path.exists(path):
            continue
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            free.append(uid)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)
    return free


def children() -> set[int]:
    me = str(os.getpid()).encode()
    out = set()
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[1] == me:
                    out.add(int(name))
        except (OSError, IndexError):
            continue
    return out


@pytest.fixture
def guard(tmp_path):
    """Files outside the sandbox a program may try to change, and the after-case checks."""
    sentinel, victim = tmp_path / "sentinel.txt", tmp_path / "victim.txt"
    sentinel.write_text("original")
    victim.write_text("keep me")
    if os.path.lexists(CANARY):
        os.remove(CANARY)
    before = children()
    paths = {"SENTINEL": str(sentinel), "VICTIM": str(victim), "CANARY": CANARY}
    yield paths
    assert sentinel.read_text() == "original"
    assert victim.exists() and victim.read_text() == "keep me"
    assert not os.path.lexists(CANARY), "the program left a file in /tmp"
    assert children() - before == set(), "a child of the test process is still alive"
    for uid in free_sandbox_uids():
        assert sb.uid_processes(uid) == [], f"processes of sandbox uid {uid} left behind"


def fill(code: str, paths: dict) -> str:
    for key, value in paths.items():
        code = code.replace(key, repr(value))
    return code


FORK_BOMB = """
import os, resource
# interlock: never bomb unless contained (non-root uid and a small hard RLIMIT_NPROC)
if os.getuid() == 0 or resource.getrlimit(resource.RLIMIT_NPROC)[1] > 64:
    raise SystemExit("not contained: refusing to fork")
while True:
    try:
        os.fork()
    except OSError:
        pass
"""

# name: (program, tests that assert the attack's goal, allowed statuses, timeout)
HOSTILE = {
    "infinite_loop": ("while True:\n    pass", "assert True", {"timeout"}, 1.0),
    "fork_bomb": (FORK_BOMB, "assert True", {"timeout", "killed", "failed"}, 1.0),
    "memory_bomb": ("x = []\nwhile True:\n    x.append(b'x' * (32 << 20))", "assert True",
                    {"failed", "killed", "timeout"}, 5.0),
    "output_flood": ("while True:\n    print('spam' * 250)", "assert True",
                     {"failed", "killed", "timeout"}, 3.0),
    "write_sentinel": ("open(SENTINEL, 'w').write('pwned')",
                       "assert open(SENTINEL).read() == 'pwned'", {"failed"}, 2.0),
    # under "process" /tmp is writable by anyone: the canary IS created, then removed after the
    # run because the sandbox uid owns it; the sentinel write afterwards makes the case fail
    "write_canary": ("open(CANARY, 'w').write('pwned')\nopen(SENTINEL, 'a').write('pwned')",
                     "assert True", {"failed"}, 2.0),
    "delete_victim": ("import os\nos.remove(VICTIM)", "assert not os.path.exists(VICTIM)",
                      {"failed"}, 2.0),
    "os_exit_0": ("import os\nos._exit(0)", "assert True", {"failed"}, 2.0),
    "sys_exit_0": ("import sys\nsys.exit(0)", "assert True", {"failed"}, 2.0),
    "ignore_signals": ("import signal, time\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, "
                       "signal.SIGXCPU):\n    signal.signal(s, signal.SIG_IGN)\ntime.sleep(100)",
                       "assert True", {"timeout"}, 1.0),
    # pure-Python frames live on the heap in 3.11: it runs until the timeout (or MemoryError)
    "recursion_bomb": ("import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\n"
                       "f(0)", "assert True", {"timeout", "failed", "killed"}, 1.0),
    # recursion through C (lru_cache) overflows the C stack: SIGSEGV
    "c_recursion_bomb": ("import functools, sys\nsys.setrecursionlimit(10**8)\n"
                         "@functools.lru_cache(None)\ndef f(n):\n    return f(n + 1)\nf(0)",
                         "assert True", {"failed", "killed"}, 5.0),
    "endless_thread": ("import threading\ndef spin():\n    while True:\n        pass\n"
                       "threading.Thread(target=spin).start()", "assert True",
                       {"timeout", "failed"}, 1.0),
    "closed_stdout": ("import os\nos.close(1)\nwhile True:\n    pass", "assert True", {"timeout"}, 1.0),
    "daemon": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
               "        time.sleep(60)\n    os._exit(0)\nos._exit(0)", "assert True", {"failed"}, 2.0),
}
NEEDS_ISOLATION = {"fork_bomb", "write_sentinel", "write_canary", "delete_victim", "daemon"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_program_is_contained(case, backend, guard):
    if case in NEEDS_ISOLATION and not isolated(backend):
        pytest.skip("needs root (to drop to a sandbox uid) or the bwrap backend")
    program, tests, allowed, timeout = HOSTILE[case]
    limits = sb.Limits(nproc=16) if case == "fork_bomb" else None
    r = sb.run_tests(fill(program, guard), fill(tests, guard), timeout=timeout, backend=backend,
                     limits=limits)
    assert r.status in allowed, r
    assert not r.passed
    assert r.duration < timeout + 3
    assert len(r.stdout) < sb.OUTPUT_CAP + 200 and len(r.stderr) < sb.OUTPUT_CAP + 200
    after = sb.run_tests("def f():\n    return 1", "assert f() == 1", timeout=5, backend=backend)
    assert after.status == "passed", after


@pytest.mark.parametrize("backend", BACKENDS)
def test_parent_secrets_do_not_leak(backend, guard, monkeypatch):
    if not isolated(backend):
        pytest.skip("without root or bwrap the child can read /proc/<parent>/environ")
    monkeypatch.setenv("SCORE_TEST_SECRET", "hunter2")
    program = ("import os\nleak = repr(dict(os.environ))\nprint(leak)\ntry:\n"
               "    leak += open(f'/proc/{os.getppid()}/environ').read()\nexcept OSError as e:\n"
               "    print('blocked:', e)\nprint(leak)")
    r = sb.run_tests(program, "assert 'hunter2' in leak", timeout=2, backend=backend)
    assert r.status == "failed", r
    assert "hunter2" not in r.stdout and "SCORE_TEST_SECRET" not in r.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_correct_failing_and_broken_programs(backend):
    ok = sb.run_tests("def add(a, b):\n    return a + b", "assert add(2, 3) == 5", backend=backend)
    assert (ok.passed, ok.status, ok.returncode) == (True, "passed", 0)
    bad = sb.run_tests("def add(a, b):\n    return a - b", "assert add(2, 3) == 5", backend=backend)
    assert (bad.passed, bad.status) == (False, "failed")
    assert "AssertionError" in bad.stderr
    broken = sb.run_tests("def add(a, b) return a + b", "assert add(2, 3) == 5", backend=backend)
    assert (broken.passed, broken.status) == (False, "error")
    assert "SyntaxError" in broken.stderr


def test_output_is_captured_and_env_is_minimal():
    r = sb.run_tests("import os\nprint('hello')\nprint(sorted(os.environ))", "")
    assert r.passed and r.stdout.startswith("hello\n")
    assert set(eval(r.stdout.splitlines()[1])) <= {"PATH", "LANG", "HOME", "TMPDIR", "LC_CTYPE"}


def test_opt_in_is_required(monkeypatch):
    monkeypatch.delenv(sb.ENV_ALLOW, raising=False)
    monkeypatch.setattr(sb, "_allowed", False)
    with pytest.raises(sb.CodeExecutionNotAllowed) as err:
        sb.run_tests("x = 1", "assert x == 1")
    assert "SCORE_ALLOW_CODE_EXEC" in str(err.value) and "--allow-code-exec" in str(err.value)
    sb.allow_code_exec()
    try:
        assert sb.run_tests("x = 1", "assert x == 1").passed
    finally:
        sb.allow_code_exec(False)


def test_run_many_keeps_order():
    jobs = [(f"def f():\n    return {i}", f"assert f() == {i if i % 2 == 0 else -1}") for i in range(8)]
    results = sb.run_many(jobs, timeout=5)
    assert [r.status for r in results] == ["passed", "failed"] * 4


@pytest.mark.skipif(not sb.bwrap_available(), reason="bubblewrap not installed")
def test_env_selects_bwrap(monkeypatch):
    monkeypatch.setenv(sb.ENV_BACKEND, "bwrap")
    r = sb.run_tests("import os\nprint(os.getpid())", "")  # pid 1 is bwrap, the program is 2
    assert r.passed and int(r.stdout) < 10, r


def test_missing_bwrap_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(sb, "bwrap_available", lambda: False)
    with pytest.raises(sb.SandboxUnavailable, match="bubblewrap"):
        sb.run_tests("x = 1", "", backend="bwrap")
