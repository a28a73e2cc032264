"""Figure 1 of Chen et al. 2023: time to sample N tokens, acceptance and time per loop against K.

ArS (K = 0) and SpS with one drafter for each K, on the first prompts of a task,
with no stop id. Each prompt runs every K one after another (in an order that
rotates), so a slow spell of a shared machine hits all of them. With an adaptive
K policy, one more line: SpS drafting up to the sweep's largest K per row and
iteration ("adaptive", its K column the mean draft length).
"""
import os
from typing import List, Optional

import jax
import numpy as np

from specjax.decoding.adaptive import AdaptiveK
from specjax.decoding.sampling import Sampling
from specjax.evals.records import Records, record, summed_stats
from specjax.evals.methods import ARS, generation
from specjax.perf.timing import timed_generation


ADAPTIVE = "adaptive"


def run_sweep(cfg, workdir: str, target, drafter, ids, progress, generate: bool = True,
              policy: Optional[AdaptiveK] = None) -> List[dict]:
  """The sweep's rows, over the prompts that have every K (all of them unless not `generate`).

  `cfg`: a Table 1 config (its `sweep`, `seed`, `pad_multiple`, `drafters[0]`; with
  `adaptive_k` the adaptive line, which runs `policy` up to the largest K).
  """
  sw = cfg.sweep
  lines = list(sw.ks) + ([ADAPTIVE] if cfg.get("adaptive_k") else [])
  k_max = max(sw.ks)
  sampling = Sampling.from_config(sw.sampling)
  records = Records(os.path.join(workdir, "records", "sweep.jsonl"))
  prompts = ids[:sw.prompts]
  for p, prompt in enumerate(prompts):
    key = jax.random.fold_in(jax.random.key(cfg.seed + 1), p)
    for j in range(len(lines)):
      K = lines[(p + j) % len(lines)]
      method = f"K={K}"
      if records.get(method, [[p, 0]]) is not None or not generate:
        progress.skip()
      else:
        adaptive = K == ADAPTIVE
        out, dt = timed_generation(generation(
            target, drafter if K else None, [prompt], k_max if adaptive else K,
            adaptive_k=policy if adaptive else None, max_new_tokens=sw.new_tokens,
            sampling=sampling, key=key, eos_id=None, pad_multiple=cfg.pad_multiple))
        records.add(record(method, [[p, 0]], out, dt, texts=False))
        progress.advance(task="sweep", K=K)
  done = [p for p in range(len(prompts))
          if all(records.get(f"K={K}", [[p, 0]]) is not None for K in lines)]
  if not done:
    return []
  rows = []
  for K in sorted(set(sw.ks)) + lines[len(sw.ks):]:
    recs = [records.get(f"K={K}", [[p, 0]]) for p in done]
    secs = np.array([r["seconds"] for r in recs])
    calls = sum(r["target_calls"] for r in recs)
    stats = summed_stats(recs)
    name = K
    if K == ADAPTIVE:  # its K: the mean draft length
      name, K = f"<= {k_max}, {ADAPTIVE}", stats.mean_draft_length
    rows.append(dict(
        K=K, line=name, drafter=ARS if K == 0 else cfg.drafters[0], prompts=len(recs),
        mean_s=float(secs.mean()), std_s=float(secs.std()), min_s=float(secs.min()),
        max_s=float(secs.max()),
        accepted_over_k1=stats.mean_accepted_length / (K + 1),
        acceptance_rate=stats.acceptance_rate if K else 1.0,
        ms_per_loop=1e3 * float(secs.sum()) / calls if calls else float("nan")))
  return rows
