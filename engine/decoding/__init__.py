"""Decoding: options and step events, KV-cache strategies, the per-request session, greedy/sample, beam search,
answers (verification of hypotheses) and the Hugging Face generate() bridge."""
