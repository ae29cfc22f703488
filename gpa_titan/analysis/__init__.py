"""Analysis of finished runs (no TorchTitan): log readers, the paper's speedup table, plots and reports."""
