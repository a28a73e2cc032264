"""bench_verify runs and prints a ratio per T (a smoke test: timings are not asserted)."""
import json
import os
import subprocess
import sys

import pytest

from configs import bench_verify as presets
from experiments import bench_verify
from tests.experiments import assert_refused_before_loading

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*flags):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  return subprocess.run(
      [sys.executable, "-m", "experiments.bench_verify", "--config=configs/bench_verify.py:tiny",
       *flags], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_bench_verify_prints_ratios_for_every_op(tmp_path):
  out = tmp_path / "r.json"
  proc = _run(f"--config.out={out}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = [l for l in proc.stdout.splitlines() if l.startswith("| random:tiny |")]
  assert len(lines) == 2 * 4 * 2  # batches x ops x matmuls (xla, auto)
  rows = json.loads(out.read_text())["rows"]
  assert {r["op"] for r in rows} == {"model", "attention", "mlp", "head"}
  assert {r["matmul"] for r in rows} == {"xla", "auto"}
  assert all(r["r"]["1"] == 1.0 and r["r"]["3"] > 0 for r in rows)


@pytest.mark.parametrize("field,value", [
    ("models", ("tiny",)), ("models", ("random:nope",)), ("models", ()),
    ("dtypes", ("float64",)), ("batches", (0,)), ("tokens", (2, 3)), ("tokens", (1, 0)),
    ("ops", ("model", "softmax")), ("matmuls", ("pallas",)), ("context", 0), ("calls", 0),
    ("rounds", 0)])
def test_bad_config_values_are_refused_before_a_model_is_built(monkeypatch, field, value):
  assert_refused_before_loading(monkeypatch, bench_verify.main, presets.get_config("tiny"),
                                field, value, f"config.{field}")


def test_the_command_line_names_the_bad_field_and_measures_nothing():
  proc = _run("--config.tokens=2,3")
  assert proc.returncode != 0 and "config.tokens" in proc.stderr
  assert "| model |" not in proc.stdout


def test_presets_pass_the_checks():
  for arg in ("default", "tiny"):
    bench_verify._check(presets.get_config(arg))
  with pytest.raises(ValueError, match="unknown bench_verify preset"):
    presets.get_config("nope")
