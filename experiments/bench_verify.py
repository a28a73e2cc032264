"""Verification cost on this backend: r_T = t(T tokens) / t(1 token), whole model and per op.

  python -m experiments.bench_verify --config=configs/bench_verify.py:default  # 135M, ~1B shapes
  python -m experiments.bench_verify --config=configs/bench_verify.py:default \
      --config.models=random:smollm2_135m --config.dtypes=float32 --config.batches=1

Speculative sampling pays when scoring T = K + 1 tokens costs about what
scoring 1 does (r_T near 1). For each model (`random:<preset>`: random weights
in a configs/model.py shape), dtype, batch B and T, this measures after
`context` cached tokens, in one jit each (a fori_loop of `calls` calls whose
inputs change every call, so nothing is hoisted):
- `model`: one `sj.forward` call with the KV cache (what a verification does);
- `attention`, `mlp`: one layer's attention (projections, RoPE, cache read and
  write) and SwiGLU MLP; `head`: the final norm and vocab projection.
Each T's time is divided by T = 1's at the same model, dtype, batch and op;
rounds alternate over all T so that a slow spell hits them all; medians of
the per-round ratios are printed, with the 1-token ms, GFLOP/s and GB/s.
"""
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np

import specjax as sj
from experiments import common
from specjax import perf
from specjax.kernels import cpu_matmul
from specjax.models import transformer
from specjax.workdir import write_json

OPS, MATMULS = ("model", "attention", "mlp", "head"), ("xla", "auto")
DTYPES = ("float32", "bfloat16", "float16")  # ModelConfig's


def _check(cfg) -> None:
  """Every field, before any model is built; a bad value is named by its field."""
  def need(field, ok, want):
    if not ok:
      raise ValueError(f"config.{field} = {cfg[field]!r}: want {want}")
  common.check_names(cfg, "models", "models")
  common.check_model(cfg, "models")
  need("dtypes", cfg.dtypes and set(cfg.dtypes) <= set(DTYPES), f"some of {DTYPES}")
  need("batches", cfg.batches and min(cfg.batches) >= 1, "sizes >= 1")
  need("tokens", cfg.tokens and cfg.tokens[0] == 1 and min(cfg.tokens) >= 1,
       "counts >= 1, the first 1 (the ratios are taken against it)")
  need("ops", cfg.ops and set(cfg.ops) <= set(OPS), f"some of {OPS}")
  need("matmuls", cfg.matmuls and set(cfg.matmuls) <= set(MATMULS), f"some of {MATMULS}")
  common.check_ints(cfg, context=1, calls=1, rounds=1)


def _loop(fn, calls):
  """jit(fori_loop of `calls` fn(i) calls) summing a scalar of each output."""
  return jax.jit(lambda *args: jax.lax.fori_loop(
      0, calls, lambda i, acc: acc + fn(i, *args), jnp.zeros((), jnp.float32)))


def _vary(x, i):
  """x, changed with the loop index so that XLA cannot hoist the call out of the loop."""
  return x * (1 + i.astype(x.dtype) * jnp.asarray(1e-3, x.dtype))


def make_op(op: str, cfg: sj.ModelConfig, params, B: int, T: int, context: int, calls: int):
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

    @jax.jit
    def run(params, cache):  # as the samplers' loops: the cache is carried and rolled back
      def body(i, carry):
        cache, acc = carry
        logits, new = sj.forward(params, cfg, jnp.ones((B, T), jnp.int32) + i % 2, cache)
        return new.rollback(cache.length_B), acc + logits[0, -1, 0]
      return jax.lax.fori_loop(0, calls, body, (cache, jnp.zeros((), jnp.float32)))[1]
    weights = L * (attn_w + 3 * D * F) + D * V
    return run, (params, cache), 2 * B * T * weights, itemsize * weights
  layer = params["layers_0"]
  if op == "attention":
    kv = tuple(jax.random.normal(k, (B, K, S, H), jnp.float32).astype(cfg.jnp_dtype)
               for k in jax.random.split(key))
    pos_BT = jnp.full((B, 1), context, jnp.int32) + jnp.arange(T, dtype=jnp.int32)

    def fn(i, w, x, kv):
      out, (k, v) = transformer.Attention(cfg).apply({"params": w}, _vary(x, i), pos_BT, kv)
      return (out[0, -1, 0] + k[0, 0, context, 0]).astype(jnp.float32)
    return (_loop(fn, calls), (layer["attn"], x_BTD, kv),
            2 * B * T * (attn_w + 2 * N * H * (context + T)),
            itemsize * (attn_w + 2 * B * K * H * context))
  if op == "mlp":
    def fn(i, w, x):
      return transformer.Mlp(cfg).apply({"params": w}, _vary(x, i))[0, -1, 0].astype(jnp.float32)
    return _loop(fn, calls), (layer["mlp"], x_BTD), 2 * B * T * 3 * D * F, itemsize * 3 * D * F
  # head: the final norm and the vocab projection, as the model does them
  norm = {"params": params["final_norm"]}
  w = params["embedding_VD"] if cfg.tie_embeddings else params["lm_head_DU"]

  def fn(i, w, x):
    h = transformer.RMSNorm(cfg.norm_eps, cfg.jnp_dtype).apply(norm, _vary(x, i))
    return cpu_matmul.dense(h, w, nt=cfg.tie_embeddings, mode=cfg.matmul,
                            out_dtype=jnp.float32)[0, -1, 0]
  return _loop(fn, calls), (w, x_BTD), 2 * B * T * D * V, itemsize * D * V


def main(cfg):
  _check(cfg)
  Ts, results = list(cfg.tokens), []
  print(f"backend {jax.default_backend()}, context {cfg.context}, calls {cfg.calls}, "
        f"rounds {cfg.rounds}\nspecjax CPU matmul kernel: {cpu_matmul.status()}\n"
        "| model | dtype | B | op | matmul | t(1) ms | t(1) / xla's | " +
        " | ".join(f"r{T}" for T in Ts[1:]) + f" | GFLOP/s at T={Ts[-1]} | GB/s at T=1 |")
  print("|---|---|---|---|---|---|---|" + "---|" * (len(Ts) - 1) + "---|---|")
  for name, dtype in itertools.product(cfg.models, cfg.dtypes):
    model = common.build_model(name, dtype)
    for B, op in itertools.product(cfg.batches, cfg.ops):
      cases = list(itertools.product(cfg.matmuls, Ts))
      runs = {(m, T): make_op(op, model.config.replace(matmul=m), model.params, B, T,
                              cfg.context, cfg.calls) for m, T in cases}
      per_round = [{c: perf.timed(functools.partial(runs[c][0], *runs[c][1]))[1] / cfg.calls
                    for c in cases}
                   for _ in range(cfg.rounds)]
      med = lambda f: float(np.median([f(r) for r in per_round]))
      for m in cfg.matmuls:
        t1, tT = med(lambda r: r[m, 1]), med(lambda r: r[m, Ts[-1]])
        ratios = {T: med(lambda r: r[m, T] / r[m, 1]) for T in Ts}
        vs_xla = med(lambda r: r[m, 1] / r["xla", 1]) if "xla" in cfg.matmuls else float("nan")
        row = dict(model=name, dtype=dtype, batch=B, op=op, matmul=m, t1_ms=1e3 * t1,
                   t1_vs_xla=vs_xla, r={str(T): ratios[T] for T in Ts},
                   gflops_at_max_T=runs[m, Ts[-1]][2] / tT / 1e9,
                   gb_s_at_1=runs[m, 1][3] / t1 / 1e9)
        results.append(row)
        print(f"| {name} | {dtype} | {B} | {op} | {m} | {row['t1_ms']:.3f} | {vs_xla:.2f} | "
              + " | ".join(f"{ratios[T]:.2f}" for T in Ts[1:]) +
              f" | {row['gflops_at_max_T']:.1f} | {row['gb_s_at_1']:.1f} |", flush=True)
      del runs  # compiled programs and caches of this op, before the next one's
    del model
  if cfg.out:
    write_json(cfg.out, dict(backend=jax.default_backend(), machine=perf.machine(),
                             context=cfg.context, kernel=cpu_matmul.status(), rows=results))


if __name__ == "__main__":
  common.run(main, "configs/bench_verify.py:default")
