"""bench_speculative: a tiny run through the real flag path, and configs refused before loading."""
import json
import os
import subprocess
import sys

import pytest

from configs import bench_speculative as presets
from experiments import bench_speculative
from tests.experiments import assert_refused_before_loading

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*flags):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # one device, as the command runs for users
  return subprocess.run([sys.executable, "-m", "experiments.bench_speculative",
                         "--config=configs/bench_speculative.py:tiny", *flags],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_tiny_run_prints_the_table_and_writes_the_json(tmp_path):
  out = tmp_path / "sps.json"
  # Prompt lookup only: a model draft would add compilations (c is tested in tests/perf).
  proc = _run("--config.drafts=lookup:3", "--config.new_tokens=8", "--config.repeats=1",
              "--config.rounds=1", "--config.adaptive_k=True", f"--config.out={out}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "| draft | k (mean) | ArS ms/tok | SpS ms/tok |" in proc.stdout
  assert [l for l in proc.stdout.splitlines() if l.startswith("| lookup:3 | 4 (4.00) |")]
  assert [l for l in proc.stdout.splitlines() if l.startswith("| lookup:3 adaptive | 4 (")]
  res = json.loads(out.read_text())
  assert res["target"] == "random:tiny" and res["machine"]["backend"] == "cpu"
  row, adaptive = res["rows"]
  assert 0 <= adaptive["mean_draft_length"] <= 4 and adaptive["draft"] == "lookup:3 adaptive"
  assert set(row) >= {"draft", "k", "acceptance_rate", "alpha", "mean_accepted_length",
                      "ars_ms_per_token", "sps_ms_per_token", "c", "r", "predicted_speedup",
                      "predicted_from_mean_len", "measured_speedup", "measured_over_predicted",
                      "measured_over_predicted_per_round"}
  assert row["c"] == 0.0 and row["r"] > 0  # a lookup calls no model; verifying k + 1 does


@pytest.mark.parametrize("field,value,match", [
    ("k", 0, "config.k"), ("rounds", -1, "config.rounds"), ("drafts", (), "config.drafts"),
    ("drafts", ("self:1", "self:1"), "duplicates"), ("drafts", ("lookup:0",), "lookup:N"),
    ("sampling.temperature", -1.0, "config.sampling"),
    ("context_exchanges", -1, "config.context_exchanges"),
    ("context_exchanges", 1, "needs config.heldout_from")])
def test_bad_config_refused_before_any_model_loads(monkeypatch, field, value, match):
  assert_refused_before_loading(monkeypatch, bench_speculative.main, presets.get_config("tiny"),
                                field, value, match)


def test_bare_preset_target_refused_with_the_random_hint():
  proc = _run("--config.target=smollm2_135m")
  assert proc.returncode != 0
  assert "write 'random:smollm2_135m'" in proc.stderr


def test_presets():
  assert presets.get_config("smollm2").target == "smollm2-135m"
  with pytest.raises(ValueError, match="unknown bench_speculative preset"):
    presets.get_config("nope")
