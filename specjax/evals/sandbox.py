"""Runs untrusted Python programs (generated code), each in its own sandbox.

Every program runs under bubblewrap (Debian's `bwrap`: apt-get install bubblewrap, or
bash launch/install_sandbox.sh), started by the caller itself (no harness in between):
  * new user, pid, network, ipc, uts and cgroup namespaces: the program sees only its own
    processes (it cannot signal or ptrace the caller) and has no network; no capabilities,
    no further user namespaces;
  * the host's / read-only; new /proc and /dev; size-capped tmpfs on /tmp (its private
    working directory), /dev/shm and /run;
  * as uid 65534: where the caller is root, bwrap itself starts as 65534, so file
    permissions hold and RLIMIT_NPROC is enforced (uid 0 is exempt from it); the interpreter
    is then the first of sys.executable and /usr/bin/python3 that 65534 may run (pyenv's
    under /root is not), else the caller's own (the programs need the standard library);
  * rlimits set before the program starts: CPU seconds, address space, file size,
    processes (counted within the sandbox's user namespace), no core files;
  * its own session and process group, killed (SIGKILL) by the caller at the wall-clock
    timeout; the pid namespace ends with bwrap, taking everything the program started. Every
    wait of the caller is bounded, so nothing inside can block it, and one program's end
    never touches the others' results.

Verdict: a wrapper reads a per-run random nonce from a pipe (then closed), points stdin,
stdout and stderr at /dev/null, sets the limits and execs the program; only if the program
ran to its end without an exception does it write the nonce to its result file. "passed"
needs exit status 0 and exactly the nonce, so exiting early with status 0, printing "passed"
or writing to any inherited file cannot forge a pass. Residual risk: the wrapper and the
program share one interpreter (the nonce is a local of the wrapper's frame, in no global),
so a program written against this wrapper (frame or gc introspection, /proc/self/mem) can
forge its own pass; it still cannot reach the caller, the host or the other programs.

Without bwrap, or where bwrap cannot build the sandbox (probed once per process),
`run_programs` raises SandboxUnavailable unless unsandboxed runs are allowed explicitly
(allow_unsandboxed=True or SPECJAX_ALLOW_UNSANDBOXED_CODE=1). Then it warns, and the same
rlimits, uid, process group, private temporary directory, timeout and verdict apply without
the namespaces: the programs see the machine (processes, network, files as their uid may),
a caller that is not root can be signalled, and children that call setsid can outlive them.
"""
import dataclasses
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from typing import List, Optional, Sequence, Tuple

ALLOW_ENV = "SPECJAX_ALLOW_UNSANDBOXED_CODE"
NOBODY = 65534
HOW_TO_INSTALL = ("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; or run "
                  "bash launch/install_sandbox.sh as root)")


class SandboxUnavailable(RuntimeError):
  """No working sandbox, and running untrusted code without one was not allowed."""


@dataclasses.dataclass(frozen=True)
class Limits:
  timeout: float = 5.0       # wall-clock seconds of one program, after `startup`
  memory: int = 2 << 30      # RLIMIT_AS, bytes
  file_size: int = 16 << 20  # RLIMIT_FSIZE, bytes
  processes: int = 64        # RLIMIT_NPROC
  tmp_size: int = 64 << 20   # bytes of the sandbox's /tmp and /dev/shm each
  startup: float = 1.0       # seconds allowed for starting the sandbox and the interpreter


# python -I -c _WRAPPER SRC_FD OUT_FD CPU AS FSIZE NPROC; the nonce arrives on stdin (a pipe).
_WRAPPER = r"""
import os, resource as R, sys
def main(src, out, cpu, mem, fsize, nproc):
  nonce = b""
  while True:
    chunk = os.read(0, 4096)
    if not chunk:
      break
    nonce += chunk
  with os.fdopen(src, "rb") as f:
    code = f.read()
  null = os.open(os.devnull, os.O_RDWR)
  for fd in (0, 1, 2):
    os.dup2(null, fd)
  os.close(null)
  for r, v, hard in ((R.RLIMIT_CPU, cpu, cpu + 1), (R.RLIMIT_AS, mem, mem),
                     (R.RLIMIT_FSIZE, fsize, fsize), (R.RLIMIT_NPROC, nproc, nproc),
                     (R.RLIMIT_CORE, 0, 0)):
    R.setrlimit(r, (v, hard))
  try:
    exec(compile(code, "program.py", "exec"), {})
  except BaseException as e:
    try:
      msg = "failed: %s" % (e,)
    except BaseException:
      msg = "failed: " + type(e).__name__
    os.write(out, msg.encode("utf-8", "replace")[:2000])
    os._exit(1)
  os.write(out, nonce)
  os._exit(0)
main(*map(int, sys.argv[1:]))
"""


def find_bwrap() -> Optional[str]:
  return shutil.which("bwrap")


def _runner_uid() -> Optional[int]:
  """The uid the programs run as: 65534 where the caller is root, else the caller's own."""
  return NOBODY if os.geteuid() == 0 else None


def _others_can_run(path: str) -> bool:
  path, d = os.path.realpath(path), "/"
  for part in path.split("/")[1:-1]:
    d = os.path.join(d, part)
    if not os.stat(d).st_mode & stat.S_IXOTH:
      return False
  return os.stat(path).st_mode & (stat.S_IXOTH | stat.S_IROTH) == stat.S_IXOTH | stat.S_IROTH


def _python(uid: Optional[int]) -> str:
  """This interpreter, or (for uid 65534) the first of it and /usr/bin/python3 others can run."""
  if uid is None:
    return sys.executable
  for path in (sys.executable, "/usr/bin/python3"):
    if os.path.exists(path) and _others_can_run(path):
      return path
  raise SandboxUnavailable(f"no Python interpreter that uid {uid} may run ({sys.executable} "
                           "lies under a directory closed to others): apt-get install python3")


def _bwrap_argv(bwrap: str, limits: Limits) -> List[str]:
  size = str(limits.tmp_size)
  argv = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
          "--new-session", "--cap-drop", "ALL", "--uid", str(NOBODY), "--gid", str(NOBODY),
          "--hostname", "sandbox", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
          "--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/dev/shm"]
  if os.path.isdir("/run"):  # host sockets (docker, dbus) live there
    argv += ["--size", str(1 << 20), "--tmpfs", "/run"]
  return argv + ["--chdir", "/tmp", "--"]


@dataclasses.dataclass
class _Run:
  proc: subprocess.Popen
  nonce: bytes
  out: object  # the result file
  err: object  # bwrap's and the interpreter's stderr, until the wrapper closes it
  deadline: float
  tmpdir: Optional[str]


def _start(source: str, limits: Limits, bwrap: Optional[str], uid: Optional[int],
           python: str) -> _Run:
  nonce = secrets.token_hex(32).encode()
  src, out, err = (tempfile.TemporaryFile() for _ in range(3))
  src.write(source.encode("utf-8", "surrogateescape"))
  src.seek(0)
  r, w = os.pipe()
  os.write(w, nonce)  # 64 bytes: a new pipe holds them without a reader
  os.close(w)
  tmpdir = None
  if bwrap is None:
    tmpdir = tempfile.mkdtemp(prefix="specjax_program_")
    if uid is not None:
      os.chown(tmpdir, uid, uid)
  cwd = tmpdir or "/tmp"
  env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": cwd, "TMPDIR": cwd,
         "OMP_NUM_THREADS": "1"}
  cpu = int(limits.timeout + limits.startup) + 1
  argv = [python, "-I", "-c", _WRAPPER] + [str(x) for x in (
      src.fileno(), out.fileno(), cpu, limits.memory, limits.file_size, limits.processes)]
  try:
    proc = subprocess.Popen(
        (_bwrap_argv(bwrap, limits) if bwrap else []) + argv, stdin=r,
        stdout=subprocess.DEVNULL, stderr=err, pass_fds=(src.fileno(), out.fileno()),
        cwd=tmpdir or "/", env=env, start_new_session=True, user=uid, group=uid,
        extra_groups=None if uid is None else [])
  except BaseException:
    for f in (src, out, err):
      f.close()
    shutil.rmtree(tmpdir or "/nonexistent", ignore_errors=True)
    raise
  finally:
    os.close(r)
  src.close()
  return _Run(proc, nonce, out, err, time.monotonic() + limits.timeout + limits.startup, tmpdir)


def _kill(proc: subprocess.Popen):
  try:
    os.killpg(proc.pid, signal.SIGKILL)
  except (ProcessLookupError, PermissionError):
    pass
  try:
    proc.wait(timeout=5)
  except subprocess.TimeoutExpired:  # unkillable (uninterruptible sleep): left to the OS
    pass


def _verdict(run: _Run, timed_out: bool) -> Tuple[str, str]:
  run.out.seek(0)
  data = run.out.read(4096)
  run.err.seek(0, os.SEEK_END)
  run.err.seek(max(0, run.err.tell() - 2000))
  err = run.err.read().decode("utf-8", "replace")
  rc = run.proc.returncode
  if timed_out or rc in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
    return "timed out", err
  if rc == 0 and data == run.nonce:
    return "passed", err
  if data.startswith(b"failed: "):
    return data.decode("utf-8", "replace")[:1000], err
  if rc == 0:
    return "failed: exit status 0 before the program's end", err
  if rc < 0 or rc > 128:
    sig = -rc if rc < 0 else rc - 128
    return f"failed: killed by {signal.Signals(sig).name if sig < 65 else sig}", err
  last = err.strip().splitlines()[-1:] or [""]
  return f"failed: exit status {rc} {last[0][:300]}".rstrip(), err


def _run_all(sources: Sequence[str], limits: Limits, workers: int,
             bwrap: Optional[str]) -> List[Tuple[str, str]]:
  """[(result, stderr tail)] in the order of `sources`."""
  uid = _runner_uid()
  python = _python(uid)
  results: List[Tuple[str, str]] = [("", "")] * len(sources)
  todo, running = list(range(len(sources)))[::-1], {}
  try:
    while todo or running:
      while todo and len(running) < max(1, workers):
        i = todo.pop()
        running[i] = _start(sources[i], limits, bwrap, uid, python)
      time.sleep(0.005)
      for i, run in list(running.items()):
        timed_out = run.proc.poll() is None
        if timed_out and time.monotonic() < run.deadline:
          continue
        if timed_out:
          _kill(run.proc)
        results[i] = _verdict(run, timed_out)
        _close(running.pop(i))
  finally:
    for run in running.values():
      _kill(run.proc)
      _close(run)
  return results


def _close(run: _Run):
  run.out.close()
  run.err.close()
  if run.tmpdir:
    shutil.rmtree(run.tmpdir, ignore_errors=True)


_probed = {}  # bwrap path -> None (works) or why not


def sandbox_problem(bwrap: Optional[str] = None) -> Optional[str]:
  """None where the sandbox works (one probe per process and bwrap), else why it does not."""
  bwrap = bwrap or find_bwrap()
  if bwrap is None:
    return f"bubblewrap (bwrap) is not installed: {HOW_TO_INSTALL}"
  if bwrap not in _probed:
    try:
      (result, err), = _run_all(["import os\nassert os.getpid() < 100"],
                                Limits(timeout=20), 1, bwrap)
      _probed[bwrap] = None if result == "passed" else \
          f"{bwrap} cannot build the sandbox ({result}): {err.strip()[-1000:]}"
    except (SandboxUnavailable, OSError) as e:
      _probed[bwrap] = f"{bwrap} cannot build the sandbox: {e}"
  return _probed[bwrap]


def run_programs(sources: Sequence[str], limits: Limits = Limits(), workers: int = 2,
                 allow_unsandboxed: Optional[bool] = None) -> List[str]:
  """Each program's "passed" (ran to its end), "failed: <exception or how it ended>" or
  "timed out", in order. allow_unsandboxed=None reads SPECJAX_ALLOW_UNSANDBOXED_CODE."""
  if not sources:
    return []
  if allow_unsandboxed is None:
    allow_unsandboxed = os.environ.get(ALLOW_ENV, "") not in ("", "0")
  bwrap = find_bwrap()
  problem = sandbox_problem(bwrap)
  if problem is not None:
    if not allow_unsandboxed:
      raise SandboxUnavailable(
          f"refusing to run untrusted code without a sandbox: {problem}. To run it anyway "
          f"(unsafe) pass allow_unsandboxed=True or set {ALLOW_ENV}=1.")
    warnings.warn(f"running untrusted code WITHOUT a sandbox ({problem}): the programs can "
                  "see this machine's processes, network and files", RuntimeWarning)
    bwrap = None
  return [r for r, _ in _run_all(sources, limits, workers, bwrap)]
