"""Serving formats: the padded sparse input that exported graphs (ONNX) read.

Exported models read a batch of sparse rows as two dense arrays, ``ids`` (int64) and ``values``
(float32), both of shape ``(n_rows, max_nnz)``. Padding positions hold id 0 and value 0: a zero
value contributes nothing to any FM term, and the deep models mask on ``values != 0`` (explicit
zeros never reach a model: validation drops them). :func:`padded_inputs` makes them from any
matrix an estimator takes.
"""

from fmlearn.export.padded import padded_inputs

__all__ = ["padded_inputs"]
