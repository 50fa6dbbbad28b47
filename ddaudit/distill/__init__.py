"""Small reference distillers (DM, DC/DSA) whose per-class losses are made fair by ``@fair_matching``.

They serve the demo, the tests and the benchmarks, and save their sets in
DatasetCondensation's file format so ``ddaudit check`` reads them unchanged.
"""

from ddaudit.distill._common import SyntheticResult
from ddaudit.distill.dc import distill_dc, get_loops, gradient_match_loss, match_loss, real_gradients
from ddaudit.distill.dm import distill_dm, dm_loss
from ddaudit.distill.save import dc_filename, save_dc_format

__all__ = [
    "SyntheticResult",
    "dc_filename",
    "distill_dc",
    "distill_dm",
    "dm_loss",
    "get_loops",
    "gradient_match_loss",
    "match_loss",
    "real_gradients",
    "save_dc_format",
]
