"""HF safetensors directories (Llama / SmolLM2 / Qwen2): import and export.

An HF directory is `config.json` + `model.safetensors` (or shards listed in
`model.safetensors.index.json`) + optionally `tokenizer.json`. HF matrices are
`nn.Linear` weights, [out, in]; HF's Q/K rows are already in rotate-half order
(the permutation is a GGUF affair), so the mapping (`weight_names`) is reshapes and
transposes only, and export -> import is bit-exact.
"""
import functools
import json
import os
from typing import Callable, Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from specjax.models import weight_names
from specjax.models.config import ModelConfig
from specjax.models.model import Model, init_params
from specjax.models.tokenizer import Tokenizer

_ARCHS = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)  # buffers some old checkpoints saved


def config_from_hf(d: Dict, source: str = "config.json") -> ModelConfig:
  if not isinstance(d, dict):
    raise ValueError(f"{source}: expected a JSON object of model settings, got "
                     f"{type(d).__name__}")
  arch = (d.get("architectures") or ["?"])[0]
  if arch not in _ARCHS and d.get("model_type") not in _ARCHS.values():
    raise ValueError(f"{source}: architecture {arch!r} (model_type {d.get('model_type')!r}) is "
                     f"not supported (supported: {sorted(_ARCHS)})")
  qwen2 = _ARCHS.get(arch, d.get("model_type")) == "qwen2"
  rope = d.get("rope_parameters") or {}  # transformers 5 moved rope_theta in here
  scaling = d.get("rope_scaling") or rope
  if scaling.get("rope_type", scaling.get("type", "default")) != "default":
    raise ValueError(f"{source}: rope scaling {scaling} is not supported")
  if d.get("hidden_act", "silu") != "silu" or d.get("mlp_bias"):
    raise ValueError(f"{source}: only SwiGLU MLPs without biases are supported "
                     f"(hidden_act {d.get('hidden_act')!r}, mlp_bias {d.get('mlp_bias')})")
  if qwen2 and d.get("use_sliding_window"):
    raise ValueError(f"{source}: sliding-window attention is not supported")
  _MISSING = object()

  def field(key, conv, default=_MISSING, zero_is_missing=False):
    v = d.get(key)
    if v is None or zero_is_missing and v == 0:
      if default is _MISSING:
        raise ValueError(f"{source}: missing field {key!r}")
      v = default
    if isinstance(v, bool) and conv is not bool or not isinstance(v, (int, float, bool)):
      raise ValueError(f"{source}: field {key!r} must be a number, got {v!r}")
    try:
      out = conv(v)
    except (ValueError, OverflowError) as e:
      raise ValueError(f"{source}: field {key!r} = {v!r} is not valid ({e})") from e
    if conv is int and out != v:
      raise ValueError(f"{source}: field {key!r} must be an integer, got {v!r}")
    return out

  heads = field("num_attention_heads", int)
  hidden = field("hidden_size", int)
  kw = dict(
      vocab_size=field("vocab_size", int), d_model=hidden,
      num_layers=field("num_hidden_layers", int), num_heads=heads,
      num_kv_heads=field("num_key_value_heads", int, heads, True),
      head_dim=field("head_dim", int, hidden // heads if heads else 0, True),
      d_ff=field("intermediate_size", int),
      rope_theta=field("rope_theta", float, rope.get("rope_theta", 10000.0)),
      norm_eps=field("rms_norm_eps", float, 1e-6),
      tie_embeddings=field("tie_word_embeddings", bool, False),
      qkv_bias=qwen2 or field("attention_bias", bool, False),
      max_len=field("max_position_embeddings", int, 2048),
      init_std=field("initializer_range", float, 0.02))
  try:
    return ModelConfig(**kw)
  except (ValueError, TypeError) as e:
    raise ValueError(f"{source}: {e}") from e


def config_to_hf(c: ModelConfig, bos_id: Optional[int] = None,
                 eos_id: Optional[int] = None) -> Dict:
  return {
      "architectures": ["LlamaForCausalLM"], "model_type": "llama",
      "vocab_size": c.vocab_size, "hidden_size": c.d_model, "intermediate_size": c.d_ff,
      "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads,
      "num_key_value_heads": c.num_kv_heads, "head_dim": c.head_dim, "hidden_act": "silu",
      "max_position_embeddings": c.max_len, "rms_norm_eps": c.norm_eps,
      "rope_theta": c.rope_theta, "rope_scaling": None, "tie_word_embeddings": c.tie_embeddings,
      # Llama's attention_bias also gives o_proj a bias: exported as zeros.
      "attention_bias": c.qkv_bias, "attention_dropout": 0.0, "mlp_bias": False,
      "initializer_range": c.init_std, "bos_token_id": bos_id, "eos_token_id": eos_id,
      "torch_dtype": c.dtype, "use_cache": True}


def _o_bias(i: int) -> str:
  # Llama's attention_bias also gives o_proj a bias, which specjax lacks: exported as zeros,
  # and must be zero on import. Qwen2 has none.
  return f"model.layers.{i}.self_attn.o_proj.bias"


def _hf_layout(c: ModelConfig, params) -> Dict:
  """specjax params -> {HF tensor name: [out, in] array}; array methods only, so that it
  runs on numpy arrays and, under `jax.eval_shape`, on shapes."""
  t = weight_names.tensors_of(c, params, "hf")
  for i in range(c.num_layers if c.qkv_bias else 0):
    dtype = weight_names.lookup(params, f"layers_{i}/attn/bq_NH").dtype
    t[_o_bias(i)] = np.zeros((c.d_model,), dtype)
  return t


def params_to_hf(c: ModelConfig, params) -> Dict[str, np.ndarray]:
  """specjax params -> {HF tensor name: numpy [out, in]}, in the params' dtype."""
  t = _hf_layout(c, jax.tree.map(np.asarray, params))
  return {k: np.ascontiguousarray(v) for k, v in t.items()}


def hf_shapes(c: ModelConfig) -> Dict[str, jax.ShapeDtypeStruct]:
  """The HF name and shape of every tensor a model with config `c` needs."""
  abstract = jax.eval_shape(functools.partial(init_params, c), jax.random.key(0))
  return jax.eval_shape(functools.partial(_hf_layout, c), abstract)


def params_from_hf(c: ModelConfig, get: Callable[[str], np.ndarray]) -> Dict:
  """The inverse of `params_to_hf`; `get(name)` returns a (shape-checked) tensor."""
  return weight_names.params_of(c, get, "hf")


def _weight_files(directory: str) -> Dict[str, str]:
  """{tensor name: file} from the shard index, or from the single model.safetensors."""
  index = os.path.join(directory, "model.safetensors.index.json")
  single = os.path.join(directory, "model.safetensors")
  if os.path.exists(index):
    try:
      with open(index) as f:
        weight_map = json.load(f)["weight_map"]
    except (ValueError, KeyError) as e:
      raise ValueError(f"{index}: not a valid shard index ({e})") from e
    return {k: os.path.join(directory, v) for k, v in weight_map.items()}
  if not os.path.exists(single):
    raise ValueError(f"{directory}: no model.safetensors or model.safetensors.index.json")
  try:
    with safe_open(single, "np") as f:
      return {k: single for k in f.keys()}
  except Exception as e:
    raise ValueError(f"{single}: cannot read the safetensors header ({e})") from e


def load_hf(directory: str, dtype: str = "float32", name: Optional[str] = None) -> Model:
  """A `Model` from an HF Llama/Qwen2 safetensors directory (tokenizer if present)."""
  directory = os.fspath(directory)
  cfg_path = os.path.join(directory, "config.json")
  try:
    with open(cfg_path) as f:
      hf_cfg = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"{cfg_path}: cannot read the model config ({e})") from e
  cfg = config_from_hf(hf_cfg, cfg_path).replace(dtype=dtype)
  files = _weight_files(directory)
  expected = hf_shapes(cfg)
  handles = {}

  def get(key):
    if key not in files:
      raise ValueError(f"{directory}: missing tensor {key}")
    path = files[key]
    try:
      if path not in handles:
        handles[path] = safe_open(path, "np")
      x = handles[path].get_tensor(key)
    except Exception as e:
      raise ValueError(f"{path}: cannot read tensor {key} ({e})") from e
    if x.shape != expected[key].shape:
      raise ValueError(f"{path}: tensor {key} has shape {x.shape}, config.json implies "
                       f"{expected[key].shape}")
    return jnp.asarray(x, cfg.jnp_dtype)

  unexpected = sorted(set(files) - set(expected) - {"lm_head.weight"}
                      - {k for k in files if k.endswith(_IGNORED_SUFFIXES)})
  if unexpected:
    raise ValueError(f"{directory}: unexpected tensor {unexpected[0]} (and "
                     f"{len(unexpected) - 1} more): an unsupported architecture variant?")
  params = params_from_hf(cfg, get)
  for key in map(_o_bias, range(cfg.num_layers)):
    if key in files and np.any(np.asarray(get(key)) != 0):
      raise ValueError(f"{directory}: tensor {key} is nonzero; an output-projection bias is "
                       "not supported")
  tok = Tokenizer.from_hf(directory, hf_cfg) \
      if os.path.exists(os.path.join(directory, "tokenizer.json")) else None
  eos = tok.eos_id if tok is not None else hf_cfg.get("eos_token_id")
  eos = eos[0] if isinstance(eos, list) else eos
  return Model(cfg, params, tokenizer=tok, eos_id=eos,
               name=name or os.path.basename(os.path.normpath(directory)))


def save_hf(model: Model, directory: str) -> None:
  """Writes an HF Llama directory transformers loads: config.json, model.safetensors, tokenizer."""
  directory = os.fspath(directory)
  os.makedirs(directory, exist_ok=True)
  tok = model.tokenizer
  bos = tok.bos_id if tok is not None else None
  eos = model.eos_id if model.eos_id is not None else (tok.eos_id if tok is not None else None)
  with open(os.path.join(directory, "config.json"), "w") as f:
    json.dump(config_to_hf(model.config, bos, eos), f, indent=2)
  save_file(params_to_hf(model.config, model.params),
            os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
  if tok is not None:
    tok.save_hf(directory)
