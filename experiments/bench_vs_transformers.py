"""ArS greedy ms/token: specjax vs transformers' `generate` (torch, CPU), same weights.

  python -m experiments.bench_vs_transformers --config=configs/bench_vs_transformers.py:smollm2 \
      --config.new_tokens=128

Both run batch 1, float32, the same prompt ids and exactly `new_tokens` new
tokens (EOS ignored), timed in the same run (median of repeats, after a warm-up
call that compiles specjax and warms torch). The weights go to transformers
through `sj.save(..., format="safetensors")`, so both use identical tensors.
Needs the `interop` extra (torch + transformers).

Prefill (`--config.prefill_tokens=128,512,2048`, empty: skipped): for each prompt
length, specjax's prefill program as `sj.generate` runs it (timed apart from the
loop, `perf.timed_generation`, with `new_tokens` of cache room after the prompt)
against transformers' forward of the same ids with its cache and the logits of
the last position only (the same work), median of repeats, both in ms and GFLOP/s
(2 x non-embedding parameters per token + causal attention's 2 T^2 N H per layer).
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
  lengths = tuple(cfg.prefill_tokens)
  if any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in lengths):
    raise ValueError(f"config.prefill_tokens must be positive integers, got {lengths}")


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
  res["prefill"] = [_prefill(cfg, model, ref, torch, T) for T in cfg.prefill_tokens]
  print(json.dumps(res, indent=1))
  if res["prefill"]:
    print("\n| prompt tokens | specjax ms | transformers ms | specjax GFLOP/s | "
          "transformers GFLOP/s | transformers/specjax time |\n|---|---|---|---|---|---|")
    for p in res["prefill"]:
      print(f"| {p['tokens']} | {p['specjax_ms']:.0f} | {p['transformers_ms']:.0f} | "
            f"{p['specjax_gflops']:.0f} | {p['transformers_gflops']:.0f} | "
            f"{p['transformers_ms'] / p['specjax_ms']:.2f} |")


def prefill_flops(config, T: int) -> float:
  """2 x non-embedding parameters x T + causal attention (QK and PV) 2 T^2 N H, per layer."""
  c = config
  per_layer = (c.d_model * c.head_dim * (2 * c.num_heads + 2 * c.num_kv_heads)
               + 3 * c.d_model * c.d_ff)
  return 2.0 * per_layer * c.num_layers * T + 2.0 * c.num_layers * T * T * c.num_heads * c.head_dim


def _prefill(cfg, model, ref, torch, T: int) -> dict:
  """specjax's prefill program vs transformers' forward with cache, last logits, T random ids."""
  ids = np.random.default_rng(T).integers(0, model.config.vocab_size, T).tolist()
  call = lambda: sj.generate(model, [ids], max_new_tokens=cfg.new_tokens, eos_id=None)
  t_sj = float(np.median([perf.timed_generation(call)[1].prefill_seconds
                          for _ in range(cfg.repeats)]))
  x = torch.tensor([ids])

  def run_hf():
    with torch.inference_mode():
      return ref(x, use_cache=True, logits_to_keep=1).logits

  t_hf = perf.median_seconds(run_hf, cfg.repeats)
  flops = prefill_flops(model.config, T)
  return dict(tokens=T, specjax_ms=1e3 * t_sj, transformers_ms=1e3 * t_hf,
              specjax_gflops=flops / t_sj / 1e9, transformers_gflops=flops / t_hf / 1e9)


if __name__ == "__main__":
  common.run(main, "configs/bench_vs_transformers.py:smollm2")
