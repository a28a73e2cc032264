"""Training-time test of a feature draft: its loss, and the loop's feature mode (resume)."""
import os
import signal

import jax
import numpy as np
import pytest

import specjax as sj
from configs.train import FEATURE_TRAINABLE
from specjax.training import loop, replies, train_step
from specjax.training.ttt import TTTConfig, ttt_loss
from tests.helpers import tiny_model


@pytest.fixture(scope="module")
def target():
  return tiny_model(seed=1, num_layers=4)


def _examples(n=12, seed=0):
  rng = np.random.default_rng(seed)
  return [replies.Example(rng.integers(0, 64, 20).astype(np.int32), 6, "greedy")
          for _ in range(n)]


@pytest.mark.parametrize("kwargs, msg", [
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(decay=0.0), "decay must be in"),
    (dict(sampling=sj.Sampling(0.0)), "temperature > 0"),
])
def test_bad_ttt_configs_are_refused(kwargs, msg):
  with pytest.raises(ValueError, match=msg):
    TTTConfig(**kwargs)


def test_loss_is_the_weighted_soft_cross_entropy_of_each_run(target):
  draft = sj.feature_draft(target, jax.random.key(0), vocab_ids=list(range(32)))
  b = next(replies.ReplyBatches(_examples(), 16, 4, 0))
  tokens, mask = b["tokens_BT"], b["mask_BT"]
  logits, _, hidden = sj.models.transformer.forward(target.params, target.config, tokens,
                                                    hidden_layers=draft.feature_layers)
  loss, m = ttt_loss(draft.params, draft.config, logits, hidden, tokens, mask,
                     TTTConfig(steps=3, decay=0.5))
  want = (m["loss_1"] + 0.5 * m["loss_2"] + 0.25 * m["loss_3"]) / 1.75
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  # Run 1 alone: -sum_U p log q over reply positions, from the target's warped distribution.
  one, m1 = ttt_loss(draft.params, draft.config, logits, hidden, tokens, mask, TTTConfig(steps=1))
  np.testing.assert_allclose(one, m["loss_1"], rtol=1e-6)
  assert 0 <= float(m["top1_3"]) <= 1 and float(one) > 0


def _train(target, workdir, steps=6, on_step=None):
  draft = sj.feature_draft(target, jax.random.key(0))
  cfg = loop.LoopConfig(mode="feature", steps=steps, trainable=FEATURE_TRAINABLE, ckpt_every=100,
                        eval_every=3, eval_k=3, eval_new_tokens=8,
                        eval_sampling=sj.Sampling(0.0))
  batches = replies.ReplyBatches(_examples(), 16, 4, seed=0)
  return loop.train(str(workdir), {"test": 1}, cfg, draft, batches, target=target,
                    optim=train_step.OptimConfig(learning_rate=3e-3, warmup_steps=1,
                                                 total_steps=steps),
                    eval_prompts={"p": [[1, 2, 3, 4], [5, 6]]}, ttt_config=TTTConfig(steps=2),
                    on_step=on_step, verbose=False)


def test_feature_training_resumes_bit_identically_and_keeps_the_best_draft(target, tmp_path):
  full = _train(target, tmp_path / "a")

  def preempt(step):
    if step == 4:
      os.kill(os.getpid(), signal.SIGTERM)
  first = _train(target, tmp_path / "b", on_step=preempt)
  assert first["preempted"] and first["step"] == 4
  second = _train(target, tmp_path / "b")
  assert second["resumed_from"] == 4 and second["step"] == 6
  for x, y in zip(jax.tree.leaves(full["params"]), jax.tree.leaves(second["params"])):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert {"loss_1", "loss_2", "top1_1", "top1_2", "acceptance"} <= set(full)
  best = sj.load(str(tmp_path / "a" / "best"))  # a Model whose config names the layers read
  assert best.config.feature_layers == sj.feature_draft(target, jax.random.key(0)).feature_layers
  out = sj.speculative_generate(target, best, [[1, 2, 3]], k=3, max_new_tokens=10)
  assert out.tokens.tolist() == sj.generate(target, [[1, 2, 3]], max_new_tokens=10).tokens.tolist()


def test_training_the_shared_embedding_is_refused(target, tmp_path):
  draft = sj.feature_draft(target, jax.random.key(0))
  cfg = loop.LoopConfig(mode="feature", steps=1, trainable="all")
  with pytest.raises(ValueError, match="shares the target's embedding"):
    loop.train(str(tmp_path), {}, cfg, draft, replies.ReplyBatches(_examples(), 16, 4, 0),
               target=target, ttt_config=TTTConfig())
