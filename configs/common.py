"""Config pieces every preset family shares: one shape for sampling settings."""
import ml_collections


def sampling(temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0) -> ml_collections.ConfigDict:
  """The one sampling sub-config, the fields of `sj.Sampling` (temperature 0 = greedy)."""
  return ml_collections.ConfigDict(dict(temperature=temperature, top_k=top_k, top_p=top_p))
