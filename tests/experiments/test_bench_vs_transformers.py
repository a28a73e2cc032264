"""bench_vs_transformers' config checks (the benchmark itself runs torch: not run in tests)."""
import pytest

from configs import bench_vs_transformers as presets
from experiments import bench_vs_transformers
from tests.experiments import assert_refused_before_loading


@pytest.mark.parametrize("field,value", [
    ("model", "random:tiny"), ("model", "smollm2_135m"), ("prompt", ""), ("new_tokens", 0),
    ("repeats", 0), ("torch_threads", -1), ("prefill_tokens", (0,))])
def test_bad_config_values_are_refused_before_the_model_is_loaded(monkeypatch, field, value):
  assert_refused_before_loading(monkeypatch, bench_vs_transformers.main,
                                presets.get_config("quick"), field, value, f"config.{field}")


def test_presets_pass_the_checks():
  for arg in ("smollm2", "quick"):
    bench_vs_transformers._check(presets.get_config(arg))
  with pytest.raises(ValueError, match="unknown bench_vs_transformers preset"):
    presets.get_config("nope")
