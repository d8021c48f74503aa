// GPU checks (tag [gpu]): every family's forward and backward on CUDA in fp32 and under bf16
// autocast, against the same weights on the CPU. On a machine without a GPU each case says so and
// checks nothing else; on the GPU machine they run (see docs/BENCHMARKS.md for the command).
#include "torch_catch.h"

#include <filesystem>

#include "model/analysis.h"
#include "model/checkpoint.h"
#include "model/io.h"
#include "model/language_model.h"
#include "model/scoring.h"

using namespace harmonic;

namespace {

ModelConfig config_for(Family family) {
    ModelConfig c;
    c.family = family;
    c.d_model = 64;
    c.vocab_size = 256;
    c.transformer.layers = 2;
    c.mamba.layers = 2;
    return c;
}

double rel(const torch::Tensor& a, const torch::Tensor& b) {
    return ((a.to(torch::kCPU, torch::kFloat64) - b.to(torch::kCPU, torch::kFloat64)).abs().max() /
            b.to(torch::kFloat64).abs().max().clamp_min(1e-12))
        .item<double>();
}

}  // namespace

TEST_CASE("GPU forward/backward matches the CPU in fp32 and bf16 autocast", "[gpu]") {
    if (!have_cuda_gpu()) return;
    at::globalContext().setAllowTF32CuBLAS(false);
    for (Family family : {Family::Harmonic, Family::Transformer, Family::Mamba}) {
        INFO(family_name(family));
        torch::manual_seed(1);
        auto cpu = make_model(config_for(family));
        torch::manual_seed(1);
        auto gpu = make_model(config_for(family));
        gpu->to(torch::kCUDA);
        auto tokens = torch::randint(0, 256, {2, 300}, torch::kLong);
        auto ref = cpu->forward(tokens).logits;
        auto out = gpu->forward(tokens.to(torch::kCUDA)).logits;
        CHECK(rel(out, ref) < 1e-4);

        auto loss_cpu = bits_per_token(ref, tokens);
        loss_cpu.backward();
        auto loss_gpu = bits_per_token(out, tokens.to(torch::kCUDA));
        loss_gpu.backward();
        for (const auto& p : cpu->named_parameters()) {
            INFO(p.key());
            CHECK(rel(gpu->named_parameters()[p.key()].grad(), p.value().grad()) < 1e-3);
        }

        // bf16 autocast: logits within bf16 precision of fp32, and the loss still trains (finite grads).
        gpu->zero_grad();
        torch::Tensor out16, loss16;
        {
            Bf16Autocast autocast(true);
            out16 = gpu->forward(tokens.to(torch::kCUDA)).logits;
            loss16 = bits_per_token(out16, tokens.to(torch::kCUDA));
        }
        CHECK(rel(out16.to(torch::kFloat32), ref) < 5e-2);
        CHECK(std::abs(loss16.item<double>() - loss_cpu.item<double>()) < 0.05);
        loss16.backward();
        for (const auto& p : gpu->parameters()) CHECK(torch::isfinite(p.grad()).all().item<bool>());
    }
}

TEST_CASE("GPU chunked forward equals the full forward and is causal", "[gpu]") {
    if (!have_cuda_gpu()) return;
    torch::NoGradGuard no_grad;
    for (Family family : {Family::Harmonic, Family::Transformer, Family::Mamba}) {
        INFO(family_name(family));
        torch::manual_seed(2);
        auto model = make_model(config_for(family));
        model->to(torch::kCUDA);
        auto tokens = torch::randint(0, 256, {1, 333}, torch::kLong).to(torch::kCUDA);
        auto full = model->forward(tokens).logits;
        auto state = model->initial_state(1, torch::kCUDA);
        std::vector<torch::Tensor> parts;
        for (int64_t s = 0; s < 333; s += 37) parts.push_back(model->forward_chunk(tokens.slice(1, s, std::min<int64_t>(333, s + 37)), *state).logits);
        CHECK(rel(torch::cat(parts, 1), full) < 1e-4);
        auto changed = tokens.clone();
        changed.slice(1, 101).random_(0, 256);
        auto moved = (model->forward(changed).logits.slice(1, 0, 101) - full.slice(1, 0, 101)).abs().max().item<double>();
        CHECK(moved == 0.0);
    }
}

TEST_CASE("GPU out of memory during analysis is retried with smaller chunks and gives the same numbers", "[gpu][oom]") {
    if (!have_cuda_gpu()) return;
    // A 50,257-way head makes a 32K-token chunk need ~13 GB of fp32 logits; a 2 GB cap forces
    // the analysis down to chunks that fit.
    ModelConfig c = config_for(Family::Harmonic);
    c.vocab_size = 50257;
    torch::manual_seed(4);
    auto model = make_model(c);
    const auto dir = std::filesystem::temp_directory_path() / "harmonic_gpu_oom_test";
    remove_tree(dir);
    save_checkpoint(*model, dir);
    std::string text;
    for (int i = 0; i < 40000; ++i) text += static_cast<char>('a' + (i * 7919 + i / 13) % 26);
    AnalysisOptions options;
    options.device = "cuda";
    options.chunk_tokens = 1024;
    const auto reference = analyze({dir}, text, "text", options);
    CHECK(reference.notes.empty());
    options.chunk_tokens = 32768;
    const torch::Device gpu(torch::kCUDA, 0);
    cuda_release_cached_memory(gpu);
    cuda_limit_memory(gpu, 2.0);
    AnalysisResult limited;
    REQUIRE_NOTHROW(limited = analyze({dir}, text, "text", options));
    cuda_limit_memory(gpu, 0.0);
    REQUIRE(!limited.notes.empty());
    INFO(limited.notes.front());
    CHECK(limited.notes.front().find("out of memory") != std::string::npos);
    REQUIRE(limited.models.size() == 1);
    const auto& a = reference.models[0].bpt;
    const auto& b = limited.models[0].bpt;
    REQUIRE(a.size() == b.size());
    double worst = 0.0;
    for (std::size_t i = 1; i < a.size(); ++i) worst = std::max(worst, std::abs(double(a[i]) - double(b[i])));
    CHECK(worst < 1e-3);
    remove_tree(dir);
}

TEST_CASE("GPU output head: padded logits and the fused head equal the CPU in fp64 terms", "[gpu][head]") {
    if (!have_cuda_gpu()) return;
    // V = 50,257 is not a multiple of 64: the CUDA head pads the weight (output_logits) and the fused
    // head runs its softmax kernels over padded chunks.
    torch::manual_seed(41);
    const int64_t N = 300, d = 64, V = 50257;
    auto features = torch::randn({N, d}), weight = torch::randn({V, d}) * 0.05;
    auto targets = torch::randint(0, V, {N}, torch::TensorOptions().dtype(torch::kLong));
    auto f64 = features.to(torch::kFloat64).requires_grad_(), w64 = weight.to(torch::kFloat64).requires_grad_();
    auto truth = torch::nn::functional::cross_entropy(torch::matmul(f64, w64.t()), targets,
                                                      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
                 std::log(2.0);
    truth.backward();
    at::globalContext().setAllowTF32CuBLAS(false);
    auto logits = output_logits(features.to(torch::kCUDA), weight.to(torch::kCUDA));
    REQUIRE(logits.sizes() == torch::IntArrayRef({N, V}));
    CHECK(rel(logits, torch::matmul(f64, w64.t())) < 1e-5);
    for (int64_t chunk : {0, 7, 128})
    for (int64_t keep_bytes : {int64_t(-1), int64_t(0)}) {  // gradient kept from the forward / recomputed
        INFO("chunk " << chunk << ", keep_bytes " << keep_bytes);
        auto f = features.to(torch::kCUDA).requires_grad_(), w = weight.to(torch::kCUDA).requires_grad_();
        auto bits = head_bits_sum(f, w, targets.to(torch::kCUDA), chunk, keep_bytes);
        CHECK(std::abs(bits.item<double>() - truth.item<double>()) < 1e-5 * truth.item<double>());
        bits.backward();
        CHECK(rel(f.grad(), f64.grad()) < 1e-4);
        CHECK(rel(w.grad(), w64.grad()) < 1e-4);
        // bf16 autocast: the GEMMs in bf16 and the weight gradient accumulated in fp32.
        auto fb = features.to(torch::kCUDA).requires_grad_(), wb = weight.to(torch::kCUDA).requires_grad_();
        torch::Tensor bits16;
        {
            Bf16Autocast autocast(true);
            bits16 = head_bits_sum(fb, wb, targets.to(torch::kCUDA), chunk, keep_bytes);
        }
        CHECK(std::abs(bits16.item<double>() - truth.item<double>()) < 1e-2 * truth.item<double>());
        bits16.backward();
        CHECK(rel(fb.grad(), f64.grad()) < 2e-2);
        CHECK(rel(wb.grad(), w64.grad()) < 2e-2);
    }
}

TEST_CASE("GPU score_tokens: the fused head's bits match the CPU's, fp32 and bf16", "[gpu][head]") {
    if (!have_cuda_gpu()) return;
    at::globalContext().setAllowTF32CuBLAS(false);
    for (Family family : {Family::Harmonic, Family::Transformer, Family::Mamba}) {
        INFO(family_name(family));
        torch::manual_seed(7);
        auto cpu = make_model(config_for(family));
        torch::manual_seed(7);
        auto gpu = make_model(config_for(family));
        gpu->to(torch::kCUDA);
        std::vector<int64_t> ids(700);
        for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t((i * 37 + i / 5) % 256);
        StreamOptions options;
        options.chunk_tokens = 300;
        const auto want = score_tokens(*cpu, ids, torch::kCPU, options);
        for (bool bf16 : {false, true}) {  // bf16: the Hopper kernel (d = 64); fp32: the reference on the GPU
            INFO((bf16 ? "bf16" : "fp32"));
            options.bf16 = bf16;
            const auto got = score_tokens(*gpu, ids, torch::kCUDA, options);
            double worst = 0.0;
            for (std::size_t i = 1; i < ids.size(); ++i) worst = std::max(worst, std::abs(double(got.bpt[i]) - want.bpt[i]));
            CHECK(worst < (bf16 ? 0.1 : 1e-3));
            CHECK(std::abs(got.mean_bpt - want.mean_bpt) < (bf16 ? 0.02 : 1e-4));
        }
    }
}
