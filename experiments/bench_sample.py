"""The token sampler at the real vocab size: cost and exactness, before and after issue 17.

  python experiments/bench_sample.py                       # 49,152 ids, SmolLM2-135M
  python experiments/bench_sample.py --target=random:tiny --vocab=4096 --zero_draws=0

Side by side in one run, in alternating rounds (medians of per-round figures):
1. `sample` per row-position at --vocab ids, for 1 row (ArS) and k + 1 rows
   (one SpS verification), 200 draws inside one jitted fori_loop;
2. draws of a zero-probability token per million at top-p 0.9 and top-k 1000
   (--zero_draws draws per setting; 0 skips it);
3. ArS and SpS (prompt lookup) ms/token on --target, nucleus, with each sampler.
`legacy` is the sampler specjax had before issue 17 (one inverse CDF over the
whole vocab), kept here only as the baseline of this comparison.
"""
import contextlib
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

import specjax as sj
from experiments import common
from specjax.decoding import autoregressive, drafters, speculative

FLAGS = flags.FLAGS
flags.DEFINE_string("target", "smollm2-135m", "target model: random:<preset> or sj.load name/path")
flags.DEFINE_integer("vocab", 49_152, "vocab size of the sampler micro-benchmark")
flags.DEFINE_integer("k", 4, "draft tokens per SpS iteration")
flags.DEFINE_integer("new_tokens", 64, "new tokens per generation")
flags.DEFINE_float("temperature", 0.8, "nucleus temperature")
flags.DEFINE_float("top_p", 0.95, "nucleus top-p")
flags.DEFINE_integer("zero_draws", 200_000, "draws per setting for the zero-probability count")
flags.DEFINE_integer("rounds", 3, "alternating rounds")
flags.DEFINE_integer("repeats", 3, "timed repeats per round (median)")


def legacy_sample(key, probs_XV, sampling):
  """specjax's sampler before issue 17: `sum(cumsum(p) <= u)` over the whole vocab."""
  if sampling.greedy:
    return jnp.argmax(probs_XV, axis=-1).astype(jnp.int32)
  V = probs_XV.shape[-1]
  cdf_XV = jnp.cumsum(probs_XV.astype(jnp.float32), axis=-1)
  u_X1 = jax.random.uniform(key, probs_XV.shape[:-1] + (1,)) * cdf_XV[..., -1:]
  idx_X = jnp.sum(cdf_XV <= u_X1, axis=-1)
  last_X = V - 1 - jnp.argmax(jnp.flip(probs_XV > 0, axis=-1), axis=-1)
  return jnp.minimum(idx_X, last_X).astype(jnp.int32)


SAMPLERS = {"legacy": legacy_sample, "new": sj.sample}


def _sample_us_per_row(fn, probs_RV, sampling, draws=200):
  @jax.jit
  def loop(key, probs_RV):
    body = lambda i, acc: acc + fn(jax.random.fold_in(key, i), probs_RV, sampling)
    return jax.lax.fori_loop(0, draws, body, jnp.zeros(probs_RV.shape[:-1], jnp.int32))
  run = lambda: loop(jax.random.key(0), probs_RV).block_until_ready()
  return 1e6 * common.median_seconds(run, FLAGS.repeats) / draws / probs_RV.shape[0]


def _zero_probability_draws(fn, probs_RV, sampling, n, chunk=2_000):
  f = jax.jit(jax.vmap(lambda k, p: fn(k, p, sampling), (0, None)))
  keys = jax.random.split(jax.random.key(1), n // probs_RV.shape[0])
  p = np.asarray(probs_RV)
  bad = 0
  for i in range(0, len(keys), chunk):
    toks = np.asarray(f(keys[i:i + chunk], probs_RV))
    bad += int((p[np.arange(p.shape[0]), toks] == 0).sum())
  return bad


@contextlib.contextmanager
def _using(fn, jits):
  """Traces ArS and SpS with sampler `fn`, in jitted programs of its own (`jits`)."""
  mods = (autoregressive, speculative, drafters)
  saved = [m.sample for m in mods], autoregressive._generate_jit, speculative._spec_generate_jit
  for m in mods:
    m.sample = fn
  autoregressive._generate_jit, speculative._spec_generate_jit = jits
  try:
    yield
  finally:
    for m, s in zip(mods, saved[0]):
      m.sample = s
    autoregressive._generate_jit, speculative._spec_generate_jit = saved[1:]


def main(_):
  rng = np.random.default_rng(0)
  nucleus = sj.Sampling(FLAGS.temperature, 0, FLAGS.top_p)
  logits = jnp.asarray(rng.normal(0, 3, (FLAGS.k + 1, FLAGS.vocab)), jnp.float32)
  print(f"backend {jax.default_backend()}, vocab {FLAGS.vocab}, {nucleus}")
  target = common.build_model(FLAGS.target)
  text = sj.chat_prompt("Write a Python function that returns the n-th Fibonacci number, "
                        "then explain how it works.")
  prompt = target.tokenizer.encode(text) if target.tokenizer else rng.integers(
      0, target.config.vocab_size, 40).tolist()
  gen = dict(max_new_tokens=FLAGS.new_tokens, sampling=nucleus, eos_id=None)
  # One pair of jitted programs per sampler (fresh functions: separate trace caches).
  jits = {n: (jax.jit(lambda *a, opts: autoregressive._generate(*a, opts=opts),
                      static_argnames="opts"),
              jax.jit(lambda *a, opts: speculative._spec_generate(*a, opts=opts),
                      static_argnames="opts")) for n in SAMPLERS}
  per_round = []
  for rnd in range(FLAGS.rounds):
    fig = {}
    for name, fn in SAMPLERS.items():
      probs = sj.warp(logits, nucleus)
      fig[f"{name} sample us/row, 1 row"] = _sample_us_per_row(fn, probs[:1], nucleus)
      fig[f"{name} sample us/row, {FLAGS.k + 1} rows"] = _sample_us_per_row(fn, probs, nucleus)
      with _using(fn, jits[name]):
        for method, call in (
            ("ArS", lambda key: sj.generate(target, [prompt], key=key, **gen)),
            ("SpS[lookup:3]", lambda key: sj.speculative_generate(
                target, sj.prompt_lookup(3), [prompt], k=FLAGS.k, key=key, **gen))):
          ts = []
          call(jax.random.key(0)).tokens.block_until_ready()  # compiles
          for rep in range(FLAGS.repeats):
            t0 = time.perf_counter()
            out = call(jax.random.key(100 * rnd + rep))
            out.tokens.block_until_ready()
            ts.append((time.perf_counter() - t0) / int(out.lengths[0]))
          fig[f"{name} {method} ms/token"] = 1e3 * float(np.median(ts))
    per_round.append(fig)
    print(f"round {rnd}: " + ", ".join(f"{k} {v:.2f}" for k, v in fig.items()), flush=True)
  print("\n| figure | legacy | new | new / legacy |\n|---|---|---|---|")
  for key in [k.split(" ", 1)[1] for k in per_round[0] if k.startswith("new ")]:
    old = [r[f"legacy {key}"] for r in per_round]
    new = [r[f"new {key}"] for r in per_round]
    print(f"| {key} | {np.median(old):.2f} | {np.median(new):.2f} | "
          f"{np.median(np.divide(new, old)):.2f} |")
  if FLAGS.zero_draws:
    print(f"\n| zero-probability draws per {FLAGS.zero_draws:,} | legacy | new |\n|---|---|---|")
    for s in (sj.Sampling(1.0, top_p=0.9), sj.Sampling(1.0, top_k=1000)):
      probs = sj.warp(logits[:4], s)
      n = [_zero_probability_draws(fn, probs, s, FLAGS.zero_draws) for fn in SAMPLERS.values()]
      print(f"| top_k {s.top_k}, top_p {s.top_p} | {n[0]} | {n[1]} |", flush=True)


if __name__ == "__main__":
  app.run(main)
