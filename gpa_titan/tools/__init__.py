"""Offline tools on TorchTitan's models and configs, never imported by a training run: the per-GPU
memory plan and the paper configs' hardware and size table."""
