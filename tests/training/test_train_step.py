import jax
import jax.numpy as jnp
import numpy as np
import pytest

import specjax as sj
from specjax import training
from tests.helpers import tiny_model


def test_lm_steps_reduce_the_loss():
  model = tiny_model(seed=0, init_std=0.02)
  opt = training.make_optimizer(training.OptimConfig(learning_rate=3e-3, warmup_steps=5,
                                                     total_steps=60))
  state = training.init_train_state(model.params, opt)
  # A learnable corpus: repeated arithmetic progressions mod 64.
  starts = np.random.default_rng(0).integers(0, 64, 16)
  tokens = jnp.asarray((starts[:, None] + 3 * np.arange(24)) % 64, jnp.int32)
  mask = jnp.ones(tokens.shape, bool)
  first = None
  for _ in range(60):
    state, m = training.lm_step_jit(state, tokens, mask, config=model.config, optimizer=opt)
    first = float(m["loss"]) if first is None else first
  assert int(state.step) == 60
  assert float(m["loss"]) < 0.5 * first


def test_tvd_distillation_raises_measured_acceptance():
  """A few TVD steps on target-generated text raise the speculative loop's acceptance.

  Measured on the same prompts as the training text, with fresh sampling keys:
  a 1-layer draft cannot generalise across contexts of a random target from so
  little data, but it can learn the distributions the target produces there.
  """
  target = tiny_model(seed=3, init_std=0.3)
  draft = tiny_model(seed=9, init_std=0.3, num_layers=1)
  s = sj.Sampling(1.0)
  prompts = [[i, (i * 7) % 64] for i in range(32)]

  def alpha(d):
    out = sj.speculative_generate(target, d, prompts, k=4, max_new_tokens=24, sampling=s,
                                  key=jax.random.key(1), eos_id=None)
    return out.stats.alpha

  before = alpha(draft)
  gen = sj.generate(target, prompts * 4, max_new_tokens=30, sampling=s,
                    key=jax.random.key(2), eos_id=None).tokens
  data = jnp.concatenate([jnp.asarray(prompts * 4, jnp.int32), gen], axis=1)
  opt = training.make_optimizer(training.OptimConfig(learning_rate=1e-2, warmup_steps=2,
                                                     total_steps=60, weight_decay=0.0))
  state = training.init_train_state(draft.params, opt)
  distill = training.DistillConfig("tvd", s)
  mask = jnp.ones(data.shape, bool)
  for _ in range(60):
    state, m = training.distill_step_jit(state, target.params, data, mask, config=draft.config,
                                         target_config=target.config, optimizer=opt,
                                         distill=distill)
  after = alpha(draft.replace(params=state.params))
  # Measured: 0.127 -> 0.264 (the sampled text, hence the figures, move with float-level
  # changes in the forward, such as specjax's CPU matmul kernel; ~0.02 standard error).
  assert after > before + 0.1, (before, after)


def test_sub_vocab_lm_loss_skips_targets_outside_the_head():
  """CE of a sub-vocab model: over its own U logits, only at targets it can predict."""
  from specjax.models import drafts
  target = tiny_model(seed=3)
  ids = np.array([0, 3, 5, 9, 17, 30, 41, 63])
  d = drafts.small_draft(target, jax.random.key(1), d_model=32, num_layers=1, num_heads=2,
                         num_kv_heads=1, head_dim=16, d_ff=64, vocab_ids=ids)
  tokens = jnp.asarray([[0, 3, 4, 5, 9, 63, 2, 17]], jnp.int32)
  mask = jnp.ones(tokens.shape, bool)
  logits, _ = sj.forward(d.params, d.config, tokens[:, :-1], head_logits=True)
  logp = np.asarray(jax.nn.log_softmax(logits[0]))
  want = [-logp[t, list(ids).index(y)] for t, y in enumerate(np.asarray(tokens[0, 1:]))
          if y in ids]
  opt = training.make_optimizer(training.OptimConfig(learning_rate=0.0))
  train, frozen = training.split_params(d.params)
  state = training.init_train_state(train, opt)  # donated to the step: reference first
  _, m = training.lm_step_jit(state, tokens, mask, frozen, config=d.config, optimizer=opt)
  np.testing.assert_allclose(float(m["loss"]), np.mean(want), rtol=1e-5)


def test_split_params_refuses_a_trainable_name_that_matches_nothing():
  params = {"adapter": {"w": jnp.ones(2)}, "adapter_norm": jnp.ones(2),
            "lm_head_DU": jnp.ones((2, 3)), "vocab_ids_U": jnp.arange(3)}
  train, frozen = training.split_params(params, "adapter,lm_head_DU")
  assert sorted(train) == ["adapter", "adapter_norm", "lm_head_DU"]
  assert sorted(frozen) == ["vocab_ids_U"]
  with pytest.raises(ValueError, match=r"\['lm_head_DV'\] match no parameter"):
    training.split_params(params, "adapter,lm_head_DV")  # the head's name before the rename
