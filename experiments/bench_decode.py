"""ArS decode speed vs the memory-bandwidth bound.

  python -m experiments.bench_decode --config=configs/bench_decode.py:smollm2_shape
  python -m experiments.bench_decode --config=configs/bench_decode.py:smollm2_shape \
      --config.model=smollm2-135m --config.batch=4

Prints, all measured in one run, side by side: two read bandwidths and the
bounds param_bytes / bandwidth they give, and ArS ms/token, both for the whole
`sj.generate` call and for one decode step (difference of two budgets, so the
prefill and compile cancel out).
- `read_gb_s`: a jitted sum over a `read_bytes` buffer (a STREAM-like read);
- `gemv_gb_s`: one large matrix-vector product (`gemv_n` x `gemv_n` fp32), the
  best rate XLA:CPU reached reading weights; decode's many mid-size GEMVs get less.
"""
import json

import jax
import jax.numpy as jnp
import numpy as np

import specjax as sj
from experiments import common
from specjax import perf


def check_config(cfg) -> None:
  """Every config error, raised before a model loads."""
  common.check_ints(cfg, batch=1, prompt_len=1, new_tokens=4, repeats=1, rounds=1,
                    read_bytes=4, gemv_n=1)
  common.check_model(cfg, "model")


def read_bandwidth(nbytes: int, repeats: int = 5) -> float:
  """Bytes/s of a jitted sum over an nbytes float32 buffer (one read of each byte)."""
  x = jnp.ones((nbytes // 4,), jnp.float32)
  f = jax.jit(lambda a: jnp.sum(a))
  return nbytes / perf.median_seconds(lambda: f(x).block_until_ready(), repeats)


def gemv_bandwidth(n: int, repeats: int = 10) -> float:
  """Bytes/s of weight reading in one large fp32 matrix-vector product."""
  w = jnp.ones((n, n), jnp.float32)
  x = jnp.ones((1, n), jnp.float32)
  f = jax.jit(lambda a, b: b @ a)
  return 4 * n * n / perf.median_seconds(lambda: f(w, x).block_until_ready(), repeats)


def main(cfg) -> None:
  check_config(cfg)
  model = common.build_model(cfg.model, cfg.dtype)
  prompts = np.random.default_rng(0).integers(0, model.config.vocab_size,
                                              (cfg.batch, cfg.prompt_len))
  greedy = sj.Sampling(temperature=0.0)

  def run(n):
    return lambda: sj.generate(model, prompts, max_new_tokens=n, sampling=greedy,
                               eos_id=None).tokens.block_until_ready()

  n_long, n_short = cfg.new_tokens, cfg.new_tokens // 4
  run(n_long)(), run(n_short)()  # compile both
  # The machine is shared: bandwidth and decode are measured in alternation, round by
  # round, and the ratios are taken per round before the median.
  rounds = []
  for _ in range(cfg.rounds):
    bw, gemv_bw = read_bandwidth(cfg.read_bytes), gemv_bandwidth(cfg.gemv_n)
    t_long = perf.median_seconds(run(n_long), cfg.repeats)
    t_short = perf.median_seconds(run(n_short), cfg.repeats)
    step_ms = 1e3 * (t_long - t_short) / (n_long - n_short)
    rounds.append(dict(read_gb_s=bw / 1e9, gemv_gb_s=gemv_bw / 1e9, ms_per_decode_step=step_ms,
                       ms_per_token_whole_call=1e3 * t_long / n_long,
                       step_over_bound=step_ms / (1e3 * model.param_bytes / bw),
                       step_over_gemv_bound=step_ms / (1e3 * model.param_bytes / gemv_bw)))
  med = {key: float(np.median([r[key] for r in rounds])) for key in rounds[0]}
  res = dict(model=cfg.model, dtype=cfg.dtype, batch=cfg.batch, params=model.num_params,
             param_mb=model.param_bytes / 1e6, rounds=cfg.rounds, **med,
             bound_ms=model.param_bytes / med["read_gb_s"] / 1e6,
             gemv_bound_ms=model.param_bytes / med["gemv_gb_s"] / 1e6,
             per_round_step_over_bound=[round(r["step_over_bound"], 3) for r in rounds],
             backend=jax.default_backend(), device=str(jax.devices()[0].device_kind))
  print(json.dumps(res, indent=1))


if __name__ == "__main__":
  common.run(main, "configs/bench_decode.py:tiny")
