import ast
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


LOADED = "sorted({p.get('architecture') for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas'})"


def _fresh_python(code: str) -> list[str]:
    """Run ``code`` in a new interpreter without the pin in its environment; its printed lines."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.splitlines()


@pytest.mark.parametrize("module", ["ser_train.cli", "ser_train.fit"])
def test_ser_train_process_multiplies_with_the_pinned_kernel(module):
    """`ser-train`, and a script that imports the training package before numpy, run Haswell's kernels."""
    if not kernels.runs_kernel():
        pytest.skip("this CPU cannot run OpenBLAS's Haswell kernels (x86-64 with AVX2 and FMA), so nothing is pinned")
    out = _fresh_python(f"import {module}, threadpoolctl; from ser_train import kernels; "
                        f"print({LOADED}); print(kernels.unpinned_warning())")
    assert out == ["['Haswell']", "None"]


def test_a_fit_after_numpy_warns_that_the_pin_came_too_late():
    """Imported after numpy, the package cannot pin; the warning names the kernels numpy loaded instead."""
    if not kernels.runs_kernel():
        pytest.skip("this CPU cannot run OpenBLAS's Haswell kernels (x86-64 with AVX2 and FMA), so nothing is pinned")
    native, warning = _fresh_python(f"import numpy, threadpoolctl; print({LOADED}); "
                                    f"from ser_train import kernels; print(kernels.unpinned_warning())")
    if native == "['Haswell']":
        assert warning == "None"      # this CPU's own kernel is the pinned one: nothing differs
    else:
        assert "before ser_train pinned Haswell's" in warning and ast.literal_eval(native)[0] in warning
