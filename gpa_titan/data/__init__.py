"""Text data: C4 (Hugging Face streaming or local shards), the offline demo corpus, packing."""
