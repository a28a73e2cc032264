"""orbax checkpoints of a Model: exact round trip (values, dtype, sharding), clear errors."""
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from specjax.models import drafts, orbax_io, registry
from specjax.models.config import ModelConfig
from specjax.models.model import init_model
from specjax.models.orbax_io import (MODEL_FILE, PARAMS_DIR, TOKENIZER_FILE, VERSION,
                                     is_checkpoint, restore_checkpoint, save_checkpoint)
from specjax.models.tokenizer import Tokenizer
from tests.helpers import tiny_model as seeded_tiny_model

DATA = os.path.join(os.path.dirname(__file__), os.pardir, "data")
CFG = ModelConfig(vocab_size=274, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                  head_dim=8, d_ff=48, qkv_bias=True, tie_embeddings=False)


def tiny_model(dtype="float32"):
  with open(os.path.join(DATA, "tiny_bpe.json")) as f:
    tok = Tokenizer.from_gguf_metadata(json.load(f))
  return init_model(CFG.replace(dtype=dtype), jax.random.key(0), eos_id=2, name="tiny").replace(
      tokenizer=tok)


def assert_equal_params(a, b):
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)
  assert jax.tree.map(lambda x: x.dtype, a) == jax.tree.map(lambda x: x.dtype, b)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_round_trip(tmp_path, dtype):
  m = tiny_model(dtype)
  save_checkpoint(m, tmp_path / "ckpt")
  assert is_checkpoint(tmp_path / "ckpt") and not is_checkpoint(tmp_path)
  r = restore_checkpoint(tmp_path / "ckpt")
  assert (r.config, r.eos_id, r.name) == (m.config, 2, "tiny")
  assert_equal_params(r.params, m.params)
  assert r.tokenizer.encode("the cat") == m.tokenizer.encode("the cat")
  assert r.tokenizer.chat_template == m.tokenizer.chat_template
  # Saving again over it replaces it; a model without tokenizer leaves none behind.
  save_checkpoint(m.replace(tokenizer=None, eos_id=None), tmp_path / "ckpt")
  r = restore_checkpoint(tmp_path / "ckpt", dtype="bfloat16")
  assert r.tokenizer is None and r.eos_id is None and r.config.dtype == "bfloat16"
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(r.params))


def test_round_trip_keeps_sharding(tmp_path):
  mesh = Mesh(np.array(jax.devices()[:8]).reshape(2, 4), ("data", "model"))
  m = tiny_model()

  def spec(x):  # shard the last axis over "model" where it divides, else replicate
    return NamedSharding(mesh, P(*([None] * (x.ndim - 1)), "model") if x.shape[-1] % 4 == 0
                         else P())

  shardings = jax.tree.map(spec, m.params)
  m = m.replace(params=jax.device_put(m.params, shardings))
  save_checkpoint(m, tmp_path / "ckpt")
  r = restore_checkpoint(tmp_path / "ckpt", sharding=shardings)
  assert_equal_params(r.params, m.params)
  assert jax.tree.all(jax.tree.map(lambda x, s: x.sharding == s, r.params, shardings))
  replicated = NamedSharding(mesh, P())
  r = restore_checkpoint(tmp_path / "ckpt", sharding=replicated)
  assert all(x.sharding == replicated for x in jax.tree.leaves(r.params))


# When orbax fails to read a corrupt manifest, tensorstore callbacks may still reach its
# (closed) event loop; Python reports that as unraisable. Our ValueError is what counts.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_corrupt_checkpoints_name_the_file(tmp_path):
  m = tiny_model()
  save_checkpoint(m, tmp_path / "good")

  def copy(name):
    shutil.copytree(tmp_path / "good", tmp_path / name)
    return tmp_path / name

  with pytest.raises(ValueError, match="no such checkpoint directory"):
    restore_checkpoint(tmp_path / "absent")
  d = copy("badjson")
  (d / MODEL_FILE).write_text("{ truncated")
  with pytest.raises(ValueError, match=rf"badjson/{MODEL_FILE}: not a valid specjax checkpoint"):
    restore_checkpoint(d)
  d = copy("badcfg")
  meta = json.loads((d / MODEL_FILE).read_text())
  meta["config"]["d_ff"] = 40
  (d / MODEL_FILE).write_text(json.dumps(meta))
  with pytest.raises(ValueError, match=r"badcfg/params: tensor layers_0/mlp/wdown_FD has shape "
                                       r"\(48, 32\), the config implies \(40, 32\)"):
    restore_checkpoint(d)
  meta["config"].update(d_ff=48, num_layers=3)
  (d / MODEL_FILE).write_text(json.dumps(meta))
  with pytest.raises(ValueError, match=r"badcfg/params: missing tensor layers_2/"):
    restore_checkpoint(d)
  d = copy("noparams")
  shutil.rmtree(d / PARAMS_DIR)
  with pytest.raises(ValueError, match=r"noparams/params/_METADATA: cannot read the orbax tree"):
    restore_checkpoint(d)
  d = copy("nodata")  # tree metadata intact, array data gone (a half-copied directory)
  for name in os.listdir(d / PARAMS_DIR):
    if name.startswith("ocdbt.process"):
      shutil.rmtree(d / PARAMS_DIR / name)
  with pytest.raises(ValueError, match=r"nodata/params: incomplete orbax checkpoint"):
    restore_checkpoint(d)
  d = copy("badmanifest")
  data = (d / PARAMS_DIR / "manifest.ocdbt").read_bytes()
  (d / PARAMS_DIR / "manifest.ocdbt").write_bytes(data[:len(data) // 2])
  with pytest.raises(ValueError, match=r"badmanifest/params: cannot read the orbax checkpoint"):
    restore_checkpoint(d)
  d = copy("badtok")
  (d / TOKENIZER_FILE).write_text('{"tokenizer": 3}')
  with pytest.raises(ValueError, match=rf"badtok/{TOKENIZER_FILE}: not a valid specjax tokenizer"):
    restore_checkpoint(d)


def test_derived_checkpoint_stores_only_what_differs_from_its_base(tmp_path, monkeypatch):
  target = seeded_tiny_model(seed=3)
  draft = drafts.adapted_self_draft(target, 1, jax.random.key(0), adapter_dim=8,
                                    vocab_ids=[0, 5, 9, 33])
  draft.params["adapter"]["wdown_FD"] = draft.params["adapter"]["wdown_FD"] + 0.5  # "trained"
  monkeypatch.setattr(registry, "load", lambda name, dtype="float32": target)  # the base by name
  save_checkpoint(draft, str(tmp_path / "d"), base=("tiny-base", target))
  with open(tmp_path / "d" / "specjax_model.json") as f:
    meta = json.load(f)
  assert meta["base"] == {"name": "tiny-base",
                          "params": ["embedding_VD", "final_norm", "layers_0"]}
  back = registry.restore_checkpoint(str(tmp_path / "d"))  # sj.restore_checkpoint: loads the base
  assert back.config == draft.config
  jax.tree.map(np.testing.assert_array_equal, back.params, draft.params)
  assert back.params["vocab_ids_U"].dtype == np.int32
  assert registry.restore_checkpoint(str(tmp_path / "d"), dtype="bfloat16").params[
      "vocab_ids_U"].dtype == np.int32  # a dtype cast leaves integer params alone
  with pytest.raises(ValueError, match="derived from 'tiny-base'"):  # no loader for its base
    orbax_io.restore_checkpoint(str(tmp_path / "d"))


def _as_version_1(path, base_params=None):
  """Rewrites the description at `path` as version 1 wrote it (the params are left as they are)."""
  meta = json.loads((path / MODEL_FILE).read_text())
  meta["version"] = 1
  if base_params is not None:
    meta["base"]["params"] = base_params
  (path / MODEL_FILE).write_text(json.dumps(meta))


def test_version_1_checkpoints_restore_their_head_as_lm_head_DU(tmp_path):
  m = tiny_model()  # untied: its head is lm_head_DU
  v1_params = {("lm_head_DV" if n == "lm_head_DU" else n): v for n, v in m.params.items()}
  save_checkpoint(m.replace(params=v1_params), tmp_path / "v1")  # stored as version 1 named it
  assert json.loads((tmp_path / "v1" / MODEL_FILE).read_text())["version"] == VERSION
  with pytest.raises(ValueError, match=r"v1/params: missing tensor lm_head_DU"):
    restore_checkpoint(tmp_path / "v1")  # as the current version, the old name is not migrated
  _as_version_1(tmp_path / "v1")
  r = restore_checkpoint(tmp_path / "v1")
  assert "lm_head_DV" not in r.params
  assert_equal_params(r.params, m.params)
  # A derived checkpoint of version 1 listed the shared head under its old name too.
  target = seeded_tiny_model(seed=3, tie_embeddings=False)
  draft = drafts.adapted_self_draft(target, 1, jax.random.key(0), adapter_dim=8)
  draft.params["adapter"]["wdown_FD"] = draft.params["adapter"]["wdown_FD"] + 0.5
  save_checkpoint(draft, tmp_path / "d", base=("tiny-base", target))
  base_params = json.loads((tmp_path / "d" / MODEL_FILE).read_text())["base"]["params"]
  assert "lm_head_DU" in base_params
  _as_version_1(tmp_path / "d", [("lm_head_DV" if n == "lm_head_DU" else n)
                                 for n in base_params])
  back = restore_checkpoint(tmp_path / "d", load_base=lambda name, dtype: target)
  assert sorted(back.params) == sorted(draft.params)
  assert_equal_params(back.params, draft.params)


def test_a_newer_version_is_refused(tmp_path):
  save_checkpoint(tiny_model(), tmp_path / "v9")
  meta = json.loads((tmp_path / "v9" / MODEL_FILE).read_text())
  (tmp_path / "v9" / MODEL_FILE).write_text(json.dumps({**meta, "version": 9}))
  with pytest.raises(ValueError, match=r"version is 9; this specjax reads versions \[1, 2, 3\]"):
    restore_checkpoint(tmp_path / "v9")


def flip_bytes(params_dir, n=256):
  """Overwrites n bytes in the middle of the largest array data file (a disk's bit rot)."""
  files = [os.path.join(r, f) for r, _, fs in os.walk(params_dir) for f in fs
           if os.sep + "d" + os.sep in os.path.join(r, f) + os.sep or r.endswith(os.sep + "d")]
  path = max(files, key=os.path.getsize)
  data = bytearray(open(path, "rb").read())
  mid = len(data) // 2
  data[mid:mid + n] = bytes((b ^ 0x5A) for b in data[mid:mid + n])
  open(path, "wb").write(bytes(data))
  return path


def test_checksums_catch_flipped_bytes_in_the_array_data(tmp_path):
  m = tiny_model()
  save_checkpoint(m, tmp_path / "ckpt")
  meta = json.loads((tmp_path / "ckpt" / MODEL_FILE).read_text())
  assert meta["version"] == VERSION and "embedding_VD" in meta["checksums"]
  flip_bytes(tmp_path / "ckpt" / PARAMS_DIR)
  with pytest.raises(ValueError, match=r"ckpt/params: (tensor \S+ fails its checksum|cannot "
                                       r"restore the params)"):
    restore_checkpoint(tmp_path / "ckpt")
  with pytest.raises(ValueError, match=r"ckpt/params"):
    registry.load(str(tmp_path / "ckpt"))


def test_a_changed_checksum_or_a_missing_one_is_an_error(tmp_path):
  save_checkpoint(tiny_model(), tmp_path / "c")
  meta = json.loads((tmp_path / "c" / MODEL_FILE).read_text())
  meta["checksums"]["embedding_VD"] = "sha256:" + "0" * 64
  (tmp_path / "c" / MODEL_FILE).write_text(json.dumps(meta))
  with pytest.raises(ValueError, match=r"c/params: tensor embedding_VD fails its checksum"):
    restore_checkpoint(tmp_path / "c")
  del meta["checksums"]
  (tmp_path / "c" / MODEL_FILE).write_text(json.dumps(meta))
  with pytest.raises(ValueError, match=r"lacks the 'checksums' field"):
    restore_checkpoint(tmp_path / "c")


def test_nonfinite_params_are_refused_on_save_and_load_unless_allowed(tmp_path):
  m = tiny_model()
  bad = m.replace(params=dict(m.params, embedding_VD=m.params["embedding_VD"].at[3, 1].set(
      jnp.nan)))
  for fmt in ("orbax", "safetensors", "gguf"):
    path = tmp_path / f"bad.{fmt}"
    with pytest.raises(ValueError, match=r"refusing to save 'tiny': non-finite parameters \(NaN "
                                         r"or inf\) in embedding_VD"):
      registry.save(bad, str(path), format=fmt)
    assert not path.exists()  # nothing written
  registry.save(bad, str(tmp_path / "nan"), format="orbax", allow_nonfinite=True)
  with pytest.raises(ValueError, match=r"nan/params: non-finite parameters \(NaN or inf\) in "
                                       r"embedding_VD"):
    registry.load(str(tmp_path / "nan"))
  back = registry.load(str(tmp_path / "nan"), allow_nonfinite=True)
  assert np.isnan(np.asarray(back.params["embedding_VD"][3, 1]))
  registry.save(bad, str(tmp_path / "nan_hf"), format="safetensors", allow_nonfinite=True)
  with pytest.raises(ValueError, match=r"nan_hf: non-finite parameters"):
    registry.load(str(tmp_path / "nan_hf"))
  registry.save(bad, str(tmp_path / "nan.gguf"), format="gguf", allow_nonfinite=True)
  with pytest.raises(ValueError, match=r"nan.gguf: non-finite parameters"):
    registry.load(str(tmp_path / "nan.gguf"))


def test_version_2_checkpoints_without_checksums_load_with_a_warning(tmp_path, caplog):
  m = tiny_model()
  save_checkpoint(m, tmp_path / "v2")
  meta = json.loads((tmp_path / "v2" / MODEL_FILE).read_text())
  meta["version"] = 2
  del meta["checksums"]
  (tmp_path / "v2" / MODEL_FILE).write_text(json.dumps(meta))
  with caplog.at_level("WARNING"):
    r = restore_checkpoint(tmp_path / "v2")
  assert "has no checksums; loaded unverified" in caplog.text
  assert_equal_params(r.params, m.params)


@pytest.mark.parametrize("value,message", [
    ("sixty-four", "field 'vocab_size' must be a number, got 'sixty-four'"),
    ([64], r"field 'vocab_size' must be a number, got \[64\]"),
    (64.5, "field 'vocab_size' must be an integer, got 64.5"),
    (True, "field 'vocab_size' must be a number, got True"),
])
def test_hf_config_errors_name_the_file_and_the_field(tmp_path, value, message):
  m = seeded_tiny_model()
  registry.save(m, str(tmp_path / "hf"), format="safetensors")
  cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
  (tmp_path / "hf" / "config.json").write_text(json.dumps(dict(cfg, vocab_size=value)))
  with pytest.raises(ValueError, match=r"hf/config.json: " + message):
    registry.load(str(tmp_path / "hf"))
  (tmp_path / "hf" / "config.json").write_text(json.dumps([cfg]))
  with pytest.raises(ValueError, match=r"hf/config.json: expected a JSON object"):
    registry.load(str(tmp_path / "hf"))


def test_checkpoint_config_errors_name_the_file_and_the_field(tmp_path):
  save_checkpoint(tiny_model(), tmp_path / "c")
  meta = json.loads((tmp_path / "c" / MODEL_FILE).read_text())
  meta["config"]["vocab_size"] = "sixty-four"
  (tmp_path / "c" / MODEL_FILE).write_text(json.dumps(meta))
  with pytest.raises(ValueError, match=rf"c/{MODEL_FILE}: not a valid specjax checkpoint "
                                       r"description \(ModelConfig.vocab_size must be an integer"):
    registry.load(str(tmp_path / "c"))
