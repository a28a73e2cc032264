"""Throughput (new tokens/s over all rows) of ArS and SpS at batch 1 and more: where SpS stops
paying, and why, from the measured costs.

  python -m experiments.bench_batch --config=configs/bench_batch.py:smollm2_chat

For each batch size B and sampling mode, side by side in alternating rounds: ArS,
SpS with each draft at fixed k and (with `adaptive_k`) adaptive K (its loop's cost
per draft length measured at that B: `perf.iteration_costs`), on the same B
prompts (ragged lengths). Reported per method: tokens/s end to end and decode-only
(the loop program alone, `perf.timed_generation`), the ratio to ArS at the same B,
the mean accepted length, and per B the target's measured costs: ms per call on
1 token per row (t_B(1), and per row), and r_B = t_B(k + 1) / t_B(1), the price of
verifying k + 1 positions per row instead of one. SpS pays while
mean accepted length / (k c + r_B) > 1: r_B grows with B once the verification's
B (k + 1) rows stop being as cheap as B rows (the matmuls turn compute-bound).
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
  common.check_ints(cfg, k=1, new_tokens=1, rounds=1, max_prompt_tokens=1, prompt_len=1,
                    pad_multiple=1)
  common.check_model(cfg, "target")
  common.check_names(cfg, "drafts", "drafters")
  common.check_drafter(cfg, "drafts")
  common.check_names(cfg, "batches", "batch sizes")
  if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in cfg.batches):
    raise ValueError(f"config.batches must be integers >= 1, got {list(cfg.batches)}")
  if not cfg.modes:
    raise ValueError("config.modes is empty: name at least one sampling mode")
  for name, s in cfg.modes.items():
    try:
      sj.Sampling.from_config(s)
    except ValueError as e:
      raise ValueError(f"config.modes.{name}: {e}") from None


def _prompts(cfg, target, n: int):
  """n prompts: held-out chat prompts (code and text alternating), or random ids."""
  if cfg.heldout_from:
    if target.tokenizer is None:
      raise ValueError("config.heldout_from needs a target with a tokenizer (a real model)")
    groups = replies.heldout_prompts(cfg.heldout_from, target.tokenizer, -(-n // 2),
                                     cfg.max_prompt_tokens)
    mixed = [p for pair in zip(*groups.values()) for p in pair]
    if len(mixed) < n:
      raise ValueError(f"{cfg.heldout_from} has {len(mixed)} held-out prompts of at most "
                       f"{cfg.max_prompt_tokens} tokens; the largest batch needs {n}")
    return mixed[:n]
  rng = np.random.default_rng(0)
  return rng.integers(0, target.config.vocab_size, (n, cfg.prompt_len)).tolist()


def _costs(target, B: int, k: int, context: int) -> dict:
  t1 = perf.seconds_per_call(target, 1, context, batch=B)
  tk1 = perf.seconds_per_call(target, k + 1, context, batch=B)
  return dict(t_target_1_ms=1e3 * t1, t_target_1_ms_per_row=1e3 * t1 / B, r_B=tk1 / t1)


def main(cfg) -> None:
  check_config(cfg)
  target = common.build_model(cfg.target, cfg.dtype)
  k = cfg.k
  prompts = _prompts(cfg, target, max(cfg.batches))
  context = int(np.mean([len(p) for p in prompts]))
  drafts = {d: sj.build_drafter(d, target, cfg.dtype) for d in cfg.drafts}
  rows = []
  for B in cfg.batches:
    costs = _costs(target, B, k, context)
    for mode, scfg in cfg.modes.items():
      sampling = sj.Sampling.from_config(scfg)
      gen = dict(max_new_tokens=cfg.new_tokens, sampling=sampling, key=jax.random.key(B),
                 eos_id=None, pad_multiple=cfg.pad_multiple)
      batch = prompts[:B]
      methods = {"ArS": lambda: sj.generate(target, batch, **gen)}
      for d, x in drafts.items():
        methods[f"SpS[{d}]"] = lambda x=x: sj.speculative_generate(target, x, batch, k=k, **gen)
        if cfg.adaptive_k:  # its loop's cost per draft length, measured at this batch size
          policy = perf.measure_adaptive_k(target, x, k, context, batch=B)
          methods[f"SpS[{d}] adaptive"] = lambda x=x, p=policy: sj.speculative_generate(
              target, x, batch, k=k, adaptive_k=p, **gen)
      names = list(methods)
      per_round = []
      for i in range(cfg.rounds):
        timed = {}
        for j in range(len(names)):  # a rotating order: no method always goes first
          name = names[(i + j) % len(names)]
          out, t = perf.timed_generation(methods[name])
          timed[name] = (out, t)
        per_round.append(timed)
      ars_out = per_round[0]["ArS"][0]
      for name in names:
        out = per_round[0][name][0]
        if sampling.greedy and not np.array_equal(out.tokens, ars_out.tokens):
          raise AssertionError(f"greedy {name} differs from greedy ArS at batch {B}")
        tps = [int(r[name][0].lengths.sum()) / r[name][1].seconds for r in per_round]
        dps = [(int(r[name][0].lengths.sum()) - r[name][1].prefill_tokens) /
               r[name][1].loop_seconds for r in per_round]
        ars_tps = [int(r["ArS"][0].lengths.sum()) / r["ArS"][1].seconds for r in per_round]
        ars_dps = [(int(r["ArS"][0].lengths.sum()) - r["ArS"][1].prefill_tokens) /
                   r["ArS"][1].loop_seconds for r in per_round]
        st = out.stats
        rows.append(dict(
            batch=B, mode=mode, method=name, tokens_per_s=float(np.median(tps)),
            decode_tokens_per_s=float(np.median(dps)),
            speedup=float(np.median(np.divide(tps, ars_tps))),
            decode_speedup=float(np.median(np.divide(dps, ars_dps))),
            mean_accepted_length=st.mean_accepted_length if name != "ArS" else 1.0,
            mean_draft_length=st.mean_draft_length if name != "ArS" else 0.0, **costs))
        print(json.dumps(rows[-1]), flush=True)
    # No program of this B serves another. Each compiled XLA:CPU program holds memory
    # mappings; batches 1 and 4 of the smollm2_chat preset left 65,530 of them (vm's
    # max_map_count), and LLVM failed to allocate batch 16's first program.
    jax.clear_caches()
  print("\n| batch | sampling | method | tokens/s | speedup | decode tokens/s | decode speedup "
        "| mean accepted length | mean K | t_B(1) ms (per row) | r_B |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|")
  for x in rows:
    print(f"| {x['batch']} | {x['mode']} | {x['method']} | {x['tokens_per_s']:.1f} | "
          f"{x['speedup']:.2f}x | {x['decode_tokens_per_s']:.1f} | {x['decode_speedup']:.2f}x | "
          f"{x['mean_accepted_length']:.2f} | {x['mean_draft_length']:.2f} | "
          f"{x['t_target_1_ms']:.1f} ({x['t_target_1_ms_per_row']:.1f}) | {x['r_B']:.2f} |")
  common.write_rows(cfg, rows)


if __name__ == "__main__":
  common.run(main, "configs/bench_batch.py:tiny")
