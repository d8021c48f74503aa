"""On the GPU machine: the head GEMM alone, (tokens, 256) x (V, 256)^T in bf16, for the paper's
V = 50,257 and the same padded to a multiple of 64 (an odd row stride keeps cuBLAS off its fast,
aligned kernels). Median of 20 CUDA-event timings. Usage: python3 bench/experiments/head_gemm.py"""
import torch

def t(f, n=20):
    for _ in range(3): f()
    ts = []
    for _ in range(n):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); f(); b.record(); torch.cuda.synchronize(); ts.append(a.elapsed_time(b))
    return sorted(ts)[n // 2]

for tokens in (16384, 65536):
    x = torch.randn(tokens, 256, device="cuda", dtype=torch.bfloat16)
    for V in (50257, 50304):
        w = torch.randn(V, 256, device="cuda", dtype=torch.bfloat16)
        ms = t(lambda: x @ w.t())
        print(f"tokens {tokens} V {V}: {ms:.3f} ms, {2 * tokens * 256 * V / ms / 1e9:.0f} TFLOP/s")
    w = torch.randn(50304, 256, device="cuda", dtype=torch.bfloat16)
    ms = t(lambda: (x @ w.t())[:, :50257])
    print(f"tokens {tokens} V 50304 sliced view: {ms:.3f} ms")
    lg = (x @ w.t())[:, :50257]
    ms = t(lambda: torch.logsumexp(lg.float(), 1))
    print(f"tokens {tokens} logsumexp(float) over the logits: {ms:.3f} ms")
