"""gpa_titan: GPA-AdamW and DiLoCo-AdamW pretraining recipes on TorchTitan 0.2.2."""

__version__ = "0.1.0"
