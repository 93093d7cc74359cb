"""Training package: corpora loaders, dataset features, fit, export, evaluate, report.

Importing it pins OpenBLAS's kernels (:mod:`ser_train.kernels`), which works only before numpy
is loaded: import ser_train first, as `ser-train` does.
"""

from ser_train.kernels import pin_blas_kernel

pin_blas_kernel()
