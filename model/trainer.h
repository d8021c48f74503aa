// Training and evaluation of the three model families (docs/TRAINING.md): the loop behind
// `harmonic train` and `harmonic eval`.
//
// A run writes into its output folder DIR:
//   DIR/log.csv                     step,tokens,lr,loss_bpt,val_bpt,tokens_per_s,elapsed_s
//   DIR/step-NNNNNNN/               config.json, model.safetensors (fp32), optimizer.safetensors
//                                   (AdamW exp_avg / exp_avg_sq per parameter name),
//                                   trainer_state.json (step, tokens, args, data position, RNG)
//   DIR/latest                      one line: the name of the newest complete step folder
//   DIR/config.json, model.safetensors   the newest weights as a loadable checkpoint
// Step folders are written under a temporary name and renamed when complete; then the top-level
// files are replaced atomically (weights first, config last), then `latest`, so killing the
// process at any moment leaves the last checkpoint loadable and resumable.
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
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/corpus.h"
#include "model/language_model.h"

namespace harmonic {

// Scales every gradient by min(1, max_norm / ‖all gradients‖₂), on the device (no synchronisation),
// in a few multi-tensor launches.
void clip_gradients(const std::vector<torch::Tensor>& params, double max_norm);

// torch::optim::AdamW's update (decoupled weight decay, bias-corrected moments, no amsgrad) in a
// few launches per parameter group instead of about nine per parameter: on CUDA (fp32 parameters
// on one device) LibTorch's fused AdamW kernel, one pass over parameters, gradients and moments;
// elsewhere the same arithmetic in the same order through the multi-tensor _foreach_ ops. The C++
// AdamW has neither path, and its ~600 small launches a step make the host the limit of a GPU
// training step. Same state objects, so checkpoints are unchanged
// (tested equal to AdamW on CPU and CUDA).
class ForeachAdamW : public torch::optim::AdamW {
public:
    using torch::optim::AdamW::AdamW;
    torch::Tensor step(LossClosure closure = nullptr) override;

    // For a step captured in a CUDA graph (GraphedTrainStep): the fused kernel reads each group's
    // learning rate from a device tensor, which write_device_lr() refreshes from the options before
    // each replay (a host value would be frozen into the graph), and advance_host_steps() counts a
    // replayed step in the host state (what checkpoints save).
    void use_device_lr(bool on) { device_lr_ = on; }
    void write_device_lr();
    void advance_host_steps();

private:
    bool device_lr_ = false;
    std::vector<torch::Tensor> lr_tensors_;  // one fp32 scalar per parameter group
    std::vector<void*> last_stepped_;        // the parameters the last step() updated
    // The fused kernel reads each parameter's step count from the device: that tensor, and the
    // host count it holds (a state loaded from a checkpoint makes them differ: recreated then).
    std::unordered_map<void*, std::pair<torch::Tensor, int64_t>> device_steps_;
};

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

    int rank = 0, world_size = 1;  // data parallelism (see the file comment)

    // Fills batch and steps; throws Error naming the flag for impossible values.
    void resolve();
    int64_t warmup_steps() const;
    nlohmann::json to_json() const;
    static TrainConfig from_json(const nlohmann::json& j, const std::string& source);
};

// harmonic train's optimizer for a model: weight decay on matrices and embeddings (dim ≥ 2) only,
// betas, eps and learning rate from the config.
std::unique_ptr<ForeachAdamW> make_foreach_adamw(LanguageModel& model, const TrainConfig& c);

// One training step (forward, backward, gradient clipping, AdamW) captured once as a CUDA graph and
// replayed for every later step with new data: the host no longer issues ~360 kernels a step, whose
// launch time the GPU cannot hide in a short step (docs/KERNELS.md § Output head). The first
// `eager_steps` calls run normally (they warm up cuBLAS and the allocator); the next captures the
// step, then every call replays it. Needs CUDA, fixed shapes, and no host synchronisation inside
// the step; if capture fails the step says why in note() and runs eagerly from then on.
class GraphedTrainStep {
public:
    using LossFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& y)>;
    GraphedTrainStep(std::vector<torch::Tensor> params, ForeachAdamW& opt, LossFn loss, double clip, int eager_steps = 2);
    ~GraphedTrainStep();
    GraphedTrainStep(const GraphedTrainStep&) = delete;
    GraphedTrainStep& operator=(const GraphedTrainStep&) = delete;
    // One step on (x, y); returns the loss (a tensor the next call overwrites: detach/clone it).
    torch::Tensor step(const torch::Tensor& x, const torch::Tensor& y);
    bool replaying() const;
    const std::string& note() const { return note_; }

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::string note_;
};

// An inference call x -> tensor (no gradient) replayed as a CUDA graph on CUDA inputs: the first
// `eager_calls` calls run eagerly (warm-up: allocations, one-time kernel set-up), the next is
// captured, later ones copy x into the captured input and replay, which removes the host's launch
// overhead (a Harmonic forward is ~90 kernels). Every replayed call must have the captured input's
// shape; the returned tensor is overwritten by the next call. If capture fails, every call runs
// eagerly and note() says why. CPU inputs always run eagerly.
class GraphedForward {
public:
    using Fn = std::function<torch::Tensor(const torch::Tensor& x)>;
    explicit GraphedForward(Fn fn, int eager_calls = 2);
    ~GraphedForward();
    GraphedForward(const GraphedForward&) = delete;
    GraphedForward& operator=(const GraphedForward&) = delete;
    torch::Tensor operator()(const torch::Tensor& x);
    bool replaying() const;
    const std::string& note() const { return note_; }

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::string note_;
};

// "16384", "100M", "2.5G", "64K" (decimal suffixes K, M, G, T) -> count; Error naming `flag` otherwise.
int64_t parse_count(const std::string& text, const std::string& flag);

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

// ---- evaluation (`harmonic eval`) ----

struct EvalOptions {
    std::vector<int64_t> contexts{1024};
    bool stateful = false;        // one sequential pass per context, chunk = context, state carried
    int64_t warmup_chunks = 0;    // stateful: leading chunks run but not scored
    int64_t max_tokens = 0;       // 0 = the whole stream
    int64_t batch = 0;            // windowed: windows per forward (0 = max(1, 16384 / context))
    bool bf16 = false;            // autocast (CUDA only)
    bool fused_head = true;       // bits through head_bits_sum: no (windows, context, V) logits in memory
};

struct EvalRow {
    int64_t context = 0;
    std::string mode;             // "windowed" or "stateful"
    int64_t warmup_chunks = 0;
    int64_t windows = 0;          // scored windows (chunks)
    int64_t tokens = 0;           // scored tokens
    double mean_bpt = 0.0;        // mean over windows (= over tokens: windows are equal)
    double sd = 0.0;              // standard deviation over windows
    double ci95 = 0.0;            // half-width of the 95% interval of the mean (1.96·sd/√n; NaN for n < 2)
};

// Bits per token of `model` on `tokens` at each context length. Windowed: non-overlapping
// windows of `context` inputs (targets shifted by one), each scored from a fresh state. Stateful:
// chunks of `context` tokens streamed with the state carried, the first `warmup_chunks` not
// scored. Throws Error when the stream is too short for a context.
std::vector<EvalRow> evaluate_contexts(LanguageModel& model, const TokenStream& tokens, const torch::Device& device,
                                       const EvalOptions& options);

}  // namespace harmonic
