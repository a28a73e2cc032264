"""ArS decode speed vs the memory-bandwidth bound.

  python experiments/bench_decode.py --model=smollm2_135m --batch=1 --new_tokens=128

Prints, all measured in one run, side by side: two read bandwidths and the
bounds param_bytes / bandwidth they give, and ArS ms/token, both for the whole
`sj.generate` call and for one decode step (difference of two budgets, so the
prefill and compile cancel out).
- `read_gb_s`: a jitted sum over a 1 GiB buffer (a STREAM-like read);
- `gemv_gb_s`: one large matrix-vector product (8192 x 8192 fp32), the best
  rate XLA:CPU reached reading weights; decode's many mid-size GEMVs get less.
"""
import json

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

import specjax as sj
from configs import model as model_configs
from experiments.common import median_seconds

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "smollm2_135m", "preset in configs/model.py")
flags.DEFINE_string("dtype", "float32", "parameter dtype")
flags.DEFINE_integer("batch", 1, "batch size")
flags.DEFINE_integer("prompt_len", 16, "prompt tokens per row")
flags.DEFINE_integer("new_tokens", 128, "new tokens per timed generation")
flags.DEFINE_integer("repeats", 3, "timed repeats per round (median)")
flags.DEFINE_integer("rounds", 5, "alternating rounds of bandwidth and decode timing")


def read_bandwidth(nbytes=1 << 30, repeats=5) -> float:
  """Bytes/s of a jitted sum over an nbytes float32 buffer (one read of each byte)."""
  x = jnp.ones((nbytes // 4,), jnp.float32)
  f = jax.jit(lambda a: jnp.sum(a))
  return nbytes / median_seconds(lambda: f(x).block_until_ready(), repeats)


def gemv_bandwidth(n=8192, repeats=10) -> float:
  """Bytes/s of weight reading in one large fp32 matrix-vector product."""
  w = jnp.ones((n, n), jnp.float32)
  x = jnp.ones((1, n), jnp.float32)
  f = jax.jit(lambda a, b: b @ a)
  return 4 * n * n / median_seconds(lambda: f(w, x).block_until_ready(), repeats)


def main(_):
  cfg = sj.ModelConfig.from_dict(model_configs.get_config(FLAGS.model)).replace(dtype=FLAGS.dtype)
  model = sj.init_model(cfg, jax.random.key(0))
  prompts = np.random.default_rng(0).integers(0, cfg.vocab_size, (FLAGS.batch, FLAGS.prompt_len))
  greedy = sj.Sampling(temperature=0.0)

  def run(n):
    return lambda: sj.generate(model, prompts, max_new_tokens=n, sampling=greedy,
                               eos_id=None).tokens.block_until_ready()

  n_long, n_short = FLAGS.new_tokens, FLAGS.new_tokens // 4
  run(n_long)(), run(n_short)()  # compile both
  # The machine is shared: bandwidth and decode are measured in alternation, round by
  # round, and the ratios are taken per round before the median.
  rounds = []
  for _ in range(FLAGS.rounds):
    bw, gemv_bw = read_bandwidth(), gemv_bandwidth()
    t_long = median_seconds(run(n_long), FLAGS.repeats)
    t_short = median_seconds(run(n_short), FLAGS.repeats)
    step_ms = 1e3 * (t_long - t_short) / (n_long - n_short)
    rounds.append(dict(read_gb_s=bw / 1e9, gemv_gb_s=gemv_bw / 1e9, ms_per_decode_step=step_ms,
                       ms_per_token_whole_call=1e3 * t_long / n_long,
                       step_over_bound=step_ms / (1e3 * model.param_bytes / bw),
                       step_over_gemv_bound=step_ms / (1e3 * model.param_bytes / gemv_bw)))
  med = {key: float(np.median([r[key] for r in rounds])) for key in rounds[0]}
  res = dict(model=FLAGS.model, dtype=FLAGS.dtype, batch=FLAGS.batch, params=model.num_params,
             param_mb=model.param_bytes / 1e6, rounds=FLAGS.rounds, **med,
             bound_ms=model.param_bytes / med["read_gb_s"] / 1e6,
             gemv_bound_ms=model.param_bytes / med["gemv_gb_s"] / 1e6,
             per_round_step_over_bound=[round(r["step_over_bound"], 3) for r in rounds],
             backend=jax.default_backend(), device=str(jax.devices()[0].device_kind))
  print(json.dumps(res, indent=1))


if __name__ == "__main__":
  app.run(main)
