"""The one table of checkpoint tensors: specjax path, HF name, GGUF name, layout.

Both file formats store matrices as [out, in] (`nn.Linear` order; numpy's view
of a ggml tensor) and differ from each other only in names and in llama.cpp's
Q/K row permutation, so one row per tensor serves the GGUF and safetensors
readers and writers. A row's `file_axes` spells the file tensor with the shape
letters of `specjax/typing.py`: "NH,D" is [N*H, D]; the specjax array's axes
are its name's suffix (`wq_DNH`), or the file's for the unsuffixed norm scales.
The table order is the order `write_gguf` writes (llama.cpp's converter order).
"""
import math
from typing import Callable, Dict, List, NamedTuple

from specjax.models.config import ModelConfig


class Weight(NamedTuple):
  path: str            # in the params dict, "/"-separated
  hf: str
  gguf: str
  file_axes: str       # [out, in] in the file, "," between the two
  rope_heads: str = ""  # "N"/"K": llama.cpp permutes these rows per head (Q and K)
  only_if: str = ""    # "untied" / "qkv_bias": present only in such models


_TOP = (Weight("embedding_VD", "model.embed_tokens.weight", "token_embd.weight", "V,D"),)
_LAYER = (  # names prefixed by layers_{i}/, model.layers.{i}., blk.{i}.
    Weight("attn_norm/scale", "input_layernorm.weight", "attn_norm.weight", "D"),
    Weight("attn/wq_DNH", "self_attn.q_proj.weight", "attn_q.weight", "NH,D", "N"),
    Weight("attn/wk_DKH", "self_attn.k_proj.weight", "attn_k.weight", "KH,D", "K"),
    Weight("attn/wv_DKH", "self_attn.v_proj.weight", "attn_v.weight", "KH,D"),
    Weight("attn/wo_NHD", "self_attn.o_proj.weight", "attn_output.weight", "D,NH"),
    Weight("attn/bq_NH", "self_attn.q_proj.bias", "attn_q.bias", "NH", "N", "qkv_bias"),
    Weight("attn/bk_KH", "self_attn.k_proj.bias", "attn_k.bias", "KH", "K", "qkv_bias"),
    Weight("attn/bv_KH", "self_attn.v_proj.bias", "attn_v.bias", "KH", "", "qkv_bias"),
    Weight("mlp_norm/scale", "post_attention_layernorm.weight", "ffn_norm.weight", "D"),
    Weight("mlp/wgate_DF", "mlp.gate_proj.weight", "ffn_gate.weight", "F,D"),
    Weight("mlp/wup_DF", "mlp.up_proj.weight", "ffn_up.weight", "F,D"),
    Weight("mlp/wdown_FD", "mlp.down_proj.weight", "ffn_down.weight", "D,F"),
)
_BOTTOM = (Weight("final_norm/scale", "model.norm.weight", "output_norm.weight", "D"),
           Weight("lm_head_DU", "lm_head.weight", "output.weight", "U,D", "", "untied"))
_PRESENT: Dict[str, Callable[[ModelConfig], bool]] = {
    "": lambda c: True, "untied": lambda c: not c.tie_embeddings,
    "qkv_bias": lambda c: c.qkv_bias}


def weights(c: ModelConfig) -> List[Weight]:
  """Every tensor a model with config `c` stores, with full names, in GGUF write order."""
  layers = [w._replace(path=f"layers_{i}/{w.path}", hf=f"model.layers.{i}.{w.hf}",
                       gguf=f"blk.{i}.{w.gguf}")
            for i in range(c.num_layers) for w in _LAYER]
  return [w for w in _TOP + tuple(layers) + _BOTTOM if _PRESENT[w.only_if](c)]


def _axes(w: Weight) -> str:
  leaf = w.path.rsplit("/", 1)[-1]
  return leaf.rsplit("_", 1)[1] if "_" in leaf else w.file_axes.replace(",", "")


def _sizes(c: ModelConfig) -> Dict[str, int]:
  # U (the head's ids) is V in every file: GGUF and safetensors cannot describe a sub-vocab head.
  return {"V": c.vocab_size, "U": c.head_vocab, "D": c.d_model, "N": c.num_heads,
          "K": c.num_kv_heads, "H": c.head_dim, "F": c.d_ff}


def file_shape(w: Weight, c: ModelConfig):
  """The [out, in] shape of `w` in a file of a model with config `c`."""
  n = _sizes(c)
  return tuple(math.prod(n[a] for a in group) for group in w.file_axes.split(","))


def _permute(w, n: int):
  """HF rotate-half row order -> llama.cpp's (convert_hf_to_gguf.py `permute`)."""
  return w.reshape(n, 2, w.shape[0] // n // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _unpermute(w, n: int):
  """The inverse of `_permute`: llama.cpp row order -> rotate-half, per head."""
  return w.reshape(n, w.shape[0] // n // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def to_file(w: Weight, x, permuted: bool = False):
  """specjax array -> [out, in] file tensor. Array methods only, so it runs on numpy, jax
  and, under `jax.eval_shape`, on shapes; sizes come from `x`, not a config."""
  axes, flat = _axes(w), w.file_axes.replace(",", "")
  n = dict(zip(axes, x.shape))
  x = x.transpose([axes.index(a) for a in flat])
  x = x.reshape([math.prod(n[a] for a in group) for group in w.file_axes.split(",")])
  return _permute(x, n[w.rope_heads]) if permuted and w.rope_heads else x


def from_file(w: Weight, x, c: ModelConfig, permuted: bool = False):
  """The inverse of `to_file`, with the sizes of config `c`."""
  axes, flat, n = _axes(w), w.file_axes.replace(",", ""), _sizes(c)
  if permuted and w.rope_heads:
    x = _unpermute(x, n[w.rope_heads])
  return x.reshape([n[a] for a in flat]).transpose([flat.index(a) for a in axes])


def lookup(params: Dict, path: str):
  for key in path.split("/"):
    params = params[key]
  return params


def tensors_of(c: ModelConfig, params: Dict, fmt: str, permuted: bool = False) -> Dict:
  """{`fmt` ("hf" / "gguf") name: file tensor} of `params`, in table order."""
  return {getattr(w, fmt): to_file(w, lookup(params, w.path), permuted) for w in weights(c)}


def params_of(c: ModelConfig, get: Callable, fmt: str, permuted: bool = False) -> Dict:
  """The inverse of `tensors_of`: `get(name)` returns one [out, in] file tensor."""
  params = {}
  for w in weights(c):
    *parents, leaf = w.path.split("/")
    node = params
    for key in parents:
      node = node.setdefault(key, {})
    node[leaf] = from_file(w, get(getattr(w, fmt)), c, permuted)
  return params
