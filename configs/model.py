"""Model shape presets: `get_config("tiny" | "smollm2_135m" | "chinchilla_70b" | ...)`.

Each returns the ConfigDict of a `specjax.ModelConfig`: the preset's fields over
ModelConfig's defaults (random weights, named `random:<preset>` in flags; real
weights come from `sj.load`, e.g. `smollm2-135m`). Chinchilla-style shapes follow Hoffmann et al.
2022 (Table A9 shapes for the small ones; 70B: 80 layers, d_model 8192, 64
heads of 128) and the 4B draft of Chen et al. 2023 (8 layers, d_model 6144),
rendered in the Llama family (RMSNorm, SwiGLU, RoPE) with a 32k vocab.
"""
import dataclasses

import ml_collections

from specjax.models.config import ModelConfig

PRESETS = {
    # Tests: small enough to compile in a second or two on CPU.
    "tiny": dict(vocab_size=64, d_model=64, num_layers=2, num_heads=4, num_kv_heads=2,
                 head_dim=16, d_ff=128, max_len=512),
    # Tiny, with every sharded dimension divisible by 8 (mesh tests and examples).
    # init_std 0.3: peaked, context-dependent outputs (0.02 repeats one token).
    "tiny_shardable": dict(vocab_size=64, d_model=64, num_layers=2, num_heads=16,
                           num_kv_heads=8, head_dim=8, d_ff=128, max_len=512, init_std=0.3),
    # SmolLM2-135M's shapes (random weights), for benchmarks without the real model.
    "smollm2_135m": dict(vocab_size=49152, d_model=576, num_layers=30, num_heads=9,
                         num_kv_heads=3, head_dim=64, d_ff=1536, rope_theta=100000.0,
                         tie_embeddings=True, max_len=8192),
    # A ~1B Llama-shaped model (for scaling benchmarks).
    "llama_1b": dict(vocab_size=32000, d_model=2048, num_layers=16, num_heads=32,
                     num_kv_heads=8, head_dim=64, d_ff=8192, rope_theta=500000.0,
                     tie_embeddings=True, max_len=8192),
    "chinchilla_44m": dict(vocab_size=32000, d_model=512, num_layers=8, num_heads=8,
                           num_kv_heads=8, head_dim=64, d_ff=2048, tie_embeddings=False),
    "chinchilla_90m": dict(vocab_size=32000, d_model=640, num_layers=13, num_heads=10,
                           num_kv_heads=10, head_dim=64, d_ff=2560, tie_embeddings=False),
    "chinchilla_4b_draft": dict(vocab_size=32000, d_model=6144, num_layers=8, num_heads=48,
                                num_kv_heads=48, head_dim=128, d_ff=24576,
                                tie_embeddings=False),
    "chinchilla_70b": dict(vocab_size=32000, d_model=8192, num_layers=80, num_heads=64,
                           num_kv_heads=64, head_dim=128, d_ff=32768, tie_embeddings=False),
}


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
  """Every `ModelConfig` field: the preset's values over ModelConfig's own defaults."""
  if arg not in PRESETS:
    raise ValueError(f"unknown model preset {arg!r}; choose from {sorted(PRESETS)}")
  return ml_collections.ConfigDict(dataclasses.asdict(ModelConfig(**PRESETS[arg])))
