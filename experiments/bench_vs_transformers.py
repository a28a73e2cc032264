"""ArS greedy ms/token: specjax vs transformers' `generate` (torch, CPU), same weights.

  python -m experiments.bench_vs_transformers --config=configs/bench_vs_transformers.py:smollm2 \
      --config.new_tokens=128

Both run batch 1, float32, the same prompt ids and exactly `new_tokens` new
tokens (EOS ignored), timed in the same run (median of repeats, after a warm-up
call that compiles specjax and warms torch). The weights go to transformers
through `sj.save(..., format="safetensors")`, so both use identical tensors.
Needs the `interop` extra (torch + transformers).
"""
import json
import tempfile

import numpy as np

import specjax as sj
from experiments import common
from specjax import perf


def _check(cfg) -> None:
  """Every field, before torch is imported or the model loaded; a bad value names its field."""
  common.check_model(cfg, "model", real_only=True)
  if not cfg.prompt:
    raise ValueError("config.prompt is empty: want the prompt text")
  common.check_ints(cfg, new_tokens=1, repeats=1, torch_threads=0)


def main(cfg):
  _check(cfg)
  import torch
  import transformers
  if cfg.torch_threads:
    torch.set_num_threads(cfg.torch_threads)
  model = common.build_model(cfg.model)
  ids = model.tokenizer.encode(cfg.prompt)
  M = cfg.new_tokens
  run_sj = lambda: sj.generate(model, [ids], max_new_tokens=M, eos_id=None).tokens \
      .block_until_ready()
  t_sj = perf.median_seconds(run_sj, cfg.repeats)
  sj_tokens = np.asarray(run_sj())[0]

  with tempfile.TemporaryDirectory() as d:
    sj.save(model, d, format="safetensors")
    ref = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
  x = torch.tensor([ids])
  gen = dict(max_new_tokens=M, min_new_tokens=M, do_sample=False, num_beams=1,
             pad_token_id=model.eos_id)

  def run_hf():
    with torch.inference_mode():
      return ref.generate(x, **gen)

  t_hf = perf.median_seconds(run_hf, cfg.repeats)
  hf_tokens = run_hf()[0, len(ids):].numpy()
  same = int(np.argmin(sj_tokens == hf_tokens)) if not np.array_equal(sj_tokens, hf_tokens) else M
  res = dict(model=cfg.model, new_tokens=M, prompt_tokens=len(ids),
             specjax_ms_per_token=1e3 * t_sj / M, transformers_ms_per_token=1e3 * t_hf / M,
             transformers_over_specjax=t_hf / t_sj, identical_leading_tokens=same,
             torch_threads=torch.get_num_threads(), torch=torch.__version__,
             transformers=transformers.__version__, machine=perf.machine())
  print(json.dumps(res, indent=1))


if __name__ == "__main__":
  common.run(main, "configs/bench_vs_transformers.py:smollm2")
