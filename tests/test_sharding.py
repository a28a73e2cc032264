import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import specjax as sj
from specjax import sharding
from tests.helpers import tiny_model

MESHES = [(1, 8), (2, 4), (8, 1)]


def _model(seed=3):  # every sharded dimension divisible by 8
  return tiny_model(seed=seed, num_heads=16, num_kv_heads=8, head_dim=8)


def _prompts():
  rng = np.random.default_rng(0)
  return [rng.integers(0, 64, n).tolist() for n in (3, 17, 5, 30, 1, 9, 12, 2)]


def _same(a, b):
  np.testing.assert_array_equal(a.tokens, b.tokens)
  np.testing.assert_array_equal(a.lengths, b.lengths)
  np.testing.assert_equal(a.stats.summary(), b.stats.summary())  # nan == nan here
  np.testing.assert_array_equal(a.stats.accepted_histogram_BG, b.stats.accepted_histogram_BG)


@pytest.mark.parametrize("shape", MESHES)
def test_ars_on_a_mesh_equals_one_device(shape):
  model, mesh = _model(), sharding.make_mesh(shape)
  for s, key in [(sj.Sampling(0.0), None), (sj.Sampling(0.9, top_p=0.9), jax.random.key(4))]:
    one = sj.generate(model, _prompts(), 12, s, key=key, eos_id=None)
    sharded = sj.generate(model, _prompts(), 12, s, key=key, eos_id=None, mesh=mesh)
    _same(one, sharded)


@pytest.mark.parametrize("shape", MESHES)
def test_sps_on_a_mesh_equals_one_device(shape):
  target, mesh = _model(), sharding.make_mesh(shape)
  draft = sj.self_draft(target, 1)
  for s, key in [(sj.Sampling(0.0), None), (sj.Sampling(0.9, top_k=20), jax.random.key(5))]:
    for d, rules in [(draft, None), (draft, sharding.REPLICATED_RULES),
                     (sj.prompt_lookup(2), None)]:
      kw = dict(k=3, max_new_tokens=12, sampling=s, key=key, eos_id=None)
      one = sj.speculative_generate(target, d, _prompts(), **kw)
      sharded = sj.speculative_generate(target, d, _prompts(), mesh=mesh, draft_rules=rules, **kw)
      _same(one, sharded)


def test_a_feature_draft_on_a_mesh_equals_one_device(shape=(2, 4)):
  """The feature draft's params placed by the draft rules (sharded or replicated), the target's
  features handed over sharded: the same tokens and statistics as on one device."""
  target, mesh = _model(), sharding.make_mesh(shape)
  draft = sj.feature_draft(target, jax.random.key(1), vocab_ids=list(range(0, 64, 2)))
  for s, key in [(sj.Sampling(0.0), None), (sj.Sampling(0.9, top_p=0.9), jax.random.key(6))]:
    kw = dict(k=3, max_new_tokens=12, sampling=s, key=key, eos_id=None)
    one = sj.speculative_generate(target, draft, _prompts(), **kw)
    for rules in (None, sharding.REPLICATED_RULES):
      _same(one, sj.speculative_generate(target, draft, _prompts(), mesh=mesh, draft_rules=rules,
                                         **kw))


def test_a_feature_draft_runs_in_bfloat16():
  target = _model().replace(config=_model().config.replace(dtype="bfloat16"))
  target = target.replace(params=jax.tree.map(lambda x: x.astype("bfloat16"), target.params))
  draft = sj.feature_draft(target, jax.random.key(1))
  assert draft.config.dtype == "bfloat16" and draft.params["fuse_FD"].dtype == "bfloat16"
  out = sj.speculative_generate(target, draft, _prompts(), k=3, max_new_tokens=8, eos_id=None)
  ars = sj.generate(target, _prompts(), 8, eos_id=None)
  assert out.tokens.shape == ars.tokens.shape and int(out.stats.target_calls) > 0


def test_params_are_sharded_as_the_rules_say():
  model, mesh = _model(), sharding.make_mesh((2, 4))
  placement = sharding.Placement(mesh)
  params = sharding.place_params(model.params, sj.param_logical_axes(model.config), placement)
  assert params["embedding_VD"].sharding.spec == P("model", None)
  attn = params["layers_0"]["attn"]
  assert attn["wq_DNH"].sharding.spec == P(None, "model", None)
  assert attn["wk_DKH"].sharding.spec == P(None, "model", None)
  assert params["layers_1"]["mlp"]["wdown_FD"].sharding.spec == P("model", None)
  # Each device holds a quarter of the query heads.
  assert attn["wq_DNH"].addressable_shards[0].data.shape == (64, 4, 8)
  rep = sharding.place_params(model.params, sj.param_logical_axes(model.config),
                              sharding.Placement(mesh, sharding.REPLICATED_RULES))
  assert rep["layers_0"]["attn"]["wq_DNH"].sharding.is_fully_replicated


def test_mesh_errors():
  with pytest.raises(ValueError, match=r"needs 6 devices but there are 8"):
    sharding.make_mesh((2, 3))
  with pytest.raises(ValueError, match=r"8 devices do not divide by 3"):
    sharding.make_mesh((-1, 3))
  assert dict(sharding.make_mesh((-1, 4)).shape) == {"data": 2, "model": 4}
  model = tiny_model()  # 4 query heads, 2 kv heads
  with pytest.raises(ValueError, match=r"'kv_heads' of size 2 is sharded over mesh axis "
                                       r"'model' of size 4"):
    sj.generate(model, [[1, 2]] * 2, 4, mesh=sharding.make_mesh((2, 4)))
  with pytest.raises(ValueError, match=r"prompt batch: dimension 'batch' of size 3"):
    sj.generate(_model(), [[1, 2]] * 3, 4, mesh=sharding.make_mesh((2, 4)))
  with pytest.raises(ValueError, match=r"'vocab' of size 60 is sharded"):
    sj.generate(tiny_model(vocab_size=60, num_heads=16, num_kv_heads=8, head_dim=8),
                [[1]] * 8, 4, mesh=sharding.make_mesh((1, 8)))
  with pytest.raises(ValueError, match="without a mesh"):
    sj.generate(_model(), [[1]], 4, rules=sharding.DEFAULT_RULES)


def test_split_for_process():
  items = list(range(10))
  parts = [sharding.split_for_process(items, i, 3) for i in range(3)]
  assert parts == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


@pytest.mark.parametrize("shape,match", [
    ((-2, -4), "mesh axis 'data' size must be an integer >= 1"),
    ((2, 0), "mesh axis 'model' size must be an integer >= 1"),
    ((True, 8), "mesh axis 'data'"), ((2.0, 4), "mesh axis 'data'"),
    ((-1, -1), "at most one axis size may be -1"), ("2x4", "mesh shape must be a tuple"),
    ((2, 2, 2), "differ in length")])
def test_make_mesh_names_the_bad_axis(shape, match):
  with pytest.raises(ValueError, match=match):
    sharding.make_mesh(shape)


def test_make_mesh_takes_numpy_axis_sizes():
  assert dict(sharding.make_mesh((np.int64(2), -1)).shape) == {"data": 2, "model": 4}
