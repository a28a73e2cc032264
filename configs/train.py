"""Training presets: `--config=configs/train.py:<preset> --workdir=DIR`.

  tiny              distil a 1-layer draft into a tiny random target (tests, seconds)
  tiny_lm           train the tiny model from scratch on random-token data (tests)
  chinchilla_44m    a Chinchilla-style model from scratch on code + prose (no target)
  smollm2_small     SmolLM2-135M draft: 4 layers x 256, 8k-id head, distilled (tvd)
  smollm2_small_lm  the same draft trained without distillation (cross-entropy)
  smollm2_adapter   SmolLM2's first 4 layers + a trained adapter, 8k-id head, distilled
  smollm2_eagle     a feature draft (EAGLE-3 style: layers 1, 15, 28 fused, one decoder layer,
                    8k-id head) trained with training-time test on SmolLM2's own replies
                    (--config.data.replies=DIR of experiments/make_replies.py)
  smollm2_eagle_top the same reading only the top layer (ablation)
  smollm2_eagle_long  the shipped feature draft trained on with two exchanges per 768-token
                    window (long contexts, as Table 1's 1-shot prompts)
  smollm2_small_replies  the small draft distilled on the same replies (ablation)
  tiny_feature      a feature draft of the tiny random target on random tokens (tests)

Every field can be overridden: --config.distill.divergence=jsd --config.data.mixture=...
"""
import ml_collections

from configs.common import sampling

# A feature draft trains everything but the target's embedding, which it shares.
FEATURE_TRAINABLE = "fuse,embed_norm,feature_norm,in_proj,layers,final_norm,lm_head"


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.mode = "distill"            # "distill" (draft <- target), "lm" (cross-entropy) or
                                  # "feature" (a feature draft, training-time test)
  cfg.seed = 0
  cfg.dtype = "float32"
  # The target: anything `sj.load` takes, or random:<configs/model.py preset>.
  cfg.target = "random:tiny"
  cfg.target_seed = 3             # random targets only
  # The model trained. kind: "small" (random init, target's vocab), "self" (target's
  # first `layers` layers + adapter), or "preset" (configs/model.py preset, for lm mode).
  cfg.draft = ml_collections.ConfigDict(dict(
      kind="small", preset="", layers=1, d_model=64, num_heads=4, num_kv_heads=2, head_dim=16,
      # path: a saved draft; kind "load" trains it on, kind "feature" starts from it
      d_ff=128, adapter_dim=0, sub_vocab=0, path="",
      feature_layers=()))  # kind "feature": target layers read (() = a low, middle, high one)
  # Training-time test (mode "feature"): runs unrolled, and run j's weight decay**(j - 1).
  cfg.ttt = ml_collections.ConfigDict(dict(steps=3, decay=0.8))
  cfg.trainable = "all"           # or e.g. "adapter,adapter_norm" for a self-draft
  # `sampling` warps both sides of the divergence and the target's on-policy generations.
  cfg.distill = ml_collections.ConfigDict(dict(divergence="tvd", beta=0.5, sampling=sampling()))
  # Data: corpus sources from {code, prose, aclsum} or "random" (random tokens, tiny tests);
  # mixture of corpus / target-generated / draft-generated (on-policy) sequences.
  cfg.data = ml_collections.ConfigDict(dict(
      sources="random", seq_len=32, batch_size=8, limit_bytes=0, mixture="corpus:1",
      prefix_len=8, heldout_fraction=0.02, replies="",  # replies: sources "replies" (a dir)
      max_shards=0,   # replies: read only its first max_shards shards (0 = all); generation
                      # may go on adding shards while a run trains on a fixed prefix
      join=1))        # replies: examples joined per window as one conversation (2+: the
                      # earlier ones are long context for the last: replies.joined_window)
  cfg.optim = ml_collections.ConfigDict(dict(
      learning_rate=3e-3, warmup_steps=5, weight_decay=0.0, clip_norm=1.0))
  cfg.steps = 20
  cfg.ckpt_every = 10
  cfg.keep = 2
  cfg.log_every = 5
  # Acceptance of the draft against the target, by the real speculative loop.
  cfg.eval = ml_collections.ConfigDict(dict(
      every=10, k=4, prompts=8, prompt_len=8, new_tokens=16, sampling=sampling()))

  if arg == "tiny":
    pass
  elif arg == "tiny_feature":
    cfg.mode = "feature"
    cfg.draft.update(kind="feature", d_ff=0)
    cfg.trainable = FEATURE_TRAINABLE
  elif arg == "tiny_lm":
    cfg.mode = "lm"
    cfg.draft.kind = "preset"
    cfg.draft.preset = "tiny"
  elif arg == "chinchilla_44m":
    cfg.mode = "lm"
    cfg.target = ""
    cfg.draft.kind = "preset"
    cfg.draft.preset = "chinchilla_44m"
    cfg.data.update(sources="code,prose", seq_len=512, batch_size=16)
    cfg.optim.update(learning_rate=1e-3, warmup_steps=200, weight_decay=0.1)
    cfg.steps = 10_000
    cfg.ckpt_every = 500
    cfg.eval.every = 0
  elif arg.startswith("smollm2"):
    cfg.target = "smollm2-135m"
    cfg.data.update(sources="code,prose,aclsum", seq_len=128, batch_size=8, prefix_len=32)
    cfg.eval.update(every=100, prompts=16, prompt_len=32, new_tokens=32)
    cfg.optim.update(learning_rate=2e-3, warmup_steps=30, weight_decay=0.01)
    cfg.steps = 600
    cfg.ckpt_every = 100
    cfg.log_every = 10
    small = dict(kind="small", layers=4, d_model=256, num_heads=4, num_kv_heads=2, head_dim=64,
                 d_ff=768, sub_vocab=8192)
    if arg == "smollm2_small":
      cfg.draft.update(small)
    elif arg == "smollm2_small_lm":
      cfg.mode = "lm"
      cfg.draft.update(small)
    elif arg.startswith("smollm2_eagle") or arg == "smollm2_small_replies":
      # A window: a reply and the end of its prompt (the target's features are recomputed on
      # it); eval: held-out chat prompts (prompt_len: their longest).
      cfg.data.update(sources="replies", seq_len=384, batch_size=4, replies="data/replies_smollm2")
      cfg.eval.update(every=100, prompts=6, prompt_len=384, new_tokens=64,
                      sampling=sampling(temperature=0.0))  # greedy: the headline goal
      cfg.optim.update(learning_rate=1e-3, warmup_steps=20, weight_decay=0.0)
      cfg.steps = 400  # 614,400 token positions: ~2.3 epochs of the 271k reply tokens
      cfg.ckpt_every = 20
      if arg == "smollm2_small_replies":
        cfg.draft.update(small)
      else:
        cfg.mode = "feature"
        cfg.draft.update(kind="feature", d_ff=1536, sub_vocab=8192)
        cfg.trainable = FEATURE_TRAINABLE
        if arg == "smollm2_eagle_top":
          cfg.draft.feature_layers = (29,)
        elif arg == "smollm2_eagle_long":
          # Two exchanges per 768-token window (the same tokens per step), trained on from
          # the shipped draft: contexts as long as Table 1's 1-shot prompts.
          cfg.data.update(seq_len=768, batch_size=2, join=2)
          cfg.draft.path = "smollm2-135m-eagle"
          cfg.optim.update(learning_rate=5e-4, warmup_steps=20)
        elif arg != "smollm2_eagle":
          raise ValueError(f"unknown preset {arg!r}")
    elif arg == "smollm2_adapter":
      cfg.draft.update(kind="self", layers=4, adapter_dim=1024, sub_vocab=8192)
      cfg.trainable = "adapter,adapter_norm,lm_head_DU"
      cfg.optim.learning_rate = 1e-3
    else:
      raise ValueError(f"unknown preset {arg!r}")
  else:
    raise ValueError(f"unknown preset {arg!r}")
  return cfg
