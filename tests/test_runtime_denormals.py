"""Subnormal floats are rounded to zero inside ``flush_denormals`` and the caller's setting comes back."""

import platform

import torch

from ddaudit.evaluate.runtime import denormals_flushed, flush_denormals


def test_flush_denormals_scopes_the_setting():
    tiny = torch.tensor([1e-39])
    assert not denormals_flushed() and float(tiny * 1.0) > 0
    with flush_denormals() as supported:
        if platform.machine().lower() in ("x86_64", "amd64"):
            assert supported  # SSE3: every x86-64 CPU
        if supported:
            assert denormals_flushed() and float(tiny * 1.0) == 0.0
    assert not denormals_flushed() and float(tiny * 1.0) > 0
    torch.set_flush_denormal(True)
    try:
        with flush_denormals():
            pass
        assert denormals_flushed()  # a caller who flushed keeps flushing
    finally:
        torch.set_flush_denormal(False)


def test_distill_dc_leaves_the_setting_as_it_found_it():
    from ddaudit.data import load_real
    from ddaudit.distill import distill_dc

    real = load_real("cmnist-fg", n_train=200, n_test=10)
    result = distill_dc(real.train, num_classes=10, ipc=1, iterations=1, model="ConvNetW32D1", batch_real=8)
    assert torch.isfinite(result.images).all()
    assert not denormals_flushed()
