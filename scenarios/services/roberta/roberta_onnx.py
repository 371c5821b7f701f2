"""The optimized variant's runtime: the same network exported to ONNX and run by ONNX Runtime.

At start-up the PyTorch model is exported once (``torch.onnx.export``) into a cache directory
(``ROBERTA_ONNX_CACHE``, default ``$TMPDIR/infbench-roberta-onnx``), keyed by size, seed and
token limit, so a restarted server or a second worker reuses it; a file lock makes concurrent
workers export it once, and the export is renamed into place so a crash never leaves half a
model behind. Then, unless ``ROBERTA_FUSION=0``, onnxruntime's transformer optimizer fuses
attention, GELU and layer norms (it runs offline: it only rewrites the graph), and the session
applies graph optimisation level ALL on top.

Threads: ``ROBERTA_INTRA_THREADS`` (default: the cores this process may use) for one operator,
one inter-op thread, because a batch is a single chain of operators.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from roberta_model import (
    LABELS,
    Settings,
    build_model,
    build_tokenizer,
    labels_of,
    model_config,
    predictions,
)

EXPORT_FORMAT = "v1"  # bump when the export recipe changes, so stale caches are not reused


def cache_dir() -> Path:
    default = Path(tempfile.gettempdir()) / "infbench-roberta-onnx"
    path = Path(os.environ.get("ROBERTA_ONNX_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _export(settings: Settings, target: Path) -> Any:
    """Export with dynamic batch and sequence axes; returns the model's config."""
    import torch

    # Eager attention exports as plain matmul/softmax, which the fusion below recognises.
    model = build_model(settings, attention="eager")
    ids = torch.full((2, 16), 5, dtype=torch.int64)
    mask = torch.ones_like(ids)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    torch.onnx.export(
        model,
        (ids, mask),
        str(partial),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"},
        },
        opset_version=17,
        # The TorchScript exporter: a single self-contained file, exported in seconds, whose
        # attention the transformer optimizer fuses (it does not fuse the dynamo exporter's).
        dynamo=False,
    )
    os.replace(partial, target)
    return model.config


def _fuse(plain: Path, target: Path, config: Any) -> None:
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(
        str(plain),
        model_type="bert",  # RoBERTa shares BERT's encoder blocks
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        opt_level=0,  # graph fusions only; the session applies level ALL afterwards
    )
    partial = target.with_suffix(f".{os.getpid()}.partial")
    fused.save_model_to_file(str(partial))
    os.replace(partial, target)


def _paths(settings: Settings) -> tuple[Path, Path]:
    directory = cache_dir()
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in settings.key)
    base = directory / f"{stem}-{EXPORT_FORMAT}"
    return base.with_suffix(".onnx"), base.with_name(base.name + "-fused.onnx")


def build(settings: Settings, fusion: bool) -> Path:
    """Export (and fuse) into the cache unless already there; returns the model to load.

    A failed fusion is not fatal: the plain export still gets level-ALL graph optimisation,
    and the server log says which model it runs.
    """
    plain, fused = _paths(settings)
    with _locked(plain.with_suffix(".lock")):
        if not plain.exists():
            _export(settings, plain)
        if fusion and not fused.exists():
            try:
                _fuse(plain, fused, model_config(settings))
            except Exception as exc:  # the optimizer's own errors are of any type
                print(f"transformer fusion failed ({exc!r}); serving the plain export")
                return plain
    return fused if fusion else plain


def onnx_path(settings: Settings, fusion: bool) -> Path:
    """The cached model, exported by a child process on first use.

    A child, because exporting holds the PyTorch model and its traced graph (gigabytes for
    roberta-base) and an allocator rarely gives that back: the serving process would carry it,
    and the server's memory is one of the figures the study compares.
    """
    target = _paths(settings)[1 if fusion else 0]
    if target.exists():
        return target
    flag = "--fusion" if fusion else "--no-fusion"
    child = subprocess.run(
        [sys.executable, __file__, flag],
        check=True,
        cwd=Path(__file__).parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    print(child.stdout, end="")  # into the server's log
    return Path(child.stdout.strip().splitlines()[-1])


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class OnnxClassifier:
    """ONNX Runtime inference over whole batches (padded to the longest text)."""

    def __init__(self, settings: Settings) -> None:
        import onnxruntime as ort

        fusion = os.environ.get("ROBERTA_FUSION", "1") != "0"
        self.path = onnx_path(settings, fusion)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(os.environ.get("ROBERTA_INTRA_THREADS", _cores()))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle threads spinning for work would take the CPU from the front process and from
        # the load generator on a small machine; measured here, not spinning was also faster.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )
        self.tokenize = build_tokenizer(settings)
        # Reading a checkpoint's labels needs transformers; the seeded model's are known.
        self.labels = labels_of(model_config(settings)) if settings.model_path else LABELS

    def __call__(self, texts: list[str]) -> list[dict[str, Any]]:
        ids, mask = self.tokenize(texts)
        (logits,) = self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})
        return predictions(np.asarray(logits, dtype=np.float32), self.labels)


if __name__ == "__main__":  # the export child: python roberta_onnx.py --fusion|--no-fusion
    print(build(Settings.from_env(), fusion=sys.argv[1:] != ["--no-fusion"]), flush=True)
