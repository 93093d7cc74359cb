import os
import platform
import subprocess
import sys

import pytest

from ser_train import kernels

FLAGS_LINE = "flags\t\t: fpu sse2 avx {extra}\n"


def fake_cpuinfo(tmp_path, extra: str):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\n" + FLAGS_LINE.format(extra=extra) + "processor\t: 1\n")
    return str(path)


@pytest.mark.parametrize("machine, extra, expected", [
    ("x86_64", "avx2 fma bmi2", "Haswell"),
    ("x86_64", "avx2", None),             # no FMA: Haswell's kernels would not run
    ("aarch64", "avx2 fma", None),        # not x86-64: OpenBLAS chooses as usual
])
def test_pin_only_where_the_kernel_runs(tmp_path, monkeypatch, machine, extra, expected):
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    monkeypatch.setattr(platform, "machine", lambda: machine)
    kernels.pin_blas_kernel(fake_cpuinfo(tmp_path, extra))
    assert os.environ.get("OPENBLAS_CORETYPE") == expected


def test_pin_keeps_the_users_choice_and_survives_no_cpuinfo(tmp_path, monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Sandybridge")
    kernels.pin_blas_kernel(fake_cpuinfo(tmp_path, "avx2 fma"))
    assert os.environ["OPENBLAS_CORETYPE"] == "Sandybridge"
    assert kernels.cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_ser_train_process_multiplies_with_the_pinned_kernel():
    if not kernels.runs_kernel():
        pytest.skip("this CPU cannot run OpenBLAS's Haswell kernels (x86-64 with AVX2 and FMA), so nothing is pinned")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    code = ("import ser_train.cli, threadpoolctl; "
            "print(sorted({p.get('architecture') for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas'}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['Haswell']"
