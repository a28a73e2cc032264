"""Helpers shared by the experiment mains: building models/drafters from strings, timing."""
import time
from typing import Callable

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

import specjax as sj
from configs import model as model_configs


def build_model(spec: str, dtype: str = "float32", seed: int = 0) -> sj.Model:
  """`random:<preset>` (configs/model.py, random weights) or anything `sj.load` takes."""
  if spec.startswith("random:"):
    cfg = sj.ModelConfig.from_dict(model_configs.get_config(spec.split(":", 1)[1]))
    return sj.init_model(cfg.replace(dtype=dtype), jax.random.key(seed), name=spec)
  return sj.load(spec, dtype=dtype)


def sampling(cfg) -> sj.Sampling:
  """A `configs.common.sampling` sub-config as the library's `sj.Sampling`."""
  return sj.Sampling(cfg.temperature, cfg.top_k, cfg.top_p)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
  """Median wall time of fn() after one warm-up (compiling) call; fn must block."""
  fn()
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    ts.append(time.perf_counter() - t0)
  return float(np.median(ts))


def draft_seconds_per_token(draft: sj.Model, k: int, context: int = 64) -> float:
  """A model drafter's seconds per drafted token: one 2-token call, then k - 1 1-token calls."""
  return (seconds_per_call(draft, 2, context) + (k - 1) * seconds_per_call(draft, 1, context)) / k


def seconds_per_call(model: sj.Model, tokens_per_call: int, context: int = 64,
                     calls: int = 16, repeats: int = 3) -> float:
  """Seconds per forward call of `tokens_per_call` tokens at batch 1 after `context` tokens.

  The calls run inside one jitted fori_loop (as in the samplers' loops), each
  rolling the cache back so that every call sees the same context length.
  """
  cfg = model.config
  cache = sj.init_cache(cfg, 1, context + tokens_per_call + 64)
  _, cache = sj.forward(model.params, cfg, jnp.ones((1, context), jnp.int32), cache)
  toks = jnp.ones((1, tokens_per_call), jnp.int32)

  @jax.jit
  def run(params, cache):
    def body(i, carry):
      cache, acc = carry
      logits, new = sj.forward(params, cfg, toks + i % 2, cache)
      return new.rollback(cache.length_B), acc + logits[0, -1, 0]
    return jax.lax.fori_loop(0, calls, body, (cache, jnp.zeros((), jnp.float32)))[1]

  return median_seconds(lambda: run(model.params, cache).block_until_ready(), repeats) / calls


# ---- multi-host: flags shared by every experiment main ----
flags.DEFINE_string("coordinator_address", None,
                    "host:port of process 0 for jax.distributed (None: single process, or "
                    "auto-detected on TPU VMs with --distributed)")
flags.DEFINE_integer("num_processes", None, "number of processes (jax.distributed)")
flags.DEFINE_integer("process_id", None, "this process's index (jax.distributed)")
flags.DEFINE_bool("distributed", False, "call jax.distributed.initialize() with no arguments "
                  "(TPU VMs, Slurm, Open MPI detect the cluster themselves)")
flags.DEFINE_integer("cpu_devices", None, "simulated CPU devices per process (CPU runs)")


def init_distributed() -> None:
  """Joins the processes when the flags ask for it; prints who is who."""
  F = flags.FLAGS
  if F.coordinator_address or F.distributed:
    sj.sharding.initialize_distributed(F.coordinator_address, F.num_processes, F.process_id,
                                       cpu_devices=F.cpu_devices)
  elif F.cpu_devices:
    jax.config.update("jax_num_cpu_devices", F.cpu_devices)
  if jax.process_count() > 1:
    print(f"process {jax.process_index()}/{jax.process_count()}: "
          f"{jax.local_device_count()} local of {jax.device_count()} devices", flush=True)


def mesh_from_config(cfg):
  """`cfg.mesh_shape` (e.g. (2, 4), or (-1, 4)) -> a Mesh over all devices; () -> None."""
  shape = tuple(cfg.get("mesh_shape") or ())
  return sj.sharding.make_mesh(shape) if shape else None


def rules_from_name(name: str):
  table = {"default": sj.sharding.DEFAULT_RULES, "replicated": sj.sharding.REPLICATED_RULES}
  if name not in table:
    raise ValueError(f"unknown sharding rules {name!r}; choose from {sorted(table)}")
  return table[name]
