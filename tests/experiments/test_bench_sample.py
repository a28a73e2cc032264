"""bench_sample runs and prints both samplers' figures (a smoke test: timings are not asserted)."""
import os
import subprocess
import sys

import pytest

from configs import bench_sample as presets
from experiments import bench_sample
from tests.experiments import assert_refused_before_loading

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_sample_prints_legacy_and_new_side_by_side():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.bench_sample", "--config=configs/bench_sample.py:tiny"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  rows = [l.split("|")[1:-1] for l in proc.stdout.splitlines() if l.startswith("| ")]
  figures = {r[0].strip(): r[1:] for r in rows}
  for key in ("sample us/row, 1 row", "sample us/row, 5 rows", "ArS ms/token",
              "SpS[lookup:3] ms/token"):
    assert float(figures[key][0]) > 0 and float(figures[key][1]) > 0, key
  zero = [r for r in rows if r[0].strip().startswith("top_k")]
  assert len(zero) == 2 and all(int(r[2]) == 0 for r in zero)  # the new sampler: none


@pytest.mark.parametrize("field,value", [
    ("target", "smollm2_135m"), ("target", "random:nope"), ("vocab", 0), ("k", 0),
    ("new_tokens", 0), ("zero_draws", -1), ("rounds", 0), ("repeats", 0),
    ("sampling.top_p", 0.0), ("sampling.temperature", -1.0)])
def test_bad_config_values_are_refused_before_the_target_is_built(monkeypatch, field, value):
  assert_refused_before_loading(monkeypatch, bench_sample.main, presets.get_config("tiny"),
                                field, value, f"config.{field.split('.')[0]}")


def test_presets_pass_the_checks():
  for arg in ("smollm2", "tiny"):
    bench_sample._check(presets.get_config(arg))
  with pytest.raises(ValueError, match="unknown bench_sample preset"):
    presets.get_config("nope")
