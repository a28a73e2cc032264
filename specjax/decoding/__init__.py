"""Decoding: warping, autoregressive and speculative sampling, drafters."""
from specjax.decoding.adaptive import AdaptiveK
from specjax.decoding.autoregressive import GenerateOutput, generate
from specjax.decoding.sampling import Sampling, sample, warp
from specjax.decoding.stats import Stats
from specjax.decoding.drafters import (Drafter, Features, ModelDrafter, PromptLookup, build_drafter,
                                      prompt_lookup, self_draft)
from specjax.decoding.feature_drafter import FeatureDrafter, feature_draft
from specjax.decoding.speculative import accept_and_correct, speculative_generate
