"""SpS (and ArS) tokens/s on one device vs meshes, and whether the tokens match.

  python -m experiments.bench_mesh --config=configs/bench_mesh.py:tiny --cpu_devices=8 \
      --config.meshes="('1x1', '1x8', '2x4', '8x1')"
  python -m experiments.bench_mesh --config=configs/bench_mesh.py:smollm2 --cpu_devices=8

On this 2-core machine 8 simulated devices cannot be faster than one: the
point is that the same program runs sharded and gives the same tokens. On a
GPU/TPU host the same command measures real scaling.
"""
import json
import math

import jax
import numpy as np

import specjax as sj
from experiments import common
from specjax import perf


def _shape(spec: str):
  try:
    shape = tuple(int(x) for x in spec.split("x"))
  except ValueError:
    shape = ()
  if len(shape) != 2 or min(shape) < 1:
    raise ValueError(f"config.meshes: {spec!r} is not DATAxMODEL (e.g. '2x4')")
  return shape


def check_config(cfg) -> None:
  """Every config error, raised before a model loads (the device count is known by now)."""
  common.check_ints(cfg, batch=1, k=1, new_tokens=1, repeats=1)
  common.check_model(cfg, "target")
  common.check_drafter(cfg, "draft")
  common.check_names(cfg, "meshes", "'DxM'")
  for spec in cfg.meshes:
    n = math.prod(_shape(spec))
    if n != 1 and n != jax.device_count():
      raise ValueError(f"config.meshes: {spec!r} needs {n} devices, there are "
                       f"{jax.device_count()} (CPU: --cpu_devices={n})")
  common.rules_from_name(cfg.rules)


def main(cfg) -> None:
  check_config(cfg)
  target = common.build_model(cfg.target)
  draft = sj.build_drafter(cfg.draft, target)
  rng = np.random.default_rng(0)
  prompts = [rng.integers(0, target.config.vocab_size, 8 + 3 * b).tolist()
             for b in range(cfg.batch)]
  rows, ref = [], {}
  for spec in cfg.meshes:
    shape = _shape(spec)
    mesh = None if shape == (1, 1) else sj.sharding.make_mesh(shape)
    rules = common.rules_from_name(cfg.rules) if mesh else None
    kw = dict(max_new_tokens=cfg.new_tokens, eos_id=None, mesh=mesh, rules=rules)
    for name, fn in [("ArS", lambda: sj.generate(target, prompts, **kw)),
                     ("SpS", lambda: sj.speculative_generate(
                         target, draft, prompts, k=cfg.k,
                         draft_rules=sj.sharding.REPLICATED_RULES if mesh else None, **kw))]:
      out = fn()  # compiles
      best = min(perf.timed(lambda: fn().tokens)[1] for _ in range(cfg.repeats))
      toks = np.asarray(out.tokens)
      ref.setdefault(name, toks)
      rows.append(dict(mesh=spec, sampler=name, tokens_per_s=float(np.sum(out.lengths)) / best,
                       same_tokens_as_1x1=bool(np.array_equal(toks, ref[name]))))
      if jax.process_index() == 0:
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
  common.run(main, "configs/bench_mesh.py:tiny")
