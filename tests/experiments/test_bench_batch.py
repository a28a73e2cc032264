"""bench_batch: a tiny run through the real flag path, and configs refused before loading."""
import json
import os
import subprocess
import sys

import pytest

from configs import bench_batch as presets
from experiments import bench_batch
from tests.experiments import assert_refused_before_loading

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_tiny_run_prints_the_table_and_writes_the_json(tmp_path):
  out = tmp_path / "batch.json"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # one device, as the command runs for users
  proc = subprocess.run([sys.executable, "-m", "experiments.bench_batch",
                         "--config=configs/bench_batch.py:tiny", "--config.new_tokens=6",
                         f"--config.out={out}"], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "| batch | sampling | method | tokens/s | speedup |" in proc.stdout
  rows = json.loads(out.read_text())["rows"]
  methods = ["ArS", "SpS[lookup:3]", "SpS[lookup:3] adaptive"]
  assert [(r["batch"], r["mode"], r["method"]) for r in rows] == [
      (b, m, x) for b in (1, 4) for m in ("greedy", "nucleus") for x in methods]
  for r in rows:
    assert r["tokens_per_s"] > 0 and r["decode_tokens_per_s"] > 0 and r["r_B"] > 0
    assert (r["speedup"] == 1.0) == (r["method"] == "ArS")
    assert 0 <= r["mean_draft_length"] <= 4


@pytest.mark.parametrize("field,value,match", [
    ("k", 0, "config.k"), ("batches", (), "config.batches"), ("batches", (1, 0), "batches"),
    ("drafts", ("lookup:3", "lookup:3"), "duplicates"),
    ("drafts", ("self:abc",), r"config\.drafts: 'self:abc'"),
    ("modes.greedy.temperature", -1.0, "config.modes.greedy")])
def test_bad_config_refused_before_any_model_loads(monkeypatch, field, value, match):
  assert_refused_before_loading(monkeypatch, bench_batch.main, presets.get_config("tiny"),
                                field, value, match)


def test_presets():
  assert presets.get_config("smollm2_chat").batches == (1, 4, 16, 32)
  with pytest.raises(ValueError, match="unknown bench_batch preset"):
    presets.get_config("nope")
