"""Generate with `sj.generate` (and `sj.speculative_generate` when a draft is set).

Prints the tokens/text and the measured ms/token of each sampler, side by side.

  python -m experiments.generate --config=configs/generate.py:tiny
  python -m experiments.generate --config=configs/generate.py:smollm2 \
      --config.prompt='def fibonacci(n):' --config.max_new_tokens=64 --config.draft=lookup:3
  python -m experiments.generate --config=configs/generate.py:tiny_mesh --cpu_devices=8
Multi-host: add --coordinator_address=HOST:PORT --num_processes=N --process_id=I
(see launch/multihost_local.sh), or --distributed on a TPU VM (launch/tpu_vm.sh).
"""
import time

import jax
import numpy as np

import specjax as sj
from experiments import common


def _timed(fn, repeats):
  t0 = time.perf_counter()
  out = fn()
  out.tokens.block_until_ready()
  first = time.perf_counter() - t0
  best = first
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn().tokens.block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return out, first, best


def check(cfg):
  """Every config error, before any model is built; each names its field."""
  common.check_model(cfg, "model")
  common.check_ints(cfg, seed=0, batch=1, max_new_tokens=1, timing_repeats=0, k=1)
  common.check_sampling(cfg)
  common.check_drafter(cfg)
  if not cfg.prompt and (not cfg.prompt_ids or any(
      isinstance(t, bool) or not isinstance(t, int) or t < 0 for t in cfg.prompt_ids)):
    raise ValueError(f"config.prompt_ids must be a non-empty tuple of token ids >= 0 (used when "
                     f"config.prompt is empty), got {cfg.prompt_ids!r}")
  for field in ("rules", "draft_rules"):
    common.rules_from_name(cfg[field])
  return common.mesh_from_config(cfg)


def main(cfg):
  lead = jax.process_index() == 0
  mesh = check(cfg)
  model = common.build_model(cfg.model, cfg.dtype, cfg.seed)
  if cfg.prompt:
    prompt = sj.chat_prompt(cfg.prompt) if cfg.chat else cfg.prompt
  else:
    prompt = list(cfg.prompt_ids)
  kw = dict(max_new_tokens=cfg.max_new_tokens, sampling=common.sampling(cfg.sampling),
            key=jax.random.key(cfg.seed), mesh=mesh,
            rules=common.rules_from_name(cfg.rules) if mesh else None,
            **({} if cfg.eos else dict(eos_id=None)))
  prompts = [prompt] * cfg.batch
  runs = [("ArS", lambda: sj.generate(model, prompts, **kw))]
  if cfg.draft:
    draft = sj.build_drafter(cfg.draft, model, cfg.dtype)
    draft_rules = common.rules_from_name(cfg.draft_rules) if mesh else None
    runs.append((f"SpS k={cfg.k} draft={cfg.draft}", lambda: sj.speculative_generate(
        model, draft, prompts, k=cfg.k, draft_rules=draft_rules, **kw)))
  if lead:
    print(f"model: {model.name} ({model.num_params / 1e6:.1f}M params, {cfg.dtype}, backend "
          f"{jax.default_backend()}, {jax.device_count()} devices, mesh "
          f"{dict(mesh.shape) if mesh else None})")
    print(f"prompt: {prompt!r}")
  for name, fn in runs:
    out, first, best = _timed(fn, cfg.timing_repeats)
    if not lead:
      continue
    n = int(np.max(np.asarray(out.lengths)))
    print(f"--- {name}")
    for b in range(min(cfg.batch, 2)):
      print(f"row {b} tokens: {out.row(b)}")
      if out.texts is not None:
        print(f"row {b} text: {out.texts[b]!r}")
    print(f"new tokens: {n} per row; first call (with compile) {first:.2f} s; "
          f"{1e3 * best / n:.2f} ms/token ({cfg.batch} rows, whole call incl. prefill)")
    print(f"stats: {out.stats.summary()}")


if __name__ == "__main__":
  common.run(main, "configs/generate.py:tiny")
