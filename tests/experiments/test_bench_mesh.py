"""bench_mesh's config: its presets, and bad values refused before any model loads."""
import pytest

from configs import bench_mesh as presets
from experiments import bench_mesh
from tests.experiments import assert_refused_before_loading


@pytest.mark.parametrize("field,value,match", [
    ("meshes", ("1x1", "2x3"), "'2x3' needs 6 devices, there are 8"),
    ("meshes", ("2by4",), "not DATAxMODEL"), ("meshes", ("0x8",), "not DATAxMODEL"),
    ("meshes", (), "non-empty"), ("rules", "nope", "unknown sharding rules"),
    ("draft", "self:x", r"config\.draft: 'self:x'"),
    ("batch", 0, "config.batch")])
def test_bad_config_refused_before_any_model_loads(monkeypatch, field, value, match):
  assert_refused_before_loading(monkeypatch, bench_mesh.main, presets.get_config("tiny"),
                                field, value, match)


def test_presets_pass_the_checks_on_eight_devices():  # tests/conftest.py: 8 CPU devices
  for name in ("tiny", "smollm2"):
    bench_mesh.check_config(presets.get_config(name))
  cfg = presets.get_config("tiny")
  cfg.meshes = ("1x1", "1x8", "2x4", "8x1")
  bench_mesh.check_config(cfg)
  with pytest.raises(ValueError, match="unknown bench_mesh preset"):
    presets.get_config("nope")
