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
cost. Decode-only ms/token (the loop program's time over the tokens it emitted,
prefill excluded: `perf.timed_generation`), their speedup, the loop's efficiency
(decode-only speedup / predicted from the mean accepted length) and the prefill's
share of SpS's time. `--config.adaptive_k=True` adds a row per draft with adaptive K
(`sj.AdaptiveK`, its loop's cost per draft length measured first:
`perf.iteration_costs`), timed in the same rounds as ArS.

`--config.heldout_from=DIR` (a make_replies workdir) runs `heldout_prompts` of its held-out
chat prompts instead of the one `prompt`, each at batch 1, one after the other: ms/token and
acceptance are over all of them (histograms summed), and greedy SpS must equal ArS on each.
`--config.context_exchanges=N` puts N exchanges of its first shard before each (long contexts).
"""
import json

import jax
import numpy as np

import specjax as sj
from experiments import common
from specjax import perf
from specjax.training import replies


def check_config(cfg) -> None:
  """Every config error, raised before a model loads."""
  common.check_ints(cfg, k=1, new_tokens=1, repeats=1, rounds=1, heldout_prompts=1,
                    max_prompt_tokens=1, pad_multiple=1, context_exchanges=0)
  if cfg.context_exchanges and not cfg.heldout_from:
    raise ValueError("config.context_exchanges needs config.heldout_from (its exchanges)")
  common.check_model(cfg, "target")
  common.check_names(cfg, "drafts", "drafters")
  common.check_drafter(cfg, "drafts")
  common.check_sampling(cfg)


def _seconds(calls, repeats):
  """Medians over `repeats` of (seconds, loop seconds, loop tokens) summed over `calls`, each
  a generation timed in its parts (`perf.timed_generation`)."""
  runs = []
  for _ in range(repeats):
    parts = [perf.timed_generation(c) for c in calls]
    runs.append((sum(t.seconds for _, t in parts), sum(t.loop_seconds for _, t in parts),
                 sum(int(o.lengths.sum()) - t.prefill_tokens for o, t in parts)))
  return tuple(float(np.median([r[i] for r in runs])) for i in range(3))


def _round(target, draft, k, context, repeats, ars_calls, sps_calls, n_ars, n_sps, alpha, mal,
           k_mean):
  """One round: c, r, ArS and SpS seconds per token (end to end and decode-only), side by side.

  `k_mean`: the mean draft length (k, or less with adaptive K): the predictions take it for
  k, and r at it on the line through t(1) and t(k + 1).
  """
  costs = perf.measure_costs(target, {"d": draft}, k, context)["d"]
  s_ars, loop_ars, m_ars = _seconds(ars_calls, repeats)
  s_sps, loop_sps, m_sps = _seconds(sps_calls, repeats)
  t_ars, t_sps = s_ars / n_ars, s_sps / n_sps
  d_ars, d_sps = loop_ars / m_ars, loop_sps / m_sps
  r = perf.r_at_length(costs.r, k, k_mean)
  from_len = perf.predicted_from_mean_length(mal, k_mean, costs.c, r)
  return dict(ars_ms_per_token=1e3 * t_ars, sps_ms_per_token=1e3 * t_sps, c=costs.c, r=r,
              predicted_speedup=perf.predicted_speedup(alpha, k_mean, costs.c, r),
              predicted_from_mean_len=from_len, measured_speedup=t_ars / t_sps,
              measured_over_predicted=(t_ars / t_sps) / from_len,
              ars_decode_ms_per_token=1e3 * d_ars, sps_decode_ms_per_token=1e3 * d_sps,
              decode_speedup=d_ars / d_sps,
              loop_efficiency=perf.loop_efficiency(d_ars / d_sps, mal, k_mean, costs.c, r),
              prefill_share_sps=(s_sps - loop_sps) / s_sps)


def _prompts(cfg, target):
  if cfg.heldout_from:  # held-out chat prompts of a replies workdir, code and text alike
    if target.tokenizer is None:
      raise ValueError("config.heldout_from needs a target with a tokenizer (a real model)")
    groups = replies.heldout_prompts(cfg.heldout_from, target.tokenizer, cfg.heldout_prompts,
                                     cfg.max_prompt_tokens)
    prompts = [p for g in groups.values() for p in g]
    if cfg.context_exchanges:
      examples = replies.load_examples(cfg.heldout_from, max_shards=1)
      prompts = replies.with_context(prompts, examples, cfg.context_exchanges)
    return prompts
  if target.tokenizer is not None and cfg.prompt:
    return [target.tokenizer.encode(cfg.prompt)]
  return [np.random.default_rng(0).integers(0, target.config.vocab_size, 24).tolist()]


def main(cfg) -> None:
  check_config(cfg)
  target = common.build_model(cfg.target, cfg.dtype)
  prompts = _prompts(cfg, target)
  context = int(np.mean([len(p) for p in prompts]))
  sampling, k = common.sampling(cfg.sampling), cfg.k
  gen = dict(max_new_tokens=cfg.new_tokens, sampling=sampling, key=jax.random.key(0),
             eos_id=None, pad_multiple=cfg.pad_multiple)  # a few prompt widths, few compiles

  ars = [sj.generate(target, [p], **gen) for p in prompts]
  n_ars = sum(int(o.lengths[0]) for o in ars)
  ars_calls = [lambda p=p: sj.generate(target, [p], **gen) for p in prompts]
  rows = []
  runs = [(spec, False) for spec in cfg.drafts]
  if cfg.adaptive_k:
    runs = [(spec, adaptive) for spec in cfg.drafts for adaptive in (False, True)]
  for spec, adaptive in runs:
    draft = sj.build_drafter(spec, target, cfg.dtype)
    sps_kw = dict(gen, k=k)
    if adaptive:  # the policy from its loop's costs per draft length, measured here first
      sps_kw["adaptive_k"] = perf.measure_adaptive_k(target, draft, k, context)
    sps = [sj.speculative_generate(target, draft, [p], **sps_kw) for p in prompts]
    for i, (x, y) in enumerate(zip(sps, ars)):
      if sampling.greedy and not np.array_equal(x.tokens, y.tokens):
        raise AssertionError(f"greedy SpS with {spec} differs from greedy ArS on prompt {i}")
    sps_calls = [lambda p=p: sj.speculative_generate(target, draft, [p], **sps_kw)
                 for p in prompts]
    stats = sj.Stats.from_histogram(sum(o.stats.accepted_histogram for o in sps),
                                    sum(o.stats.drafted for o in sps),
                                    sum(o.stats.rejected for o in sps))
    a, mal = stats.alpha, stats.mean_accepted_length
    k_mean = stats.mean_draft_length
    n_sps = sum(int(o.lengths[0]) for o in sps)
    per_round = [_round(target, draft, k, context, cfg.repeats, ars_calls, sps_calls, n_ars,
                        n_sps, a, mal, k_mean) for _ in range(cfg.rounds)]
    row = dict(draft=spec + (" adaptive" if adaptive else ""), k=k, mean_draft_length=k_mean,
               rounds=cfg.rounds, prompts=len(prompts),
               acceptance_rate=stats.acceptance_rate, alpha=a, mean_accepted_length=mal,
               target_calls=sum(int(o.stats.target_calls) for o in sps),
               **{key: float(np.median([x[key] for x in per_round])) for key in per_round[0]},
               measured_over_predicted_per_round=[round(x["measured_over_predicted"], 3)
                                                  for x in per_round])
    rows.append(row)
    print(json.dumps(row), flush=True)
  print("\n| draft | k (mean) | ArS ms/tok | SpS ms/tok | accepted/proposed | alpha | mean len | c | r "
        "| predicted | measured | measured/predicted(mean len) | decode-only ArS/SpS ms/tok "
        "| decode-only speedup | loop efficiency | SpS prefill share |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
  for x in rows:
    print(f"| {x['draft']} | {x['k']} ({x['mean_draft_length']:.2f}) | {x['ars_ms_per_token']:.2f} | {x['sps_ms_per_token']:.2f} "
          f"| {x['acceptance_rate']:.3f} | {x['alpha']:.3f} | {x['mean_accepted_length']:.2f} | "
          f"{x['c']:.3f} | {x['r']:.3f} | {x['predicted_speedup']:.2f}x | "
          f"{x['measured_speedup']:.2f}x | {x['measured_over_predicted']:.2f} | "
          f"{x['ars_decode_ms_per_token']:.2f}/{x['sps_decode_ms_per_token']:.2f} | "
          f"{x['decode_speedup']:.2f}x | {x['loop_efficiency']:.2f} | "
          f"{x['prefill_share_sps']:.0%} |")
  common.write_rows(cfg, rows)


if __name__ == "__main__":
  common.run(main, "configs/bench_speculative.py:tiny")
