"""Inference alone, per shipped bundle: eager Keras vs graph-compiled vs the inference runtimes installed here.

    PYTHONPATH=$PWD python benchmarks/compiled_inference.py [--batch 32] [--films 256] [--rounds 3]

The decision behind ``detectors/inference.py`` (docs/decisions/0007-compiled-inference.md). Each way of running
a model scores ``--films`` random inputs in batches of ``--batch``; the rounds go through every way in turn, so
that on a shared machine they see the same load, and each figure is the best round. ONNX Runtime and OpenVINO are
tried only when importable (with tf2onnx for the export: ``pip install onnxruntime tf2onnx openvino``); each also
reports its largest difference from the bundle's own Keras scores.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def ways(model, size: int, batch: int, work: Path, xla: bool) -> dict:
    """name -> function scoring one (batch, size, size, 1) float32 array."""
    import tensorflow as tf

    from detectors.inference import Scorer

    out = {"eager model(x)": lambda x: model(x, training=False),
           "keras predict_on_batch": model.predict_on_batch,
           "tf.function, variables": Scorer(model, batch_size=batch, frozen=False).predict,
           "tf.function, frozen (cxclean Scorer)": Scorer(model, batch_size=batch).predict}
    if xla:  # XLA on this CPU ran rotation at 16 films/s (vs 480 without): opt-in, it would take minutes
        out["tf.function + XLA"] = tf.function(lambda x: model(x, training=False), jit_compile=True,
                                               input_signature=[tf.TensorSpec((batch, size, size, 1), tf.float32)])
    onnx_file = work / f"{model.name}.onnx"
    try:
        import onnxruntime as ort

        model.export(str(onnx_file), format="onnx", verbose=False)
        session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        out["ONNX Runtime"] = lambda x: session.run(None, {name: x})[0]
    except Exception as exc:  # not installed, or the export failed: say so
        print(f"  (ONNX Runtime not tried: {type(exc).__name__}: {str(exc)[:120]})")
    try:
        import openvino as ov

        if not onnx_file.is_file():
            model.export(str(onnx_file), format="onnx", verbose=False)
        # f32: by default OpenVINO runs in bf16 where the CPU has it (scores then differ by ~1e-2)
        compiled = ov.Core().compile_model(str(onnx_file), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        out["OpenVINO"] = lambda x: compiled(x)[0]
    except Exception as exc:
        print(f"  (OpenVINO not tried: {type(exc).__name__}: {str(exc)[:120]})")
    return out


def main():
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", type=Path, default=REPO / "detectors" / "default_bundles")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--films", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--xla", action="store_true", help="also tf.function(jit_compile=True)")
    args = ap.parse_args()
    from detectors.bundle import find_bundles, load

    print(f"{os.cpu_count()} CPU(s); batch {args.batch}; {args.films} films per round; best of {args.rounds} rounds")
    with tempfile.TemporaryDirectory() as tmp:
        for folder in find_bundles(args.bundles):
            detector = load(folder)
            size = detector.input_spec.size
            x = np.random.default_rng(0).random((args.batch, size, size, 1), dtype=np.float32)
            reference = np.asarray(detector.model(x, training=False)).reshape(-1)
            fns = ways(detector.model, size, args.batch, Path(tmp), args.xla)
            diffs, traced = {}, {}
            for name, fn in fns.items():
                t = time.perf_counter()
                diffs[name] = float(np.abs(np.asarray(fn(x)).reshape(-1) - reference).max())
                traced[name] = time.perf_counter() - t
            best = dict.fromkeys(fns, 0.0)
            for _ in range(args.rounds):
                for name, fn in fns.items():
                    t, n = time.perf_counter(), 0
                    while n < args.films:
                        np.asarray(fn(x))
                        n += len(x)
                    best[name] = max(best[name], n / (time.perf_counter() - t))
            print(f"{detector.name} ({size} px)")
            for name in fns:
                print(f"  {name:38} {best[name]:8.1f} films/s  max |diff| {diffs[name]:.1e}  first call {traced[name]:5.1f} s")


if __name__ == "__main__":
    main()
