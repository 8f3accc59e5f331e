"""A small builder over ``onnx.helper``: named constants and one-output nodes.

Imported only by :mod:`fmlearn.export.onnx` (and so only when a model is exported): ``import
fmlearn`` never imports onnx.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# IR version 8 is the oldest that carries opset 17; onnxruntime >= 1.13 reads it.
IR_VERSION = 8


class Graph:
    """Nodes and initializers of one ONNX graph, with fresh names for every value."""

    def __init__(self, prefix: str = ""):
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0
        self._prefix = prefix

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{self._prefix}{hint}_{self._count}"

    def const(self, value, hint: str = "c", dtype=None) -> str:
        """An initializer holding ``value`` (as ``dtype`` if given); returns its name."""
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(arr, name))
        return name

    def f32(self, value, hint: str = "c") -> str:
        return self.const(value, hint, np.float32)

    def i64(self, value, hint: str = "i") -> str:
        return self.const(value, hint, np.int64)

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        """Add one node; returns the name of its (only) output."""
        name = out or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], **attrs))
        return name

    # -- shorthands for the ops every family uses
    def sum(self, x: str, axes, keepdims: int = 0) -> str:
        return self.op("ReduceSum", x, self.i64(list(axes), "axes"), keepdims=keepdims)

    def unsqueeze(self, x: str, axes) -> str:
        return self.op("Unsqueeze", x, self.i64(list(axes), "axes"))

    def slice(self, x: str, start: int, end: int, axis: int) -> str:
        return self.op("Slice", x, self.i64([start]), self.i64([end]), self.i64([axis]))

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", a, b)

    def add(self, a: str, b: str) -> str:
        return self.op("Add", a, b)

    def sub(self, a: str, b: str) -> str:
        return self.op("Sub", a, b)

    def graph(self, name: str, inputs: list, outputs: list, doc: str = ""):
        return helper.make_graph(self.nodes, name, inputs, outputs, self.initializers,
                                 doc_string=doc)


def tensor(name: str, elem_type, shape) -> object:
    """A graph input or output ``ValueInfoProto``; ``shape`` entries may be names (dynamic)."""
    return helper.make_tensor_value_info(name, elem_type, shape)


FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64
