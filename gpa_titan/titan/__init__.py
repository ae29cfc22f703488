"""Everything that imports TorchTitan: the ``gpa_llama3`` train spec, the job-config extension,
the optimizer container, the trainer and its entry point, checkpoints at the
evaluation weights, validation, model flavors, tokenizers, the dataloader, the CPU/gloo
compatibility layer, W&B offline mode and run descriptions."""
