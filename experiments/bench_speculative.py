"""SpS vs ArS at batch 1: measured speedup next to the one predicted from measured costs.

  python experiments/bench_speculative.py --target=random:tiny --drafts=self:1
  python experiments/bench_speculative.py --target=smollm2-135m --drafts=self:8,lookup:3

For each draft, in alternating rounds (medians of per-round ratios, since the
machine is shared): ArS and SpS ms/token in the same run (same prompt, same
budget, greedy by default), acceptance rate a, mean accepted length, and the
cost ratios c = t_draft / t_target(1) (per drafted token, as the loop calls
the draft: one 2-token call then k - 1 one-token calls) and
r = t_target(k + 1) / t_target(1). Predicted speedup (Leviathan et al.):
(1 - a^(k+1)) / ((1 - a)(k c + r)) with a the per-position acceptance
(`stats.alpha`; `acceptance_rate` = accepted / proposed is smaller, since
drafts after a rejection are never verified); also with the measured mean
accepted length in place of the i.i.d. formula, which isolates the loop's
own cost.
"""
import json

from absl import app, flags
import jax
import numpy as np

import specjax as sj
from experiments import common

FLAGS = flags.FLAGS
flags.DEFINE_string("target", "random:tiny", "target model: random:<preset> or sj.load name/path")
flags.DEFINE_list("drafts", ["self:1", "lookup:3"], "drafters: self:N, lookup:N, or a model")
flags.DEFINE_integer("k", 4, "draft tokens per iteration")
flags.DEFINE_integer("new_tokens", 128, "new tokens per generation")
flags.DEFINE_string("prompt", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
                    "prompt text (needs a tokenizer; else random ids are used)")
flags.DEFINE_float("temperature", 0.0, "0 = greedy")
flags.DEFINE_float("top_p", 1.0, "nucleus top-p")
flags.DEFINE_integer("repeats", 3, "timed repeats per round (median)")
flags.DEFINE_integer("rounds", 3, "alternating rounds of all timings (medians reported)")
flags.DEFINE_string("dtype", "float32", "model dtype")
flags.DEFINE_string("out", "", "optional JSON output path")


def main(_):
  target = common.build_model(FLAGS.target, FLAGS.dtype)
  if target.tokenizer is not None and FLAGS.prompt:
    prompt = target.tokenizer.encode(FLAGS.prompt)
  else:
    prompt = np.random.default_rng(0).integers(0, target.config.vocab_size, 24).tolist()
  sampling = sj.Sampling(FLAGS.temperature, 0, FLAGS.top_p)
  key = jax.random.key(0)
  k, M = FLAGS.k, FLAGS.new_tokens
  gen = dict(max_new_tokens=M, sampling=sampling, key=key, eos_id=None)

  ars = sj.generate(target, [prompt], **gen)
  n_ars = int(ars.lengths[0])
  run_ars = lambda: sj.generate(target, [prompt], **gen).tokens.block_until_ready()
  rows = []
  for spec in FLAGS.drafts:
    draft = sj.build_drafter(spec, target, FLAGS.dtype)
    sps = sj.speculative_generate(target, draft, [prompt], k=k, **gen)
    if sampling.greedy:
      assert np.array_equal(sps.tokens, ars.tokens), "greedy SpS differs from greedy ArS"
    n_sps = int(sps.lengths[0])
    run_sps = lambda: sj.speculative_generate(target, draft, [prompt], k=k, **gen) \
        .tokens.block_until_ready()
    a, mal = sps.stats.alpha, sps.stats.mean_accepted_length
    # The machine is shared: every cost is re-measured in each round, side by side, and
    # the ratios are formed per round before the median.
    per_round = []
    for _ in range(FLAGS.rounds):
      t1 = common.seconds_per_call(target, 1, context=len(prompt))
      tk1 = common.seconds_per_call(target, k + 1, context=len(prompt))
      if isinstance(draft, sj.Model):
        td = common.draft_seconds_per_token(draft, k, len(prompt))
      else:
        td = 0.0  # a lookup calls no model; its search is part of the loop's own cost
      t_ars = common.median_seconds(run_ars, FLAGS.repeats) / n_ars
      t_sps = common.median_seconds(run_sps, FLAGS.repeats) / n_sps
      c, r = td / t1, tk1 / t1
      per_round.append(dict(
          ars_ms_per_token=1e3 * t_ars, sps_ms_per_token=1e3 * t_sps, c=c, r=r,
          predicted_speedup=(1 - a ** (k + 1)) / ((1 - a) * (k * c + r)) if a < 1
          else (k + 1) / (k * c + r),
          predicted_from_mean_len=mal / (k * c + r), measured_speedup=t_ars / t_sps,
          measured_over_predicted=(t_ars / t_sps) / (mal / (k * c + r))))
    row = dict(draft=spec, k=k, rounds=FLAGS.rounds, acceptance_rate=sps.stats.acceptance_rate,
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
          f"{x['c']:.3f} | "
          f"{x['r']:.3f} | {x['predicted_speedup']:.2f}x | {x['measured_speedup']:.2f}x | "
          f"{x['measured_over_predicted']:.2f} |")
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(dict(target=FLAGS.target, backend=jax.default_backend(), rows=rows), f, indent=1)


if __name__ == "__main__":
  app.run(main)
