"""The launch scripts: dry runs (commands only), and two processes against one end to end."""
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAUNCH = REPO / "launch"
# Lines of experiments/generate.py that must not depend on how the devices are spread
# over processes: the section headers, the tokens of the first rows and the stats.
RESULT_LINE = re.compile(r"^(--- .*|row \d+ tokens: .*|stats: .*)$")
SHORT = ["--config.max_new_tokens=8", "--config.timing_repeats=0"]


def _env():
  """This process's environment for the scripts: CPU JAX, no forced device count (the
  scripts set the devices with --cpu_devices), and this interpreter as $PYTHON."""
  env = dict(os.environ)
  flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", ""))
  env["XLA_FLAGS"] = flags.strip()
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHON"] = sys.executable
  return env


def _run(script, *args, timeout=60, env=None):
  return subprocess.run(["bash", str(LAUNCH / script), *args], cwd=REPO, capture_output=True,
                        text=True, timeout=timeout, env=_env() if env is None else env)


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _results(stdout, prefix=""):
  out = []
  for line in stdout.splitlines():
    if line.startswith(prefix):
      line = line[len(prefix):]
      if RESULT_LINE.match(line):
        out.append(line)
  return out


@pytest.mark.parametrize("script", ["local.sh", "multihost_local.sh", "tpu_vm.sh",
                                    "fetch_data.sh", "smollm2_drafts.sh",
                                    "smollm2_eagle.sh", "install_sandbox.sh"])
def test_scripts_are_executable_and_parse(script):
  path = LAUNCH / script
  assert os.access(path, os.X_OK)
  assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0


def test_local_dry_run_prints_the_command():
  r = _run("local.sh", "--dry_run", "--config=configs/generate.py:tiny")
  assert r.returncode == 0, r.stderr
  assert r.stdout.splitlines() == [
      f"{shlex.quote(sys.executable)} -m experiments.generate --config=configs/generate.py:tiny"]


def test_local_dry_run_other_experiment_and_quoting():
  r = _run("local.sh", "--dry_run", "experiments/bench_decode.py", "--x=a b'c")
  assert r.returncode == 0, r.stderr
  assert shlex.split(r.stdout) == [sys.executable, "-m", "experiments.bench_decode", "--x=a b'c"]
  assert _run("local.sh", "--dry_run", "experiments/nope.py").returncode != 0


def test_multihost_dry_run_prints_one_command_per_process():
  r = _run("multihost_local.sh", "--dry_run", "--num_processes=3")
  assert r.returncode == 0, r.stderr
  lines = r.stdout.splitlines()
  assert len(lines) == 3
  for i, line in enumerate(lines):
    argv = shlex.split(line)
    assert argv[:4] == ["JAX_PLATFORMS=cpu", sys.executable, "-m", "experiments.generate"]
    assert "--coordinator_address=127.0.0.1:12355" in argv
    assert "--num_processes=3" in argv
    assert f"--process_id={i}" in argv
    assert "--config=configs/generate.py:tiny_mesh" in argv  # the default ARGS


def test_multihost_dry_run_options():
  r = _run("multihost_local.sh", "--dry_run", "--num_processes=4", "--port=2222",
           "--config=configs/generate.py:tiny", "--config.prompt=a b")
  assert r.returncode == 0, r.stderr
  lines = [shlex.split(line) for line in r.stdout.splitlines()]
  assert len(lines) == 4
  for i, argv in enumerate(lines):
    assert argv[4:] == ["--coordinator_address=127.0.0.1:2222", "--num_processes=4",
                        f"--process_id={i}", "--cpu_devices=2",
                        "--config=configs/generate.py:tiny", "--config.prompt=a b"]
  assert _run("multihost_local.sh", "--dry_run", "--num_processes=0").returncode != 0


def test_multihost_stops_the_others_when_one_fails(tmp_path):
  fake = tmp_path / "fake_python"
  fake.write_text("#!/bin/bash\ncase \"$*\" in *--process_id=1*) sleep 0.5; echo failing; exit 3;;\n"
                  "*) echo waiting; exec sleep 60;; esac\n")
  fake.chmod(0o755)
  env = dict(_env(), PYTHON=str(fake))
  r = _run("multihost_local.sh", "--port=1", env=env, timeout=30)
  assert r.returncode == 3
  assert "[1] failing" in r.stdout and "[0] waiting" in r.stdout
  assert "process 1 failed" in r.stderr


def test_multihost_timeout(tmp_path):
  fake = tmp_path / "fake_python"
  fake.write_text("#!/bin/bash\nexec sleep 60\n")
  fake.chmod(0o755)
  r = _run("multihost_local.sh", "--timeout=1", env=dict(_env(), PYTHON=str(fake)), timeout=30)
  assert r.returncode == 124
  assert "timed out" in r.stderr


def test_tpu_vm_dry_run_prints_every_gcloud_command():
  r = _run("tpu_vm.sh", "--dry_run", "--tpu=my-pod", "--zone=us-central2-b", "--create",
           "--accelerator_type=v4-32", "--", "--config=configs/generate.py:tiny")
  assert r.returncode == 0, r.stderr
  lines = r.stdout.splitlines()
  gcloud = [shlex.split(line) for line in lines if line.startswith("gcloud ")]
  verbs = [argv[4] for argv in gcloud]
  assert verbs == ["create", "scp", "ssh", "ssh"]  # create, copy, install, run
  create, scp, install, run = gcloud
  assert create[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "my-pod"]
  assert "--accelerator-type=v4-32" in create and "--zone=us-central2-b" in create
  assert "--version=tpu-ubuntu2204-base" in create
  for argv in (scp, install, run):
    assert "--zone=us-central2-b" in argv and "--worker=all" in argv
  assert any(a.startswith("my-pod:") for a in scp) and "--recurse" in scp
  assert install[5] == run[5] == "my-pod"
  install_cmd = next(a for a in install if a.startswith("--command="))
  assert "launch/setup_env.sh" in install_cmd and "jax[tpu]" in install_cmd
  run_cmd = next(a for a in run if a.startswith("--command=")).split("=", 1)[1]
  assert run_cmd.startswith("cd ~/specjax && ")
  remote = shlex.split(run_cmd)
  i = remote.index("--distributed")
  assert remote[i - 3:] == [".venv/bin/python", "-m", "experiments.generate", "--distributed",
                            "--config=configs/generate.py:tiny"]
  # The tarball copied to the workers leaves out the virtualenv and git.
  tar = next(shlex.split(line) for line in lines if line.startswith("tar "))
  assert "--exclude=./.git" in tar and "--exclude=./.venv*" in tar


def test_tpu_vm_dry_run_quotes_arguments_for_the_remote_shell():
  tricky = ["--config.prompt=it's a \"q\" (x) $HOME `x`", "--config.mesh_shape=(4,4)"]
  r = _run("tpu_vm.sh", "--dry_run", "--tpu=t", "--zone=z", "--project=p", "--skip_copy",
           "--skip_install", "--repo_dir=/opt/my repo", *tricky)
  assert r.returncode == 0, r.stderr
  (line,) = r.stdout.splitlines()  # only the run step
  argv = shlex.split(line)
  assert "--project=p" in argv
  remote = shlex.split(next(a for a in argv if a.startswith("--command=")).split("=", 1)[1])
  assert remote[:3] == ["cd", "/opt/my repo", "&&"]
  assert remote[remote.index("--distributed") + 1:] == tricky


@pytest.mark.parametrize("args", [["--zone=z"], ["--tpu=t"]], ids=["no_tpu", "no_zone"])
def test_tpu_vm_requires_tpu_and_zone(args):
  r = _run("tpu_vm.sh", "--dry_run", *args)
  assert r.returncode != 0
  assert ("--tpu=NAME is required" if args == ["--zone=z"] else "--zone=ZONE is required") \
      in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--config.sampling.temperature=1.0"]],
                         ids=["greedy", "sampled"])
def test_two_processes_match_one_process(extra):
  """tiny_mesh ((2, 4) mesh): 2 processes x 4 CPU devices give the tokens and stats of
  1 process x 8 devices, for ArS and SpS."""
  args = ["--config=configs/generate.py:tiny_mesh", *SHORT, *extra]
  one = _run("local.sh", *args, "--cpu_devices=8", timeout=300)
  assert one.returncode == 0, one.stdout + one.stderr
  two = _run("multihost_local.sh", "--num_processes=2", "--cpu_devices=4",
             f"--port={_free_port()}", "--timeout=280", *args, timeout=300)
  assert two.returncode == 0, two.stdout + two.stderr
  assert "[1] process 1/2: 4 local of 8 devices" in two.stdout

  expected = _results(one.stdout)
  assert [line for line in expected if line.startswith("---")] == [
      "--- ArS", "--- SpS k=4 draft=self:1"]
  assert sum(line.startswith("stats: ") for line in expected) == 2
  assert sum(line.startswith(("row 0 tokens: ", "row 1 tokens: ")) for line in expected) == 4
  assert _results(two.stdout, prefix="[0] ") == expected
  assert _results(two.stdout, prefix="[1] ") == []  # only process 0 prints results


def test_fetch_data_dry_run_prints_the_fetch_command(tmp_path):
  r = _run("fetch_data.sh", "--dry_run", str(tmp_path))
  assert r.returncode == 0, r.stderr
  assert "fetch_debian_docs" in r.stdout and str(tmp_path) in r.stdout
