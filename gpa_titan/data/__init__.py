"""Text data in plain Python and PyTorch (no TorchTitan): document sources (local C4 shards or the
Hugging Face hub), tokenize-and-pack, and the generated offline demo corpus."""
