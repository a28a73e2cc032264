"""HF safetensors directories: export -> import is exact; transformers loads the export."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from specjax.models.config import ModelConfig
from specjax.models.model import init_model
from specjax.models.safetensors_io import hf_shapes, load_hf, save_hf
from specjax.models.tokenizer import Tokenizer
from specjax.models.transformer import forward

DATA = os.path.join(os.path.dirname(__file__), os.pardir, "data")
CFG = ModelConfig(vocab_size=274, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                  head_dim=8, d_ff=48, rope_theta=50_000.0, norm_eps=1e-6, max_len=128)
TOKENS_BT = np.array([[5, 60, 7, 200, 9, 13, 270, 3], [1, 2, 3, 4, 5, 6, 7, 8]])
VARIANTS = [(True, False), (False, False), (True, True), (False, True)]  # (tie, qkv_bias)


def tiny_tokenizer():
  with open(os.path.join(DATA, "tiny_bpe.json")) as f:
    return Tokenizer.from_gguf_metadata(json.load(f))


def model(tie=True, bias=False, dtype="float32", seed=0):
  m = init_model(CFG.replace(tie_embeddings=tie, qkv_bias=bias, dtype=dtype),
                 jax.random.key(seed), eos_id=2)
  leaves, tree = jax.tree.flatten(m.params)  # random norm scales and biases too
  keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
  leaves = [(x + 0.3 * jax.random.normal(k, x.shape)).astype(x.dtype) for x, k in zip(leaves, keys)]
  return m.replace(params=jax.tree.unflatten(tree, leaves), tokenizer=tiny_tokenizer())


def assert_same_model(a, b):
  assert a.config == b.config and a.eos_id == b.eos_id
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)),
               a.params, b.params)
  assert jax.tree.map(lambda x: x.dtype, a.params) == jax.tree.map(lambda x: x.dtype, b.params)


@pytest.mark.parametrize("tie,bias", VARIANTS)
def test_export_import_is_exact(tmp_path, tie, bias):
  m = model(tie, bias)
  save_hf(m, tmp_path)
  assert_same_model(load_hf(tmp_path), m)
  cfg = json.load(open(tmp_path / "config.json"))
  assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["tie_word_embeddings"] == tie
  tensors = load_file(tmp_path / "model.safetensors")
  assert ("lm_head.weight" in tensors) == (not tie)
  assert tensors["model.layers.1.self_attn.q_proj.weight"].shape == (4 * 8, 32)  # [out, in]
  assert tensors["model.layers.0.mlp.down_proj.weight"].shape == (32, 48)
  assert set(tensors) == set(hf_shapes(m.config))
  loaded = load_hf(tmp_path)
  assert loaded.tokenizer.encode("the cat") == m.tokenizer.encode("the cat")


def test_bf16_and_sharded_index(tmp_path):
  m = model(tie=False, bias=True, dtype="bfloat16")
  save_hf(m, tmp_path / "one")
  assert_same_model(load_hf(tmp_path / "one", dtype="bfloat16"), m)
  # Split into two shards + index, the way large HF checkpoints come.
  tensors = load_file(tmp_path / "one" / "model.safetensors")
  names = sorted(tensors)
  os.makedirs(tmp_path / "sharded")
  weight_map = {}
  for j, part in enumerate([names[::2], names[1::2]]):
    fname = f"model-0000{j + 1}-of-00002.safetensors"
    save_file({k: tensors[k] for k in part}, tmp_path / "sharded" / fname, {"format": "pt"})
    weight_map.update({k: fname for k in part})
  json.dump({"metadata": {}, "weight_map": weight_map},
            open(tmp_path / "sharded" / "model.safetensors.index.json", "w"))
  os.rename(tmp_path / "one" / "config.json", tmp_path / "sharded" / "config.json")
  assert_same_model(load_hf(tmp_path / "sharded", dtype="bfloat16"), m.replace(eos_id=2))
  f32 = load_hf(tmp_path / "sharded")
  assert f32.config.dtype == "float32" and f32.params["embedding_VD"].dtype == jnp.float32


def qwen2_dir(tmp_path, m):
  """`m` (with q/k/v biases) rewritten as a Qwen2 directory: no o_proj bias, Qwen2 config."""
  save_hf(m, tmp_path)
  tensors = load_file(tmp_path / "model.safetensors")
  save_file({k: v for k, v in tensors.items() if not k.endswith("o_proj.bias")},
            tmp_path / "model.safetensors", {"format": "pt"})
  cfg = json.load(open(tmp_path / "config.json"))
  for k in ("attention_bias", "mlp_bias", "head_dim"):
    del cfg[k]
  cfg.update(architectures=["Qwen2ForCausalLM"], model_type="qwen2", use_sliding_window=False)
  json.dump(cfg, open(tmp_path / "config.json", "w"))
  return tmp_path


def test_qwen2_directory(tmp_path):
  m = model(tie=False, bias=True)
  assert_same_model(load_hf(qwen2_dir(tmp_path, m)), m)


def test_bad_directories_name_the_file_and_tensor(tmp_path):
  m = model(tie=False, bias=True)
  save_hf(m, tmp_path / "ok")
  cfg = json.load(open(tmp_path / "ok" / "config.json"))
  tensors = load_file(tmp_path / "ok" / "model.safetensors")

  def make(name, tensors=tensors, **cfg_changes):
    d = tmp_path / name
    os.makedirs(d)
    json.dump({**cfg, **cfg_changes}, open(d / "config.json", "w"))
    save_file(tensors, d / "model.safetensors", {"format": "pt"})
    return d

  missing = {k: v for k, v in tensors.items() if k != "model.layers.1.mlp.up_proj.weight"}
  with pytest.raises(ValueError, match=r"missing: missing tensor model\.layers\.1\.mlp\.up_proj"):
    load_hf(make("missing", missing))
  bad = dict(tensors, **{"model.layers.0.self_attn.k_proj.weight": np.zeros((8, 32), np.float32)})
  with pytest.raises(ValueError, match=r"shape/model\.safetensors: tensor model\.layers\.0\."
                                       r"self_attn\.k_proj\.weight has shape \(8, 32\), "
                                       r"config\.json implies \(16, 32\)"):
    load_hf(make("shape", bad))
  with pytest.raises(ValueError, match=r"arch/config\.json: architecture 'GPT2LMHeadModel'"):
    load_hf(make("arch", architectures=["GPT2LMHeadModel"], model_type="gpt2"))
  with pytest.raises(ValueError, match=r"rope/config\.json: rope scaling"):
    load_hf(make("rope", rope_scaling={"rope_type": "llama3", "factor": 8.0}))
  extra = dict(tensors, **{"model.layers.0.mlp.up_proj.bias": np.zeros((48,), np.float32)})
  with pytest.raises(ValueError, match=r"extra: unexpected tensor model\.layers\.0\.mlp\.up_proj"):
    load_hf(make("extra", extra))
  obias = dict(tensors, **{"model.layers.1.self_attn.o_proj.bias": np.ones((32,), np.float32)})
  with pytest.raises(ValueError, match=r"model\.layers\.1\.self_attn\.o_proj\.bias is nonzero"):
    load_hf(make("obias", obias))
  d = make("cut")
  data = open(d / "model.safetensors", "rb").read()
  open(d / "model.safetensors", "wb").write(data[:len(data) // 2])
  with pytest.raises(ValueError, match=r"cut/model\.safetensors: cannot read the safetensors"):
    load_hf(d)
  os.remove(d / "model.safetensors")
  with pytest.raises(ValueError, match=r"cut: no model\.safetensors"):
    load_hf(d)
  with pytest.raises(ValueError, match=r"nothing/config\.json: cannot read the model config"):
    load_hf(tmp_path / "nothing")


@pytest.mark.interop
@pytest.mark.parametrize("tie,bias", VARIANTS)
def test_transformers_loads_the_export(tmp_path, tie, bias):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  m = model(tie, bias)
  save_hf(m, tmp_path)
  hf, info = transformers.AutoModelForCausalLM.from_pretrained(
      tmp_path, dtype=torch.float32, output_loading_info=True)
  assert not any(info.values()), info  # no missing / unexpected / mismatched tensors
  with torch.no_grad():
    ref = hf(torch.tensor(TOKENS_BT)).logits.numpy()
  np.testing.assert_allclose(forward(m.params, m.config, TOKENS_BT)[0], ref, atol=1e-4, rtol=1e-4)
  if bias:  # the same weights as a Qwen2 directory: q/k/v biases, no o_proj bias
    qwen = transformers.AutoModelForCausalLM.from_pretrained(
        qwen2_dir(tmp_path / "qwen2", m), dtype=torch.float32)
    assert type(qwen).__name__ == "Qwen2ForCausalLM"
    with torch.no_grad():
      np.testing.assert_allclose(qwen(torch.tensor(TOKENS_BT)).logits.numpy(), ref,
                                 atol=1e-4, rtol=1e-4)
  tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
  for text in ["the cat sat", "<|im_start|>user\nhi<|im_end|>\n", "year 2024"]:
    assert tok.encode(text, add_special_tokens=False) == m.tokenizer.encode(text)
  assert tok.eos_token == "<|im_end|>" and tok.bos_token == "<|im_start|>"
