// The settings of a training run (`harmonic train`'s flags), as saved in every checkpoint's
// trainer_state.json. Plain data: no LibTorch.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.h"

namespace harmonic {

struct TrainConfig {
    ModelConfig model;                      // the model to build (ignored when resuming)
    std::filesystem::path tokenizer_json;   // BPE models: the tokenizer.json (copied into checkpoints)
    std::vector<std::filesystem::path> data;   // training text: files and/or folders
    std::vector<std::filesystem::path> valid;  // validation text (optional)
    std::filesystem::path out;              // the run's folder
    std::filesystem::path cache_dir;        // token caches (empty: default_cache_dir())

    int64_t seq_len = 1024;
    int64_t batch = 0;            // rows per step; 0 = max(1, 16384 / seq_len)
    int64_t steps = 0;            // set this or `tokens`
    int64_t tokens = 0;           // token budget: steps = tokens / (batch · seq_len)
    double lr = 2e-4;             // peak learning rate (the paper's long runs)
    double min_lr = 1e-5;         // end of the cosine decay
    double warmup_frac = 0.05;    // linear warm-up over this fraction of the steps
    double weight_decay = 0.1;    // AdamW, on matrices and embeddings only (not biases or norms)
    double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
    double clip = 1.0;            // global gradient-norm clip (0 = off)
    int64_t checkpoint_every = 1000;
    int64_t eval_every = 500;     // validation bpt every K steps and at the end (needs `valid`)
    int64_t eval_windows = 32;    // fixed validation windows of seq_len tokens
    int64_t log_every = 10;       // log.csv row every K steps (and at every eval and checkpoint)
    bool stateful = false;        // sequential batches with the state carried between chunks
    // Loss through head_bits_sum: no (batch, seq_len, V) logits in memory (a fraction of the memory
    // with V = 50,257, 1M-token contexts, and faster than the logits path on CUDA;
    // docs/BENCHMARKS.md). false: the logits and LibTorch's cross-entropy.
    bool fused_head = true;
    // CUDA, one process, windowed batches: replay the step as a CUDA graph (GraphedTrainStep).
    bool cuda_graph = true;
    std::string device = "auto";  // cpu | cuda | cuda:N | auto
    std::string precision = "auto";  // bf16 | fp32 | auto (bf16 on CUDA, fp32 on CPU)
    uint64_t seed = 0;
    int keep_checkpoints = 2;     // step folders kept

    int rank = 0, world_size = 1;  // data parallelism (model/trainer.h says how batches are sharded)

    // Fills batch and steps; throws Error naming the flag for impossible values.
    void resolve();
    int64_t warmup_steps() const;
    nlohmann::json to_json() const;
    static TrainConfig from_json(const nlohmann::json& j, const std::string& source);
};

}  // namespace harmonic
