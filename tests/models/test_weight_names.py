"""The tensor-name table: complete, one-to-one, and its transforms invert each other."""
import jax
import numpy as np
import pytest

from specjax.models import weight_names
from specjax.models.config import ModelConfig
from specjax.models.model import init_params

CFG = ModelConfig(vocab_size=274, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                  head_dim=8, d_ff=48)
VARIANTS = [(True, False), (False, False), (True, True), (False, True)]  # (tie, qkv_bias)


def random_params(c):
  leaves, tree = jax.tree.flatten(init_params(c, jax.random.key(0)))
  keys = jax.random.split(jax.random.key(1), len(leaves))
  return jax.tree.unflatten(tree, [np.asarray(jax.random.normal(k, x.shape))
                                   for x, k in zip(leaves, keys)])


@pytest.mark.parametrize("tie,bias", VARIANTS)
def test_every_parameter_appears_exactly_once(tie, bias):
  c = CFG.replace(tie_embeddings=tie, qkv_bias=bias)
  params = random_params(c)
  paths = ["/".join(k.key for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(params)]
  table = weight_names.weights(c)
  assert sorted(w.path for w in table) == sorted(paths)
  for fmt in ("hf", "gguf"):
    assert len({getattr(w, fmt) for w in table}) == len(table)


@pytest.mark.parametrize("tie,bias", VARIANTS)
@pytest.mark.parametrize("fmt,permuted", [("hf", False), ("gguf", True), ("gguf", False)])
def test_file_tensors_round_trip(tie, bias, fmt, permuted):
  c = CFG.replace(tie_embeddings=tie, qkv_bias=bias)
  params = random_params(c)
  tensors = weight_names.tensors_of(c, params, fmt, permuted)
  for w in weight_names.weights(c):  # file shapes are [out, in]
    assert tensors[getattr(w, fmt)].shape == weight_names.file_shape(w, c), w
  back = weight_names.params_of(c, tensors.__getitem__, fmt, permuted)
  jax.tree.map(np.testing.assert_array_equal, back, params)


def test_layouts_match_the_hf_linear_convention():
  c = CFG.replace(tie_embeddings=False)
  params = random_params(c)
  t = weight_names.tensors_of(c, params, "hf")
  a = params["layers_1"]["attn"]
  np.testing.assert_array_equal(t["model.layers.1.self_attn.q_proj.weight"],
                                a["wq_DNH"].reshape(32, 32).T)
  np.testing.assert_array_equal(t["model.layers.1.self_attn.o_proj.weight"],
                                a["wo_NHD"].reshape(32, 32).T)
  np.testing.assert_array_equal(t["lm_head.weight"], params["lm_head_DU"].T)
  g = weight_names.tensors_of(c, params, "gguf", permuted=True)
  q = g["blk.1.attn_q.weight"].reshape(4, 4, 2, 32)  # llama.cpp: rows (i, i + H/2) interleaved
  np.testing.assert_array_equal(q[:, :, 0], a["wq_DNH"].T.transpose(1, 0, 2)[:, :4])
