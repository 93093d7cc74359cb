"""One BLAS kernel for every fit, so that its model search and window heads do not depend on the x86-64 CPU.

numpy's and scipy's OpenBLAS pick their matrix kernels by CPU, and the kernels round differently:
on an Intel Xeon (SkylakeX kernels) the default model's search moved by up to 0.004 UAR from the
AMD EPYC that fitted it. With OpenBLAS's Haswell kernels pinned, the same Xeon gives that model's
search figures and window heads bit for bit. (PyTorch's kernels, and so the frame CNN, still follow the CPU.)
"""

from __future__ import annotations

import os
import platform

KERNEL = "Haswell"           # OpenBLAS's AVX2 + FMA kernels: every x86-64 CPU since 2013-2015 runs them
NEEDS = frozenset({"avx2", "fma"})


def pin_blas_kernel(cpuinfo: str = "/proc/cpuinfo") -> None:
    """Set ``OPENBLAS_CORETYPE`` to :data:`KERNEL` on an x86-64 CPU that can run it; must run before numpy is imported.

    A value the user set is kept. Elsewhere (ARM, an older CPU, no ``/proc/cpuinfo``) OpenBLAS chooses as
    usual; the card's ``training.environment`` records the kernels a fit used either way.
    """
    if runs_kernel(cpuinfo):
        os.environ.setdefault("OPENBLAS_CORETYPE", KERNEL)


def blas_pools() -> list[dict]:
    """The BLAS libraries this process has loaded, as threadpoolctl describes them (API, version, kernels)."""
    import threadpoolctl

    return [pool for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]


def unpinned_warning() -> str | None:
    """Why this process's fits may differ from `ser-train fit`'s: the kernel was pinned after numpy had loaded
    OpenBLAS with others. None when the loaded kernels are the pinned ones, or when nothing was pinned."""
    if os.environ.get("OPENBLAS_CORETYPE") != KERNEL:
        return None
    loaded = sorted({pool.get("architecture") or "?" for pool in blas_pools()
                     if pool["internal_api"] == "openblas"} - {KERNEL})
    if not loaded:
        return None
    return (f"numpy loaded OpenBLAS's {', '.join(loaded)} kernels before ser_train pinned {KERNEL}'s, so this fit "
            f"rounds differently from `ser-train fit` and the shipped models: import ser_train before numpy, "
            f"or set OPENBLAS_CORETYPE={KERNEL} before Python starts")


def runs_kernel(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this is an x86-64 CPU with the instructions :data:`KERNEL` needs."""
    return platform.machine().lower() in ("x86_64", "amd64") and NEEDS <= cpu_flags(cpuinfo)


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The first CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open(cpuinfo) as lines:
            for line in lines:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()
