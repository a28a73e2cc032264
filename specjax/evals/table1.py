"""Chen et al. 2023 Table 1 on the models specjax has: ArS vs SpS speed and quality, resumable.

Rows: task (summarization, code) x sampling mode (nucleus, greedy) x method
(ArS; SpS with each drafter). Every generation of every row is timed in the
run, side by side: for each example the methods run one after another (in an
order that rotates), so a slow spell of the shared machine hits all of them; a
row's programs are compiled ahead of its first call (`perf.timed_generation`), and
rows whose samplings differ only in values, or whose stop ids differ, share them.
Columns: task metric, ms/token, speedup over ArS (same task and mode),
acceptance rate, mean accepted length, and the speedup predicted from the
measured a, c and r (`perf.predicted_speedup`). Then the K sweep (`k_sweep`).

WORKDIR gets table.md, table.csv, results.json, k_sweep.csv, k_sweep.png;
records/ keeps every generation (`records.Records`), so a rerun resumes and a
config with more examples, samples, drafters or Ks extends the run. A config
that changes finished results is refused (`workdir.claim_workdir`).
"""
import json
import os
import sys
from typing import Callable, Dict, List, Optional, Tuple

import jax
import numpy as np

from specjax.decoding.drafters import build_drafter
from specjax.decoding.sampling import Sampling
from specjax.evals import report
from specjax.evals import tasks as tasks_lib
from specjax.evals.k_sweep import run_sweep
from specjax.evals.methods import (ARS, adaptive_policy, drafter_name, generation, is_adaptive,
                                   method_names)
from specjax.evals.records import Records, finished_part, record, summed_stats
from specjax.models.registry import load
from specjax.perf import costs as costs_lib
from specjax.perf.accounting import account, loop_efficiency
from specjax.perf.timing import machine, timed_generation
from specjax.workdir import CONFIG_FILE, Progress, claim_workdir, write_json

COSTS_FILE = "costs.json"  # c and r as last measured, by context: read by report_only runs
NOTES = ["XSum, CNN/DM and SAMSum cannot be had offline; ACLSum stands in for XSum.",
         "ms/token: generation wall time (prefill included, compilation excluded) / new tokens.",
         "decode ms/token: the loop program's time / the tokens it emitted (prefill excluded: "
         "the paper-comparable figure); efficiency: measured decode-only speedup / the one "
         "predicted from the measured mean accepted length, c and r.",
         "time parts (results.json, table.csv): prefill, the loop's target and draft calls "
         "(counted calls x measured per-call time), the loop's rest, host; compile_s: "
         "seconds of compilation paid by the row's first calls."]


def _positive_int(cfg, name: str, lo: int) -> None:
  v = cfg[name]
  if isinstance(v, bool) or not isinstance(v, int) or v < lo:
    raise ValueError(f"config.{name} must be an integer >= {lo}, got {v!r}")


def check_config(cfg) -> None:
  """Every config error, raised before a model loads or anything compiles."""
  for name, lo in [("k", 1), ("batch", 1), ("pad_multiple", 1), ("cost_repeats", 1),
                   ("cost_context", 0)]:
    _positive_int(cfg, name, lo)
  if not isinstance(cfg.get("adaptive_k", False), bool):
    raise ValueError(f"config.adaptive_k must be True or False, got {cfg.adaptive_k!r}")
  if not cfg.drafters:
    raise ValueError("config.drafters is empty: SpS rows need at least one drafter")
  if len(set(cfg.drafters)) != len(cfg.drafters):
    raise ValueError(f"config.drafters has duplicates: {list(cfg.drafters)}")
  for name in cfg.tasks:
    if name not in ("summarization", "code"):
      raise ValueError(f"unknown task {name!r} in config.tasks; expected summarization, code")
    t = cfg[name]
    for mode, s in t.modes.items():
      Sampling.from_config(s)  # raises on invalid sampling parameters
      n = t.samples.get(mode)
      if not isinstance(n, int) or n < 1:
        raise ValueError(f"config.{name}.samples.{mode} must be an integer >= 1, got {n!r}")
      if s.temperature == 0 and n != 1:
        raise ValueError(f"config.{name}.samples.{mode}: greedy decoding is deterministic; "
                         f"take 1 sample, not {n}")
    if set(t.samples.keys()) - set(t.modes.keys()):
      raise ValueError(f"config.{name}.samples names modes not in config.{name}.modes")
    if name == "code":
      most = max(t.samples.values())
      if any(not isinstance(k, int) or not 1 <= k <= most for k in t.pass_at):
        raise ValueError(f"config.code.pass_at {list(t.pass_at)} needs 1 <= k <= the most "
                         f"samples per problem ({most})")
  sw = cfg.sweep
  if sw.ks:
    if sw.task not in cfg.tasks:
      raise ValueError(f"config.sweep.task {sw.task!r} is not one of config.tasks "
                       f"{list(cfg.tasks)}")
    if any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in sw.ks):
      raise ValueError(f"config.sweep.ks must be integers >= 0 (0 = ArS), got {list(sw.ks)}")
    if sw.prompts < 1 or sw.new_tokens < 1:
      raise ValueError("config.sweep.prompts and config.sweep.new_tokens must be >= 1")
    Sampling.from_config(sw.sampling)


def fingerprint(cfg) -> dict:
  """What a finished record depends on: a workdir whose records disagree is refused."""
  tasks = {name: dict(max_new_tokens=cfg[name].max_new_tokens,
                      modes={m: dict(s) for m, s in cfg[name].modes.items()},
                      shots=cfg[name].get("shots")) for name in cfg.tasks}
  return dict(target=cfg.target, dtype=cfg.dtype, k=cfg.k, batch=cfg.batch, seed=cfg.seed,
              pad_multiple=cfg.pad_multiple, tasks=tasks,
              sweep=dict(task=cfg.sweep.task, new_tokens=cfg.sweep.new_tokens,
                         sampling=dict(cfg.sweep.sampling)), prompt_format=1,
              # Only when on, so that workdirs from before the switch still resume.
              **(dict(adaptive_k=True) if cfg.get("adaptive_k") else {}))


def run_rows(cfg, workdir, target, drafters, task, mode, ids, progress,
             generate: bool = True, costs=None) -> Tuple[list, Dict[str, list]]:
  """Generates every (example, sample) of one task and mode with every method.

  `costs`: the task's measured {drafter: {c, r, ...}}, which adaptive rows' policies use.
  Returns the groups of items (one generate call each) and, per method, the
  record of each group: None where it is missing (only when not `generate`).
  """
  tcfg = cfg[task.name]
  sampling = Sampling.from_config(tcfg.modes[mode])
  items = [(e, s) for e in range(len(task.examples)) for s in range(tcfg.samples[mode])]
  groups = [items[i:i + cfg.batch] for i in range(0, len(items), cfg.batch)]
  records = Records(os.path.join(workdir, "records", f"{task.name}.{mode}.jsonl"))
  methods = method_names(cfg.drafters, cfg.get("adaptive_k", False))
  for g, group in enumerate(groups):
    e, s = group[0]  # the key follows the items, not the group's index: extensions keep it
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(cfg.seed), e), s)
    for j in range(len(methods)):
      method = methods[(g + j) % len(methods)]  # rotating order: no method always goes first
      if records.get(method, group) is not None or not generate:
        progress.skip()
      else:
        draft = None if method == ARS else drafters[drafter_name(method)]
        policy = adaptive_policy(cfg.k, (costs or {}).get(drafter_name(method))) \
            if is_adaptive(method) else None
        out, dt = timed_generation(generation(
            target, draft, [ids[e] for e, _ in group], cfg.k, adaptive_k=policy,
            max_new_tokens=tcfg.max_new_tokens,
            sampling=sampling, key=key, eos_id=list(task.stop_ids), pad_multiple=cfg.pad_multiple))
        records.add(record(method, group, out, dt))
        progress.advance(task=task.name, mode=mode)
  return groups, {m: [records.get(m, group) for group in groups] for m in methods}


def summarize_row(task, mode, method, recs, k: int, costs, ars_ms, ars_decode_ms=None):
  """One table row; c, r, the predicted speedup and the loop's split only where `costs` has
  the drafter; decode-only figures where the records have the prefill timed apart.

  An adaptive row's prediction and split take its mean draft length for k, and r at that
  length on the line through t(1) and t(k + 1) (the policy's own cost model).
  """
  hist = np.sum([r["histogram"] for r in recs], axis=0)
  tokens = int(sum(sum(r["lengths"]) for r in recs))
  seconds = float(sum(r["seconds"] for r in recs))
  ms = 1e3 * seconds / tokens
  row = dict(task=task.name, mode=mode, method=method, new_tokens=tokens, seconds=seconds,
             ms_per_token=ms, speedup=(ars_ms / ms) if ars_ms else 1.0)
  if method != ARS:
    stats = summed_stats(recs)
    row.update(acceptance_rate=stats.acceptance_rate, alpha=stats.alpha,
               mean_accepted_length=stats.mean_accepted_length)
    cost = (costs or {}).get(drafter_name(method))
    if is_adaptive(method) and hist.sum():
      k_mean = stats.mean_draft_length
      row["mean_draft_length"] = k_mean
      if cost:
        cost = dict(cost, r=costs_lib.r_at_length(cost["r"], k, k_mean))
      k = k_mean
    if cost:
      row.update(c=cost["c"], r=cost["r"], predicted_speedup=costs_lib.predicted_speedup(
          stats.alpha, k, cost["c"], cost["r"]))
  else:  # ArS's calls cost t(1) each: any drafter's measurement has it
    cost = next(iter((costs or {}).values()), None)
  row.update(account(recs, k, cost, sps=method != ARS))
  if "decode_ms_per_token" in row:
    row["decode_speedup"] = (ars_decode_ms / row["decode_ms_per_token"]) if ars_decode_ms else 1.0
    if "c" in row and "mean_accepted_length" in row:
      row["loop_efficiency"] = loop_efficiency(row["decode_speedup"],
                                               row["mean_accepted_length"], k, row["c"], row["r"])
  return row


def score_rows(task, mode, rows_recs, workdir, examples: List[int]) -> Dict[str, dict]:
  """Task metrics per method over `examples` (indices), cached by the completions they score
  (code runs programs)."""
  out = {}
  index = {e: i for i, e in enumerate(examples)}
  for method, recs in rows_recs.items():
    preds = [[] for _ in examples]
    for r in recs:
      for (e, _), text in zip(r["items"], r["texts"]):
        preds[index[e]].append(task.extract(text))
    path = os.path.join(workdir, "scores", f"{task.name}.{mode}.{method}.json")
    key = json.dumps(preds)
    if os.path.exists(path):
      with open(path) as f:
        cached = json.load(f)
      if cached["key"] == key:
        out[method] = cached["metrics"]
        continue
    metrics = task.score([task.examples[e] for e in examples], preds)
    write_json(path, dict(key=key, metrics=metrics))
    out[method] = metrics
  return out


def _measure_costs(cfg, target, drafters, context: int) -> Dict[str, dict]:
  """c and r per drafter; with `adaptive_k`, also its loop's cost per draft length."""
  costs = costs_lib.measure_costs(target, drafters, cfg.k, context, cfg.cost_repeats)
  out = {name: dict(context=context, t_target_1_ms=1e3 * c.t_target_1, c=c.c, r=c.r)
         for name, c in costs.items()}
  if cfg.get("adaptive_k"):
    for name, d in drafters.items():
      policy = costs_lib.measure_adaptive_k(target, d, cfg.k, context, cfg.cost_repeats)
      out[name].update(lengths=list(policy.lengths),
                       iteration_costs=list(policy.iteration_costs))
  return out


def load_costs(workdir: str) -> Dict[str, dict]:
  path = os.path.join(workdir, COSTS_FILE)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def run(cfg, workdir: str, report_only: bool = False,
        build_model: Optional[Callable[[str, str], object]] = None) -> dict:
  """Runs (or resumes) the experiment in `workdir` and writes its outputs.

  With `report_only`, generates nothing: writes the outputs from the records
  already there (a run may be going on), each row over the examples that every
  method has finished, with the c and r the run last measured (if any).
  `build_model(name, dtype)` makes the target (default: `sj.load`).
  """
  check_config(cfg)
  if not workdir:
    raise ValueError("a workdir is required (--workdir)")
  if report_only and not os.path.exists(os.path.join(workdir, CONFIG_FILE)):
    raise ValueError(f"--report_only: {workdir} holds no run of this experiment to report on")
  resumed = claim_workdir(workdir, fingerprint(cfg))
  target = (build_model or (lambda name, dtype: load(name, dtype=dtype)))(cfg.target, cfg.dtype)
  drafters = {} if report_only else {d: build_drafter(d, target, cfg.dtype) for d in cfg.drafters}
  task_list = [tasks_lib.build(name, target.tokenizer, cfg[name]) for name in cfg.tasks]
  ids = {t.name: [target.tokenizer.encode(ex.prompt) for ex in t.examples] for t in task_list}
  methods = method_names(cfg.drafters, cfg.get("adaptive_k", False))
  sweep_prompts = min(cfg.sweep.prompts, len(ids.get(cfg.sweep.task, []))) if cfg.sweep.ks else 0
  total = sum(-(-len(t.examples) * cfg[t.name].samples[m] // cfg.batch) * len(methods)
              for t in task_list for m in cfg[t.name].modes) + (len(cfg.sweep.ks) + bool(cfg.get("adaptive_k"))) * sweep_prompts
  if report_only:
    print(f"reporting on {workdir} (nothing generated) out of {total} timed generations",
          flush=True)
  else:
    print(f"{'resuming' if resumed else 'starting'} in {workdir}: {total} timed generations",
          flush=True)
  progress = Progress(total)
  rows, costs, partial = [], {}, []
  measured, fresh = load_costs(workdir), set()  # fresh: measured by this run
  for task in task_list:
    context = str(cfg.cost_context or int(np.median([len(x) for x in ids[task.name]])))
    if not report_only and context not in fresh:
      measured[context] = _measure_costs(cfg, target, drafters, int(context))
      fresh.add(context)
      write_json(os.path.join(workdir, COSTS_FILE), measured)
    costs[task.name] = measured.get(context, {})
    for mode in cfg[task.name].modes:
      groups, recs = run_rows(cfg, workdir, target, drafters, task, mode, ids[task.name],
                              progress, generate=not report_only, costs=costs[task.name])
      examples, recs = finished_part(groups, recs)
      if len(examples) < len(task.examples):
        partial.append(f"{task.name} {mode} {len(examples)}/{len(task.examples)}")
      if not examples:
        continue
      metrics = score_rows(task, mode, recs, workdir, examples)
      ars_ms = ars_decode_ms = None
      for method in methods:
        row = summarize_row(task, mode, method, recs[method], cfg.k, costs[task.name], ars_ms,
                            ars_decode_ms)
        if method == ARS:
          ars_ms, ars_decode_ms = row["ms_per_token"], row.get("decode_ms_per_token")
        else:
          row["identical_to_ars"] = float(np.mean(
              [a["texts"] == b["texts"] for a, b in zip(recs[method], recs[ARS])]))
        rows.append(dict(row, examples=len(examples), metrics=metrics[method]))
  policy = None
  if cfg.sweep.ks and cfg.get("adaptive_k") and not report_only:
    policy = adaptive_policy(cfg.k, costs.get(cfg.sweep.task, {}).get(cfg.drafters[0]))
  sweep = run_sweep(cfg, workdir, target, drafters.get(cfg.drafters[0]), ids[cfg.sweep.task],
                    progress, generate=not report_only, policy=policy) if cfg.sweep.ks else []
  progress.close()
  notes = list(NOTES)
  sweep_done = sweep[0]["prompts"] if sweep else 0
  is_partial = bool(partial) or sweep_done < sweep_prompts
  if is_partial:
    notes.append("PARTIAL REPORT of an unfinished run: each row covers the examples every method "
                 "has finished (done/total: " + (", ".join(partial) or "all") +
                 f"; K sweep prompts {sweep_done}/{sweep_prompts})")
  if report_only and not any(costs.values()):
    notes.append("no c and r recorded in this workdir yet: no predicted speedup")
  greedy = [r for r in rows
            if r["method"] != ARS and cfg[r["task"]].modes[r["mode"]].temperature == 0]
  if greedy:
    notes.append("greedy SpS completions identical to ArS: " + ", ".join(
        f"{r['task']} {r['method']} {100 * r['identical_to_ars']:.0f}%" for r in greedy))
  _write_outputs(cfg, workdir, rows, sweep, task_list, notes)
  results = dict(config=cfg.to_dict(), seed=cfg.seed, machine=machine(),
                 command=" ".join(sys.argv), partial=is_partial,
                 tasks={t.name: t.description for t in task_list}, notes=notes, costs=costs,
                 rows=rows, k_sweep=sweep)
  write_json(os.path.join(workdir, "results.json"), results)
  return results


def _write_outputs(cfg, workdir, rows, sweep, task_list, notes) -> None:
  title = (f"Table 1 analog: target {cfg.target}, K={cfg.k}, batch {cfg.batch}, "
           f"{jax.default_backend()} ({machine()['cpu']})")
  table = report.table_markdown(
      title, rows, [f"{t.name}: {t.description}" for t in task_list] + notes)
  print("\n" + table, flush=True)
  with open(os.path.join(workdir, "table.md"), "w") as f:
    f.write(table)
  report.write_csv(os.path.join(workdir, "table.csv"), rows, report.TABLE_COLUMNS)
  if sweep:
    report.write_csv(os.path.join(workdir, "k_sweep.csv"), sweep, list(sweep[0]))
    sw = cfg.sweep
    report.plot_sweep(sweep, os.path.join(workdir, "k_sweep.png"), sw.new_tokens,
                      f"{cfg.target} + {cfg.drafters[0]}, {sw.task} prompts, "
                      f"T={sw.sampling.temperature} top-p={sw.sampling.top_p}")
    print(report.sweep_markdown(sweep, sw.new_tokens), flush=True)
