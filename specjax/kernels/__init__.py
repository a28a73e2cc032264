"""Hand-written kernels behind XLA FFI custom calls, each with a pure-XLA fallback."""
