"""compare_drafts's config (a run needs the real SmolLM2 and the corpora: not here)."""
import pytest

from configs import compare_drafts as presets
from experiments import compare_drafts
from tests.experiments import assert_refused_before_loading


def test_presets_pass_the_checks():
  for name in ("smollm2", "quick"):
    cfg = presets.get_config(name)
    compare_drafts.check_config(cfg)
    assert cfg.target == "smollm2-135m" and isinstance(cfg.drafts, tuple)
  with pytest.raises(ValueError, match="unknown compare_drafts preset"):
    presets.get_config("tiny")


@pytest.mark.parametrize("field,value,match", [
    ("drafts", (), "non-empty"), ("drafts", ("self:4", "self:4"), "duplicates"),
    ("drafts", ("self:4:x",), "not self:N:U"), ("max_k", 0, "config.max_k"),
    ("prompts", -1, "config.prompts"), ("sampling.top_p", 0.0, "config.sampling"),
    ("target", "random:tiny", "random weights have no tokenizer")])
def test_bad_config_refused_before_any_model_loads(monkeypatch, field, value, match):
  assert_refused_before_loading(monkeypatch, compare_drafts.main, presets.get_config("quick"),
                                field, value, match)

