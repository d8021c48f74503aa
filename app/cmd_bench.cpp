// `harmonic bench`: forward and training throughput and peak GPU memory per model and sequence
// length, on random tokens, with warm-up and the median of timed repeats.
#include <fmt/core.h>
#include <fmt/ostream.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <sstream>

#include "app/commands.h"
#include "model/checkpoint.h"
#include "model/error.h"
#include "model/io.h"
#include "model/cuda_graph.h"
#include "model/train_config.h"

#ifdef HARMONIC_WITH_CUDA_KERNELS
#include "kernels/cuda/benchmark.h"
#endif

namespace harmonic::cli {

namespace {

struct BenchArgs {
    std::vector<std::string> models{"harmonic"};
    int64_t d_model = 256, vocab = 50257, batch = 2, warmup = 3, repeats = 10;
    std::vector<int64_t> seq_lens{1024};
    bool train = false;
    bool cuda_graph = true;
    bool kernels = false;  // the kernel benchmark instead of the models
    bool quick = false;
    int64_t stream = 0;  // > 0: tokens streamed through forward_chunk, seq-len tokens per chunk
    std::string device = "auto", precision = "bf16", out, harmonic_cell = "gated_ema", head = "full";
};

void sync(const torch::Device& device) {
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

constexpr char kRowFormat[] = "{:<12} {:>11} {:>7} {:>6} {:>6} {:>10.3f} {:>12.0f} {:>8.3f}\n";

// Streams a.stream random tokens through the stateful chunked path, chunk tokens at a time, the
// way the desktop tool reads a long text: tokens/s over the whole stream, and peak memory after
// the first chunk and at the end (equal when memory is constant in the stream's length).
void stream_one(LanguageModel& model, const std::string& name, int64_t chunk, const BenchArgs& a,
                const torch::Device& device, bool bf16, std::string& csv) {
    torch::NoGradGuard no_grad;
    Bf16Autocast autocast(bf16);
    const auto opts = torch::TensorOptions().dtype(torch::kLong).device(device);
    const int64_t chunks = (a.stream + chunk - 1) / chunk;
    auto run = [&](int64_t n) {
        auto state = model.initial_state(a.batch, device);
        for (int64_t i = 0; i < n; ++i) model.forward_chunk(torch::randint(0, a.vocab, {a.batch, chunk}, opts), *state);
    };
    run(std::min<int64_t>(chunks, 2));  // warm-up
    sync(device);
    cuda_reset_peak_memory(device);
    run(1);
    sync(device);
    const double first_peak = cuda_peak_memory_gb(device);
    cuda_reset_peak_memory(device);
    const auto t0 = std::chrono::steady_clock::now();
    run(chunks);
    sync(device);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const double tps = double(a.batch * chunks * chunk) / (ms / 1000.0);
    fmt::print(kRowFormat, name, model.parameter_count(), chunk, a.batch, "stream", ms, tps, cuda_peak_memory_gb(device));
    fmt::print("{:<12} {} tokens per row in {} chunks; peak {:.3f} GB after one chunk, {:.3f} GB over the stream\n", "",
               chunks * chunk, chunks, first_peak, cuda_peak_memory_gb(device));
    csv += fmt::format("{},{},{},{},{},{},stream:{},{},{:.4f},{:.0f},{:.4f}\n", name, model.parameter_count(), a.d_model,
                       a.vocab, a.batch, chunk, chunks * chunk, bf16 ? "bf16" : "fp32", ms, tps, cuda_peak_memory_gb(device));
}

int run_bench(const BenchArgs& a) {
    if (a.stream > 0 && a.train) throw Error("--stream: times the inference stream; drop --train");
    const torch::Device device = parse_device(a.device);
    const bool bf16 = a.precision == "bf16" && device.is_cuda();
    if (device.is_cuda()) at::globalContext().setAllowTF32CuBLAS(true);
    // A std::string, not an ostringstream: running out of memory throws instead of failing silently.
    std::string csv = "model,parameters,d_model,vocab,batch,seq_len,mode,precision,ms_median,tokens_per_s,peak_gb\n";
    fmt::print("{:<12} {:>11} {:>7} {:>6} {:>6} {:>10} {:>12} {:>8}\n", "model", "params", "seq", "batch", "mode",
               "ms", "tok/s", "peak GB");
    const bool fused = a.head == "fused";
    const char* mode = a.train ? "train" : (fused ? "score" : "fwd");
    for (const auto& name : a.models) {
        ModelConfig c;
        c.family = family_from_name(name, "--model");
        c.d_model = a.d_model;
        c.vocab_size = a.vocab;
        c.tokenizer = a.vocab == 256 ? "bytes" : "bpe";
        c.harmonic.cell = a.harmonic_cell;
        // The Transformer baseline attends over the whole benchmarked length (plain causal flash
        // attention); a shorter sliding window would time a different model.
        c.transformer.context = *std::max_element(a.seq_lens.begin(), a.seq_lens.end());
        c.validate("harmonic bench");
        torch::manual_seed(0);
        auto model = make_model(c);
        model->to(device);
        ForeachAdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-4));  // harmonic train's optimizer
        for (int64_t T : a.seq_lens) {
            if (a.stream > 0) {
                stream_one(*model, name, T, a, device, bf16, csv);
                continue;
            }
            // The previous length's graph and its private memory pool are gone; hand their cached
            // blocks back, or the next capture may not find room (Mamba at 64K after 32K did not).
            cuda_release_cached_memory(device);
            auto tokens = torch::randint(0, a.vocab, {a.batch, T}, torch::TensorOptions().dtype(torch::kLong).device(device));
            // --head fused: the loss (train) or the bits of every token (score) through the fused
            // head, with no (batch, T, V) logits; full: the logits, as the model returns them.
            auto bits_of = [&](const torch::Tensor& toks) {
                Bf16Autocast autocast(bf16);
                if (!fused) return bits_per_token(model->forward(toks).logits, toks);
                HeadlessForward headless(*model);
                auto out = model->forward(toks);
                return head_bits_sum(out.features.slice(1, 0, T - 1), model->head_weight(), toks.slice(1, 1)) /
                       double(a.batch * (T - 1));
            };
            // The training step of harmonic train: clipping, ForeachAdamW, and on CUDA the step
            // replayed as a CUDA graph after two eager ones (unless --no-cuda-graph).
            std::unique_ptr<GraphedTrainStep> graphed;
            if (a.train)
                graphed = std::make_unique<GraphedTrainStep>(
                    model->parameters(), opt, [&](const torch::Tensor& x, const torch::Tensor&) { return bits_of(x); },
                    TrainConfig{}.clip, a.cuda_graph ? 2 : std::numeric_limits<int>::max());
            // Inference: on CUDA replayed as a CUDA graph after two eager calls (unless
            // --no-cuda-graph): the GPU time, not the host's launch rate, at every length.
            GraphedForward forward(
                [&](const torch::Tensor& toks) {
                    if (fused) return bits_of(toks);
                    Bf16Autocast autocast(bf16);
                    return model->forward(toks).logits;  // the logits, as the model returns them
                },
                a.cuda_graph ? 2 : std::numeric_limits<int>::max());
            auto step = [&] {
                if (a.train) graphed->step(tokens, tokens);
                else forward(tokens);
            };
            std::vector<double> ms;
            try {
                // The peak spans the warm-ups: a graphed training step allocates everything it uses
                // while it is captured (in the second warm-up), and nothing while it replays.
                sync(device);
                cuda_reset_peak_memory(device);
                for (int64_t i = 0; i < a.warmup; ++i) step();
                sync(device);
                for (int64_t i = 0; i < a.repeats; ++i) {
                    sync(device);
                    const auto t0 = std::chrono::steady_clock::now();
                    step();
                    sync(device);
                    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
                }
            } catch (const c10::Error& e) {
                const bool oom = is_out_of_memory(e);
                fmt::print("{:<12} {:>11} {:>7} {:>6} {:>6} {}\n", name, model->parameter_count(), T, a.batch,
                           mode, oom ? "out of memory" : e.what_without_backtrace());
                csv += fmt::format("{},{},{},{},{},{},{},{},,,{}\n", name, model->parameter_count(), a.d_model, a.vocab,
                                   a.batch, T, mode, bf16 ? "bf16" : "fp32", oom ? "OOM" : "error");
                cuda_release_cached_memory(device);
                continue;
            }
            std::sort(ms.begin(), ms.end());
            const double median = ms[ms.size() / 2];
            const double tps = double(a.batch * T) / (median / 1000.0);
            if (graphed && !graphed->note().empty()) fmt::print("{:<12} {}\n", "", graphed->note());
            if (!forward.note().empty()) fmt::print("{:<12} {}\n", "", forward.note());
            fmt::print(kRowFormat, name, model->parameter_count(), T,
                       a.batch, mode, median, tps, cuda_peak_memory_gb(device));
            csv += fmt::format("{},{},{},{},{},{},{},{},{:.4f},{:.0f},{:.4f}\n", name, model->parameter_count(), a.d_model,
                               a.vocab, a.batch, T, mode, bf16 ? "bf16" : "fp32", median, tps,
                               cuda_peak_memory_gb(device));
        }
    }
    if (!a.out.empty()) write_file_atomically(a.out, csv);
    return 0;
}

int run_kernel_bench(const BenchArgs& a) {
    if (a.train || a.stream > 0) throw Error("--kernels: times the kernels alone; drop --train / --stream");
#ifdef HARMONIC_WITH_CUDA_KERNELS
    try {
        kernels::cuda::run_kernel_benchmark({a.out, a.quick, false});
    } catch (const c10::Error& e) {
        throw Error(std::string("--kernels: ") + e.what_without_backtrace());
    } catch (const std::runtime_error& e) {
        throw Error(std::string("--kernels: ") + e.what());
    }
    return 0;
#else
    (void)a;
    throw Error("--kernels: this build has no CUDA kernels (it needs nvcc and a CUDA LibTorch)");
#endif
}

}  // namespace

void register_bench(CLI::App& app, std::vector<Command>& commands) {
    auto args = std::make_shared<BenchArgs>();
    auto* cmd = app.add_subcommand("bench", "forward / training throughput and peak GPU memory on random tokens");
    cmd->add_option("--model", args->models, "harmonic | transformer | mamba (repeatable or comma-separated)")
        ->delimiter(',')
        ->check(CLI::IsMember({"harmonic", "transformer", "mamba"}));
    cmd->add_option("--d-model", args->d_model, "model width")->check(CLI::Range(1, 65536));
    cmd->add_option("--vocab-size", args->vocab, "vocabulary size")->check(CLI::Range(256, 10000000));
    cmd->add_option("--seq-len", args->seq_lens, "sequence lengths, e.g. 1024,8192")->delimiter(',')->check(CLI::Range(2, 1 << 24));
    cmd->add_option("--batch", args->batch, "batch size")->check(CLI::Range(1, 1 << 16));
    cmd->add_option("--warmup", args->warmup, "untimed warm-up steps")->check(CLI::Range(0, 1000));
    cmd->add_option("--repeats", args->repeats, "timed steps (median reported)")->check(CLI::Range(1, 10000));
    cmd->add_flag("--train", args->train, "time a full training step (forward, backward, clipping, AdamW)");
    cmd->add_flag("!--no-cuda-graph", args->cuda_graph, "every training step or forward eagerly, not replayed as a CUDA graph");
    cmd->add_option("--stream", args->stream, "stream N tokens per row through the stateful chunked path, seq-len tokens a chunk")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
    cmd->add_option("--head", args->head, "full (default: logits materialised) | fused (no logits: train loss, or score)")
        ->check(CLI::IsMember({"full", "fused"}));
    cmd->add_option("--device", args->device, "cuda | cpu | auto");
    cmd->add_option("--precision", args->precision, "bf16 (autocast) | fp32")->check(CLI::IsMember({"bf16", "fp32"}));
    cmd->add_option("--cell", args->harmonic_cell, "Harmonic cell: gated_ema | selective");
    cmd->add_option("--out", args->out, "write the results as CSV (--kernels: the report as text)");
    cmd->add_flag("--kernels", args->kernels,
                  "the CUDA kernels instead of the models: copy and matmul ceilings, then every scan's time and "
                  "fraction of copy bandwidth (docs/BENCHMARKS.md)");
    cmd->add_flag("--quick", args->quick, "--kernels: fewer lengths and repeats");
    commands.push_back({cmd, [args] { return args->kernels ? run_kernel_bench(*args) : run_bench(*args); }});
}

}  // namespace harmonic::cli
