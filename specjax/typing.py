"""Shape-suffix legend used in names and einsum strings across specjax (no code).

  B batch            T tokens in this call      S cache slots
  N query heads      K kv heads                 H head dim
  D model width      F feed-forward width       V vocab
  U ids the output head scores (`ModelConfig.head_vocab`: sub_vocab, else = V)
  G draft length (gamma, "k" in the papers)     L layers
  Q query rows per kv head in one call (= N // K * T)

E.g. `logits_BTV` is float[batch, tokens, vocab]; `k_BKSH` is a per-layer key cache.
"""
