"""Shared test settings: small thread counts keep the suite predictable on 2-core CI."""

import os
import tempfile

import torch

torch.set_num_threads(int(os.environ.get("DDAUDIT_TEST_THREADS", "1")))

# Trained probe classifiers and reference predictions go to a throwaway folder, never to the
# user's own cache (subprocesses inherit it through the environment).
os.environ.setdefault("DDAUDIT_CACHE_DIR", tempfile.mkdtemp(prefix="ddaudit-test-cache-"))
