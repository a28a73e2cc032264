"""The token sampler at the real vocab size: cost and exactness, before and after issue 17.

  python -m experiments.bench_sample --config=configs/bench_sample.py:smollm2  # 49,152 ids
  python -m experiments.bench_sample --config=configs/bench_sample.py:smollm2 \
      --config.target=random:tiny --config.vocab=4096 --config.zero_draws=0

Side by side in one run, in alternating rounds (medians of per-round figures):
1. `sample` per row-position at `vocab` ids, for 1 row (ArS) and k + 1 rows
   (one SpS verification), 200 draws inside one jitted fori_loop;
2. draws of a zero-probability token at top-p 0.9 and top-k 1000, out of
   `zero_draws` per setting (0 skips it);
3. ArS and SpS (prompt lookup) ms/token on `target`, with each sampler.
1 and 3 sample at `sampling` (nucleus: temperature 0.8, top-p 0.95).
`legacy` is the sampler specjax had before issue 17 (one inverse CDF over the
whole vocab), kept here only as the baseline of this comparison.
"""
import contextlib

import jax
import jax.numpy as jnp
import numpy as np

import specjax as sj
from experiments import common
from specjax import perf
from specjax.decoding import autoregressive, drafters, speculative
from specjax.decoding import sampling as sampling_lib


def legacy_sample(key, probs_XV, sampling):
  """specjax's sampler before issue 17: `sum(cumsum(p) <= u)` over the whole vocab."""
  def draw(probs_XV):
    V = probs_XV.shape[-1]
    cdf_XV = jnp.cumsum(probs_XV.astype(jnp.float32), axis=-1)
    u_X1 = jax.random.uniform(key, probs_XV.shape[:-1] + (1,)) * cdf_XV[..., -1:]
    idx_X = jnp.sum(cdf_XV <= u_X1, axis=-1)
    last_X = V - 1 - jnp.argmax(jnp.flip(probs_XV > 0, axis=-1), axis=-1)
    return jnp.minimum(idx_X, last_X).astype(jnp.int32)
  return sampling_lib.if_greedy(sampling, sampling_lib.argmax, draw, probs_XV)


SAMPLERS = {"legacy": legacy_sample, "new": sj.sample}


def _sample_us_per_row(fn, probs_RV, sampling, repeats, draws=200):
  @jax.jit
  def loop(key, probs_RV):
    body = lambda i, acc: acc + fn(jax.random.fold_in(key, i), probs_RV, sampling)
    return jax.lax.fori_loop(0, draws, body, jnp.zeros(probs_RV.shape[:-1], jnp.int32))
  run = lambda: loop(jax.random.key(0), probs_RV).block_until_ready()
  return 1e6 * perf.median_seconds(run, repeats) / draws / probs_RV.shape[0]


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
  saved = [m.sample for m in mods], [(m._prefill_jit, m._loop_jit) for m in mods[:2]]
  for m in mods:
    m.sample = fn
  for m, (prefill, loop) in zip(mods[:2], jits):
    m._prefill_jit, m._loop_jit = prefill, loop
  try:
    yield
  finally:
    for m, s in zip(mods, saved[0]):
      m.sample = s
    for m, (prefill, loop) in zip(mods[:2], saved[1]):
      m._prefill_jit, m._loop_jit = prefill, loop


def _check(cfg) -> sj.Sampling:
  """Every field, before the target is built; a bad value is named by its field."""
  common.check_model(cfg, "target")
  common.check_ints(cfg, vocab=1, k=1, new_tokens=1, zero_draws=0, rounds=1, repeats=1)
  return common.check_sampling(cfg)


def main(cfg):
  nucleus = _check(cfg)
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(0, 3, (cfg.k + 1, cfg.vocab)), jnp.float32)
  print(f"backend {jax.default_backend()}, vocab {cfg.vocab}, {nucleus}")
  target = common.build_model(cfg.target)
  text = sj.chat_prompt("Write a Python function that returns the n-th Fibonacci number, "
                        "then explain how it works.")
  prompt = target.tokenizer.encode(text) if target.tokenizer else rng.integers(
      0, target.config.vocab_size, 40).tolist()
  gen = dict(max_new_tokens=cfg.new_tokens, sampling=nucleus, eos_id=None)
  # Jitted programs of each sampler's own (fresh functions: separate trace caches).
  fresh = lambda f, **kw: jax.jit(lambda *a, opts: f(*a, opts=opts), static_argnames="opts", **kw)
  jits = {n: tuple((fresh(m._prefill), fresh(m._loop, donate_argnums=d))
                   for m, d in [(autoregressive, 1), (speculative, 2)]) for n in SAMPLERS}
  per_round = []
  for rnd in range(cfg.rounds):
    fig = {}
    for name, fn in SAMPLERS.items():
      probs = sj.warp(logits, nucleus)
      fig[f"{name} sample us/row, 1 row"] = _sample_us_per_row(fn, probs[:1], nucleus, cfg.repeats)
      fig[f"{name} sample us/row, {cfg.k + 1} rows"] = _sample_us_per_row(
          fn, probs, nucleus, cfg.repeats)
      with _using(fn, jits[name]):
        for method, call in (
            ("ArS", lambda key: sj.generate(target, [prompt], key=key, **gen)),
            ("SpS[lookup:3]", lambda key: sj.speculative_generate(
                target, sj.prompt_lookup(3), [prompt], k=cfg.k, key=key, **gen))):
          ts = []
          for rep in range(cfg.repeats):  # perf.timed: a call that compiled is timed again
            lengths, dt = perf.timed(lambda: call(jax.random.key(100 * rnd + rep)).lengths)
            ts.append(dt / int(lengths[0]))
          fig[f"{name} {method} ms/token"] = 1e3 * float(np.median(ts))
    per_round.append(fig)
    print(f"round {rnd}: " + ", ".join(f"{k} {v:.2f}" for k, v in fig.items()), flush=True)
  print("\n| figure | legacy | new | new / legacy |\n|---|---|---|---|")
  for key in [k.split(" ", 1)[1] for k in per_round[0] if k.startswith("new ")]:
    old = [r[f"legacy {key}"] for r in per_round]
    new = [r[f"new {key}"] for r in per_round]
    print(f"| {key} | {np.median(old):.2f} | {np.median(new):.2f} | "
          f"{np.median(np.divide(new, old)):.2f} |")
  if cfg.zero_draws:
    print(f"\n| zero-probability draws per {cfg.zero_draws:,} | legacy | new |\n|---|---|---|")
    for s in (sj.Sampling(1.0, top_p=0.9), sj.Sampling(1.0, top_k=1000)):
      probs = sj.warp(logits[:4], s)
      n = [_zero_probability_draws(fn, probs, s, cfg.zero_draws) for fn in SAMPLERS.values()]
      print(f"| top_k {s.top_k}, top_p {s.top_p} | {n[0]} | {n[1]} |", flush=True)


if __name__ == "__main__":
  common.run(main, "configs/bench_sample.py:smollm2")
