"""GGUF (llama.cpp) import: read, dequantize, un-permute Q/K; and a float32 GGUF writer.

Layouts. numpy gives a GGUF matrix as [out, in] (ggml lists dims innermost
first, so the file's `[576, 49152]` embedding is numpy's [V, D]). llama.cpp's
converter permutes the rows of Q and K of `llama` models so that its
interleaved-pair RoPE equals HF's rotate-half one; specjax uses rotate-half,
so reading undoes the permutation (writing redoes it). `qwen2` files are
stored unpermuted (llama.cpp runs them with rotate-half "NEOX" RoPE).
"""
import os
import warnings
from typing import Dict, Optional, Tuple

import gguf
import jax
import jax.numpy as jnp
import numpy as np

from specjax.models import weight_names
from specjax.models.config import ModelConfig
from specjax.models.model import Model
from specjax.models.tokenizer import Tokenizer

_PERMUTED = {"llama": True, "qwen2": False}  # supported architectures


def _f32(x) -> float:
  return float(str(np.float32(x)))  # 9.99999974e-06 stored as float32 -> 1e-05


class _Reader(gguf.GGUFReader):
  """GGUFReader that names the tensor a truncated file cuts off.

  The stock reader maps every tensor while it parses the header, so a short
  file fails there with a bare numpy reshape error; this checks each tensor's
  extent first. It hooks a private method of gguf 0.17-0.19 (pinned in
  setup.py); should its field layout change, the check is skipped, not fatal.
  """

  def _build_tensors(self, start_offs, fields):
    size = len(self.data)
    for field in fields:
      try:  # parts: name length, name, n_dims, dims, type, offset
        name, dims, ggml_type, offset = (field.parts[i] for i in (1, 3, 4, 5))
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(int(ggml_type[0]))]
        end = int(start_offs + offset[0]) + int(np.prod(dims)) * type_size // block
        name = bytes(name).decode("utf-8", "replace")
      except (IndexError, KeyError, TypeError, ValueError):
        break
      if end > size:
        raise _Truncated(f"tensor {name} ends at byte {end} but the file has {size} bytes "
                         "(truncated)")
    super()._build_tensors(start_offs, fields)


class _Truncated(ValueError):
  pass


def _open(path: str) -> gguf.GGUFReader:
  with open(path, "rb") as f:
    magic = f.read(4)
  if magic != b"GGUF":
    raise ValueError(f"{path} is not a GGUF file (starts with {magic!r}, expected b'GGUF')")
  try:
    return _Reader(path)
  except _Truncated as e:
    raise ValueError(f"{path}: {e}") from e
  except Exception as e:  # the reader's own errors are bare struct/numpy/index errors
    raise ValueError(f"{path}: cannot parse the GGUF header ({type(e).__name__}: {e}); "
                     "the file is truncated or corrupt") from e


def _config(path: str, meta: Dict, names, emb_shape) -> ModelConfig:
  arch = meta.get("general.architecture")
  if arch not in _PERMUTED:
    raise ValueError(f"{path}: architecture {arch!r} is not supported "
                     f"(supported: {sorted(_PERMUTED)})")
  get = lambda k, default=None: meta.get(f"{arch}.{k}", default)
  try:
    d_model, heads = int(get("embedding_length")), int(get("attention.head_count"))
    head_dim = int(get("attention.key_length", d_model // heads))
    cfg = ModelConfig(
        vocab_size=int(emb_shape[0]), d_model=d_model, num_layers=int(get("block_count")),
        num_heads=heads, num_kv_heads=int(get("attention.head_count_kv", heads)),
        head_dim=head_dim, d_ff=int(get("feed_forward_length")),
        rope_theta=_f32(get("rope.freq_base", 10000.0)),
        norm_eps=_f32(get("attention.layer_norm_rms_epsilon", 1e-5)),
        tie_embeddings="output.weight" not in names, qkv_bias="blk.0.attn_q.bias" in names,
        max_len=int(get("context_length", 2048)))
  except (TypeError, ValueError) as e:  # missing key (None) or per-layer arrays
    raise ValueError(f"{path}: bad or missing {arch} hyper-parameters in the metadata ({e})") \
        from e
  if get("rope.scaling.type", "none") not in ("none", None):
    raise ValueError(f"{path}: rope scaling {get('rope.scaling.type')!r} is not supported")
  if int(get("rope.dimension_count", head_dim)) != head_dim:
    raise ValueError(f"{path}: partial RoPE ({get('rope.dimension_count')} of {head_dim} dims) "
                     "is not supported")
  return cfg


def _expected_shapes(c: ModelConfig) -> Dict[str, Tuple[int, ...]]:
  """numpy ([out, in]) shape of every tensor the model needs."""
  return {w.gguf: weight_names.file_shape(w, c) for w in weight_names.weights(c)}


def read_gguf(path: str) -> Tuple[ModelConfig, Dict, Optional[Tokenizer], Dict]:
  """`(config, params as float32 numpy, tokenizer or None, metadata)` from a .gguf file."""
  path = os.fspath(path)
  reader = _open(path)
  meta = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
  tensors = {t.name: t for t in reader.tensors}
  if "token_embd.weight" not in tensors:
    raise ValueError(f"{path}: missing tensor token_embd.weight")
  emb_shape = tuple(int(x) for x in reversed(tensors["token_embd.weight"].shape))
  cfg = _config(path, meta, tensors, emb_shape)
  expected = _expected_shapes(cfg)
  extra = sorted(set(tensors) - set(expected))
  if extra:  # e.g. rope_freqs (Llama-3.1 scaling) or output biases: not this architecture
    raise ValueError(f"{path}: unexpected tensor {extra[0]} (and {len(extra) - 1} more): an "
                     "unsupported architecture variant")
  w = {}
  for name, shape in expected.items():
    if name not in tensors:
      raise ValueError(f"{path}: missing tensor {name}")
    t = tensors[name]
    try:
      x = gguf.quants.dequantize(t.data, t.tensor_type)
    except Exception as e:
      raise ValueError(f"{path}: cannot dequantize tensor {name} of type "
                       f"{t.tensor_type.name} ({e})") from e
    if tuple(x.shape) != shape:
      raise ValueError(f"{path}: tensor {name} has shape {tuple(x.shape)}, the metadata "
                       f"implies {shape}")
    w[name] = np.asarray(x, np.float32)
  params = weight_names.params_of(cfg, w.__getitem__, "gguf",
                                  _PERMUTED[meta["general.architecture"]])
  tokenizer = None
  if meta.get("tokenizer.ggml.model") == "gpt2":
    tokenizer = Tokenizer.from_gguf_metadata(meta, source=path)
  elif "tokenizer.ggml.tokens" in meta:  # the weights are still usable with token ids
    warnings.warn(f"{path}: tokenizer.ggml.model {meta.get('tokenizer.ggml.model')!r} is not "
                  "supported (only byte-level BPE); the model has no tokenizer")
  return cfg, params, tokenizer, meta


def load_gguf(path: str, dtype: str = "float32", name: Optional[str] = None) -> Model:
  """A `Model` (config, params in `dtype`, tokenizer, EOS id) from a .gguf file."""
  cfg, params, tok, _ = read_gguf(path)
  cfg = cfg.replace(dtype=dtype)
  params = jax.tree.map(lambda x: jnp.asarray(x, cfg.jnp_dtype), params)
  return Model(cfg, params, tokenizer=tok, eos_id=None if tok is None else tok.eos_id,
               name=name or os.path.basename(os.fspath(path)))


def write_gguf(model: Model, path: str) -> None:
  """Writes `model` as a float32 GGUF (llama.cpp layout; `qwen2` when it has q/k/v biases)."""
  c = model.config
  arch = "qwen2" if c.qkv_bias else "llama"
  D, N, K, H = c.d_model, c.num_heads, c.num_kv_heads, c.head_dim
  w = gguf.GGUFWriter(os.fspath(path), arch)
  w.add_name(model.name)
  w.add_block_count(c.num_layers)
  w.add_context_length(c.max_len)
  w.add_embedding_length(D)
  w.add_feed_forward_length(c.d_ff)
  w.add_head_count(N)
  w.add_head_count_kv(K)
  w.add_key_length(H)
  w.add_value_length(H)
  w.add_rope_dimension_count(H)
  w.add_rope_freq_base(c.rope_theta)
  w.add_layer_norm_rms_eps(c.norm_eps)
  w.add_vocab_size(c.vocab_size)
  w.add_file_type(gguf.LlamaFileType.ALL_F32)
  if model.tokenizer is not None:
    _add_tokenizer(w, model.tokenizer.gguf_metadata())
  f32 = jax.tree.map(lambda x: np.asarray(x, np.float32), model.params)
  for name, x in weight_names.tensors_of(c, f32, "gguf", _PERMUTED[arch]).items():
    w.add_tensor(name, x)
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()


def _add_tokenizer(w: gguf.GGUFWriter, meta: Dict) -> None:
  w.add_tokenizer_model(meta["tokenizer.ggml.model"])
  w.add_tokenizer_pre(meta["tokenizer.ggml.pre"])
  w.add_token_list(meta["tokenizer.ggml.tokens"])
  w.add_token_merges(meta["tokenizer.ggml.merges"])
  w.add_token_types(meta["tokenizer.ggml.token_type"])
  if meta["tokenizer.ggml.bos_token_id"] is not None:
    w.add_bos_token_id(meta["tokenizer.ggml.bos_token_id"])
  if meta["tokenizer.ggml.eos_token_id"] is not None:
    w.add_eos_token_id(meta["tokenizer.ggml.eos_token_id"])
  w.add_add_bos_token(meta["tokenizer.ggml.add_bos_token"])
  if meta["tokenizer.chat_template"]:
    w.add_chat_template(meta["tokenizer.chat_template"])
