"""Chen et al. 2023 Table 1 and Figure 1 on the models specjax has: ArS vs SpS speed and quality.

  python experiments/speedup_table.py --config=configs/table1.py:quick --workdir=runs/table1_quick
  python experiments/speedup_table.py --config=configs/table1.py:full --workdir=runs/table1

Rows: task (summarization, code) x sampling mode (nucleus, greedy) x method
(ArS; SpS with each drafter). Every generation of every row is timed in this
run, side by side: for each example the methods run one after another (in an
order that rotates), so a slow spell of the shared machine hits all of them.
A call that compiled is run again and the second timing is kept.
Columns: task metric, ms/token (generation wall time / new tokens), speedup
over ArS (same task and mode), acceptance rate (accepted / proposed drafts),
mean accepted length (tokens per target call), and the speedup predicted by
(1 - a^(K+1)) / ((1 - a)(K c + r)) from the measured per-position acceptance a,
draft cost c and verification cost r (measured in this run).
Then the K sweep (Figure 1): time to sample `sweep.new_tokens` tokens, acceptance
and time per loop against K (0 = ArS).

WORKDIR gets table.md (also printed), table.csv, results.json, k_sweep.csv,
k_sweep.png; records/ keeps every generation, so re-running resumes, and a
config with more examples, samples, drafters or Ks extends the run without
redoing what is there. A config that changes finished results (target, K,
seed, max tokens, ...) is refused: use a new workdir. `--report_only` generates
nothing and writes the outputs from the records there (say, of a run still going
on): each row over the examples every method has finished, the sweep over the
prompts that have every K, marked partial, with the c and r last measured.
"""
import csv
import json
import os
import platform
import sys
import time
from typing import Dict, List, Tuple

from absl import app, flags
import jax
from ml_collections import config_flags
import numpy as np

import specjax as sj
from experiments import common
from specjax.evals import tasks as tasks_lib
from specjax.training import checkpointing
from specjax.training.metrics import Progress, write_summary

ARS = "ArS"
COSTS_FILE = "costs.json"  # c and r as last measured, by context: read by --report_only


def check_config(cfg) -> None:
  """Every config error, raised before a model loads or anything compiles."""
  for name, lo in [("k", 1), ("batch", 1), ("pad_multiple", 1), ("cost_repeats", 1),
                   ("cost_context", 0)]:
    v = cfg[name]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
      raise ValueError(f"config.{name} must be an integer >= {lo}, got {v!r}")
  if not cfg.drafters:
    raise ValueError("config.drafters is empty: SpS rows need at least one drafter")
  if len(set(cfg.drafters)) != len(cfg.drafters):
    raise ValueError(f"config.drafters has duplicates: {list(cfg.drafters)}")
  for name in cfg.tasks:
    if name not in ("summarization", "code"):
      raise ValueError(f"unknown task {name!r} in config.tasks; expected summarization, code")
    t = cfg[name]
    for mode, s in t.modes.items():
      common.sampling(s)  # raises on invalid sampling parameters
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
    common.sampling(sw.sampling)


def fingerprint(cfg) -> dict:
  """What a finished record depends on: a workdir whose records disagree is refused."""
  tasks = {name: dict(max_new_tokens=cfg[name].max_new_tokens,
                      modes={m: dict(s) for m, s in cfg[name].modes.items()},
                      shots=cfg[name].get("shots")) for name in cfg.tasks}
  return dict(target=cfg.target, dtype=cfg.dtype, k=cfg.k, batch=cfg.batch, seed=cfg.seed,
              pad_multiple=cfg.pad_multiple, tasks=tasks,
              sweep=dict(task=cfg.sweep.task, new_tokens=cfg.sweep.new_tokens,
                         sampling=dict(cfg.sweep.sampling)), prompt_format=1)


# ---- timing ------------------------------------------------------------------------------------
_COMPILE_EVENTS = [0]


def _on_event(name, *args, **kwargs):
  if name.startswith(("/jax/core/compile", "/jax/compilation_cache")):
    _COMPILE_EVENTS[0] += 1


jax.monitoring.register_event_duration_secs_listener(_on_event)
jax.monitoring.register_event_listener(lambda name, **kw: _on_event(name))


def timed(fn):
  """(result, seconds) of fn(); a call that compiled runs again and the rerun is timed."""
  for _ in range(2):
    before = _COMPILE_EVENTS[0]
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(out.tokens)
    dt = time.perf_counter() - t0
    if _COMPILE_EVENTS[0] == before:
      break
  return out, dt


# ---- records -----------------------------------------------------------------------------------
def _items_key(items) -> tuple:
  return tuple(tuple(x) for x in items)


class Records:
  """One JSON line per finished generation, appended as it finishes (resumable).

  A record is keyed by its method and its items, the (example, sample) pairs
  it generated, so a config with more examples or samples finds the old ones.
  """

  def __init__(self, path: str):
    self.path, self.rows = path, {}
    if os.path.exists(path):
      with open(path) as f:
        for line in f:
          if line.strip():
            try:
              r = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill: redone
              continue
            self.rows[(r["method"], _items_key(r["items"]))] = r

  def get(self, method: str, items):
    return self.rows.get((method, _items_key(items)))

  def add(self, record: dict):
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    self.rows[(record["method"], _items_key(record["items"]))] = record


def method_names(cfg) -> List[str]:
  return [ARS] + [f"SpS[{d}]" for d in cfg.drafters]


def drafter_name(method: str) -> str:
  return method[len("SpS["):-1]


def generation(target, draft, ids, k: int, **kw):
  """A thunk for `timed`: ArS when `draft` is None, else SpS with `draft` and k."""
  if draft is None:
    return lambda: sj.generate(target, ids, **kw)
  return lambda: sj.speculative_generate(target, draft, ids, k=k, **kw)


def record(method: str, items, out, seconds: float, texts: bool = True) -> dict:
  r = dict(method=method, items=items, seconds=seconds, lengths=np.asarray(out.lengths).tolist(),
           histogram=out.stats.accepted_histogram.tolist(),
           target_calls=int(out.stats.target_calls))
  return dict(r, texts=out.texts) if texts else r


def stats_of(histogram) -> sj.Stats:
  """Stats over summed records: the acceptance figures come from the histogram alone."""
  z = np.int32(0)
  return sj.Stats(target_calls=z, draft_calls=z, accepted_histogram_BG=np.asarray(histogram)[None],
                  new_tokens_B=np.zeros((1,), np.int32))


def run_rows(cfg, workdir, target, drafters, task, mode, ids, progress,
             generate: bool = True) -> Tuple[list, Dict[str, list]]:
  """Generates every (example, sample) of one task and mode with every method.

  Returns the groups of items (one generate call each) and, per method, the
  record of each group: None where it is missing (only when not `generate`).
  """
  tcfg = cfg[task.name]
  sampling = common.sampling(tcfg.modes[mode])
  n = tcfg.samples[mode]
  items = [(e, s) for e in range(len(task.examples)) for s in range(n)]
  groups = [items[i:i + cfg.batch] for i in range(0, len(items), cfg.batch)]
  records = Records(os.path.join(workdir, "records", f"{task.name}.{mode}.jsonl"))
  methods = method_names(cfg)
  for g, group in enumerate(groups):
    e, s = group[0]  # the key follows the items, not the group's index: extensions keep it
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(cfg.seed), e), s)
    for j in range(len(methods)):
      method = methods[(g + j) % len(methods)]  # rotating order: no method always goes first
      if records.get(method, group) is not None or not generate:
        progress.skip()
      else:
        draft = None if method == ARS else drafters[drafter_name(method)]
        out, dt = timed(generation(
            target, draft, [ids[e] for e, _ in group], cfg.k, max_new_tokens=tcfg.max_new_tokens,
            sampling=sampling, key=key, eos_id=list(task.stop_ids), pad_multiple=cfg.pad_multiple))
        records.add(record(method, group, out, dt))
        progress.advance(task=task.name, mode=mode)
  return groups, {m: [records.get(m, group) for group in groups] for m in methods}


def finished_part(groups, recs) -> Tuple[List[int], Dict[str, list]]:
  """The examples every method has finished every sample of, and their records.

  A partial run (--report_only) is summarized over these alone, so that every
  row of a task and mode compares the methods on the same examples.
  """
  unfinished = {e for g, group in enumerate(groups) if any(r[g] is None for r in recs.values())
                for e, _ in group}
  keep = [g for g, group in enumerate(groups) if not unfinished & {e for e, _ in group}]
  examples = sorted({e for g in keep for e, _ in groups[g]})
  return examples, {m: [r[g] for g in keep] for m, r in recs.items()}


# ---- costs and predicted speedup --------------------------------------------------------------
def measure_costs(cfg, target, drafters, context: int) -> Dict[str, dict]:
  """c and r per drafter at `context` tokens, measured now (medians of alternating rounds)."""
  out = {}
  rounds = []
  for _ in range(cfg.cost_repeats):
    t1 = common.seconds_per_call(target, 1, context)
    tk1 = common.seconds_per_call(target, cfg.k + 1, context)
    td = {name: common.draft_seconds_per_token(d, cfg.k, context) if isinstance(d, sj.Model)
          else 0.0 for name, d in drafters.items()}
    rounds.append((t1, tk1, td))
  for name in drafters:
    out[name] = dict(
        context=context, t_target_1_ms=1e3 * float(np.median([r[0] for r in rounds])),
        c=float(np.median([r[2][name] / r[0] for r in rounds])),
        r=float(np.median([r[1] / r[0] for r in rounds])))
  return out


def predicted_speedup(a: float, k: int, c: float, r: float) -> float:
  if not np.isfinite(a):
    return float("nan")
  n = (k + 1) if a >= 1 else (1 - a ** (k + 1)) / (1 - a)
  return n / (k * c + r)


def summarize_row(task, mode, method, recs, cfg, costs, ars_ms):
  """One table row; c, r and the predicted speedup only where `costs` has the drafter."""
  k = cfg.k
  hist = np.sum([r["histogram"] for r in recs], axis=0)
  tokens = int(sum(sum(r["lengths"]) for r in recs))
  seconds = float(sum(r["seconds"] for r in recs))
  ms = 1e3 * seconds / tokens
  row = dict(task=task.name, mode=mode, method=method, new_tokens=tokens, seconds=seconds,
             ms_per_token=ms, speedup=(ars_ms / ms) if ars_ms else 1.0)
  if method != ARS:
    stats = stats_of(hist)
    row.update(acceptance_rate=stats.acceptance_rate, alpha=stats.alpha,
               mean_accepted_length=stats.mean_accepted_length)
    cost = (costs or {}).get(drafter_name(method))
    if cost:
      row.update(c=cost["c"], r=cost["r"],
                 predicted_speedup=predicted_speedup(stats.alpha, k, cost["c"], cost["r"]))
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
    write_summary(path, dict(key=key, metrics=metrics))
    out[method] = metrics
  return out


# ---- K sweep (Figure 1) ------------------------------------------------------------------------
def run_sweep(cfg, workdir, target, drafters, ids, progress, generate: bool = True) -> List[dict]:
  """The K sweep's rows, over the prompts that have every K (all of them unless not `generate`)."""
  sw = cfg.sweep
  sampling = common.sampling(sw.sampling)
  draft_name = cfg.drafters[0]
  records = Records(os.path.join(workdir, "records", "sweep.jsonl"))
  prompts = ids[:sw.prompts]
  for p, prompt in enumerate(prompts):
    key = jax.random.fold_in(jax.random.key(cfg.seed + 1), p)
    for j in range(len(sw.ks)):
      K = sw.ks[(p + j) % len(sw.ks)]
      method = f"K={K}"
      if records.get(method, [[p, 0]]) is not None or not generate:
        progress.skip()
      else:
        out, dt = timed(generation(
            target, drafters[draft_name] if K else None, [prompt], K,
            max_new_tokens=sw.new_tokens, sampling=sampling, key=key, eos_id=None,
            pad_multiple=cfg.pad_multiple))
        records.add(record(method, [[p, 0]], out, dt, texts=False))
        progress.advance(task="sweep", K=K)
  done = [p for p in range(len(prompts))
          if all(records.get(f"K={K}", [[p, 0]]) is not None for K in sw.ks)]
  if not done:
    return []
  rows = []
  for K in sorted(set(sw.ks)):
    recs = [records.get(f"K={K}", [[p, 0]]) for p in done]
    secs = np.array([r["seconds"] for r in recs])
    calls = sum(r["target_calls"] for r in recs)
    stats = stats_of(np.sum([r["histogram"] for r in recs], axis=0))
    rows.append(dict(
        K=K, drafter=ARS if K == 0 else draft_name, prompts=len(recs),
        mean_s=float(secs.mean()), std_s=float(secs.std()), min_s=float(secs.min()),
        max_s=float(secs.max()),
        accepted_over_k1=stats.mean_accepted_length / (K + 1),
        acceptance_rate=stats.acceptance_rate if K else 1.0,
        ms_per_loop=1e3 * float(secs.sum()) / calls if calls else float("nan")))
  return rows


def plot_sweep(rows, path, new_tokens, title):
  import matplotlib  # the eval extra
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  K = [r["K"] for r in rows]
  fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
  mean = np.array([r["mean_s"] for r in rows])
  ax[0].errorbar(K, mean, yerr=[r["std_s"] for r in rows], fmt="o-", capsize=3, label="mean ± std")
  ax[0].fill_between(K, [r["min_s"] for r in rows], [r["max_s"] for r in rows], alpha=0.2,
                     label="min-max")
  ax[0].set(xlabel="K", ylabel=f"seconds to sample {new_tokens} tokens")
  ax[0].legend()
  ax[1].plot(K, [r["accepted_over_k1"] for r in rows], "o-", label="mean accepted length / (K+1)")
  ax[1].plot(K, [r["acceptance_rate"] for r in rows], "s--", label="accepted / proposed")
  ax[1].set(xlabel="K", ylabel="acceptance", ylim=(0, 1.05))
  ax[1].legend()
  ax[2].plot(K, [r["ms_per_loop"] for r in rows], "o-")
  ax[2].set(xlabel="K", ylabel="ms per loop (one target call)")
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


# ---- outputs -----------------------------------------------------------------------------------
def _fmt(v, spec):
  return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def metric_text(metrics: dict) -> str:
  return ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())


def table_markdown(rows, cfg, tasks, notes) -> str:
  lines = [f"# Table 1 analog: target {cfg.target}, K={cfg.k}, batch {cfg.batch}, "
           f"{jax.default_backend()} ({machine()['cpu']})", ""]
  lines += [f"- {t.name}: {t.description}" for t in tasks] + [f"- {n}" for n in notes] + [""]
  lines += ["| task | sampling | method | metric | ms/token | speedup | acceptance rate | "
            "mean accepted length | predicted speedup (a, c, r) |",
            "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    pred = "-" if "predicted_speedup" not in r else (
        f"{r['predicted_speedup']:.2f}x (a={r['alpha']:.2f}, c={r['c']:.3f}, r={r['r']:.2f})")
    lines.append(f"| {r['task']} | {r['mode']} | {r['method']} | {metric_text(r['metrics'])} | "
                 f"{r['ms_per_token']:.2f} | {r['speedup']:.2f}x | "
                 f"{_fmt(r.get('acceptance_rate'), '.3f')} | "
                 f"{_fmt(r.get('mean_accepted_length'), '.2f')} | {pred} |")
  return "\n".join(lines) + "\n"


def write_csv(path, rows, columns):
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    for r in rows:
      w.writerow({c: (json.dumps(r[c]) if isinstance(r.get(c), dict) else r.get(c, ""))
                  for c in columns})


def machine() -> dict:
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
  except (OSError, StopIteration):
    pass
  import flax, jaxlib
  return dict(cpu=cpu, cpu_count=os.cpu_count(), platform=platform.platform(),
              python=sys.version.split()[0], jax=jax.__version__, jaxlib=jaxlib.__version__,
              flax=flax.__version__, backend=jax.default_backend(),
              devices=[d.device_kind for d in jax.devices()])


class _Progress(Progress):
  """Counts every step; those already recorded (skipped) do not count in the rate and ETA."""

  def __init__(self, total, **kw):
    super().__init__(total, **kw)
    self.step = 0

  def advance(self, **fields):
    self.step += 1
    self.update(self.step, **fields)

  def skip(self):
    self.step += 1
    self.initial += 1


def load_costs(workdir: str) -> Dict[str, dict]:
  path = os.path.join(workdir, COSTS_FILE)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def run(cfg, workdir: str, report_only: bool = False) -> dict:
  """Runs (or resumes) the experiment in `workdir` and writes its outputs.

  With `report_only`, generates nothing: writes the outputs from the records
  already there (a run may be going on), each row over the examples that every
  method has finished, with the c and r the run last measured (if any).
  """
  check_config(cfg)
  if not workdir:
    raise ValueError("--workdir is required")
  if report_only and not os.path.exists(os.path.join(workdir, checkpointing.CONFIG_FILE)):
    raise ValueError(f"--report_only: {workdir} holds no run of this experiment to report on")
  resumed = checkpointing.claim_workdir(workdir, fingerprint(cfg))
  target = common.build_model(cfg.target, cfg.dtype)
  drafters = {} if report_only else {
      d: sj.build_drafter(d, target, cfg.dtype) for d in cfg.drafters}
  task_list = [tasks_lib.build(name, target.tokenizer, cfg[name]) for name in cfg.tasks]
  ids = {t.name: [target.tokenizer.encode(ex.prompt) for ex in t.examples] for t in task_list}
  methods = method_names(cfg)
  sweep_prompts = min(cfg.sweep.prompts, len(ids.get(cfg.sweep.task, []))) if cfg.sweep.ks else 0
  total = sum(-(-len(t.examples) * cfg[t.name].samples[m] // cfg.batch) * len(methods)
              for t in task_list for m in cfg[t.name].modes) + len(cfg.sweep.ks) * sweep_prompts
  if report_only:
    print(f"reporting on {workdir} (nothing generated) out of {total} timed generations",
          flush=True)
  else:
    print(f"{'resuming' if resumed else 'starting'} in {workdir}: {total} timed generations",
          flush=True)
  progress = _Progress(total)
  rows, costs, partial = [], {}, []
  measured, fresh = load_costs(workdir), set()  # fresh: measured by this run
  for task in task_list:
    context = str(cfg.cost_context or int(np.median([len(x) for x in ids[task.name]])))
    if not report_only and context not in fresh:
      measured[context] = measure_costs(cfg, target, drafters, int(context))
      fresh.add(context)
      write_summary(os.path.join(workdir, COSTS_FILE), measured)
    costs[task.name] = measured.get(context, {})
    for mode in cfg[task.name].modes:
      groups, recs = run_rows(cfg, workdir, target, drafters, task, mode, ids[task.name],
                              progress, generate=not report_only)
      examples, recs = finished_part(groups, recs)
      if len(examples) < len(task.examples):
        partial.append(f"{task.name} {mode} {len(examples)}/{len(task.examples)}")
      if not examples:
        continue
      metrics = score_rows(task, mode, recs, workdir, examples)
      ars_ms = None
      for method in methods:
        row = summarize_row(task, mode, method, recs[method], cfg, costs[task.name], ars_ms)
        if method == ARS:
          ars_ms = row["ms_per_token"]
        else:
          row["identical_to_ars"] = float(np.mean(
              [a["texts"] == b["texts"] for a, b in zip(recs[method], recs[ARS])]))
        rows.append(dict(row, examples=len(examples), metrics=metrics[method]))
  sweep = run_sweep(cfg, workdir, target, drafters, ids[cfg.sweep.task], progress,
                    generate=not report_only) if cfg.sweep.ks else []
  notes = ["XSum, CNN/DM and SAMSum cannot be had offline; ACLSum stands in for XSum.",
           "ms/token: generation wall time (prefill included, compilation excluded) / new tokens."]
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
  table = table_markdown(rows, cfg, task_list, notes)
  print("\n" + table, flush=True)
  with open(os.path.join(workdir, "table.md"), "w") as f:
    f.write(table)
  write_csv(os.path.join(workdir, "table.csv"), rows,
            ["task", "mode", "method", "examples", "metrics", "ms_per_token", "speedup",
             "acceptance_rate", "alpha", "mean_accepted_length", "c", "r", "predicted_speedup",
             "new_tokens", "seconds", "identical_to_ars"])
  if sweep:
    write_csv(os.path.join(workdir, "k_sweep.csv"), sweep, list(sweep[0]))
    plot_sweep(sweep, os.path.join(workdir, "k_sweep.png"), cfg.sweep.new_tokens,
               f"{cfg.target} + {cfg.drafters[0]}, {cfg.sweep.task} prompts, "
               f"T={cfg.sweep.sampling.temperature} top-p={cfg.sweep.sampling.top_p}")
    print("| K | s per {0} tokens (mean ± std) | mean accepted length/(K+1) | accepted/proposed "
          "| ms/loop |\n|---|---|---|---|---|".format(cfg.sweep.new_tokens))
    for r in sweep:
      print(f"| {r['K']} | {r['mean_s']:.2f} ± {r['std_s']:.2f} | {r['accepted_over_k1']:.3f} | "
            f"{r['acceptance_rate']:.3f} | {r['ms_per_loop']:.1f} |")
  results = dict(config=cfg.to_dict(), seed=cfg.seed, machine=machine(),
                 command=" ".join(sys.argv), partial=is_partial,
                 tasks={t.name: t.description for t in task_list}, notes=notes, costs=costs,
                 rows=rows, k_sweep=sweep)
  write_summary(os.path.join(workdir, "results.json"), results)
  return results


def main(_):
  common.init_distributed()
  run(_CONFIG.value, _WORKDIR.value, _REPORT_ONLY.value)


if __name__ == "__main__":  # flags defined here: tests import this module next to other mains
  _CONFIG = config_flags.DEFINE_config_file("config", "configs/table1.py:quick")
  _WORKDIR = flags.DEFINE_string("workdir", None, "output directory (resumed when it holds "
                                 "this run)")
  _REPORT_ONLY = flags.DEFINE_bool("report_only", False, "generate nothing: write the outputs "
                                   "from the records in --workdir (a run may be going on)")
  app.run(main)
