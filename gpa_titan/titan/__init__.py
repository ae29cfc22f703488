"""The training-time layer (everything a training run imports on top of TorchTitan): the
``gpa_llama3`` train spec, the job-config extension and start-up checks, the optimizer container,
the trainer and its entry point, checkpoints at the evaluation weights, validation, model flavors,
tokenizers, the dataloader, the run's lifecycle (run identity, run_info, preemption, monitoring),
the CPU/gloo compatibility layer and W&B offline mode. Offline tools live in ``gpa_titan.tools``."""
