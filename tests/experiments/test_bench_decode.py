"""bench_decode's config: its presets, and bad values refused before any model loads."""
import pytest

from configs import bench_decode as presets
from experiments import bench_decode
from tests.experiments import assert_refused_before_loading


def test_presets():
  assert presets.get_config("smollm2_shape").model == "random:smollm2_135m"
  assert presets.get_config("tiny").model == "random:tiny"
  with pytest.raises(ValueError, match="unknown bench_decode preset"):
    presets.get_config("smollm2_135m")


@pytest.mark.parametrize("field,value", [("new_tokens", 3), ("batch", 0), ("rounds", -1),
                                         ("read_bytes", 0)])
def test_bad_config_refused_before_any_model_loads(monkeypatch, field, value):
  assert_refused_before_loading(monkeypatch, bench_decode.main, presets.get_config("tiny"),
                                field, value, f"config.{field} must be an integer")


def test_bare_preset_refused_with_the_random_hint():
  cfg = presets.get_config("tiny")
  cfg.model = "smollm2_135m"  # the old --model default: now random:smollm2_135m
  with pytest.raises(ValueError, match="write 'random:smollm2_135m'"):
    bench_decode.main(cfg)
