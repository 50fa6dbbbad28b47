"""Shared test settings: small thread counts keep the suite predictable on 2-core CI."""

import os

import torch

torch.set_num_threads(int(os.environ.get("DDAUDIT_TEST_THREADS", "1")))
