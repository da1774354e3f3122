"""experiments/gpu_suite.sh --dry-run (tiny sizes on the CPU) and bench_jit's command line."""
import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HAS_TORCH = (importlib.util.find_spec("torch") is not None
             and importlib.util.find_spec("xautodl") is not None)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "JAX_PLATFORMS": "cpu"}
    p = subprocess.run(["bash", str(ROOT / "experiments" / "gpu_suite.sh"), "--dry-run",
                        "--budget", "1500"], env=env, capture_output=True, text=True,
                       timeout=1800)  # ~1 min when quiet; the budget only guards a loaded
    # machine (at load 20 the parts take 5x longer and a 300 s budget cut them short)
    assert p.returncode == 0, p.stderr + (out / "log.txt").read_text()
    lines = [json.loads(s) for s in (out / "bench.jsonl").read_text().splitlines() if s]
    parts = [json.loads(s) for s in (out / "parts.jsonl").read_text().splitlines() if s]
    return out, lines, parts


def test_gpu_suite_dry_run_jnas_parts(suite):
    out, lines, parts = suite
    jn = [r for r in lines if r["impl"] == "jnas"]
    assert not [r for r in jn if r.get("status") == "failed"], jn
    got = {(r["space"], r["conv_impl"], r["population"]) for r in jn}
    assert {("nb201", "xla", None), ("darts", "xla", None)} <= got
    assert all(r["finite"] and r["step_ms"] > 0 and r["compile_s"] > 0 for r in jn)
    # --malloc auto, no GPU: the NB201 part restarted itself with jnas.xla.CPU_MALLOC_TUNABLES,
    # the DARTS-space part kept glibc's defaults (its compile needs less memory with them)
    glibc = platform.libc_ver()[0] == "glibc"
    assert {r["malloc"] for r in jn if r["space"] == "nb201"} == {
        "retained" if glibc else "glibc-default"}
    assert {r["malloc"] for r in jn if r["space"] == "darts"} == {"glibc-default"}
    names = {p["part"]: p for p in parts}
    assert names["nb201_b64"]["rc"] == 0 and names["darts_b64"]["rc"] == 0
    assert "search" in names and "total" in names and names["search"]["rc"] == 0
    res = [json.loads((out / "search" / f"seed_{i}" / "result.json").read_text())
           for i in (0, 1)]  # the two dry-run seeds, one vmapped program
    assert all(r["vmapped_seeds"] and r["genotype"] for r in res), res
    assert (out / "bench.png").stat().st_size > 0


@pytest.mark.skipif(not HAS_TORCH, reason="torch/xautodl are not installed in the test venv "
                    "(the reference lives in the [torch-bench] extra + pip install --no-deps "
                    "xautodl==1.0.0); the jnas parts are tested above")
def test_gpu_suite_dry_run_reference_lines(suite):
    _, lines, _ = suite
    ref = [r for r in lines if r["impl"] == "torch-xautodl"]
    assert {r["space"] for r in ref} == {"nb201", "darts"}
    assert all(r["step_ms"] > 0 and r["torch_device"] == "cpu" for r in ref), ref
    single = [r for r in lines if r["impl"] == "jnas" and r["population"] is None]
    assert all(r["speedup_vs_ref"] > 0 for r in single)


def test_bench_jit_rejects_unknown_conv_impl():
    p = subprocess.run([sys.executable, str(ROOT / "experiments" / "bench_jit.py"),
                        "--conv-impls", "cudnn", "--no-torch"], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert p.returncode == 2 and "unknown conv implementation 'cudnn'" in p.stderr


def test_bench_jit_methods_lines_and_gdas_flops(tmp_path):
    """--methods: one line per method with its step's XLA FLOPs (--flops-only: the lowered
    steps' cost analysis, no compile); GDAS's sampled-op step executes at most half the
    DARTS step's FLOPs (issue 17), checked by the script's own line."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import bench_jit
    out = tmp_path / "m.jsonl"
    lines = bench_jit.main(["--spaces", "nb201", "--batches", "2", "--C", "4", "--N", "1",
                            "--dtypes", "fp32", "--conv-impls", "xla", "--methods",
                            "darts,gdas", "--gdas-samples", "2", "--flops-only",
                            "--out", str(out)])
    assert [json.loads(s) for s in out.read_text().splitlines()] == lines
    jn = {r["method"]: r for r in lines if r.get("impl") == "jnas"}
    assert set(jn) == {"darts", "gdas"}
    assert all(r["flops_lowered"] > 0 for r in jn.values()), jn
    assert jn["gdas"]["flops_sampled"] > 0 and jn["darts"]["flops_sampled"] is None
    check = [r for r in lines if r.get("check") == "gdas_flops_le_half_darts"]
    assert len(check) == 1 and check[0]["ok"] and check[0]["ratio_sampled"] <= 0.5, check


def test_bench_jit_conv_chunks_lines(tmp_path):
    """--conv-chunks: one jnas line per batch-chunk setting of the matmul convolution, with
    the setting in the line; chunking does not change the lowered step's FLOPs; a bad entry
    exits 2 with one line."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import bench_jit
    from jnas import fastconv
    lines = bench_jit.main(["--spaces", "nb201", "--batches", "32", "--C", "4", "--N", "1",
                            "--dtypes", "fp32", "--orders", "1", "--populations", "",
                            "--conv-impls", "matmul", "--conv-chunks", "1,2,auto",
                            "--flops-only"])
    jn = [r for r in lines if r.get("impl") == "jnas"]
    assert [r["conv_batch_chunks"] for r in jn] == [1, 2, fastconv.default_batch_chunks()]
    assert len({r["flops_lowered"] for r in jn}) == 1 and jn[0]["flops_lowered"] > 0
    p = subprocess.run([sys.executable, str(ROOT / "experiments" / "bench_jit.py"),
                        "--conv-chunks", "0", "--no-torch"], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert p.returncode == 2 and "bad --conv-chunks entry '0'" in p.stderr
