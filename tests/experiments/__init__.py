"""Tests of the experiment mains; `assert_refused_before_loading` is their shared config check."""
import pytest

import specjax as sj


def assert_refused_before_loading(monkeypatch, main, cfg, field: str, value, match: str):
  """Sets `cfg.<field>` (dotted) to `value`; main(cfg) must raise a ValueError matching `match`
  before any model is built or loaded."""
  from experiments import common
  monkeypatch.setattr(common, "build_model", lambda *a, **k: pytest.fail("a model was built"))
  monkeypatch.setattr(sj, "load", lambda *a, **k: pytest.fail("a model was loaded"))
  node, _, leaf = field.rpartition(".")
  with cfg.unlocked():
    (cfg[node] if node else cfg)[leaf] = value
  with pytest.raises(ValueError, match=match):
    main(cfg)
