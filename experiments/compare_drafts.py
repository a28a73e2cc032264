"""Drafts for SmolLM2-135M side by side on held-out code and prose (the issue-6 table).

  python -m experiments.compare_drafts --config=configs/compare_drafts.py:smollm2 \
      $(printf -- ' --config.drafts=%s' runs/drafts/*) --config.drafts=self:4 \
      --config.drafts=smollm2-135m-draft

For each draft: acceptance alpha and mean accepted length from the real
speculative loop (k=4, temperature 1) on held-out prompts; c per draft and
r_j for j = 1..max_k (`specjax.perf.measure_costs`, one t(1) for all), and the
predicted speedup (`specjax.perf.predicted_speedup`) at k and at the best
j <= max_k. Drafts (`config.drafts`): training workdirs (their best/
checkpoint), `self:N:U` (the target's first N layers with an untrained U-id
head), or anything `sj.build_drafter` takes (`self:N`, `lookup:N`, a model).
"""
import json
import os

from absl import logging
import jax
import numpy as np

import specjax as sj
from experiments import common
from specjax import perf
from specjax.models import drafts
from specjax.training import data


def check_config(cfg) -> None:
  """Every config error, raised before a model loads."""
  common.check_ints(cfg, k=1, max_k=1, prompts=1, prompt_len=1, new_tokens=1)
  common.check_names(cfg, "drafts", "drafts")
  for spec in cfg.drafts:
    parts = spec.split(":")
    if parts[0] == "self" and len(parts) == 3 and not all(p.isdigit() for p in parts[1:]):
      raise ValueError(f"config.drafts: {spec!r} is not self:N:U with integers N and U")
  common.check_model(cfg, "target", real_only=True)  # the held-out prompts are text
  common.check_sampling(cfg)


def _draft(spec: str, target, corpus):
  """(drafter, training summary) for the two forms of this experiment, else build_drafter."""
  if spec.count(":") == 2 and spec.startswith("self:"):  # self:N:U, the N-layer self-draft
    _, n, u = spec.split(":")                             # with a U-id head, untrained
    ids = drafts.frequent_ids(corpus.train_NT, target.config.vocab_size, int(u),
                              always=[target.eos_id])
    return drafts.adapted_self_draft(target, int(n), jax.random.key(0), 0, ids), {}
  if os.path.isdir(os.path.join(spec, "best")):  # a training workdir
    with open(os.path.join(spec, "summary.json")) as f:
      summary = json.load(f)
    return sj.load(os.path.join(spec, "best"), target.config.dtype), summary
  return sj.build_drafter(spec, target), {}


def main(cfg) -> None:
  check_config(cfg)
  logging.set_verbosity(logging.WARNING)
  target = common.build_model(cfg.target, cfg.dtype)
  tok = target.tokenizer
  if tok is None:
    raise ValueError(f"config.target {cfg.target!r} has no tokenizer: the held-out prompts "
                     "are text (use a real model)")
  corpus = data.build_corpus(["code", "prose", "aclsum"], tok, 128, target.eos_id)
  prompts = {d: data.heldout_prompts([x for x in corpus.heldout_docs if x.source == d], tok,
                                     cfg.prompts, cfg.prompt_len, seed=1)
             for d in ("code", "prose")}
  s, k, ctx = common.sampling(cfg.sampling), cfg.k, cfg.prompt_len
  t1 = perf.seconds_per_call(target, 1, ctx)
  r = {j: perf.measure_costs(target, {"target": None}, j, ctx, t_target_1=t1)["target"].r
       for j in range(1, max(cfg.max_k, k) + 1)}  # k itself is always reported
  rows = []
  for spec in cfg.drafts:
    draft, summary = _draft(spec, target, corpus)
    row = dict(draft=spec, name=getattr(draft, "name", spec),
               train_seconds=summary.get("seconds"), train_steps=summary.get("step"))
    for d, ps in prompts.items():
      out = sj.speculative_generate(target, draft, ps, k=k, max_new_tokens=cfg.new_tokens,
                                    sampling=s, key=jax.random.key(7), eos_id=None)
      row[f"alpha_{d}"], row[f"len_{d}"] = out.stats.alpha, out.stats.mean_accepted_length
    c = row["c"] = perf.measure_costs(target, {spec: draft}, k, ctx, t_target_1=t1)[spec].c
    a = float(np.mean([row["alpha_code"], row["alpha_prose"]]))
    pred = {j: perf.predicted_speedup(a, j, c, r[j]) for j in r}
    best = max(pred, key=pred.get)
    row.update(params_M=getattr(draft, "num_params", 0) / 1e6, predicted_k4=pred[k],
               best_k=best, predicted_best=pred[best], r_k4=r[k])
    rows.append(row)
    print(json.dumps(row), flush=True)
  print(f"\ntarget t(1) = {t1 * 1e3:.2f} ms; r_k = " +
        ", ".join(f"{j}:{v:.2f}" for j, v in r.items()))
  print("\n| draft | alpha code | alpha prose | mean len code | mean len prose | c | "
        f"pred. speedup k={k} | best k: pred. | train s |\n|---|---|---|---|---|---|---|---|---|")
  for x in rows:
    ts = f"{x['train_seconds']:.0f}" if x["train_seconds"] else "-"
    print(f"| {x['draft']} | {x['alpha_code']:.3f} | {x['alpha_prose']:.3f} | "
          f"{x['len_code']:.2f} | {x['len_prose']:.2f} | {x['c']:.3f} | "
          f"{x['predicted_k4']:.2f}x | {x['best_k']}: {x['predicted_best']:.2f}x | {ts} |")
  if cfg.out:
    with open(cfg.out, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  common.run(main, "configs/compare_drafts.py:smollm2")
