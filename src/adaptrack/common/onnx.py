"""onnxruntime sessions shared by both systems' ONNX backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def ort_session(path: str | Path, threads: int) -> Any:
    """A CPU onnxruntime session of ``path``: ``threads`` intra-op threads, sequential, all graph optimisations.

    Args:
        path: An ``.onnx`` file.
        threads: Intra-op threads.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Busy-waiting worker threads steal the core the other thread needs on a shared machine.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
