#!/usr/bin/env python3
"""Writes tests/fixtures/checkpoint_py/: a tiny Harmonic checkpoint made with the reference
`safetensors` package from PyPI, using only the tensor names and shapes that docs/CHECKPOINTS.md
documents. The C++ test loads it, so a Python user following the docs produces loadable files.

Run: ~/.cache/harmonic/venv/bin/python tests/scripts/make_checkpoint_fixture.py
"""
import json
import pathlib

import numpy as np
from safetensors.numpy import save_file

d, V, levels = 8, 256, 3
D = 2 * d


def harmonic_shapes():
    shapes = {"embed.weight": (V, d), "final_norm.weight": (d,), "head.weight": (V, d)}
    for l in range(levels):
        p = f"blocks.0.levels.{l}."
        shapes.update({p + "norm.weight": (d,), p + "w_in.weight": (D, d), p + "w_in.bias": (D,),
                       p + "w_g.weight": (D, D), p + "w_g.bias": (D,), p + "w_out.weight": (d, D),
                       p + "w_out.bias": (d,)})
    for l in range(levels - 1):
        shapes[f"blocks.0.predictors.{l}.weight"] = (d, d)
    for name, shape in {"fc1": ((D, d), (D,)), "fc2": ((D, D), (D,)), "fc3": ((d, D), (d,))}.items():
        shapes[f"blocks.0.out.{name}.weight"], shapes[f"blocks.0.out.{name}.bias"] = shape
    return shapes


def main():
    out = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "checkpoint_py"
    out.mkdir(parents=True, exist_ok=True)
    tensors = {name: np.sin(np.arange(int(np.prod(shape)), dtype=np.float64)).astype(np.float32).reshape(shape)
               for name, shape in harmonic_shapes().items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = {"model_type": "harmonic", "d_model": d, "vocab_size": V, "tie_embeddings": False,
              "tokenizer": "bytes",
              "harmonic": {"timescales": [4.0, 32.0, 128.0], "pool": 4, "routing": "error",
                           "cell": "gated_ema", "prediction": "temporal", "blocks": 1}}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {out} ({sum(t.size for t in tensors.values())} parameters)")


if __name__ == "__main__":
    main()
