"""The two routes from a PyTorch module to the common graph, measured on the reader's test
models (tests/test_pytorch_reader.py), in one run:

  A  torch.export -> core ATen -> common graph (readers/pytorch, the route taken)
  B  torch.onnx.export(dynamo=True, opset 18) -> .onnx -> the ONNX reader (needs onnxscript)

For each model and route: whether it reads, the seconds from module to common graph
(best of --rounds, interleaved), the largest difference from PyTorch's own output when
the common graph runs in onnxruntime, and how many source layers the graph's nodes
name by module path (what a layer-by-layer report can show).

    python bench/bench_pytorch_route.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def route_a(model, x):
    from migrate.pipeline import ConvertOptions, read_source
    from migrate.readers.pytorch import reader

    reader._KEPT.clear()  # measure the export, not the reader's memory of the last one
    return read_source(model, ConvertOptions(example_inputs=(x,))).model


def route_b(model, x, folder):
    import torch

    from migrate.pipeline import ConvertOptions, read_source

    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(model, (x,), dynamo=True, opset_version=18)
    path = os.path.join(folder, "model.onnx")
    program.save(path)
    return read_source(path, ConvertOptions()).model, _scopes_in_file(path)


def _scopes_in_file(path: str) -> int:
    """Module paths the exporter wrote into the file (onnx's opset conversion drops them)."""
    import onnx

    found = set()
    for node in onnx.load(path).graph.node:
        for prop in node.metadata_props:
            if prop.key == "pkg.torch.onnx.name_scopes":
                found.add(prop.value)
    return len(found)


def module_layers(graph) -> int:
    """Source layers named by a module path (route A: source.path; route B: the
    exporter's name scopes in the node metadata)."""
    found = set()
    for node in graph.graph:
        meta = node.metadata_props
        scope = meta.get("pkg.torch.onnx.name_scopes") or meta.get("source.path", "")
        if scope and not scope.startswith("node_"):
            found.add(scope)
    return len(found)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    import torch
    from test_pytorch_reader import MODELS, example, seeded

    from migrate.runtimes.ort.api import run_model

    try:
        import onnxscript  # noqa: F401
        routes = ("A", "B")
    except ImportError:
        print("onnxscript is not installed: route B (the dynamo ONNX exporter) is skipped")
        routes = ("A",)
    print(f"{'model':<12} {'route':<5} {'reads':<10} {'seconds':>8} {'max |err|':>10} "
          f"{'module layers in the graph (in the .onnx)':>42}")
    with tempfile.TemporaryDirectory() as folder:
        for name, (cls, shape) in MODELS.items():
            model, x = seeded(cls), example(shape)
            with torch.no_grad():
                expected = model(x).numpy()
            best: dict[str, float] = {}
            in_file: dict[str, int] = {}
            graphs: dict[str, object] = {}
            for _ in range(args.rounds):
                for route in routes:
                    start = time.perf_counter()
                    try:
                        graph = route_a(model, x) if route == "A" else route_b(model, x, folder)
                        if route == "B":
                            graph, in_file[name] = graph
                    except Exception as exc:  # the route's failure is the measurement
                        graphs[route] = f"no: {type(exc).__name__}: {exc}"
                        continue
                    best[route] = min(best.get(route, 1e9), time.perf_counter() - start)
                    graphs[route] = graph
            for route in routes:
                graph = graphs[route]
                if isinstance(graph, str):
                    print(f"{name:<12} {route:<5} {graph[:150]}")
                    continue
                got = run_model(graph, [x.numpy()]).outputs[0]
                error = float(np.abs(got - expected).max())
                extra = f" ({in_file[name]})" if route == "B" else ""
                print(f"{name:<12} {route:<5} {'yes':<10} {best[route]:8.2f} {error:10.2e} "
                      f"{module_layers(graph):>30d}{extra}")
            if len(best) == 2:
                print(f"{'':<12} B/A time ratio {best['B'] / best['A']:.2f}")


if __name__ == "__main__":
    main()
