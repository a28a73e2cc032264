"""generate.py's config: checked before any model is built; its flags."""
import copy
import math
import os

from absl import flags
from ml_collections import config_flags
import pytest

from configs import generate as presets
from experiments import generate
from tests.experiments import assert_refused_before_loading


@pytest.mark.parametrize("field,value,match", [
    ("draft", "self:abc", r"config\.draft: 'self:abc': self:N needs an integer N >= 1"),
    ("draft", "lookup:0", r"config\.draft"), ("k", 0, r"config\.k must be an integer >= 1"),
    ("batch", 0, r"config\.batch"), ("max_new_tokens", -1, r"config\.max_new_tokens"),
    ("timing_repeats", -1, r"config\.timing_repeats"),
    ("sampling.temperature", math.nan, r"config\.sampling: Sampling\.temperature"),
    ("prompt_ids", (), r"config\.prompt_ids"), ("prompt_ids", (1, -2), r"config\.prompt_ids"),
    ("mesh_shape", (-2, -4), r"config\.mesh_shape: mesh axis 'data'"),
    ("rules", "bogus", "unknown sharding rules"),
    ("model", "tiny", "random-weight preset")])
def test_bad_config_refused_before_any_model_loads(monkeypatch, field, value, match):
  assert_refused_before_loading(monkeypatch, generate.main, presets.get_config("tiny"), field,
                                value, match)


def test_presets_pass_the_checks():
  for name in ("tiny", "tiny_mesh", "smollm2", "smollm2_shape"):
    generate.check(presets.get_config(name))


def test_prompt_ids_can_be_overridden_on_the_command_line():
  fv = flags.FlagValues()
  path = os.path.join(os.path.dirname(presets.__file__), "generate.py")
  argv = ["generate", f"--config={path}:tiny", "--config.prompt_ids=4", "--config.prompt_ids=5"]
  config_flags.DEFINE_config_file("config", flag_values=fv, sys_argv=argv)
  fv(argv)
  assert tuple(fv.config.prompt_ids) == (4, 5)


@pytest.mark.parametrize("value", ["-2", "0"])
def test_cpu_devices_below_one_is_refused(value):
  flag = copy.deepcopy(flags.FLAGS["cpu_devices"])  # defined by experiments.common
  with pytest.raises(flags.IllegalFlagValueError):
    flag.parse(value)
