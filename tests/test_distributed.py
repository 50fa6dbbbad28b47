"""Scale-out with torchrun: sharding by evaluator index, and real multi-process runs.

The end-to-end tests launch two CPU processes with torchrun (gloo) on a tiny
audit and check that the report equals the single-process report for the same
seed, that only rank 0 writes and prints, and that a rank failing mid-training
ends the job with one clear error line and no output.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddaudit import distributed
from ddaudit.data import load_real
from ddaudit.distributed import RankInfo, collective_timeout, rank_device, rank_info, shard
from ddaudit.errors import ConfigError, RankFailedError

# ---------------------------------------------------------------- rank info and sharding


def test_rank_info_reads_torchrun_variables():
    assert rank_info({}) == RankInfo(0, 1, 0)
    info = rank_info({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.local_rank) == (3, 4, 1)
    assert info.launched and not info.is_main
    assert rank_info({"WORLD_SIZE": "1", "RANK": "0"}).launched is False


@pytest.mark.parametrize(
    "env, words",
    [
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two'"),
        ({"WORLD_SIZE": "2", "RANK": "-1"}, "RANK='-1'"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 is outside 0..1"),
        ({"WORLD_SIZE": "0"}, "WORLD_SIZE=0"),
    ],
)
def test_rank_info_refuses_inconsistent_variables(env, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        rank_info(env)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 7, 20])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
@pytest.mark.parametrize("rotation", [0, 1, 5])
def test_shards_cover_every_evaluator_once_in_contiguous_near_even_blocks(count, world, rotation):
    blocks = [shard(count, world, rank, rotation) for rank in range(world)]
    indices = sorted(i for block in blocks for i in block)
    assert indices == list(range(count))
    sizes = [len(block) for block in blocks]
    assert max(sizes) - min(sizes) <= 1
    for block in blocks:
        assert list(block) == list(range(block.start, block.start + len(block)))


def test_rotation_moves_the_extra_evaluator_to_another_rank():
    # 3 evaluators on 2 ranks: the evaluators' call gives rank 0 two, the references' call gives rank 1 two.
    assert [len(shard(3, 2, r, rotation=0)) for r in range(2)] == [2, 1]
    assert [len(shard(3, 2, r, rotation=1)) for r in range(2)] == [1, 2]


def test_bare_cuda_means_the_local_rank_gpu():
    worker = RankInfo(rank=5, world_size=8, local_rank=1)
    assert rank_device("cuda", worker) == "cuda:1"
    assert rank_device("cuda:3", worker) == "cuda:3"
    assert rank_device("cpu", worker) == "cpu"
    assert rank_device("cuda", RankInfo()) == "cuda"


def test_collective_timeout_setting():
    assert collective_timeout({}).total_seconds() == distributed.DEFAULT_TIMEOUT_S
    assert collective_timeout({"DDAUDIT_DIST_TIMEOUT": "90"}).total_seconds() == 90
    for bad in ("soon", "0", "-5"):
        with pytest.raises(ConfigError, match="DDAUDIT_DIST_TIMEOUT"):
            collective_timeout({"DDAUDIT_DIST_TIMEOUT": bad})


def test_failure_message_names_the_rank_its_evaluators_and_keeps_its_exit_code():
    failed = [
        {"rank": 1, "host": "node-a", "device": "cuda:1", "indices": [2, 3], "error": "OutOfMemoryError: CUDA out of memory", "exit_code": 101},
        {"rank": 3, "host": "node-b", "device": "cuda:1", "indices": [6], "error": "x", "exit_code": 101},
    ]
    error = distributed._rank_failure(failed, 4)
    assert isinstance(error, RankFailedError) and error.exit_code == 101
    assert str(error) == (
        "rank 1 of 4 (node-a, cuda:1) failed while training evaluators 2-3: "
        "OutOfMemoryError: CUDA out of memory (ranks 3 failed too)"
    )


def test_without_a_launcher_training_is_the_plain_engine_call():
    torch.manual_seed(0)
    x, y = torch.randn(20, 1, 8, 8), torch.arange(20) % 4
    test_x = torch.randn(9, 1, 8, 8)
    options = dict(protocol="quick", seeds=[3, 4], num_classes=4, device="cpu")
    from ddaudit.evaluate import get_protocol, train_and_predict

    proto = get_protocol("quick", model="MLP", epochs=3)
    options["protocol"] = proto
    assert distributed.active() is None and distributed.world_size() == 1
    ours = distributed.train_and_predict(x, y, test_x, **options)
    plain = train_and_predict(x, y, test_x, **options)
    assert ours.dtype == torch.int64 and ours.shape == (2, 9)
    assert torch.equal(ours, plain)


# ---------------------------------------------------------------- real torchrun jobs

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
AUDIT = [
    "--real", "cmnist-fg", "--real-option", "n_test=20", "--protocol", "quick", "--model", "ConvNetW32",
    "--epochs", "4", "--num-eval", "3", "--n-boot", "50", "--seed", "7",
]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    """A 5-image-per-class DatasetCondensation file of real bias-aligned digits."""
    real = load_real("cmnist-fg", n_test=20)
    xs, ys = [], []
    for cls in range(real.num_classes):
        rows = torch.nonzero((real.train.y == cls) & (real.train.a == cls)).flatten()[:5]
        xs.append(real.train.x[rows])
        ys.append(torch.full((len(rows),), cls))
    path = tmp_path_factory.mktemp("set") / "res_DM_cmnist_ConvNet_5ipc.pt"
    torch.save({"data": [[torch.cat(xs), torch.cat(ys)]], "accs_all_exps": {}}, path)
    return path


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", CI="1")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)


def _outputs(name: str) -> list[str]:
    return ["--json", f"{name}.json", "--markdown", f"{name}.md", "--save-predictions", f"{name}.npz"]


@pytest.mark.slow
def test_two_torchrun_processes_give_the_single_process_report(tiny_set, tmp_path):
    single_dir, multi_dir = tmp_path / "single", tmp_path / "multi"
    single_dir.mkdir()
    multi_dir.mkdir()
    single = _run([sys.executable, "-m", "ddaudit", "check", str(tiny_set), *AUDIT, *_outputs("report")], single_dir)
    assert single.returncode == 0, single.stderr
    multi = _run([*TORCHRUN, "-m", "ddaudit", "check", str(tiny_set), *AUDIT, *_outputs("report")], multi_dir)
    assert multi.returncode == 0, multi.stderr

    # One set of outputs, written once, by rank 0.
    assert sorted(p.name for p in multi_dir.iterdir()) == ["report.json", "report.md", "report.npz"]
    for name in ("report.json", "report.md", "report.npz"):
        assert multi.stderr.count(f"wrote {name}") == 1
    assert multi.stderr.count("Accuracy") == single.stderr.count("Accuracy") == 1
    # The work was divided: 3 evaluators x 4 epochs x 1 batch in one process; rank 0 trained
    # 2 of the distilled set's evaluators and 1 of the reference's (the shares rotate).
    assert "on the distilled set: done (12 steps" in single.stderr
    assert "on the random real subset: done (12 steps" in single.stderr
    assert "on the distilled set: done (8 steps" in multi.stderr
    assert "on the random real subset: done (4 steps" in multi.stderr
    assert "1 thread, CPU path" in single.stderr and "2 processes);" in multi.stderr
    assert "processes)" not in single.stderr

    one = json.loads((single_dir / "report.json").read_text())
    two = json.loads((multi_dir / "report.json").read_text())
    assert one["settings"]["world_size"] == 1 and two["settings"]["world_size"] == 2
    assert two["metrics"] == one["metrics"]
    assert two["reference"] == one["reference"] and two["amplification"] == one["amplification"]
    for report in (one, two):
        del report["settings"]["world_size"]
    assert two == one
    # The predictions behind the metrics, row by row in evaluator order (3 evaluators: shares 2 + 1, then 1 + 2).
    a, b = np.load(single_dir / "report.npz"), np.load(multi_dir / "report.npz")
    assert sorted(a.files) == sorted(b.files) == ["group", "y_pred", "y_pred_random_subset", "y_true"]
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
    assert a["y_pred"].shape == (3, 200)
    # Independent recomputation of the headline metric from the saved predictions.
    accuracy = (b["y_pred"] == b["y_true"][None]).mean(axis=1)
    assert two["metrics"]["accuracy"]["mean"] == pytest.approx(float(accuracy.mean()))


@pytest.mark.slow
def test_workers_train_with_rank_zeros_thread_count(tiny_set, tmp_path):
    """K processes of T threads give the one-process report at T threads (ddaudit.reproducibility)."""
    runs = {}
    for name, launcher, threads in (("one_t1", [sys.executable], "1"), ("one_t2", [sys.executable], "2"),
                                    ("two_t2", TORCHRUN, "2")):
        work = tmp_path / name
        work.mkdir()
        proc = _run([*launcher, "-m", "ddaudit", "check", str(tiny_set), *AUDIT, "--threads", threads,
                     "--json", "report.json", "--save-predictions", "report.npz"], work)
        assert proc.returncode == 0, proc.stderr
        runs[name] = (json.loads((work / "report.json").read_text()), np.load(work / "report.npz"))
    one_t1, one_t2, two_t2 = (runs[name][0] for name in ("one_t1", "one_t2", "two_t2"))
    assert (one_t1["settings"]["threads"], one_t2["settings"]["threads"], two_t2["settings"]["threads"]) == (1, 2, 2)
    assert two_t2["settings"]["world_size"] == 2
    # Two processes at 2 threads each: the one-process report at 2 threads, prediction for prediction.
    for key in runs["one_t2"][1].files:
        np.testing.assert_array_equal(runs["one_t2"][1][key], runs["two_t2"][1][key])
    del two_t2["settings"]["world_size"], one_t2["settings"]["world_size"]
    assert two_t2 == one_t2
    # Another thread count is recorded as the one setting that differs, which explains any figure that moved.
    differing = {key for key in one_t1["settings"] if one_t1["settings"][key] != one_t2["settings"].get(key)}
    assert differing - {"world_size"} == {"threads"}
    for report in (one_t1, one_t2):
        assert report["settings"]["cpu_path"] in ("amx-bf16", "avx512-bf16", "avx512", "avx2", "default")
        assert report["settings"]["cpu"]


FAILING_ENTRY = """
import os, sys
import torch.nn.functional as F

if os.environ["RANK"] == "1":
    def broken(*args, **kwargs):
        raise RuntimeError("simulated device failure")
    F.log_softmax = broken  # every training step of this rank fails

from ddaudit.cli import main
main()
"""


@pytest.mark.slow
def test_a_failing_rank_ends_the_job_with_one_clear_error_and_no_output(tiny_set, tmp_path):
    entry = tmp_path / "entry.py"
    entry.write_text(FAILING_ENTRY)
    work = tmp_path / "work"
    work.mkdir()
    proc = _run([*TORCHRUN, str(entry), "check", str(tiny_set), *AUDIT, *_outputs("report")], work)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if "simulated device failure" in line]
    assert lines == [
        f"error: rank 1 of 2 ({socket.gethostname()}, cpu) failed while training evaluators 2: "
        "RuntimeError: simulated device failure"
    ], proc.stderr
    # torchrun's own summary carries ddaudit's exit code (internal error, as in one process);
    # the only traceback is torchrun's, none comes from a ddaudit process.
    assert "exitcode  : 101" in proc.stderr
    assert proc.stderr.count("Traceback (most recent call last)") == 1
    assert "torch/distributed/run.py" in proc.stderr.split("Traceback (most recent call last)")[1]
    assert list(work.iterdir()) == []


@pytest.mark.slow
def test_commands_without_training_run_once_under_torchrun(tmp_path):
    proc = _run([*TORCHRUN, "-m", "ddaudit", "datasets"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    # One process printed the preset table: the preset's name once (not counting cmnist-fgbg).
    assert len(re.findall(r"\bcmnist-fg\b", proc.stdout + proc.stderr)) == 1
    usage = _run([*TORCHRUN, "-m", "ddaudit", "check", "missing.pt", "--real", "cmnist-fg"], tmp_path)
    assert usage.returncode != 0
    assert usage.stderr.count("missing.pt does not exist") == 1
    assert "exitcode  : 2 " in usage.stderr  # rank 0's usage-error code, as in one process


# ---------------------------------------------------------------- the protocol, in two spawned processes


def _tiny_task():
    from ddaudit.evaluate import get_protocol

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 6, 6, generator=generator)
    y = torch.arange(16) % 4
    test_x = torch.randn(10, 1, 6, 6, generator=generator)
    return x, y, test_x, get_protocol("quick", model="MLP", epochs=2, batch_size=8)


def _rank_process(rank: int, port: int, fail_rank: int | None, queue) -> None:
    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1", DDAUDIT_DIST_TIMEOUT="120")
    if rank == fail_rank:
        import torch.nn.functional as F

        def broken(*args, **kwargs):
            raise RuntimeError("simulated failure")

        F.log_softmax = broken
    x, y, test_x, proto = _tiny_task()

    def command():
        try:
            first = distributed.train_and_predict(x, y, test_x, protocol=proto, seeds=[11, 12, 13], num_classes=4)
            second = distributed.train_and_predict(x[:12], y[:12], test_x, protocol=proto, seeds=[21, 22, 23], num_classes=4)
        except RankFailedError as error:
            queue.put(("failed", str(error), error.exit_code))
            raise SystemExit(error.exit_code) from None
        sent = distributed.active().tensors_sent
        queue.put(("preds", first.numpy(), second.numpy(), distributed.world_size(), sent))
        raise SystemExit(3)

    queue.put(("code", rank, distributed.launch(command)))


def _spawn_pair(fail_rank: int | None, expected: int) -> list:
    import multiprocessing

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_rank_process, args=(rank, port, fail_rank, queue)) for rank in range(2)]
    for process in processes:
        process.start()
    messages = [queue.get(timeout=180) for _ in range(expected)]
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0]
    return messages


@pytest.mark.slow
def test_rank_zero_gathers_predictions_in_evaluator_order_and_workers_return_its_exit_code():
    from ddaudit.evaluate import train_and_predict

    messages = _spawn_pair(fail_rank=None, expected=3)
    codes = sorted(m[1:] for m in messages if m[0] == "code")
    assert codes == [(0, 3), (1, 3)]
    (_, first, second, world, sent), = [m for m in messages if m[0] == "preds"]
    x, y, test_x, proto = _tiny_task()
    assert world == 2
    expected_first = train_and_predict(x, y, test_x, protocol=proto, seeds=[11, 12, 13], num_classes=4)
    expected_second = train_and_predict(x[:12], y[:12], test_x, protocol=proto, seeds=[21, 22, 23], num_classes=4)
    np.testing.assert_array_equal(first, expected_first.numpy())
    np.testing.assert_array_equal(second, expected_second.numpy())
    assert first.shape == (3, 10) and first.dtype == np.int64
    assert len({tuple(row) for row in first}) == 3  # distinct rows: a wrong order could not pass
    assert sent == 5  # the test images crossed once for both calls


@pytest.mark.slow
def test_a_worker_failure_reaches_rank_zero_as_one_error_with_the_workers_code():
    messages = _spawn_pair(fail_rank=1, expected=3)
    (_, text, code), = [m for m in messages if m[0] == "failed"]
    assert text == (
        f"rank 1 of 2 ({socket.gethostname()}, cpu) failed while training evaluators 2: RuntimeError: simulated failure"
    )
    assert code == 101
    assert sorted(m[1:] for m in messages if m[0] == "code") == [(0, 101), (1, 101)]


def test_a_share_makes_the_compile_decision_of_the_whole_call(monkeypatch):
    import ddaudit.evaluate.engine as engine

    seen = []
    real_plan = engine.plan_compile

    def recording(setting, device, steps, predictions):
        seen.append(predictions)
        return real_plan(setting, device, steps, predictions)

    monkeypatch.setattr(engine, "plan_compile", recording)
    x, y, test_x, proto = _tiny_task()
    options = dict(protocol=proto, num_classes=4, engine="sequential", compile="auto")
    whole = engine.train_and_predict(x, y, test_x, seeds=[11, 12, 13], **options)
    share = distributed._train_share(x, y, test_x, seeds=[13], total=3, device="cpu", progress=None, options=options)
    assert seen == [30, 30]  # 10 test images x 3 evaluators, whether one process or a share of one
    assert torch.equal(share[0], whole[2])
