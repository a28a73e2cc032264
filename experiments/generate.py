"""Generate with `sj.generate` and print the text/tokens and the measured ms/token.

  python experiments/generate.py --config=configs/generate.py:tiny
  python experiments/generate.py --config=configs/generate.py:smollm2 \
      --config.prompt='def fibonacci(n):' --config.max_new_tokens=64
"""
import time

from absl import app, flags
import jax
from ml_collections import config_flags
import numpy as np

import specjax as sj
from experiments.common import build_model

_CONFIG = config_flags.DEFINE_config_file("config", "configs/generate.py:tiny")


def main(_):
  cfg = _CONFIG.value
  model = build_model(cfg.model, cfg.dtype, cfg.seed)
  if cfg.prompt:
    prompt = sj.chat_prompt(cfg.prompt) if cfg.chat else cfg.prompt
  else:
    prompt = list(cfg.prompt_ids)
  sampling = sj.Sampling(**cfg.sampling)
  kw = dict(max_new_tokens=cfg.max_new_tokens, sampling=sampling,
            key=jax.random.key(cfg.seed), **({} if cfg.eos else dict(eos_id=None)))
  prompts = [prompt] * cfg.batch
  t0 = time.perf_counter()
  out = sj.generate(model, prompts, **kw)
  out.tokens.block_until_ready()
  first_s = time.perf_counter() - t0
  times = []
  for _ in range(cfg.timing_repeats):
    t0 = time.perf_counter()
    out = sj.generate(model, prompts, **kw)
    out.tokens.block_until_ready()
    times.append(time.perf_counter() - t0)
  n = int(np.max(np.asarray(out.lengths)))
  print(f"model: {model.name} ({model.num_params / 1e6:.1f}M params, {cfg.dtype}, "
        f"backend {jax.default_backend()})")
  print(f"prompt: {prompt!r}")
  for b in range(min(cfg.batch, 4)):
    print(f"row {b} tokens: {out.row(b)}")
    if out.texts is not None:
      print(f"row {b} text: {out.texts[b]!r}")
  best = min(times) if times else first_s
  print(f"new tokens: {n} per row; first call (with compile) {first_s:.2f} s; "
        f"timed: {1e3 * best / n:.2f} ms/token ({cfg.batch} rows, whole call incl. prefill)")


if __name__ == "__main__":
  app.run(main)
