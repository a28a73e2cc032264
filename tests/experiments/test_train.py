"""train.py's config checks: every bad value refused in `build`, before any work."""
import math

import pytest

from configs import train as train_configs
from experiments import train as train_exp
from specjax.training import loop, train_step


def _cfg(**overrides):
  cfg = train_configs.get_config("tiny")
  cfg.update_from_flattened_dict(overrides)
  return cfg


@pytest.mark.parametrize("field,value,match", [
    ("eval.k", 0, r"config\.eval\.k must be an integer >= 1, got 0"),
    ("eval.new_tokens", 0, r"config\.eval\.new_tokens must be an integer >= 1"),
    ("eval.every", -1, r"config\.eval\.every must be an integer >= 0"),
    ("ckpt_every", 0, r"config\.ckpt_every must be an integer >= 1"),
    ("log_every", 0, r"config\.log_every must be an integer >= 1"),
    ("keep", 0, r"config\.keep must be an integer >= 1"),
    ("steps", -5, r"config\.steps must be an integer >= 1"),
    ("data.seq_len", 0, r"config\.data\.seq_len must be an integer >= 2"),
    ("data.prefix_len", 32, r"config\.data\.prefix_len \(32\) must be < config\.data\.seq_len"),
    ("data.mixture", "corpus:nan", r"config\.data\.mixture = 'corpus:nan'.*finite"),
    ("data.mixture", "corpus:1,target:inf", r"config\.data\.mixture"),
    ("optim.learning_rate", math.nan, r"config\.optim\.learning_rate must be a finite number"),
    ("optim.learning_rate", -1.0, r"config\.optim\.learning_rate must be a finite number > 0"),
    ("optim.clip_norm", 0.0, r"config\.optim\.clip_norm must be a finite number > 0"),
    ("optim.weight_decay", math.inf, r"config\.optim\.weight_decay"),
    ("optim.warmup_steps", -1, r"config\.optim\.warmup_steps"),
    ("data.heldout_fraction", 1.5, r"config\.data\.heldout_fraction")])
def test_bad_config_is_refused_before_any_work(monkeypatch, tmp_path, field, value, match):
  from experiments import common
  monkeypatch.setattr(common, "build_model", lambda *a, **k: pytest.fail("a model was built"))
  cfg = _cfg()
  node, _, leaf = field.rpartition(".")
  with cfg.unlocked():
    (cfg[node] if node else cfg)[leaf] = value
  with pytest.raises(ValueError, match=match):
    train_exp.run(cfg, str(tmp_path / "run"), verbose=False)
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("overrides,match", [
    ({"data.seq_len": 600}, r"config\.data\.seq_len = 600 exceeds the target's max_len 512"),
    ({"eval.prompt_len": 500}, r"eval\.prompt_len \+ eval\.new_tokens \+ eval\.k = 520 exceeds"),
    ({"mode": "lm", "target": "", "draft.kind": "preset", "draft.preset": "tiny",
      "data.seq_len": 513}, r"exceeds the draft's max_len 512")])
def test_lengths_past_the_models_max_len_are_refused_before_training(tmp_path, overrides, match):
  with pytest.raises(ValueError, match=match):
    train_exp.run(_cfg(**overrides), str(tmp_path / "run"), verbose=False)
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kw,match", [
    (dict(learning_rate=math.nan), "OptimConfig.learning_rate"),
    (dict(learning_rate=-1e-3), "OptimConfig.learning_rate"),
    (dict(clip_norm=0.0), "OptimConfig.clip_norm"), (dict(warmup_steps=-1), "warmup_steps"),
    (dict(total_steps=True), "total_steps"), (dict(b2=1.5), "OptimConfig.b2")])
def test_optim_config_checks_itself(kw, match):
  with pytest.raises(ValueError, match=match):
    train_step.OptimConfig(**kw)


def test_mixture_weights_must_be_finite():
  for bad in ((("corpus", math.nan),), (("corpus", math.inf),), (("corpus", 0.0),),
              (("corpus", True),), (("nope", 1.0),), ()):
    with pytest.raises(ValueError, match="data mixture"):
      loop.check_mixture(bad, "distill")
