// Development probe of kernels/cuda/head_gemm.cu without LibTorch: one nvcc call builds it
// (bench/experiments/head_lse_probe.sh). Checks the log-sum-exp and the picked logit against a plain fp32
// kernel on sampled rows, then times the kernel next to cuBLAS's bf16 GEMM that writes the logits.
#include <cublas_v2.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "kernels/cuda/head_gemm.cu"

namespace harmonic::kernels::cuda {
void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
    std::fprintf(stderr, "%s:%d: %s: %s\n", file, line, expr, cudaGetErrorString(err));
    std::exit(1);
}
}  // namespace harmonic::kernels::cuda

using namespace harmonic::kernels::cuda;

__global__ void reference_rows(const bf16* f, const bf16* w, const int64_t* t, const int64_t* rows, int n, int V, int K,
                               double* lse, double* picked) {
    const int i = blockIdx.x;
    if (i >= n) return;
    const int64_t r = rows[i];
    __shared__ double red_m[256], red_s[256];
    double m = -INFINITY, s = 0;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float x = 0.f;
        for (int k = 0; k < K; ++k) x = fmaf(__bfloat162float(f[r * K + k]), __bfloat162float(w[int64_t(j) * K + k]), x);
        if (x > m) s = s * exp(m - x) + 1, m = x;
        else s += exp(x - m);
        if (j == t[r]) picked[i] = x;
    }
    red_m[threadIdx.x] = m, red_s[threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double M = -INFINITY, S = 0;
        for (int u = 0; u < blockDim.x; ++u) M = fmax(M, red_m[u]);
        for (int u = 0; u < blockDim.x; ++u) S += red_s[u] * exp(red_m[u] - M);
        lse[i] = M + log(S);
    }
}

int main(int argc, char** argv) {
    const int64_t M = argc > 1 ? atoll(argv[1]) : 65536;
    const int V = argc > 2 ? atoi(argv[2]) : 50257;
    const int K = argc > 3 ? atoi(argv[3]) : 256;
    const float scale = argc > 4 ? atof(argv[4]) : 1.f;  // spread of the logits
    const int iters = argc > 5 ? atoi(argv[5]) : 20;
    std::printf("M=%lld V=%d K=%d scale=%g supported=%d\n", (long long)M, V, K, scale, head_lse_gemm_supported(K, V, 0));
    std::mt19937 gen(1234);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<bf16> hf(M * K), hw(int64_t(V) * K);
    for (auto& x : hf) x = __float2bfloat16(nd(gen) * scale / std::sqrt(float(K)) * 4.f);
    for (auto& x : hw) x = __float2bfloat16(nd(gen));
    std::vector<int64_t> ht(M);
    for (auto& t : ht) t = gen() % V;
    bf16 *f, *w;
    int64_t* t;
    float *lse, *picked;
    cudaMalloc(&f, hf.size() * 2), cudaMalloc(&w, hw.size() * 2), cudaMalloc(&t, M * 8);
    cudaMalloc(&lse, M * 4), cudaMalloc(&picked, M * 4);
    cudaMemcpy(f, hf.data(), hf.size() * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(w, hw.data(), hw.size() * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(t, ht.data(), M * 8, cudaMemcpyHostToDevice);
    cudaMemset(lse, 0xff, M * 4);
    HeadGemmParams p;
    p.M = M, p.V = V, p.K = K, p.features = f, p.weight = w, p.targets = t, p.lse = lse, p.picked = picked;
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    p.splits = argc > 6 ? atoi(argv[6]) : head_lse_gemm_splits(M, V, sms);
    if (p.splits > 1) cudaMalloc(&p.partial, 2 * 4 * p.splits * M);
    std::printf("splits %d\n", p.splits);
    head_lse_gemm(p, 0);
    HARMONIC_CUDA_CHECK(cudaDeviceSynchronize());

    // Sampled rows: the first 300, the last 300 and 400 in between.
    std::vector<int64_t> rows;
    for (int64_t r = 0; r < std::min<int64_t>(M, 300); ++r) rows.push_back(r);
    for (int64_t r = std::max<int64_t>(300, M - 300); r < M; ++r) rows.push_back(r);
    for (int u = 0; u < 400 && M > 600; ++u) rows.push_back(300 + gen() % (M - 600));
    const int n = int(rows.size());
    int64_t* drows;
    double *rl, *rp;
    cudaMalloc(&drows, n * 8), cudaMalloc(&rl, n * 8), cudaMalloc(&rp, n * 8);
    cudaMemcpy(drows, rows.data(), n * 8, cudaMemcpyHostToDevice);
    reference_rows<<<n, 256>>>(f, w, t, drows, n, V, K, rl, rp);
    HARMONIC_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<double> hrl(n), hrp(n);
    std::vector<float> hl(M), hp(M);
    cudaMemcpy(hrl.data(), rl, n * 8, cudaMemcpyDeviceToHost);
    cudaMemcpy(hrp.data(), rp, n * 8, cudaMemcpyDeviceToHost);
    cudaMemcpy(hl.data(), lse, M * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(hp.data(), picked, M * 4, cudaMemcpyDeviceToHost);
    double worst_l = 0, worst_p = 0;
    int bad = 0;
    for (int i = 0; i < n; ++i) {
        const double el = std::fabs(hl[rows[i]] - hrl[i]), ep = std::fabs(hp[rows[i]] - hrp[i]);
        worst_l = std::max(worst_l, el), worst_p = std::max(worst_p, ep);
        if (!(el < 1e-3 * std::max(1.0, std::fabs(hrl[i]))) || !(ep < 1e-3 * std::max(1.0, std::fabs(hrp[i])))) {
            if (bad++ < 8)
                std::printf("row %lld: lse %.6f ref %.6f | picked %.6f ref %.6f\n", (long long)rows[i], hl[rows[i]], hrl[i],
                            hp[rows[i]], hrp[i]);
        }
    }
    std::printf("checked %d rows: worst |lse err| %.3g, worst |picked err| %.3g, bad %d\n", n, worst_l, worst_p, bad);

    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    for (int i = 0; i < 3; ++i) head_lse_gemm(p, 0);
    cudaEventRecord(e0);
    for (int i = 0; i < iters; ++i) head_lse_gemm(p, 0);
    cudaEventRecord(e1);
    HARMONIC_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    ms /= iters;
    const double flop = 2.0 * M * V * K;
    std::printf("fused lse+pick: %.3f ms = %.0f TFLOP/s\n", ms, flop / ms / 1e9);
    p.picked = nullptr;
    cudaEventRecord(e0);
    for (int i = 0; i < iters; ++i) head_lse_gemm(p, 0);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    cudaEventElapsedTime(&ms, e0, e1);
    ms /= iters;
    std::printf("fused lse only: %.3f ms = %.0f TFLOP/s\n", ms, flop / ms / 1e9);

    // cuBLAS: logits (M, Vp) bf16 = f · wᵀ, the padded vocabulary as the model's output_logits does.
    const int Vp = (V + 63) / 64 * 64;
    bf16 *wp, *logits;
    cudaMalloc(&wp, int64_t(Vp) * K * 2), cudaMemset(wp, 0, int64_t(Vp) * K * 2);
    cudaMemcpy(wp, w, int64_t(V) * K * 2, cudaMemcpyDeviceToDevice);
    if (cudaMalloc(&logits, M * int64_t(Vp) * 2) == cudaSuccess) {
        cublasHandle_t h;
        cublasCreate(&h);
        const float one = 1.f, zero = 0.f;
        auto gemm = [&] {
            cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, Vp, int(M), K, &one, wp, CUDA_R_16BF, K, f, CUDA_R_16BF, K, &zero,
                         logits, CUDA_R_16BF, Vp, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        };
        for (int i = 0; i < 3; ++i) gemm();
        cudaEventRecord(e0);
        for (int i = 0; i < iters; ++i) gemm();
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms, e0, e1);
        ms /= iters;
        std::printf("cuBLAS GEMM writing bf16 logits: %.3f ms = %.0f TFLOP/s\n", ms, flop / ms / 1e9);
    }
    return 0;
}
