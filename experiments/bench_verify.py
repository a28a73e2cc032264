"""Verification cost on this backend: r_T = t(T tokens) / t(1 token), whole model and per op.

  python experiments/bench_verify.py                       # SmolLM2-135M and ~1B shapes, fp32+bf16
  python experiments/bench_verify.py --models=smollm2_135m --dtypes=float32 --batches=1

Speculative sampling pays when scoring T = K + 1 tokens costs about what
scoring 1 does (r_T near 1). For each model shape (random weights of a
configs/model.py preset), dtype, batch B and T, this measures after `context`
cached tokens, in one jit each (a fori_loop of `calls` calls whose inputs
change every call, so nothing is hoisted):
- `model`: one `sj.forward` call with the KV cache (what a verification does);
- `attention`, `mlp`: one layer's attention (projections, RoPE, cache read and
  write) and SwiGLU MLP; `head`: the final norm and vocab projection.
Each T's time is divided by T = 1's at the same model, dtype, batch and op;
rounds alternate over all T so that a slow spell hits them all; medians of
the per-round ratios are printed, with the 1-token ms, GFLOP/s and GB/s.
"""
import json
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

import specjax as sj
from configs import model as model_configs
from specjax.kernels import cpu_matmul
from specjax.models import transformer

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["smollm2_135m", "llama_1b"], "presets in configs/model.py")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "parameter/activation dtypes")
flags.DEFINE_list("batches", ["1", "4"], "batch sizes")
flags.DEFINE_list("tokens", ["1", "2", "3", "5", "9", "17"], "tokens per call (T)")
flags.DEFINE_list("ops", ["model", "attention", "mlp", "head"], "what to time")
flags.DEFINE_integer("context", 256, "cached tokens before the call")
flags.DEFINE_integer("calls", 8, "calls per timed jit")
flags.DEFINE_integer("rounds", 3, "alternating rounds (median of per-round ratios)")
flags.DEFINE_list("matmuls", ["xla", "auto"],
                  "ModelConfig.matmul modes to compare side by side (auto: specjax's CPU kernel "
                  "when built)")
flags.DEFINE_string("out", "", "optional JSON output path")


def _loop(fn, calls):
  """jit(fori_loop of `calls` fn(i) calls) summing a scalar of each output."""
  @jax.jit
  def run(*args):
    def body(i, acc):
      return acc + fn(i, *args)
    return jax.lax.fori_loop(0, calls, body, jnp.zeros((), jnp.float32))
  return run


def _vary(x, i):
  """x, changed with the loop index so that XLA cannot hoist the call out of the loop."""
  return x * (1 + i.astype(x.dtype) * jnp.asarray(1e-3, x.dtype))


def make_op(op: str, cfg: sj.ModelConfig, params, B: int, T: int, context: int):
  """(jitted run(*args), args, flops, bytes) for one op at batch B and T tokens."""
  key = jax.random.key(T)
  x_BTD = jax.random.normal(key, (B, T, cfg.d_model), jnp.float32).astype(cfg.jnp_dtype)
  D, V, L, F = cfg.d_model, cfg.vocab_size, cfg.num_layers, cfg.d_ff
  N, K, H = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
  S = context + T + 64
  itemsize = jnp.dtype(cfg.jnp_dtype).itemsize
  attn_w = D * (N * H + 2 * K * H) + N * H * D
  if op == "model":
    cache = sj.init_cache(cfg, B, S)
    _, cache = sj.forward(params, cfg, jnp.ones((B, context), jnp.int32), cache)
    toks = jnp.ones((B, T), jnp.int32)

    @jax.jit
    def run(params, cache):  # as the samplers' loops: the cache is carried and rolled back
      def body(i, carry):
        cache, acc = carry
        logits, new = sj.forward(params, cfg, toks + i % 2, cache)
        return new.rollback(cache.length_B), acc + logits[0, -1, 0]
      return jax.lax.fori_loop(0, FLAGS.calls, body, (cache, jnp.zeros((), jnp.float32)))[1]
    flops = 2 * B * T * (L * (attn_w + 3 * D * F) + D * V)
    nbytes = itemsize * (L * (attn_w + 3 * D * F) + D * V)
    return run, (params, cache), flops, nbytes
  layer = params["layers_0"]
  if op == "attention":
    kv = tuple(jax.random.normal(k, (B, K, S, H), jnp.float32).astype(cfg.jnp_dtype)
               for k in jax.random.split(key))
    pos_BT = jnp.full((B, 1), context, jnp.int32) + jnp.arange(T, dtype=jnp.int32)

    def fn(i, w, x, kv):
      out, (k, v) = transformer.Attention(cfg).apply({"params": w}, _vary(x, i), pos_BT, kv)
      return (out[0, -1, 0] + k[0, 0, context, 0]).astype(jnp.float32)
    flops = 2 * B * T * (attn_w + 2 * N * H * (context + T))
    nbytes = itemsize * (attn_w + 2 * B * K * H * context)
    return _loop(fn, FLAGS.calls), (layer["attn"], x_BTD, kv), flops, nbytes
  if op == "mlp":
    def fn(i, w, x):
      return transformer.Mlp(cfg).apply({"params": w}, _vary(x, i))[0, -1, 0].astype(jnp.float32)
    return _loop(fn, FLAGS.calls), (layer["mlp"], x_BTD), 2 * B * T * 3 * D * F, \
        itemsize * 3 * D * F
  if op == "head":  # the final norm and the vocab projection, as the model does them
    norm = {"params": params["final_norm"]}
    untied = "lm_head_DV" in params
    w = params["lm_head_DV"] if untied else params["embedding_VD"]

    def fn(i, w, x):
      h = transformer.RMSNorm(cfg.norm_eps, cfg.jnp_dtype).apply(norm, _vary(x, i))
      logits = cpu_matmul.dense(h, w, nt=not untied, mode=cfg.matmul, out_dtype=jnp.float32)
      return logits[0, -1, 0]
    return _loop(fn, FLAGS.calls), (w, x_BTD), 2 * B * T * D * V, itemsize * D * V
  raise ValueError(f"unknown op {op!r}; choose from model, attention, mlp, head")


def seconds(run, args) -> float:
  jax.block_until_ready(run(*args))  # compile
  t0 = time.perf_counter()
  jax.block_until_ready(run(*args))
  return (time.perf_counter() - t0) / FLAGS.calls


def main(_):
  Ts = [int(t) for t in FLAGS.tokens]
  if Ts[0] != 1:
    raise ValueError("--tokens must start with 1 (the ratios are taken against it)")
  results = []
  print(f"backend {jax.default_backend()}, context {FLAGS.context}, calls {FLAGS.calls}, "
        f"rounds {FLAGS.rounds}")
  print(f"specjax CPU matmul kernel: {cpu_matmul.status()}")
  print("| model | dtype | B | op | matmul | t(1) ms | t(1) / xla's | " +
        " | ".join(f"r{T}" for T in Ts[1:]) + f" | GFLOP/s at T={Ts[-1]} | GB/s at T=1 |")
  print("|---|---|---|---|---|---|---|" + "---|" * (len(Ts) - 1) + "---|---|")
  for name in FLAGS.models:
    base = sj.ModelConfig.from_dict(model_configs.get_config(name))
    for dtype in FLAGS.dtypes:
      params = sj.init_params(base.replace(dtype=dtype), jax.random.key(0))
      for B in [int(b) for b in FLAGS.batches]:
        for op in FLAGS.ops:
          cases = [(m, T) for m in FLAGS.matmuls for T in Ts]
          runs = {(m, T): make_op(op, base.replace(dtype=dtype, matmul=m), params, B, T,
                                  FLAGS.context) for m, T in cases}
          per_round = [{c: seconds(*runs[c][:2]) for c in cases} for _ in range(FLAGS.rounds)]
          for m in FLAGS.matmuls:
            t1 = float(np.median([r[m, 1] for r in per_round]))
            ratios = {T: float(np.median([r[m, T] / r[m, 1] for r in per_round])) for T in Ts}
            tT = float(np.median([r[m, Ts[-1]] for r in per_round]))
            vs_xla = (float(np.median([r[m, 1] / r["xla", 1] for r in per_round]))
                      if "xla" in FLAGS.matmuls else float("nan"))
            row = dict(model=name, dtype=dtype, batch=B, op=op, matmul=m, t1_ms=1e3 * t1,
                       t1_vs_xla=vs_xla, r={str(T): ratios[T] for T in Ts},
                       gflops_at_max_T=runs[m, Ts[-1]][2] / tT / 1e9,
                       gb_s_at_1=runs[m, 1][3] / t1 / 1e9)
            results.append(row)
            print(f"| {name} | {dtype} | {B} | {op} | {m} | {row['t1_ms']:.3f} | "
                  f"{vs_xla:.2f} | " + " | ".join(f"{ratios[T]:.2f}" for T in Ts[1:]) +
                  f" | {row['gflops_at_max_T']:.1f} | {row['gb_s_at_1']:.1f} |", flush=True)
          del runs
      del params
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(dict(backend=jax.default_backend(), context=FLAGS.context,
                     kernel=cpu_matmul.status(), rows=results), f,
                indent=1)


if __name__ == "__main__":
  app.run(main)
