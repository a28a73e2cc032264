"""SpS vs ArS at batch 1: measured speedup next to the one predicted from measured costs.

  python -m experiments.bench_speculative --config=configs/bench_speculative.py:tiny
  python -m experiments.bench_speculative --config=configs/bench_speculative.py:smollm2 \
      --config.k=6 --config.out=/tmp/sps.json

For each draft, in alternating rounds (medians of per-round ratios, since the
machine is shared): ArS and SpS ms/token in the same run (same prompt, same
budget, greedy by default), acceptance rate, alpha, mean accepted length, and
c and r (`specjax.perf.measure_costs`). Predicted speedup
(`specjax.perf.predicted_speedup`) with alpha the per-position acceptance
(`stats.alpha`; `acceptance_rate` = accepted / proposed is smaller, since
drafts after a rejection are never verified); also with the measured mean
accepted length in place of the i.i.d. formula, which isolates the loop's own
cost.
"""
import json

import jax
import numpy as np

import specjax as sj
from experiments import common
from specjax import perf


def check_config(cfg) -> None:
  """Every config error, raised before a model loads."""
  common.check_ints(cfg, k=1, new_tokens=1, repeats=1, rounds=1)
  common.check_model(cfg, "target")
  common.check_names(cfg, "drafts", "drafters")
  common.check_sampling(cfg)


def _round(target, draft, k, context, repeats, run_ars, run_sps, n_ars, n_sps, alpha, mal):
  """One round: c, r, ArS and SpS seconds per token, measured side by side."""
  costs = perf.measure_costs(target, {"d": draft}, k, context)["d"]
  t_ars = perf.median_seconds(run_ars, repeats) / n_ars
  t_sps = perf.median_seconds(run_sps, repeats) / n_sps
  from_len = perf.predicted_from_mean_length(mal, k, costs.c, costs.r)
  return dict(ars_ms_per_token=1e3 * t_ars, sps_ms_per_token=1e3 * t_sps, c=costs.c, r=costs.r,
              predicted_speedup=costs.predicted_speedup(alpha),
              predicted_from_mean_len=from_len, measured_speedup=t_ars / t_sps,
              measured_over_predicted=(t_ars / t_sps) / from_len)


def main(cfg) -> None:
  check_config(cfg)
  target = common.build_model(cfg.target, cfg.dtype)
  if target.tokenizer is not None and cfg.prompt:
    prompt = target.tokenizer.encode(cfg.prompt)
  else:
    prompt = np.random.default_rng(0).integers(0, target.config.vocab_size, 24).tolist()
  sampling, k = common.sampling(cfg.sampling), cfg.k
  gen = dict(max_new_tokens=cfg.new_tokens, sampling=sampling, key=jax.random.key(0),
             eos_id=None)

  ars = sj.generate(target, [prompt], **gen)
  n_ars = int(ars.lengths[0])
  run_ars = lambda: sj.generate(target, [prompt], **gen).tokens.block_until_ready()
  rows = []
  for spec in cfg.drafts:
    draft = sj.build_drafter(spec, target, cfg.dtype)
    sps = sj.speculative_generate(target, draft, [prompt], k=k, **gen)
    if sampling.greedy and not np.array_equal(sps.tokens, ars.tokens):
      raise AssertionError(f"greedy SpS with {spec} differs from greedy ArS")
    run_sps = lambda: sj.speculative_generate(target, draft, [prompt], k=k, **gen) \
        .tokens.block_until_ready()
    a, mal = sps.stats.alpha, sps.stats.mean_accepted_length
    per_round = [_round(target, draft, k, len(prompt), cfg.repeats, run_ars, run_sps, n_ars,
                        int(sps.lengths[0]), a, mal) for _ in range(cfg.rounds)]
    row = dict(draft=spec, k=k, rounds=cfg.rounds, acceptance_rate=sps.stats.acceptance_rate,
               alpha=a, mean_accepted_length=mal, target_calls=int(sps.stats.target_calls),
               **{key: float(np.median([x[key] for x in per_round])) for key in per_round[0]},
               measured_over_predicted_per_round=[round(x["measured_over_predicted"], 3)
                                                  for x in per_round])
    rows.append(row)
    print(json.dumps(row), flush=True)
  print("\n| draft | k | ArS ms/tok | SpS ms/tok | accepted/proposed | alpha | mean len | c | r "
        "| predicted | measured | measured/predicted(mean len) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|")
  for x in rows:
    print(f"| {x['draft']} | {x['k']} | {x['ars_ms_per_token']:.2f} | {x['sps_ms_per_token']:.2f} "
          f"| {x['acceptance_rate']:.3f} | {x['alpha']:.3f} | {x['mean_accepted_length']:.2f} | "
          f"{x['c']:.3f} | {x['r']:.3f} | {x['predicted_speedup']:.2f}x | "
          f"{x['measured_speedup']:.2f}x | {x['measured_over_predicted']:.2f} |")
  if cfg.out:
    with open(cfg.out, "w") as f:
      json.dump(dict(target=cfg.target, backend=jax.default_backend(), machine=perf.machine(),
                     config=cfg.to_dict(), rows=rows), f, indent=1)


if __name__ == "__main__":
  common.run(main, "configs/bench_speculative.py:tiny")
