"""The feature draft network: training-time test computes exactly what decoding does."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import specjax as sj
from specjax.models import feature_draft as fd
from specjax.models.kv_cache import init_cache
from tests.helpers import tiny_model


@pytest.fixture(scope="module")
def draft():
  target = tiny_model(seed=1, num_layers=4)
  d = sj.feature_draft(target, jax.random.key(2), vocab_ids=list(range(0, 64, 2)))
  # Larger weights than init: peaked outputs, so a wrong mask or shift shows.
  scale = lambda x: x * 5 if x.dtype == jnp.float32 and x.ndim == 2 and x.shape[0] != 64 else x
  return d.replace(params=jax.tree.map(scale, d.params))


def test_unrolled_runs_equal_the_decode_path_from_every_start(draft):
  params, cfg = draft.params, draft.config
  B, T, steps = 2, 12, 3
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(0, 64, (B, T)), jnp.int32)
  hidden = jnp.asarray(rng.normal(size=(B, T, len(cfg.feature_layers), cfg.d_model)),
                       jnp.float32)
  feat = fd.fuse(params, cfg, hidden)
  logits = fd.unrolled_logits(params, cfg, tokens[:, 1:], feat[:, :-1], steps)
  assert [x.shape for x in logits] == [(B, T - 1, 32)] * steps
  ids = params["vocab_ids_U"]
  forward = jax.jit(fd.feature_forward, static_argnums=1)  # eagerly: 38 s of op dispatch
  for start in range(T - steps):  # the last target feature the chain starts from
    cache = init_cache(cfg, B, T + 4)
    if start:
      _, _, cache = forward(params, cfg, tokens[:, 1:start + 1], feat[:, :start], cache)
    f = feat[:, start:start + 1]
    for j in range(1, steps + 1):  # decoding: one pair at a time, on its own output stream
      p = start + j - 1
      lg, f, cache = forward(params, cfg, tokens[:, p + 1:p + 2], f, cache)
      np.testing.assert_allclose(logits[j - 1][:, p], lg[:, 0][:, ids], atol=2e-4, rtol=1e-4)


def test_a_feature_config_inits_and_has_logical_axes(draft):
  params = sj.models.model.init_params(draft.config, jax.random.key(0))
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, draft.params)
  axes = sj.models.model.param_logical_axes(draft.config)
  assert set(axes) == set(params)
  with pytest.raises(ValueError, match="feature_layers"):
    fd.check_config(draft.config.replace(feature_layers=()))
