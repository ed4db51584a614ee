"""aigc-apps core SDK: LoRA fine-tuning, generation, embeddings, retrieval and storage.

Everything a user imports lives here. Heavy modules (torch, transformers) load on first
use, so ``import aigc_apps`` and the ``aigc`` CLI start fast.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from aigc_apps.lazy import lazy_exports

# peft reads transformers' deprecated ``is_gradient_checkpointing`` on every wrap; the
# warning is about library internals that users cannot act on.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

__version__ = "0.1.0"

_EXPORTS = {
    # settings, errors, data, storage
    "Settings": "aigc_apps.settings",
    "get_settings": "aigc_apps.settings",
    "sample_data_dir": "aigc_apps.settings",
    "AigcError": "aigc_apps.errors",
    "DataError": "aigc_apps.errors",
    "ModelNotFoundError": "aigc_apps.errors",
    "CorruptModelError": "aigc_apps.errors",
    "CorruptDatabaseError": "aigc_apps.errors",
    "ConflictError": "aigc_apps.errors",
    "AdapterError": "aigc_apps.errors",
    "NotFoundError": "aigc_apps.errors",
    "read_records": "aigc_apps.data",
    "ReadResult": "aigc_apps.data",
    "Skip": "aigc_apps.data",
    "content_hash": "aigc_apps.data",
    "file_hash": "aigc_apps.data",
    "parse_timestamp": "aigc_apps.data",
    "Database": "aigc_apps.store",
    "ModelRegistry": "aigc_apps.registry",
    "ModelEntry": "aigc_apps.registry",
    "StoreSchema": "aigc_apps.migrations",
    "utcnow": "aigc_apps.store",
    # models and generation
    "MODEL_ALIASES": "aigc_apps.models",
    "resolve_model": "aigc_apps.models",
    "select_device": "aigc_apps.models",
    "select_dtype": "aigc_apps.models",
    "load_tokenizer": "aigc_apps.models",
    "load_causal_lm": "aigc_apps.models",
    "available_models": "aigc_apps.models",
    "model_kind": "aigc_apps.models",
    "Generator": "aigc_apps.generation",
    "GenerationConfig": "aigc_apps.generation",
    "ChatModel": "aigc_apps.engines.chat_model",
    "EnginePool": "aigc_apps.engines.pool",
    "engine_pool": "aigc_apps.engines.pool",
    # fine-tuning
    "LoraTrainingConfig": "aigc_apps.finetune",
    "LoraTrainer": "aigc_apps.finetune",
    "TrainResult": "aigc_apps.finetune",
    "TextClassifier": "aigc_apps.finetune",
    "AdapterRegistry": "aigc_apps.finetune",
    "merge_adapter": "aigc_apps.finetune",
    # embeddings and retrieval
    "Encoder": "aigc_apps.embeddings",
    "VectorIndex": "aigc_apps.index",
    "VectorStore": "aigc_apps.vectorstore",
    "FaissStore": "aigc_apps.vectorstore",
    "PgVectorStore": "aigc_apps.vectorstore",
    "PgVectorMissingError": "aigc_apps.vectorstore",
    "open_vector_store": "aigc_apps.vectorstore",
    "ContrastiveTuningConfig": "aigc_apps.encoder_tuning",
    "tune_encoder": "aigc_apps.encoder_tuning",
}

__all__ = [
    "MODEL_ALIASES",
    "AdapterError",
    "AdapterRegistry",
    "AigcError",
    "ChatModel",
    "ConflictError",
    "ContrastiveTuningConfig",
    "CorruptDatabaseError",
    "CorruptModelError",
    "DataError",
    "Database",
    "Encoder",
    "EnginePool",
    "FaissStore",
    "GenerationConfig",
    "Generator",
    "LoraTrainer",
    "LoraTrainingConfig",
    "ModelEntry",
    "ModelNotFoundError",
    "ModelRegistry",
    "NotFoundError",
    "PgVectorMissingError",
    "PgVectorStore",
    "ReadResult",
    "Settings",
    "Skip",
    "StoreSchema",
    "TextClassifier",
    "TrainResult",
    "VectorIndex",
    "VectorStore",
    "available_models",
    "content_hash",
    "engine_pool",
    "file_hash",
    "get_settings",
    "load_causal_lm",
    "load_tokenizer",
    "merge_adapter",
    "model_kind",
    "open_vector_store",
    "parse_timestamp",
    "read_records",
    "resolve_model",
    "sample_data_dir",
    "select_device",
    "select_dtype",
    "tune_encoder",
    "utcnow",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from aigc_apps.data import (
        ReadResult,
        Skip,
        content_hash,
        file_hash,
        parse_timestamp,
        read_records,
    )
    from aigc_apps.embeddings import Encoder
    from aigc_apps.encoder_tuning import ContrastiveTuningConfig, tune_encoder
    from aigc_apps.engines.chat_model import ChatModel
    from aigc_apps.engines.pool import EnginePool, engine_pool
    from aigc_apps.errors import (
        AdapterError,
        AigcError,
        ConflictError,
        CorruptDatabaseError,
        CorruptModelError,
        DataError,
        ModelNotFoundError,
        NotFoundError,
    )
    from aigc_apps.finetune import (
        AdapterRegistry,
        LoraTrainer,
        LoraTrainingConfig,
        TextClassifier,
        TrainResult,
        merge_adapter,
    )
    from aigc_apps.generation import GenerationConfig, Generator
    from aigc_apps.index import VectorIndex
    from aigc_apps.migrations import StoreSchema
    from aigc_apps.models import (
        MODEL_ALIASES,
        available_models,
        load_causal_lm,
        load_tokenizer,
        model_kind,
        resolve_model,
        select_device,
        select_dtype,
    )
    from aigc_apps.registry import ModelEntry, ModelRegistry
    from aigc_apps.settings import Settings, get_settings, sample_data_dir
    from aigc_apps.store import Database, utcnow
    from aigc_apps.vectorstore import (
        FaissStore,
        PgVectorMissingError,
        PgVectorStore,
        VectorStore,
        open_vector_store,
    )
