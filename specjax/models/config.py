"""ModelConfig: the frozen description of a Llama-family decoder."""
import dataclasses
from typing import Any, Mapping, Tuple

import jax.numpy as jnp
import numpy as np

from specjax.checks import as_float, as_int

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Architecture of a decoder-only Llama-family transformer.

  Covers Llama / SmolLM2 / Qwen2-style models: RMSNorm, rotate-half RoPE with
  `rope_theta`, grouped-query attention (`num_kv_heads` divides `num_heads`),
  SwiGLU MLP, tied or untied embeddings, a configurable `head_dim`, optional
  q/k/v biases (Qwen2). Hashable, so it can be a static jit argument.
  """
  vocab_size: int = 256
  d_model: int = 64
  num_layers: int = 2
  num_heads: int = 4
  num_kv_heads: int = 2
  head_dim: int = 16
  d_ff: int = 128
  rope_theta: float = 10_000.0
  norm_eps: float = 1e-5
  tie_embeddings: bool = True
  qkv_bias: bool = False
  max_len: int = 2048  # longest sequence (prompt + generated) the model accepts
  dtype: str = "float32"  # parameter and activation dtype; softmax/warping stay float32
  init_std: float = 0.02
  # Draft-model options (0 = off). sub_vocab: the head predicts only `sub_vocab` of the
  # vocab_size ids (the int param `vocab_ids_U`, e.g. the most frequent tokens); every
  # other id gets logit -inf, so a draft's q is zero there and the accept rule stays
  # lossless while the head costs U/V of a full one. Tied: one [U + 1, D] table serves
  # input and output (ids outside the subset embed as row U); untied: the input
  # embedding stays [V, D] (e.g. shared with the target) and the head is [D, U].
  sub_vocab: int = 0
  # adapter_dim: a residual SwiGLU MLP of this width after the last layer, its output
  # projection zero-initialised (starts as the identity): a trainable adapter on a
  # self-draft (the target's first layers), whose own layers stay frozen.
  adapter_dim: int = 0
  # How decode-sized products (<= 6 rows, kernels.cpu_matmul.MAX_ROWS) run: "auto" routes fp32 ones on CPU through
  # specjax's FFI kernel when it is built (specjax/kernels/cpu_matmul.py); "xla" keeps
  # XLA's dot everywhere. GPU/TPU lowering uses XLA's dot either way.
  matmul: str = "auto"
  # A feature draft (EAGLE-3 style, models/feature_draft.py): the target layers whose
  # residual streams it reads; () = an ordinary decoder. Such a config has num_layers 1.
  feature_layers: Tuple[int, ...] = ()

  def __post_init__(self):
    for f in dataclasses.fields(self):  # a config read from JSON may hold anything
      v = getattr(self, f.name)
      if f.type is int:
        object.__setattr__(self, f.name, as_int(f"ModelConfig.{f.name}", v))
      if f.type is float:
        object.__setattr__(self, f.name, as_float(f"ModelConfig.{f.name}", v))
      if f.type is bool and not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"ModelConfig.{f.name} must be true or false, got {v!r}")
    if not isinstance(self.feature_layers, (tuple, list)):
      raise ValueError(f"ModelConfig.feature_layers must be a list of layer indices, got "
                       f"{self.feature_layers!r}")
    object.__setattr__(self, "feature_layers", tuple(
        as_int("ModelConfig.feature_layers[]", i) for i in self.feature_layers))
    for name in ("vocab_size", "d_model", "num_layers", "num_heads", "num_kv_heads",
                 "head_dim", "d_ff", "max_len"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"ModelConfig.num_heads ({self.num_heads}) must be a multiple of "
                       f"num_kv_heads ({self.num_kv_heads})")
    if not 0 <= self.sub_vocab < self.vocab_size:
      raise ValueError(f"ModelConfig.sub_vocab must be in [0, vocab_size={self.vocab_size}), "
                       f"got {self.sub_vocab}")
    if self.adapter_dim < 0:
      raise ValueError(f"ModelConfig.adapter_dim must be >= 0, got {self.adapter_dim}")
    if self.head_dim % 2:
      raise ValueError(f"ModelConfig.head_dim must be even for RoPE, got {self.head_dim}")
    if self.matmul not in ("auto", "xla"):
      raise ValueError(f"ModelConfig.matmul must be 'auto' or 'xla', got {self.matmul!r}")
    if self.dtype not in _DTYPES:
      raise ValueError(f"ModelConfig.dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")

  @property
  def jnp_dtype(self):
    return _DTYPES[self.dtype]

  @property
  def head_vocab(self) -> int:
    """How many ids the output head scores (U with sub_vocab, else V)."""
    return self.sub_vocab or self.vocab_size

  def replace(self, **kw) -> "ModelConfig":
    return dataclasses.replace(self, **kw)

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "ModelConfig":
    """Builds a config from a mapping (e.g. a ConfigDict); unknown keys are an error."""
    d = dict(d)
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
      raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
    return cls(**d)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)
