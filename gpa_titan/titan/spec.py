"""Registers the ``gpa_llama3`` TrainSpec with TorchTitan (``--experimental.custom_import gpa_titan.titan.spec``).

TorchTitan's Llama 3 Transformer, parallelisation, pipelining, loss, LR schedule and
HF state-dict adapter, with this repo's optimizers, data, tokenizers, validator and
flavors.
"""

from __future__ import annotations

from torchtitan.components.loss import build_cross_entropy_loss
from torchtitan.components.lr_scheduler import build_lr_schedulers
from torchtitan.distributed.pipeline_parallel import pipeline_llm
from torchtitan.models.llama3 import Transformer, parallelize_llama
from torchtitan.models.llama3.model.state_dict_adapter import Llama3StateDictAdapter
from torchtitan.protocols.train_spec import TrainSpec, register_train_spec

from .cpu_compat import cpu_safe_parallelize
from .dataloader import build_dataloader, build_tokenizer
from .models import FLAVORS, flavor_args
from .optimizer_container import build_optimizers
from .validation import build_validator

MODEL_NAME = "gpa_llama3"


def build_checked_tokenizer(job_config):
    """The tokenizer, after checking that the model's embedding can hold its ids."""
    tokenizer = build_tokenizer(job_config)
    flavor = job_config.model.flavor
    vocab = flavor_args(flavor, job_config).vocab_size
    if tokenizer.get_vocab_size() > vocab:
        raise ValueError(
            f"The tokenizer at [model] hf_assets_path = {job_config.model.hf_assets_path!r} has "
            f"{tokenizer.get_vocab_size()} tokens but the model's vocabulary is {vocab} (flavor "
            f"{flavor!r}). Set [model] vocab_size to at least {tokenizer.get_vocab_size()} or use the "
            "flavor's tokenizer."
        )
    return tokenizer


def get_train_spec() -> TrainSpec:
    return TrainSpec(
        model_cls=Transformer,
        model_args=FLAVORS,
        parallelize_fn=cpu_safe_parallelize(parallelize_llama),
        pipelining_fn=pipeline_llm,
        build_optimizers_fn=build_optimizers,
        build_lr_schedulers_fn=build_lr_schedulers,
        build_dataloader_fn=build_dataloader,
        build_tokenizer_fn=build_checked_tokenizer,
        build_loss_fn=build_cross_entropy_loss,
        build_validator_fn=build_validator,
        state_dict_adapter=Llama3StateDictAdapter,
    )


register_train_spec(MODEL_NAME, get_train_spec())
