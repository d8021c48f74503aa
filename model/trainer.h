// Training of the three model families (docs/TRAINING.md): the loop behind `harmonic train`.
// This header also brings in the pieces the loop is built from: the run's settings
// (train_config.h), the optimizer (optimizer.h), CUDA-graph replay (cuda_graph.h), evaluation
// (evaluation.h); the run folder it writes is described in run_folder.h.
//
// Data parallelism (one process per GPU, c10d/NCCL) plugs in without changing the loop:
// TrainConfig::rank / world_size shard every batch by rank (each global batch has
// batch·world_size rows, rank r takes rows [r·batch, (r+1)·batch)), a GradientSync all-reduces
// the gradients between backward and the optimizer step (and averages the logged loss), and only
// rank 0 writes checkpoints and logs.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "model/cuda_graph.h"
#include "model/evaluation.h"
#include "model/optimizer.h"
#include "model/train_config.h"

namespace harmonic {

// Linear warm-up to `peak` over `warmup` steps, then cosine decay to `min_lr` at `steps`.
// `step` is the 1-based number of the update being taken.
double learning_rate(int64_t step, int64_t steps, int64_t warmup, double peak, double min_lr);

// Random-window starts for one step: `count` values in [0, max_start], drawn from a generator
// seeded by (seed, step) only, so a resumed run draws exactly the same windows.
std::vector<int64_t> window_starts(uint64_t seed, int64_t step, int64_t count, int64_t max_start);

// The fixed validation windows: `count` starts evenly spaced over a stream of `stream_tokens`
// tokens (windows of seq_len + 1 tokens). They depend on neither the model nor the training
// seed, so every model is validated on the same text.
std::vector<int64_t> eval_window_starts(int64_t stream_tokens, int64_t seq_len, int64_t count);

// Between backward and the optimizer step. The default (one process) does nothing; a c10d/NCCL
// implementation all-reduces (averages) the gradients and the logged scalars across ranks.
class GradientSync {
public:
    virtual ~GradientSync() = default;
    virtual void sync_gradients(const std::vector<torch::Tensor>& parameters) { (void)parameters; }
    // Averages a scalar tensor (the logged loss, the validation bits) across ranks.
    virtual torch::Tensor average(const torch::Tensor& value) { return value; }
    // Overwrites every rank's tensors with rank 0's (the initial or resumed weights).
    virtual void broadcast(const std::vector<torch::Tensor>& tensors) { (void)tensors; }
    // Returns once every rank has called it.
    virtual void barrier() {}
    // Called once by every rank after its training ended normally; returns when no rank will use
    // the job's connections again. Rank 0 hosts the rendezvous store: had it exited first, another
    // rank still finishing its last collective would fail with "connection reset by peer".
    virtual void finish() {}
};

struct TrainProgress {
    int64_t step = 0, steps = 0, tokens = 0;
    double lr = 0.0, loss_bpt = 0.0, val_bpt = -1.0, tokens_per_s = 0.0, elapsed_s = 0.0, eta_s = 0.0;
};

struct TrainHooks {
    GradientSync* sync = nullptr;       // null: single process
    std::ostream* out = nullptr;        // progress lines (null: silent)
    double progress_seconds = 5.0;      // a progress line at most this often
    // After each optimizer step (tests throw here to simulate a crash).
    std::function<void(int64_t step)> after_step;
};

struct TrainResult {
    int64_t steps = 0, tokens = 0;
    double last_loss_bpt = 0.0;   // mean over the last logged interval
    double last_val_bpt = -1.0;   // -1 when there was no validation
    std::filesystem::path checkpoint;  // the final step folder
};

// Trains from scratch into config.out. Refuses a folder that already holds a run.
TrainResult train(const TrainConfig& config, const TrainHooks& hooks = {});

// The settings of the run in `dir` (from its latest checkpoint's trainer_state.json).
TrainConfig load_run_config(const std::filesystem::path& dir);

// Continues the run in `dir` from its latest checkpoint with exactly its settings (same data,
// schedule and optimizer state; on CPU in fp32 the loss curve is reproduced bit for bit).
// `device` overrides the device when not empty. `rank` / `world_size` place this process in a
// data-parallel job, which may have a different size than the run's last one: the global batch
// (rows per step over all ranks) is kept, so the run continues exactly.
TrainResult resume(const std::filesystem::path& dir, const std::string& device = "", const TrainHooks& hooks = {},
                   int rank = 0, int world_size = 1);

}  // namespace harmonic
