"""GGUF import: a hand-written llama.cpp-layout file loads to the reference model exactly."""
import json
import os

import gguf
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from specjax.models.config import ModelConfig
from specjax.models.gguf_io import load_gguf, read_gguf, write_gguf
from specjax.models.model import Model, init_model
from specjax.models.transformer import forward, rope

DATA = os.path.join(os.path.dirname(__file__), os.pardir, "data")
CFG = ModelConfig(vocab_size=274, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                  head_dim=8, d_ff=48, rope_theta=50_000.0, norm_eps=1e-6, max_len=128)
TOKENS_BT = np.array([[5, 60, 7, 200, 9, 13, 270, 3], [1, 2, 3, 4, 5, 6, 7, 8]])


def llama_cpp_permute(w, n_head):
  """convert_hf_to_gguf.py's `LlamaModel.permute`, verbatim in meaning."""
  return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
          .swapaxes(1, 2).reshape(w.shape))


def reference_model(cfg=CFG, seed=0):
  """A random model whose norm scales and biases are random too (so mix-ups show)."""
  m = init_model(cfg, jax.random.key(seed))
  leaves, tree = jax.tree.flatten(m.params)
  keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
  leaves = [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
  return m.replace(params=jax.tree.unflatten(tree, leaves))


def write_reference_gguf(path, model, arch="llama", drop=(), reshape=None, tokenizer=True,
                         extra=None):
  """Writes `model` the way llama.cpp's converter would: HF [out, in] matrices, Q/K permuted."""
  c, p = model.config, jax.tree.map(np.asarray, model.params)
  D, N, K, H = c.d_model, c.num_heads, c.num_kv_heads, c.head_dim
  w = gguf.GGUFWriter(str(path), arch)
  for key, value in [("block_count", c.num_layers), ("context_length", c.max_len),
                     ("embedding_length", D), ("feed_forward_length", c.d_ff),
                     ("attention.head_count", N), ("attention.head_count_kv", K),
                     ("rope.dimension_count", H)]:
    w.add_uint32(f"{arch}.{key}", value)
  w.add_float32(f"{arch}.rope.freq_base", c.rope_theta)
  w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", c.norm_eps)
  if tokenizer:
    with open(os.path.join(DATA, "tiny_bpe.json")) as f:
      meta = json.load(f)
    w.add_tokenizer_model(meta["tokenizer.ggml.model"])
    w.add_tokenizer_pre(meta["tokenizer.ggml.pre"])
    w.add_token_list(meta["tokenizer.ggml.tokens"])
    w.add_token_merges(meta["tokenizer.ggml.merges"])
    w.add_token_types(meta["tokenizer.ggml.token_type"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template(meta["tokenizer.chat_template"])
  t = {"token_embd.weight": p["embedding_VD"], "output_norm.weight": p["final_norm"]["scale"]}
  if not c.tie_embeddings:
    t["output.weight"] = p["lm_head_DU"].T
  for i in range(c.num_layers):
    l, b = p[f"layers_{i}"], f"blk.{i}."
    t[b + "attn_norm.weight"] = l["attn_norm"]["scale"]
    t[b + "attn_q.weight"] = llama_cpp_permute(l["attn"]["wq_DNH"].reshape(D, N * H).T, N)
    t[b + "attn_k.weight"] = llama_cpp_permute(l["attn"]["wk_DKH"].reshape(D, K * H).T, K)
    t[b + "attn_v.weight"] = l["attn"]["wv_DKH"].reshape(D, K * H).T
    t[b + "attn_output.weight"] = l["attn"]["wo_NHD"].reshape(N * H, D).T
    t[b + "ffn_norm.weight"] = l["mlp_norm"]["scale"]
    t[b + "ffn_gate.weight"] = l["mlp"]["wgate_DF"].T
    t[b + "ffn_up.weight"] = l["mlp"]["wup_DF"].T
    t[b + "ffn_down.weight"] = l["mlp"]["wdown_FD"].T
  t.update(extra or {})
  for name, x in t.items():
    if name not in drop:
      x = np.ascontiguousarray(x, np.float32)
      w.add_tensor(name, x.reshape(reshape[1]) if reshape and reshape[0] == name else x)
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()
  return str(path)


def test_llama_cpp_permutation_turns_interleaved_rope_into_rotate_half():
  """Why the permutation exists: llama.cpp's interleaved-pair RoPE on permuted rows equals
  rotate-half RoPE (HF, specjax) on the original rows, permuted the same way."""
  H, theta, pos = 8, 10_000.0, 7
  x_H = np.random.default_rng(0).normal(size=(H,)).astype(np.float32)

  def rope_interleaved(v):  # llama.cpp "normal" mode: pairs (2i, 2i+1)
    ang = pos * theta ** (-np.arange(0, H, 2) / H)
    a, b = v[0::2], v[1::2]
    out = np.empty_like(v)
    out[0::2], out[1::2] = a * np.cos(ang) - b * np.sin(ang), b * np.cos(ang) + a * np.sin(ang)
    return out

  half = np.asarray(rope(jnp.asarray(x_H)[None, None, None], jnp.array([[pos]]), theta))[0, 0, 0]
  np.testing.assert_allclose(llama_cpp_permute(half, 1), rope_interleaved(llama_cpp_permute(x_H, 1)),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tie", [True, False])
def test_gguf_loads_to_the_unpermuted_reference(tmp_path, tie):
  ref = reference_model(CFG.replace(tie_embeddings=tie))
  path = write_reference_gguf(tmp_path / "tiny.gguf", ref)
  m = load_gguf(path)
  assert m.config == ref.config and m.name == "tiny.gguf"
  jax.tree.map(np.testing.assert_array_equal, m.params, ref.params)
  np.testing.assert_array_equal(forward(m.params, m.config, TOKENS_BT)[0],
                                forward(ref.params, ref.config, TOKENS_BT)[0])
  assert m.eos_id == 2 and m.tokenizer.decode(m.tokenizer.encode("the cat")) == "the cat"
  bf16 = load_gguf(path, dtype="bfloat16")
  assert bf16.config.dtype == "bfloat16"
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(bf16.params))


@pytest.mark.parametrize("tie,bias", [(True, False), (False, True)])
def test_write_gguf_round_trip(tmp_path, tie, bias):
  ref = reference_model(CFG.replace(tie_embeddings=tie, qkv_bias=bias))
  ref = ref.replace(tokenizer=load_gguf(write_reference_gguf(tmp_path / "r.gguf", ref)).tokenizer)
  write_gguf(ref, tmp_path / "w.gguf")
  cfg, params, tok, meta = read_gguf(tmp_path / "w.gguf")
  assert cfg == ref.config and meta["general.architecture"] == ("qwen2" if bias else "llama")
  jax.tree.map(np.testing.assert_array_equal, params, ref.params)
  assert tok.gguf_metadata() == ref.tokenizer.gguf_metadata()
  if not bias:  # the writer permutes exactly like llama.cpp's converter
    written = {t.name: t.data for t in gguf.GGUFReader(tmp_path / "w.gguf").tensors}
    by_hand = {t.name: t.data for t in gguf.GGUFReader(tmp_path / "r.gguf").tensors}
    for name in by_hand:
      np.testing.assert_array_equal(written[name], by_hand[name], err_msg=name)


def test_bad_inputs_name_the_file_and_tensor(tmp_path):
  ref = reference_model()
  text = tmp_path / "notes.gguf"
  text.write_text("hello, not a model")
  with pytest.raises(ValueError, match=r"notes\.gguf is not a GGUF file"):
    load_gguf(text)
  good = write_reference_gguf(tmp_path / "good.gguf", ref)
  data = open(good, "rb").read()
  (tmp_path / "cut.gguf").write_bytes(data[:len(data) * 3 // 4])
  with pytest.raises(ValueError, match=r"cut\.gguf: tensor blk\.1\.\S+ ends at byte \d+ but the "
                                       r"file has \d+ bytes \(truncated\)"):
    load_gguf(tmp_path / "cut.gguf")
  (tmp_path / "head.gguf").write_bytes(data[:200])
  with pytest.raises(ValueError, match=r"head\.gguf: .*truncated or corrupt"):
    load_gguf(tmp_path / "head.gguf")
  with pytest.raises(ValueError, match=r"falcon\.gguf: architecture 'falcon' is not supported"):
    load_gguf(write_reference_gguf(tmp_path / "falcon.gguf", ref, arch="falcon"))
  with pytest.raises(ValueError, match=r"drop\.gguf: missing tensor blk\.1\.ffn_up\.weight"):
    load_gguf(write_reference_gguf(tmp_path / "drop.gguf", ref, drop=["blk.1.ffn_up.weight"]))
  with pytest.raises(ValueError, match=r"shape\.gguf: tensor blk\.0\.ffn_gate\.weight has shape "
                                       r"\(24, 64\), the metadata implies \(48, 32\)"):
    load_gguf(write_reference_gguf(tmp_path / "shape.gguf", ref,
                                   reshape=("blk.0.ffn_gate.weight", (24, 64))))


def test_unexpected_tensor_is_an_error(tmp_path):
  path = write_reference_gguf(tmp_path / "rope.gguf", reference_model(),
                              extra={"rope_freqs.weight": np.ones((4,), np.float32)})
  with pytest.raises(ValueError, match=r"rope\.gguf: unexpected tensor rope_freqs\.weight"):
    load_gguf(path)


def test_model_without_tokenizer(tmp_path):
  m = load_gguf(write_reference_gguf(tmp_path / "t.gguf", reference_model(), tokenizer=False))
  assert m.tokenizer is None and m.eos_id is None and isinstance(m, Model)
