#!/usr/bin/env python3
"""Safetensors fixtures made by the reference implementation, and a checker for our writer.

    make_safetensors_fixtures.py            writes tests/fixtures/safetensors/reference.{safetensors,json}
                                            and the libFuzzer seeds in tests/fuzz/corpus_safetensors/
    make_safetensors_fixtures.py --check F  loads F with the reference `safetensors` package and
                                            prints its contents as JSON (metadata, dtypes, shapes,
                                            values as floats) for the C++ test to compare

Needs the `safetensors` and `numpy` packages, and `torch` to make the fixtures (its save_file
writes BF16, which numpy lacks), e.g. ~/.cache/harmonic/venv/bin/python. Exit status 3 means a package is missing, so a caller can tell
"cannot check here" apart from "the reference rejects the file".
"""

import argparse
import json
import math
import os
import pathlib
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "safetensors"
SEEDS = ROOT / "tests" / "fuzz" / "corpus_safetensors"
MISSING_PACKAGE = 3


def import_packages(need_torch):
    try:
        import numpy  # noqa: F401
        import safetensors  # noqa: F401
        if need_torch:
            import safetensors.torch  # noqa: F401
            import torch  # noqa: F401
    except ImportError as e:
        needed = "safetensors, numpy and torch" if need_torch else "safetensors and numpy"
        print(f"make_safetensors_fixtures.py: {e} (install {needed})", file=sys.stderr)
        sys.exit(MISSING_PACKAGE)


def dtype_name(torch_dtype):
    import torch

    names = {
        torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
        torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
        torch.uint8: "U8", torch.bool: "BOOL",
    }
    return names[torch_dtype]


def as_floats(t):
    # float64 holds every value of these dtypes exactly, I64 up to 2^53 (the fixtures stay below).
    return [float(v) for v in t.reshape(-1).to(__import__("torch").float64).tolist()]


def reference_tensors():
    import torch

    # Values exactly representable in their dtype, so the C++ test can compare with ==.
    return {
        "f32_matrix": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1.0,
        "f32_scalar": torch.tensor(3.25, dtype=torch.float32),
        "f32_empty": torch.zeros((0, 3), dtype=torch.float32),
        "f16_vector": torch.tensor([-2.0, -0.5, 0.0, 1.5, 1024.0, 65504.0, 2.0**-24], dtype=torch.float16),
        "bf16_cube": (torch.arange(8, dtype=torch.float32) - 3.5).reshape(2, 2, 2).to(torch.bfloat16),
        "i64_ids": torch.tensor([-3, 0, 7, 2**40, 42], dtype=torch.int64),
    }


def make_fixtures():
    import safetensors.torch

    FIXTURES.mkdir(parents=True, exist_ok=True)
    tensors = reference_tensors()
    metadata = {"format": "pt"}
    path = FIXTURES / "reference.safetensors"
    safetensors.torch.save_file(tensors, str(path), metadata=metadata)
    os.chmod(path, 0o644)  # the reference creates 0600 files; fixtures are for everyone to read
    listing = {
        "file": path.name,
        "made_by": "tests/scripts/make_safetensors_fixtures.py with safetensors " + safetensors.__version__,
        "metadata": metadata,
        "tensors": [
            {"name": name, "dtype": dtype_name(t.dtype), "shape": list(t.shape), "values": as_floats(t)}
            for name, t in sorted(tensors.items())
        ],
    }
    (FIXTURES / "reference.json").write_text(json.dumps(listing, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes) and reference.json")

    # Seeds: small and valid, so the fuzzer starts from the format's shape rather than noise.
    SEEDS.mkdir(parents=True, exist_ok=True)
    (SEEDS / "reference.safetensors").write_bytes(path.read_bytes())
    (SEEDS / "empty.safetensors").write_bytes(struct.pack("<Q", 8) + b"{}      ")
    import torch

    safetensors.torch.save_file(
        {"a": torch.tensor([1, 2], dtype=torch.int8), "b": torch.zeros((0,), dtype=torch.int32),
         "c": torch.tensor([[True, False]])},
        str(SEEDS / "small.safetensors"), metadata={"k": "v"})
    os.chmod(SEEDS / "small.safetensors", 0o644)
    print(f"wrote seeds in {SEEDS}")


def decode(dtype, shape, data):
    """Raw little-endian bytes to a flat list of floats, with numpy only (torch takes seconds to
    import, and this runs in every test run)."""
    import numpy as np

    if dtype == "BF16":  # numpy has no bfloat16: it is the top half of a float32
        values = (np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        np_dtype = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                    "I8": "i1", "U8": "u1", "BOOL": "?"}[dtype]
        values = np.frombuffer(data, dtype=np_dtype)
    assert values.size == math.prod(shape), (dtype, shape, len(data))
    return [float(v) for v in values.astype(np.float64)]


def check(path):
    import safetensors

    # Two reference readers: the file-based one (mmap) and the in-memory one, both validate fully.
    with safetensors.safe_open(path, framework="numpy") as f:
        metadata = f.metadata()
    out = {"metadata": metadata, "tensors": {}}
    for name, t in safetensors.deserialize(pathlib.Path(path).read_bytes()):
        values = decode(t["dtype"], t["shape"], bytes(t["data"]))
        out["tensors"][name] = {
            "dtype": t["dtype"],
            "shape": list(t["shape"]),
            # JSON has no NaN/inf; spell them so the comparison still sees them.
            "values": [v if math.isfinite(v) else repr(v) for v in values],
        }
    print(json.dumps(out, sort_keys=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", metavar="FILE", help="load FILE with the reference package and print it as JSON")
    args = ap.parse_args()
    import_packages(need_torch=not args.check)
    if args.check:
        try:
            check(args.check)
        except Exception as e:  # the reference's error text is what the caller needs to see
            print(f"{args.check}: the reference safetensors package rejects it: {type(e).__name__}: {e}",
                  file=sys.stderr)
            return 1
        return 0
    make_fixtures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
