"""Check on a FairDD checkout: ddaudit's synchronized matching equals FairDD's own ``--FairDD`` loss.

Runs the checkout's unmodified ``main_DM.py`` twice in this process on the same
embedded preset, seed and batches:

A. vanilla script (no ``--FairDD``) under ``ddaudit run --mode sync``: the loss is
   the script's plain DM loss over the embeddings ddaudit's patch rescales;
B. the script with its own ``--FairDD`` under ``--mode none`` (ddaudit only injects
   the data, pins the seeds and observes).

Every loss the script back-propagates is recorded, and the final synthetic sets
are compared. Exit status 0 when both agree to the tolerance, 1 otherwise.

    python examples/fairdd_dm_identity.py /path/to/FairDD --iterations 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from ddaudit.hooks.patchers import patch


def run_once(script: Path, mode: str, own_fair: bool, args, out: Path) -> tuple[list[float], torch.Tensor, dict]:
    """Run main_DM.py once; return the losses it back-propagated, its saved images and the run summary."""
    argv = [
        "--dataset", "Colored_MNIST_foreground", "--ipc", str(args.ipc), "--Iteration", str(args.iterations),
        "--num_exp", "1", "--num_eval", "1", "--epoch_eval_train", "0", "--batch_real", str(args.batch_real),
        "--save_path", str(out),
    ] + (["--FairDD"] if own_fair else [])
    losses: list[float] = []
    backward = torch.Tensor.backward

    def recording_backward(tensor, *rest, **kwargs):
        if Path(sys._getframe(1).f_code.co_filename).resolve() == script:
            losses.append(float(tensor.detach()))
        return backward(tensor, *rest, **kwargs)

    torch.Tensor.backward = recording_backward
    try:
        with patch("datasetcondensation", script, mode=mode, dataset="cmnist-fg", device="cpu",
                   dataset_options={"n_train": args.n_train}, seed=args.seed) as session:
            session.run(argv)
    finally:
        torch.Tensor.backward = backward
    saved = next(out.glob("res_DM_*ipc.pt"))
    images = torch.load(saved, weights_only=True)["data"][-1][0]
    return losses, images, session.summary.to_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a zqhang/FairDD checkout (its main_DM.py is run unmodified)")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--batch_real", type=int, default=64)
    parser.add_argument("--n-train", dest="n_train", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rtol", type=float, default=1e-5)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args()
    torch.set_num_threads(2)
    script = (args.checkout / "main_DM.py").resolve()
    if not script.is_file():
        print(f"error: {script} does not exist; give the path of a FairDD checkout", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ours, ours_images, ours_summary = run_once(script, "sync", False, args, Path(tmp) / "ddaudit_sync")
        theirs, theirs_images, theirs_summary = run_once(script, "none", True, args, Path(tmp) / "fairdd_own")
    same_count = len(ours) == len(theirs) == args.iterations + 1
    rel = max((abs(a - b) / max(abs(b), 1e-12) for a, b in zip(ours, theirs)), default=float("nan"))
    image_diff = float((ours_images - theirs_images).abs().max())
    image_scale = float(theirs_images.abs().max())
    passed = same_count and rel <= args.rtol and image_diff <= args.rtol * 10 * max(image_scale, 1.0)
    figures = {
        "checkout": str(args.checkout), "iterations": args.iterations, "ipc": args.ipc, "batch_real": args.batch_real,
        "n_train": args.n_train, "seed": args.seed,
        "losses_ddaudit_sync": ours, "losses_fairdd_own": theirs,
        "max_relative_loss_difference": rel, "max_abs_image_difference": image_diff, "image_scale": image_scale,
        "embed_calls": [ours_summary["calls_by_site"].get("embed", 0), theirs_summary["calls_by_site"].get("embed", 0)],
        "wall_s": round(time.perf_counter() - started, 1), "passed": passed,
    }
    print(json.dumps(figures, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
