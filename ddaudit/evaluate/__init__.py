"""Evaluator training: model zoo, DSA augmentation, protocol presets, batched and sequential engines."""

from ddaudit.evaluate._shared import PRECISIONS, resolve_precision
from ddaudit.evaluate.augment import DEFAULT_STRATEGY, OPS, AugDraws, DiffAugment, parse_strategy
from ddaudit.evaluate.batched import BatchedEnsemble, sgd_step, train_batched
from ddaudit.evaluate.engine import ENGINES, choose_engine, train_and_predict, train_evaluators
from ddaudit.evaluate.models import available_models, create_model, is_batchable, register_model
from ddaudit.evaluate.protocol import MTT_NEEDS_LR, Protocol, available_protocols, get_protocol
from ddaudit.evaluate.sequential import SequentialEnsemble, train_sequential

__all__ = [
    "DEFAULT_STRATEGY",
    "ENGINES",
    "MTT_NEEDS_LR",
    "OPS",
    "PRECISIONS",
    "AugDraws",
    "BatchedEnsemble",
    "DiffAugment",
    "Protocol",
    "SequentialEnsemble",
    "available_models",
    "available_protocols",
    "choose_engine",
    "create_model",
    "get_protocol",
    "is_batchable",
    "parse_strategy",
    "register_model",
    "resolve_precision",
    "sgd_step",
    "train_and_predict",
    "train_batched",
    "train_evaluators",
    "train_sequential",
]
