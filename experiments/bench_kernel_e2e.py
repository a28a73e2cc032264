"""End to end, before and after the CPU matmul kernel: ArS and SpS on a Table 1 task, side by side.

  python -m experiments.bench_kernel_e2e --config=configs/bench_kernel_e2e.py:medium \
      --config.e2e.task=code --config.e2e.examples=8 \
      --config.drafters=smollm2-135m-draft,lookup:3 --config.e2e.out=runs/kernel_e2e.json

For each example, every method (ArS, and SpS with each of the config's drafters) runs
with the target's (and a model draft's) `ModelConfig.matmul` set to "xla" (before: XLA's
dot everywhere) and to "auto" (after: specjax's kernel for decode-sized products), one
after another in a rotating order, so both halves see the same machine. Prints, per
sampling mode, ms/token, the speedup over ArS with the same matmul and over ArS on
XLA, the acceptance rate, and how many completions equal the XLA run's; and r =
t(K + 1 tokens) / t(1 token) of one target call with each matmul (`perf.measure_costs`).
"""
import json
import os

import jax
import numpy as np

import specjax as sj
from experiments import common
from specjax import perf
from specjax.evals import tasks as tasks_lib
from specjax.evals.methods import ARS, drafter_name, generation, method_names
from specjax.evals.records import record
from specjax.evals.table1 import check_config
from specjax.kernels import cpu_matmul


def with_matmul(model, matmul: str):
  return model.replace(config=model.config.replace(matmul=matmul))


def check(cfg) -> None:
  check_config(cfg)
  common.check_model(cfg, "target", real_only=True)  # the tasks are text
  e = cfg.e2e
  if e.task not in cfg.tasks:
    raise ValueError(f"config.e2e.task {e.task!r} is not one of config.tasks {list(cfg.tasks)}")
  if set(e.modes) - set(cfg[e.task].modes):
    raise ValueError(f"config.e2e.modes {list(e.modes)}: {e.task} has {list(cfg[e.task].modes)}")
  if not e.matmuls or set(e.matmuls) - {"xla", "auto"}:
    raise ValueError(f"config.e2e.matmuls must name 'xla' and/or 'auto', got {list(e.matmuls)}")
  common.check_ints(cfg, "e2e", examples=1, context=1)


def timed_rows(cfg, targets, drafters, task, ids) -> list:
  """Every method with every matmul on every example, per mode: a row per (mode, method, matmul)."""
  e2e, rows = cfg.e2e, []
  methods = [(m, meth) for meth in method_names(cfg.drafters) for m in e2e.matmuls]
  for mode in e2e.modes:
    sampling = common.sampling(cfg[e2e.task].modes[mode])
    recs = {mm: [] for mm in methods}
    for e, prompt in enumerate(ids):
      key = jax.random.fold_in(jax.random.key(cfg.seed), e)
      for j in range(len(methods)):
        m, meth = methods[(e + j) % len(methods)]
        draft = None if meth == ARS else drafters[m, drafter_name(meth)]
        out, dt = perf.timed_generation(generation(
            targets[m], draft, [prompt], cfg.k, max_new_tokens=cfg[e2e.task].max_new_tokens,
            sampling=sampling, key=key, eos_id=list(task.stop_ids), pad_multiple=cfg.pad_multiple))
        recs[m, meth].append(record(meth, [[e, 0]], out, dt))
      print(f"  {mode}: example {e + 1}/{len(ids)}", flush=True)
    ms = {mm: 1e3 * sum(r["seconds"] for r in rs) / sum(sum(r["lengths"]) for r in rs)
          for mm, rs in recs.items()}
    base = e2e.matmuls[0]
    for (m, meth), rs in recs.items():
      stats = sj.Stats.from_histogram(np.sum([r["histogram"] for r in rs], axis=0))
      same = sum(a["texts"] == b["texts"] for a, b in zip(rs, recs[base, meth]))
      rows.append(dict(
          mode=mode, method=meth, matmul=m, ms_per_token=ms[m, meth],
          speedup=ms[m, ARS] / ms[m, meth], speedup_vs_baseline_ars=ms[base, ARS] / ms[m, meth],
          acceptance_rate=None if meth == ARS else stats.acceptance_rate,
          same_completions=f"{same}/{len(rs)}"))
  return rows


def main(cfg):
  check(cfg)
  e2e = cfg.e2e
  cfg[e2e.task].num_examples = e2e.examples
  base = common.build_model(cfg.target, cfg.dtype)
  task = tasks_lib.build(e2e.task, base.tokenizer, cfg[e2e.task])
  ids = [base.tokenizer.encode(ex.prompt) for ex in task.examples]
  targets = {m: with_matmul(base, m) for m in e2e.matmuls}
  drafters = {}
  for m, target in targets.items():
    for d in cfg.drafters:
      drafter = sj.build_drafter(d, target, cfg.dtype)
      drafters[m, d] = with_matmul(drafter, m) if isinstance(drafter, sj.Model) else drafter
  print(f"kernel: {cpu_matmul.status()}; {len(ids)} {e2e.task} examples, modes "
        f"{list(e2e.modes)}, K={cfg.k}", flush=True)
  costs = {m: perf.measure_costs(t, {"r": None}, cfg.k, e2e.context)["r"]
           for m, t in targets.items()}
  r_k1 = {m: dict(t1_ms=1e3 * c.t_target_1, r=c.r) for m, c in costs.items()}
  rows = timed_rows(cfg, targets, drafters, task, ids)
  results = dict(kernel=cpu_matmul.status(), machine=perf.machine(), task=e2e.task,
                 examples=len(ids), k=cfg.k, r=r_k1, rows=rows)

  print(f"\ntarget call, batch 1, context {e2e.context}: " + ", ".join(
      f"{m}: t(1) {v['t1_ms']:.2f} ms, r{cfg.k + 1} {v['r']:.2f}" for m, v in r_k1.items()))
  print(f"| mode | method | matmul | ms/token | speedup (same matmul) | speedup vs ArS "
        f"{e2e.matmuls[0]} | acceptance | completions = {e2e.matmuls[0]}'s |")
  print("|---|---|---|---|---|---|---|---|")
  for r in rows:
    acc = "" if r["acceptance_rate"] is None else f"{r['acceptance_rate']:.3f}"
    print(f"| {r['mode']} | {r['method']} | {r['matmul']} | {r['ms_per_token']:.2f} | "
          f"{r['speedup']:.2f}x | {r['speedup_vs_baseline_ars']:.2f}x | {acc} | "
          f"{r['same_completions']} |")
  if e2e.out:
    os.makedirs(os.path.dirname(os.path.abspath(e2e.out)), exist_ok=True)
    with open(e2e.out, "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  common.run(main, "configs/bench_kernel_e2e.py:medium")
