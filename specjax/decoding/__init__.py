"""Decoding: warping, autoregressive and speculative sampling, drafters."""
from specjax.decoding.autoregressive import GenerateOutput, generate
from specjax.decoding.sampling import Sampling, sample, warp
from specjax.decoding.stats import Stats
