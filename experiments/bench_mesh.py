"""SpS (and ArS) tokens/s on one device vs meshes, and whether the tokens match.

  python experiments/bench_mesh.py --cpu_devices=8 --target=random:tiny_shardable \
      --meshes=1x1,1x8,2x4,8x1
  python experiments/bench_mesh.py --cpu_devices=8 --target=smollm2-135m --draft=lookup:3 \
      --meshes=1x1,8x1 --batch=8

On this 2-core machine 8 simulated devices cannot be faster than one: the
point is that the same program runs sharded and gives the same tokens. On a
GPU/TPU host the same command measures real scaling.
"""
import json
import time

from absl import app, flags
import jax
import numpy as np

import specjax as sj
from experiments import common

FLAGS = flags.FLAGS
flags.DEFINE_string("target", "random:tiny_shardable", "target model")
flags.DEFINE_string("draft", "self:1", "drafter: self:N, lookup:N or a model")
flags.DEFINE_list("meshes", ["1x1", "8x1"], "mesh shapes (data x model)")
flags.DEFINE_string("rules", "default", "target rules: default or replicated")
flags.DEFINE_integer("batch", 8, "rows")
flags.DEFINE_integer("k", 4, "draft tokens per iteration")
flags.DEFINE_integer("new_tokens", 32, "new tokens per row")
flags.DEFINE_integer("repeats", 2, "timed repeats (best)")


def main(_):
  common.init_distributed()
  target = common.build_model(FLAGS.target)
  draft = sj.build_drafter(FLAGS.draft, target)
  rng = np.random.default_rng(0)
  prompts = [rng.integers(0, target.config.vocab_size, 8 + 3 * b).tolist()
             for b in range(FLAGS.batch)]
  rows, ref = [], {}
  for spec in FLAGS.meshes:
    shape = tuple(int(x) for x in spec.split("x"))
    mesh = None if shape == (1, 1) else sj.sharding.make_mesh(shape)
    rules = common.rules_from_name(FLAGS.rules) if mesh else None
    kw = dict(max_new_tokens=FLAGS.new_tokens, eos_id=None, mesh=mesh, rules=rules)
    for name, fn in [("ArS", lambda: sj.generate(target, prompts, **kw)),
                     ("SpS", lambda: sj.speculative_generate(
                         target, draft, prompts, k=FLAGS.k,
                         draft_rules=sj.sharding.REPLICATED_RULES if mesh else None, **kw))]:
      out = fn()
      best = float("inf")
      for _ in range(FLAGS.repeats):
        t0 = time.perf_counter()
        fn().tokens.block_until_ready()
        best = min(best, time.perf_counter() - t0)
      toks = np.asarray(out.tokens)
      ref.setdefault(name, toks)
      rows.append(dict(mesh=spec, sampler=name, tokens_per_s=float(np.sum(out.lengths)) / best,
                       same_tokens_as_1x1=bool(np.array_equal(toks, ref[name]))))
      if jax.process_index() == 0:
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
  app.run(main)
