"""Drafts for SmolLM2-135M side by side on held-out code and prose (the issue-6 table).

For each draft: acceptance alpha and mean accepted length from the real
speculative loop (k=4, temperature 1) on held-out prompts, the cost ratio
c = t_draft / t_target(1) and r_k = t_target(k+1) / t_target(1) measured here,
and the predicted speedup (1 - a^(k+1)) / ((1 - a)(k c + r_k)) at k=4 and at
the best k <= --max_k. Drafts: training workdirs (their best/ checkpoint),
`self:N` (the target's first N layers), `self:N:U` (with a U-id head) or anything `sj.load` takes.

  python experiments/compare_drafts.py runs/drafts/* self:4 smollm2-135m-draft
"""
import json
import os

from absl import app, flags, logging
import jax
import numpy as np

import specjax as sj
from experiments import common
from specjax.models import drafts
from specjax.training import data

flags.DEFINE_integer("k", 4, "draft tokens per iteration for the acceptance measurement")
flags.DEFINE_integer("max_k", 8, "largest k for the predicted best speedup")
flags.DEFINE_integer("prompts", 32, "held-out prompts per domain")
flags.DEFINE_integer("prompt_len", 32, "tokens per prompt")
flags.DEFINE_integer("new_tokens", 64, "tokens generated per prompt")
flags.DEFINE_float("temperature", 1.0, "sampling temperature (0: greedy)")
flags.DEFINE_string("out", "", "also write the rows as JSON here")
FLAGS = flags.FLAGS


def _draft(spec: str, target, corpus):
  if spec.count(":") == 2 and spec.startswith("self:"):  # self:N:U, the N-layer self-draft
    _, n, u = spec.split(":")                             # with a U-id head, untrained
    ids = drafts.frequent_ids(corpus.train_NT, target.config.vocab_size, int(u),
                              always=[target.eos_id])
    return drafts.adapted_self_draft(target, int(n), jax.random.key(0), 0, ids), {}
  if os.path.isdir(os.path.join(spec, "best")):  # a training workdir
    with open(os.path.join(spec, "summary.json")) as f:
      summary = json.load(f)
    return sj.load(os.path.join(spec, "best")), summary
  return sj.build_drafter(spec, target), {}


def main(argv):
  logging.set_verbosity(logging.WARNING)
  target = sj.load("smollm2-135m")
  tok = target.tokenizer
  corpus = data.build_corpus(["code", "prose", "aclsum"], tok, 128, target.eos_id)
  prompts = {d: data.heldout_prompts([x for x in corpus.heldout_docs if x.source == d], tok,
                                     FLAGS.prompts, FLAGS.prompt_len, seed=1)
             for d in ("code", "prose")}
  s, k = sj.Sampling(FLAGS.temperature), FLAGS.k
  t1 = common.seconds_per_call(target, 1, FLAGS.prompt_len)
  r = {j: common.seconds_per_call(target, j + 1, FLAGS.prompt_len) / t1
       for j in range(1, max(FLAGS.max_k, FLAGS.k) + 1)}  # k itself is always reported
  rows = []
  for spec in argv[1:]:
    draft, summary = _draft(spec, target, corpus)
    row = dict(draft=spec, name=draft.name, train_seconds=summary.get("seconds"),
               train_steps=summary.get("step"))
    for d, ps in prompts.items():
      out = sj.speculative_generate(target, draft, ps, k=k, max_new_tokens=FLAGS.new_tokens,
                                    sampling=s, key=jax.random.key(7), eos_id=None)
      row[f"alpha_{d}"], row[f"len_{d}"] = out.stats.alpha, out.stats.mean_accepted_length
    td = common.draft_seconds_per_token(draft, k, FLAGS.prompt_len)
    a = float(np.clip(np.mean([row["alpha_code"], row["alpha_prose"]]), 1e-6, 1 - 1e-6))
    c = row["c"] = td / t1
    pred = {j: (1 - a ** (j + 1)) / ((1 - a) * (j * c + r[j])) for j in r}
    best = max(pred, key=pred.get)
    row.update(params_M=draft.num_params / 1e6, predicted_k4=pred[k], best_k=best,
               predicted_best=pred[best], r_k4=r[k])
    rows.append(row)
    print(json.dumps(row), flush=True)
  print(f"\ntarget t(1) = {t1 * 1e3:.2f} ms; r_k = " +
        ", ".join(f"{j}:{v:.2f}" for j, v in r.items()))
  print("\n| draft | alpha code | alpha prose | mean len code | mean len prose | c | "
        "pred. speedup k=4 | best k: pred. | train s |\n|---|---|---|---|---|---|---|---|---|")
  for x in rows:
    ts = f"{x['train_seconds']:.0f}" if x["train_seconds"] else "-"
    print(f"| {x['draft']} | {x['alpha_code']:.3f} | {x['alpha_prose']:.3f} | "
          f"{x['len_code']:.2f} | {x['len_prose']:.2f} | {x['c']:.3f} | "
          f"{x['predicted_k4']:.2f}x | {x['best_k']}: {x['predicted_best']:.2f}x | {ts} |")
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(rows, f, indent=2)


if __name__ == "__main__":
  app.run(main)
