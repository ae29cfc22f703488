"""Analysis of finished runs (no TorchTitan): log readers, grouping runs into settings, one model
of a setting and its runs (``setting.SettingRuns``) and its views: the speedup tables, the
paper's figures, plots and reports."""
