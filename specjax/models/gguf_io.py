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

from specjax.models.config import ModelConfig
from specjax.models.model import Model
from specjax.models.tokenizer import Tokenizer

_PERMUTED = {"llama": True, "qwen2": False}  # supported architectures


def _permute(w: np.ndarray, n: int) -> np.ndarray:
  """HF rotate-half row order -> llama.cpp's (convert_hf_to_gguf.py `permute`)."""
  return w.reshape(n, 2, w.shape[0] // n // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _unpermute(w: np.ndarray, n: int) -> np.ndarray:
  """The inverse of `_permute`: llama.cpp row order -> rotate-half, per head."""
  return w.reshape(n, w.shape[0] // n // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


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
  D, F, V, qd, kd = c.d_model, c.d_ff, c.vocab_size, c.num_heads * c.head_dim, \
      c.num_kv_heads * c.head_dim
  s = {"token_embd.weight": (V, D), "output_norm.weight": (D,)}
  if not c.tie_embeddings:
    s["output.weight"] = (V, D)
  for i in range(c.num_layers):
    b = f"blk.{i}."
    s.update({b + "attn_norm.weight": (D,), b + "ffn_norm.weight": (D,),
              b + "attn_q.weight": (qd, D), b + "attn_k.weight": (kd, D),
              b + "attn_v.weight": (kd, D), b + "attn_output.weight": (D, qd),
              b + "ffn_gate.weight": (F, D), b + "ffn_up.weight": (F, D),
              b + "ffn_down.weight": (D, F)})
    if c.qkv_bias:
      s.update({b + "attn_q.bias": (qd,), b + "attn_k.bias": (kd,), b + "attn_v.bias": (kd,)})
  return s


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
  params = _to_params(cfg, w, _PERMUTED[meta["general.architecture"]])
  tokenizer = None
  if meta.get("tokenizer.ggml.model") == "gpt2":
    tokenizer = Tokenizer.from_gguf_metadata(meta, source=path)
  elif "tokenizer.ggml.tokens" in meta:  # the weights are still usable with token ids
    warnings.warn(f"{path}: tokenizer.ggml.model {meta.get('tokenizer.ggml.model')!r} is not "
                  "supported (only byte-level BPE); the model has no tokenizer")
  return cfg, params, tokenizer, meta


def _to_params(c: ModelConfig, w: Dict[str, np.ndarray], permuted: bool) -> Dict:
  D, N, K, H = c.d_model, c.num_heads, c.num_kv_heads, c.head_dim
  fix = (lambda x, n: _unpermute(x, n)) if permuted else (lambda x, n: x)
  p = {"embedding_VD": w["token_embd.weight"], "final_norm": {"scale": w["output_norm.weight"]}}
  if not c.tie_embeddings:
    p["lm_head_DV"] = w["output.weight"].T
  for i in range(c.num_layers):
    g = lambda k: w[f"blk.{i}.{k}"]
    attn = {"wq_DNH": fix(g("attn_q.weight"), N).T.reshape(D, N, H),
            "wk_DKH": fix(g("attn_k.weight"), K).T.reshape(D, K, H),
            "wv_DKH": g("attn_v.weight").T.reshape(D, K, H),
            "wo_NHD": g("attn_output.weight").T.reshape(N, H, D)}
    if c.qkv_bias:
      attn.update(bq_NH=fix(g("attn_q.bias"), N).reshape(N, H),
                  bk_KH=fix(g("attn_k.bias"), K).reshape(K, H),
                  bv_KH=g("attn_v.bias").reshape(K, H))
    p[f"layers_{i}"] = {
        "attn_norm": {"scale": g("attn_norm.weight")}, "attn": attn,
        "mlp_norm": {"scale": g("ffn_norm.weight")},
        "mlp": {"wgate_DF": g("ffn_gate.weight").T, "wup_DF": g("ffn_up.weight").T,
                "wdown_FD": g("ffn_down.weight").T}}
  return p


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
  perm = (lambda x, n: _permute(x, n)) if _PERMUTED[arch] else (lambda x, n: x)
  p = model.params
  f32 = lambda x: np.asarray(x, np.float32)
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
  w.add_tensor("token_embd.weight", f32(p["embedding_VD"]))
  for i in range(c.num_layers):
    l, b = p[f"layers_{i}"], f"blk.{i}."
    a, m = l["attn"], l["mlp"]
    w.add_tensor(b + "attn_norm.weight", f32(l["attn_norm"]["scale"]))
    w.add_tensor(b + "attn_q.weight", perm(f32(a["wq_DNH"]).reshape(D, N * H).T, N))
    w.add_tensor(b + "attn_k.weight", perm(f32(a["wk_DKH"]).reshape(D, K * H).T, K))
    w.add_tensor(b + "attn_v.weight", f32(a["wv_DKH"]).reshape(D, K * H).T)
    w.add_tensor(b + "attn_output.weight", f32(a["wo_NHD"]).reshape(N * H, D).T)
    if c.qkv_bias:
      w.add_tensor(b + "attn_q.bias", perm(f32(a["bq_NH"]).reshape(-1), N))
      w.add_tensor(b + "attn_k.bias", perm(f32(a["bk_KH"]).reshape(-1), K))
      w.add_tensor(b + "attn_v.bias", f32(a["bv_KH"]).reshape(-1))
    w.add_tensor(b + "ffn_norm.weight", f32(l["mlp_norm"]["scale"]))
    w.add_tensor(b + "ffn_gate.weight", f32(m["wgate_DF"]).T)
    w.add_tensor(b + "ffn_up.weight", f32(m["wup_DF"]).T)
    w.add_tensor(b + "ffn_down.weight", f32(m["wdown_FD"]).T)
  w.add_tensor("output_norm.weight", f32(p["final_norm"]["scale"]))
  if not c.tie_embeddings:
    w.add_tensor("output.weight", f32(p["lm_head_DV"]).T)
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
