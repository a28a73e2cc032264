import numpy as np
import pytest

import specjax as sj
from specjax.decoding import drafters
from tests.helpers import tiny_model


def test_every_drafter_implements_the_protocol():
  target = tiny_model(seed=3)
  for d in (drafters.model_drafter(target), sj.prompt_lookup(3)):
    assert isinstance(d, sj.Drafter), type(d).__name__
  assert not isinstance(target, sj.Drafter)  # a Model is turned into one by the loop


def test_build_drafter_names_every_kind():
  target = tiny_model(seed=3)
  d = sj.build_drafter("lookup:2", target)
  assert isinstance(d, sj.PromptLookup) and d.max_ngram == 2
  assert sj.build_drafter("lookup", target).max_ngram == 3
  d = sj.build_drafter("self:1", target)
  assert isinstance(d, sj.Model) and d.config.num_layers == 1
  assert sj.build_drafter(target, target) is target
  for bad, msg in [("self:abc", "self:N needs an integer"), ("self:0", "num_layers"),
                   ("lookup:x", "lookup:N needs an integer"), ("/no/such/draft", "draft must be")]:
    with pytest.raises(ValueError, match=msg):
      sj.build_drafter(bad, target)


@pytest.mark.parametrize("name", ["self:1", "lookup:3"])
def test_speculative_generate_takes_a_drafter_name(name):
  target = tiny_model(seed=3)
  prompts = [[1, 2, 3, 1, 2], [9, 8]]
  by_name = sj.speculative_generate(target, name, prompts, k=3, max_new_tokens=8)
  by_object = sj.speculative_generate(target, sj.build_drafter(name, target), prompts, k=3,
                                      max_new_tokens=8)
  np.testing.assert_array_equal(by_name.tokens, by_object.tokens)
