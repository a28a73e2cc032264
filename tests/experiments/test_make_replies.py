"""make_replies.py end to end on the tiny preset (the real target, no mesh), and its config checks."""
import glob
import os
import types

import pytest

from configs import replies as presets
from experiments import make_replies
from tests.experiments import assert_refused_before_loading


@pytest.mark.parametrize("field,value,match", [
    ("rules", "bogus", "unknown sharding rules"), ("samplings", ("warm",), "unknown 'warm'"),
    ("shard_prompts", 0, r"config\.shard_prompts"), ("target", "tiny", "random weights have no tokenizer")])
def test_bad_config_refused_before_any_model_loads(monkeypatch, field, value, match):
  assert_refused_before_loading(monkeypatch, make_replies.main, presets.get_config("smollm2_tiny"),
                                field, value, match)


def test_tiny_preset_makes_a_shard_without_a_mesh_and_resumes(monkeypatch, tmp_path, capsys):
  """The default config names sharding rules but no mesh: the rules apply only with a mesh."""
  monkeypatch.setattr(make_replies, "_WORKDIR", types.SimpleNamespace(value=str(tmp_path)))
  cfg = presets.get_config("smollm2_tiny")
  cfg.max_shards = 1
  make_replies.main(cfg)
  shards = glob.glob(os.path.join(tmp_path, "*.npz"))
  assert len(shards) == 1 and "'made': 1" in capsys.readouterr().out
  stamp = os.path.getmtime(shards[0])
  make_replies.main(cfg)  # resumed: the shard is there, nothing is made again
  assert "'made': 0" in capsys.readouterr().out and os.path.getmtime(shards[0]) == stamp
