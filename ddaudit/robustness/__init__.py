"""Robustness audit of a distilled set: accuracy per (class, group) cell under L-inf PGD and common corruptions."""

from ddaudit.robustness._attacks import CORRUPTIONS, corrupt, pgd_linf
from ddaudit.robustness._audit import (
    DEFAULT_BUDGETS, DEFAULT_STEPS, check_samples, parse_budgets, pixel_maps, robustness_section, stratified_rows,
)

__all__ = ["CORRUPTIONS", "DEFAULT_BUDGETS", "DEFAULT_STEPS", "check_samples", "corrupt", "parse_budgets",
           "pgd_linf", "pixel_maps", "robustness_section", "stratified_rows"]
