"""specjax.evals: Table 1's config checks, the records store, costs and reports, without models."""
import json
import os

import numpy as np
import pytest

from configs import table1 as table1_configs
from specjax import perf
from specjax.evals import records, report, table1
from specjax.evals.methods import adaptive_policy, drafter_name, is_adaptive, method_names


def test_report_only_needs_a_run_to_report_on(tmp_path):
  with pytest.raises(ValueError, match="holds no run"):
    table1.run(table1_configs.get_config("test"), str(tmp_path / "w"), report_only=True)
  assert not os.path.exists(tmp_path / "w")


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
  cfg = table1_configs.get_config("test")
  for key, value in overrides.items():
    node, *path = key.split(".")
    target = cfg
    for p in [node] + path[:-1] if path else []:
      target = target[p]
    target[path[-1] if path else node] = value
  with pytest.raises(ValueError, match=msg):
    table1.run(cfg, str(tmp_path / "w"))
  assert not os.path.exists(tmp_path / "w")


def test_records_resume_and_a_line_cut_short_is_redone(tmp_path):
  path = str(tmp_path / "records" / "x.jsonl")
  store = records.Records(path)
  store.add(dict(method="ArS", items=[[0, 0]], seconds=1.0))
  store.add(dict(method="SpS[lookup:3]", items=[[0, 0], [1, 0]], seconds=2.0))
  with open(path, "a") as f:
    f.write('{"method": "ArS", "items": [[1, 0]], "sec')  # killed mid-write
  again = records.Records(path)
  assert again.get("ArS", [(0, 0)])["seconds"] == 1.0  # tuples or lists: one key
  assert again.get("SpS[lookup:3]", [[0, 0], [1, 0]])["seconds"] == 2.0
  assert again.get("ArS", [[1, 0]]) is None


def test_finished_part_keeps_the_examples_every_method_finished():
  groups = [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(2, 0)]]
  recs = {"ArS": ["a0", "a1", "a2"], "SpS[x]": ["s0", None, "s2"]}
  examples, kept = records.finished_part(groups, recs)
  assert examples == [0, 2] and kept == {"ArS": ["a0", "a2"], "SpS[x]": ["s0", "s2"]}


def test_method_names_round_trip():
  names = method_names(["smollm2-135m-draft", "lookup:3"])
  assert names == ["ArS", "SpS[smollm2-135m-draft]", "SpS[lookup:3]"]
  assert [drafter_name(m) for m in names[1:]] == ["smollm2-135m-draft", "lookup:3"]


def test_summarize_row_predicts_from_the_histogram_and_the_costs():
  class Task:
    name = "code"
  recs = [dict(histogram=[1, 1, 2], lengths=[7], seconds=0.07)]
  row = table1.summarize_row(Task, "greedy", "SpS[d]", recs, 2, {"d": dict(c=0.1, r=1.2)},
                             ars_ms=20.0)
  alpha = (1 + 4) / (1 + 4 + 2)  # 5 accepted, 2 rejections
  assert row["alpha"] == pytest.approx(alpha)
  assert row["predicted_speedup"] == pytest.approx(perf.predicted_speedup(alpha, 2, 0.1, 1.2))
  assert row["ms_per_token"] == pytest.approx(10.0) and row["speedup"] == pytest.approx(2.0)


def test_report_writers(tmp_path):
  rows = [dict(task="code", mode="greedy", method="ArS", metrics={"pass@1": 0.5},
               ms_per_token=20.0, speedup=1.0),
          dict(task="code", mode="greedy", method="SpS[d]", metrics={"pass@1": 0.5},
               ms_per_token=10.0, speedup=2.0, acceptance_rate=float("nan"), alpha=0.5,
               mean_accepted_length=1.5, c=0.1, r=1.2, predicted_speedup=1.3)]
  text = report.table_markdown("T", rows, ["note"])
  assert text.startswith("# T\n\n- note\n") and "| code | greedy | SpS[d] | pass@1 0.500 |" in text
  assert "| - | 1.50 | 1.30x (a=0.50, c=0.100, r=1.20) |" in text
  report.write_csv(str(tmp_path / "t.csv"), rows, report.TABLE_COLUMNS)
  lines = open(tmp_path / "t.csv").read().splitlines()
  assert lines[0].startswith("task,mode,method,examples,metrics") and len(lines) == 3
  assert json.loads(lines[1].split(",", 4)[4].split('",')[0].strip('"').replace('""', '"')) \
      == {"pass@1": 0.5}


def test_predicted_speedup():
  assert perf.predicted_speedup(0.0, 4, 0.0, 1.0) == 1.0
  assert perf.predicted_speedup(1.0, 4, 0.1, 1.5) == pytest.approx(5 / 1.9)
  assert perf.predicted_speedup(0.5, 2, 0.1, 1.2) == pytest.approx(1.75 / 1.4)
  assert np.isnan(perf.predicted_speedup(float("nan"), 4, 0.1, 1.0))
  assert perf.predicted_from_mean_length(2.0, 4, 0.25, 1.0) == 1.0


def test_adaptive_method_names_round_trip():
  names = method_names(["d", "lookup:3"], adaptive=True)
  assert names == ["ArS", "SpS[d]", "SpS[d] adaptive", "SpS[lookup:3]", "SpS[lookup:3] adaptive"]
  assert [drafter_name(m) for m in names[1:]] == ["d", "d", "lookup:3", "lookup:3"]
  assert [is_adaptive(m) for m in names] == [False, False, True, False, True]


def test_the_adaptive_policy_comes_from_the_measured_costs():
  policy = adaptive_policy(4, dict(c=0.05, r=1.4))
  assert policy.c == 0.05 and policy.r_slope == pytest.approx(0.1)
  with pytest.raises(ValueError, match="measured c and r"):
    adaptive_policy(4, None)
  measured = adaptive_policy(4, dict(c=0.05, r=1.4, lengths=[0, 1, 2, 4],
                                     iteration_costs=[1.1, 1.3, 1.4, 1.6]))
  assert measured.lengths == (0, 1, 2, 4) and measured.iteration_costs == (1.1, 1.3, 1.4, 1.6)


def test_an_adaptive_row_predicts_at_its_mean_draft_length():
  class Task:
    name = "code"
  # 4 blocks that drafted 6 tokens in all (mean 1.5), accepted 4, 2 ended in a rejection.
  recs = [dict(histogram=[1, 2, 1], drafted=6, rejected=2, lengths=[8], seconds=0.08)]
  row = table1.summarize_row(Task, "greedy", "SpS[d] adaptive", recs, 2,
                             {"d": dict(c=0.1, r=1.2)}, ars_ms=20.0)
  assert row["mean_draft_length"] == 1.5 and row["alpha"] == pytest.approx(4 / 6)
  assert row["r"] == pytest.approx(1.15)  # r at 1.5 drafts on the line through r(0) and r(2)
  assert row["predicted_speedup"] == pytest.approx(perf.predicted_speedup(4 / 6, 1.5, 0.1, 1.15))
  assert "mean K=1.50" in report.table_markdown("T", [dict(row, metrics={})], [])


def test_adaptive_rows_and_sweep_line_run_on_a_tiny_model(tmp_path):
  """Table 1's runner with `adaptive_k`: the adaptive rows and the sweep's adaptive line."""
  import specjax as sj
  from specjax.evals.k_sweep import run_sweep
  from specjax.workdir import Progress
  from tests.helpers import tiny_model

  class Task:
    name = "summarization"
    examples = [0, 1]
    stop_ids = (0,)

  cfg = table1_configs.get_config("test")
  cfg.adaptive_k = True
  cfg.drafters = ("lookup:3",)
  cfg.summarization.max_new_tokens = 12
  cfg.sweep.ks, cfg.sweep.new_tokens = (0, 2), 10
  target = tiny_model(seed=3)
  drafters = {"lookup:3": sj.prompt_lookup(3)}
  ids = [[1, 2, 3, 1, 2, 3, 1], [5, 6, 7]]
  costs = {"lookup:3": dict(c=0.0, r=1.2, t_target_1_ms=1.0)}
  groups, recs = table1.run_rows(cfg, str(tmp_path), target, drafters, Task, "greedy", ids,
                                 Progress(100), costs=costs)
  assert set(recs) == {"ArS", "SpS[lookup:3]", "SpS[lookup:3] adaptive"}
  # Greedy: the adaptive rows' tokens are ArS's.
  assert [r["texts"] for r in recs["SpS[lookup:3] adaptive"]] == [r["texts"] for r in recs["ArS"]]
  ars = [r["lengths"] for r in recs["ArS"]]
  assert [r["lengths"] for r in recs["SpS[lookup:3] adaptive"]] == ars
  row = table1.summarize_row(Task, "greedy", "SpS[lookup:3] adaptive",
                             recs["SpS[lookup:3] adaptive"], cfg.k, costs, ars_ms=1.0)
  assert 0 <= row["mean_draft_length"] <= cfg.k
  sweep = run_sweep(cfg, str(tmp_path), target, drafters["lookup:3"], ids, Progress(100),
                    policy=adaptive_policy(cfg.k, costs["lookup:3"]))
  assert [r["line"] for r in sweep] == [0, 2, "<= 2, adaptive"]
  assert 0 <= sweep[-1]["K"] <= 2
  assert "| <= 2, adaptive |" in report.sweep_markdown(sweep, 10)
