#include "model/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numbers>
#include <optional>
#include <ostream>
#include <system_error>

#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "model/error.h"
#include "model/format.h"
#include "model/io.h"
#include "model/run_folder.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"

namespace harmonic {

namespace fs = std::filesystem;
namespace st = safetensors;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

__extension__ typedef unsigned __int128 u128;
__extension__ typedef __int128 i128;

uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

std::string duration_text(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    const auto s = static_cast<int64_t>(seconds + 0.5);
    if (s >= 3600) return strf("%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>((s / 60) % 60));
    if (s >= 60) return strf("%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
    return strf("%llds", static_cast<long long>(s));
}

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// One run, from its folder and data to the last step: go() sets it up step by step, then runs the
// step loop.
class Run {
public:
    Run(TrainConfig config, bool resuming, const TrainHooks& hooks)
        : c_(std::move(config)), resuming_(resuming), hooks_(hooks), writer_(c_.rank == 0),
          log_(c_.out / "log.csv", c_.rank == 0) {}

    TrainResult go();

private:
    void message(const std::string& line) {
        if (hooks_.out && writer_) *hooks_.out << line << std::endl;
    }
    // Set-up, in the order go() calls them.
    void choose_device();
    void open_folder();
    void open_tokenizer();
    void open_data();
    void open_model();
    void open_log();
    void make_graphed_step();
    // The step loop.
    void train_steps();
    torch::Tensor train_step(int64_t step);
    void log_interval(int64_t step, double lr, bool do_eval, bool do_ckpt);
    void print_progress(int64_t step, double lr);
    [[noreturn]] void fail_out_of_memory(int64_t step);

    torch::Tensor batch(int64_t step);
    double validate();
    void write_checkpoint(int64_t step, int64_t tokens, double elapsed);

    TrainConfig c_;
    bool resuming_;
    TrainHooks hooks_;
    bool writer_;
    RunLog log_;
    std::optional<RunLock> lock_;
    torch::Device device_{torch::kCPU};
    bool bf16_ = false;
    fs::path step_dir_;  // resuming: the checkpoint resumed from
    json saved_;         // resuming: its trainer_state.json
    std::shared_ptr<Tokenizer> tokenizer_;
    fs::path tokenizer_json_;  // BPE: DIR/tokenizer.json
    std::optional<TokenStream> train_, valid_;
    std::vector<int64_t> eval_starts_;
    std::shared_ptr<LanguageModel> model_;
    std::vector<torch::Tensor> params_;
    std::unique_ptr<ForeachAdamW> opt_;
    std::unique_ptr<GraphedTrainStep> graphed_;
    bool graph_noted_ = false;
    std::unique_ptr<StreamState> state_;  // stateful: the state carried between chunks
    int64_t rows_ = 0, row_len_ = 0, chunks_per_row_ = 0;  // stateful layout (global rows)

    // Progress of the step loop.
    int64_t start_step_ = 0, tokens_ = 0;
    double elapsed_before_ = 0.0;  // resuming: the time the run had already taken
    torch::Tensor loss_sum_;       // on the device: summed without synchronising
    int64_t interval_steps_ = 0, interval_tokens_ = 0;
    Clock::time_point run_start_, interval_start_, last_print_;
    double last_loss_ = std::numeric_limits<double>::quiet_NaN(), last_val_ = -1.0, last_tps_ = 0.0;
};

void Run::choose_device() {
    c_.resolve();
    device_ = parse_device(c_.device);
    if (c_.precision == "bf16" && !device_.is_cuda())
        throw Error("--precision bf16: bf16 autocast needs a CUDA device (use --precision fp32 on CPU)");
    bf16_ = device_.is_cuda() && c_.precision != "fp32";
    if (device_.is_cuda()) at::globalContext().setAllowTF32CuBLAS(true);
}

void Run::open_folder() {
    std::error_code ec;
    fs::create_directories(c_.out, ec);
    if (ec) fail_file(c_.out, "cannot create the run folder: " + ec.message());
    if (writer_) lock_.emplace(c_.out);
    if (resuming_) {
        step_dir_ = latest_step_dir(c_.out);
        saved_ = read_trainer_state(step_dir_);
        start_step_ = saved_.at("step").get<int64_t>();
        tokens_ = saved_.at("tokens").get<int64_t>();
        elapsed_before_ = saved_.value("elapsed_s", 0.0);
        if (writer_) remove_leftovers(c_.out);
    } else if (fs::exists(c_.out / "latest")) {
        fail_file(c_.out, "already holds a training run; continue it with --resume " + c_.out.string() +
                              " or choose another --out");
    }
}

void Run::open_tokenizer() {
    if (c_.model.tokenizer == "bpe") {
        // The run keeps its own copy, DIR/tokenizer.json, for every checkpoint it writes.
        tokenizer_json_ = c_.out / "tokenizer.json";
        if (!resuming_) {
            std::error_code ec;
            if (c_.tokenizer_json.empty()) throw Error("--tokenizer: a BPE model needs its tokenizer.json");
            if (!fs::exists(c_.tokenizer_json)) fail_file(c_.tokenizer_json, "no such file");
            if (!fs::equivalent(c_.tokenizer_json, tokenizer_json_, ec)) {
                const auto bytes = read_file_bytes(c_.tokenizer_json, uint64_t(1) << 30);
                write_file_atomically(tokenizer_json_, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
            }
        } else if (!fs::exists(tokenizer_json_)) {
            install_file(step_dir_ / "tokenizer.json", tokenizer_json_);
        }
        require_regular_file(tokenizer_json_);  // a FIFO would block the loader in open()
        tokenizer_ = load_bpe_tokenizer(tokenizer_json_);
    } else {
        tokenizer_ = make_byte_tokenizer();
    }
    if (tokenizer_->vocab_size() > c_.model.vocab_size)
        throw Error(strf("--tokenizer: %lld tokens do not fit the model's vocab_size %lld",
                           static_cast<long long>(tokenizer_->vocab_size()), static_cast<long long>(c_.model.vocab_size)));
}

void Run::open_data() {
    const std::string key = tokenizer_cache_key(c_.model.tokenizer, tokenizer_json_);
    CorpusOptions options;
    options.cache_dir = c_.cache_dir;
    options.on_message = [this](const std::string& line) { message(line); };
    const int64_t L = c_.seq_len;
    Corpus train = open_corpus(c_.data, *tokenizer_, key, options);
    train_ = train.tokens;
    const int64_t n = train_->size();
    message(strf("data: %lld tokens from %zu file%s%s", static_cast<long long>(n), train.files.size(),
                   train.files.size() == 1 ? "" : "s", train.from_cache ? " (cached)" : ""));
    rows_ = c_.batch * c_.world_size;
    if (c_.stateful) {
        row_len_ = (n - 1) / rows_;
        chunks_per_row_ = row_len_ / L;
        if (chunks_per_row_ < 1)
            throw Error(strf("--data: %lld tokens cannot give %lld stateful rows of at least --seq-len %lld + 1 tokens",
                               static_cast<long long>(n), static_cast<long long>(rows_), static_cast<long long>(L)));
    } else if (n < L + 1) {
        throw Error(strf("--data: %lld tokens, fewer than --seq-len + 1 = %lld", static_cast<long long>(n),
                           static_cast<long long>(L + 1)));
    }
    if (!c_.valid.empty()) {
        Corpus valid = open_corpus(c_.valid, *tokenizer_, key, options);
        valid_ = valid.tokens;
        if (valid_->size() < L + 1)
            throw Error(strf("--valid: %lld tokens, fewer than --seq-len + 1 = %lld",
                               static_cast<long long>(valid_->size()), static_cast<long long>(L + 1)));
        eval_starts_ = eval_window_starts(valid_->size(), L, c_.eval_windows);
        message(strf("valid: %lld tokens, %zu windows of %lld", static_cast<long long>(valid_->size()),
                       eval_starts_.size(), static_cast<long long>(L)));
    }
}

// Rows of seq_len + 1 tokens (inputs and the targets shifted by one) for this rank, on the
// device. On CUDA the rows go through pinned memory and a non-blocking copy, so that the host
// never waits for the GPU between steps (a pageable copy would synchronise the stream); the
// caching host allocator does not hand a block out again before its copy has completed.
torch::Tensor Run::batch(int64_t step) {
    const int64_t L = c_.seq_len, B = c_.batch;
    auto rows = torch::empty({B, L + 1}, torch::TensorOptions().dtype(torch::kLong).pinned_memory(device_.is_cuda()));
    int64_t* host = rows.data_ptr<int64_t>();
    if (c_.stateful) {
        const int64_t chunk = (step - 1) % chunks_per_row_;
        for (int64_t i = 0; i < B; ++i) {
            const int64_t row = c_.rank * B + i;
            train_->read(row * row_len_ + chunk * L, L + 1, host + i * (L + 1));
        }
    } else {
        const auto starts = window_starts(c_.seed, step, rows_, train_->size() - L - 1);
        for (int64_t i = 0; i < B; ++i) train_->read(starts[c_.rank * B + i], L + 1, host + i * (L + 1));
    }
    return rows.to(device_, /*non_blocking=*/device_.is_cuda());
}

double Run::validate() {
    torch::NoGradGuard no_grad;
    model_->eval();
    const int64_t L = c_.seq_len, B = c_.batch;
    std::vector<int64_t> host;
    double total = 0.0;
    // Each rank scores every world_size-th batch of the windows; the sum is gathered below.
    const auto stride = static_cast<std::size_t>(B * c_.world_size);
    for (std::size_t i = static_cast<std::size_t>(B * c_.rank); i < eval_starts_.size(); i += stride) {
        const int64_t rows = std::min<int64_t>(B, static_cast<int64_t>(eval_starts_.size() - i));
        host.resize(static_cast<std::size_t>(rows * (L + 1)));
        for (int64_t r = 0; r < rows; ++r)
            valid_->read(eval_starts_[i + static_cast<std::size_t>(r)], L + 1, host.data() + r * (L + 1));
        auto all = torch::from_blob(host.data(), {rows, L + 1}, torch::kLong).clone().to(device_);
        total += forward_bits(*model_, all.slice(1, 0, L).contiguous(), all.slice(1, 1, L + 1), nullptr, bf16_,
                              c_.fused_head)
                     .item<double>();
    }
    model_->train();
    auto sum = torch::tensor(total, torch::kFloat64);
    if (hooks_.sync) sum = hooks_.sync->average(sum) * static_cast<double>(c_.world_size);
    return sum.item<double>() / static_cast<double>(eval_starts_.size() * static_cast<std::size_t>(L));
}

void Run::open_model() {
    if (resuming_) {
        const json& d = saved_.at("data");
        if (d.value("train_checksum", "") != hex64(train_->source_checksum()) ||
            d.value("train_tokens", int64_t(-1)) != train_->size())
            fail_file(c_.out, "the training data changed since this run started (checksum " + d.value("train_checksum", "?") +
                                  ", now " + hex64(train_->source_checksum()) + "): resume needs the same text");
        auto loaded = load_checkpoint(step_dir_, device_);
        model_ = loaded.model;
    } else {
        torch::manual_seed(c_.seed);
        model_ = make_model(c_.model);
        model_->to(device_);
    }
    model_->train();
    params_ = model_->parameters();
    if (hooks_.sync) hooks_.sync->broadcast(params_);
    opt_ = make_foreach_adamw(*model_, c_);
    if (resuming_) load_optimizer(*opt_, *model_, step_dir_ / "optimizer.safetensors");

    message(strf("%s: %lld parameters, %s, batch %lld x %lld tokens, %lld steps (%lld tokens), %s%s",
                   family_name(c_.model.family).c_str(), static_cast<long long>(model_->parameter_count()),
                   device_.str().c_str(), static_cast<long long>(c_.batch), static_cast<long long>(c_.seq_len),
                   static_cast<long long>(c_.steps),
                   static_cast<long long>(c_.steps * c_.batch * c_.seq_len * c_.world_size), bf16_ ? "bf16" : "fp32",
                   c_.stateful ? ", stateful" : ""));
}

void Run::open_log() {
    if (resuming_) {
        log_.truncate_to(start_step_);
        message(strf("resuming %s at step %lld", c_.out.string().c_str(), static_cast<long long>(start_step_)));
    } else {
        log_.create();
        if (writer_) write_checkpoint(0, 0, 0.0);
    }
}

// Windowed single-process training on CUDA replays the step as a CUDA graph (stateful rows
// change the step's inputs every step; data-parallel steps synchronise between its parts).
void Run::make_graphed_step() {
    if (!device_.is_cuda() || !c_.cuda_graph || c_.stateful || hooks_.sync) return;
    const int64_t B = c_.batch, L = c_.seq_len;
    graphed_ = std::make_unique<GraphedTrainStep>(
        params_, *opt_,
        [this, B, L](const torch::Tensor& xs, const torch::Tensor& ys) {
            return forward_bits(*model_, xs, ys, nullptr, bf16_, c_.fused_head) / static_cast<double>(B * L);
        },
        c_.clip);
    if (start_step_ + 3 <= c_.steps)
        message(strf("steps from %lld on replay a CUDA graph of the step (--no-cuda-graph: all eager)",
                     static_cast<long long>(start_step_ + 3)));
}

// Forward, backward, gradient sync and clip, AdamW; returns the step's mean loss in bits per token.
torch::Tensor Run::train_step(int64_t step) {
    const int64_t L = c_.seq_len, B = c_.batch;
    auto all = batch(step);
    auto x = all.slice(1, 0, L).contiguous(), y = all.slice(1, 1, L + 1).contiguous();
    if (c_.stateful && (!state_ || (step - 1) % chunks_per_row_ == 0 || (step - 1) % c_.checkpoint_every == 0))
        state_ = model_->initial_state(B, device_);
    torch::Tensor loss;
    if (graphed_) {
        loss = graphed_->step(x, y);
        if (!graph_noted_ && !graphed_->note().empty()) message(graphed_->note());
        graph_noted_ = graph_noted_ || !graphed_->note().empty();
    } else {
        loss = forward_bits(*model_, x, y, c_.stateful ? state_.get() : nullptr, bf16_, c_.fused_head) /
               static_cast<double>(B * L);
        opt_->zero_grad();
        loss.backward();
        if (hooks_.sync) hooks_.sync->sync_gradients(params_);
        if (c_.clip > 0) clip_gradients(params_, c_.clip);
        opt_->step();
    }
    if (state_) state_->detach();
    return loss;
}

// Ends a logging interval: the mean loss (the only host synchronisation of a step), validation
// when due, a log.csv row, and the checkpoint when due.
void Run::log_interval(int64_t step, double lr, bool do_eval, bool do_ckpt) {
    auto mean = loss_sum_ / static_cast<double>(interval_steps_);
    if (hooks_.sync) mean = hooks_.sync->average(mean);
    last_loss_ = mean.item<double>();
    last_tps_ = static_cast<double>(interval_tokens_) / std::max(1e-9, seconds_between(interval_start_, Clock::now()));
    if (!std::isfinite(last_loss_))
        throw Error(strf("training diverged at step %lld (loss is %s); the last checkpoint is in %s: "
                           "try a lower --lr or a smaller --clip",
                           static_cast<long long>(step), std::isnan(last_loss_) ? "NaN" : "infinite",
                           c_.out.string().c_str()));
    double val = -1.0;
    if (do_eval) {
        val = last_val_ = validate();
    }
    const double elapsed = elapsed_before_ + seconds_between(run_start_, Clock::now());
    log_.row(step, tokens_, lr, last_loss_, val, last_tps_, elapsed);
    if (do_ckpt && writer_) write_checkpoint(step, tokens_, elapsed);
    loss_sum_ = torch::zeros_like(loss_sum_);
    interval_steps_ = interval_tokens_ = 0;
    interval_start_ = Clock::now();
}

void Run::print_progress(int64_t step, double lr) {
    double shown = last_loss_;
    if (interval_steps_ > 0) shown = (loss_sum_ / static_cast<double>(interval_steps_)).item<double>();
    const double done = static_cast<double>(step - start_step_);
    const double spent = seconds_between(run_start_, Clock::now());
    const double eta = spent / done * static_cast<double>(c_.steps - step);
    std::string line = strf("step %lld/%lld (%.1f%%)  loss %.4f bpt", static_cast<long long>(step),
                              static_cast<long long>(c_.steps), 100.0 * double(step) / double(c_.steps), shown);
    if (last_val_ >= 0) line += strf("  val %.4f", last_val_);
    line += strf("  lr %.2e  %.0f tok/s  elapsed %s  ETA %s", lr,
                   last_tps_ > 0 ? last_tps_ : double(tokens_) / std::max(spent, 1e-9),
                   duration_text(elapsed_before_ + spent).c_str(), duration_text(eta).c_str());
    *hooks_.out << line << std::endl;
    last_print_ = Clock::now();
}

void Run::train_steps() {
    const int64_t step_tokens = c_.batch * c_.seq_len * c_.world_size;
    const int64_t warmup = c_.warmup_steps();
    loss_sum_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device_));
    run_start_ = Clock::now();
    interval_start_ = last_print_ = run_start_;
    int64_t step_now = start_step_;
    try {
        for (int64_t step = start_step_ + 1; step <= c_.steps; ++step) {
            step_now = step;
            const double lr = learning_rate(step, c_.steps, warmup, c_.lr, c_.min_lr);
            set_lr(*opt_, lr);
            const auto loss = train_step(step);
            loss_sum_ = loss_sum_ + loss.detach();
            ++interval_steps_;
            interval_tokens_ += step_tokens;
            tokens_ += step_tokens;
            if (hooks_.after_step) hooks_.after_step(step);

            const bool last = step == c_.steps;
            const bool do_eval = valid_ && (last || (c_.eval_every > 0 && step % c_.eval_every == 0));
            const bool do_ckpt = last || step % c_.checkpoint_every == 0;
            const bool do_log = do_eval || do_ckpt || step % c_.log_every == 0;
            const auto now = Clock::now();
            if (do_log) log_interval(step, lr, do_eval, do_ckpt);
            if (hooks_.out && writer_ && (last || seconds_between(last_print_, now) >= hooks_.progress_seconds))
                print_progress(step, lr);
        }
    } catch (const c10::Error& e) {
        if (!is_out_of_memory(e)) throw;
        fail_out_of_memory(step_now);
    }
}

void Run::fail_out_of_memory(int64_t step) {
    // Checkpoints are written between steps and atomically, so the last one is intact.
    std::string latest = "(none yet)";
    try {
        latest = latest_step_dir(c_.out).filename().string();
    } catch (const std::exception&) {
    }
    throw Error(strf("CUDA out of memory at step %lld on %s (batch %lld x %lld tokens; %.1f GB were allocated before the request that failed). "
                     "The last checkpoint, %s, is intact in %s. Start again with a smaller --batch or --seq-len or with "
                     "--head fused (no logits in memory), "
                     "or continue this run with --resume on a larger GPU or on more GPUs (--nproc N keeps the "
                     "global batch and gives each GPU 1/N of it)",
                     static_cast<long long>(step), device_.str().c_str(), static_cast<long long>(c_.batch),
                     static_cast<long long>(c_.seq_len), cuda_peak_memory_gb(device_), latest.c_str(),
                     c_.out.string().c_str()));
}

void Run::write_checkpoint(int64_t step, int64_t tokens, double elapsed) {
    log_.sync();
    json state;
    state["step"] = step;
    state["tokens"] = tokens;
    state["elapsed_s"] = elapsed;
    state["seed"] = c_.seed;
    state["args"] = c_.to_json();
    json data;
    data["train_tokens"] = train_->size();
    data["train_checksum"] = hex64(train_->source_checksum());
    data["train_cache"] = train_->path().string();
    if (valid_) {
        data["valid_tokens"] = valid_->size();
        data["valid_checksum"] = hex64(valid_->source_checksum());
    }
    data["next_step"] = step + 1;
    if (c_.stateful) {
        data["mode"] = "stateful";
        data["row_tokens"] = row_len_;
        data["next_chunk"] = step % chunks_per_row_;
        std::vector<int64_t> next;
        for (int64_t r = 0; r < rows_; ++r) next.push_back(r * row_len_ + (step % chunks_per_row_) * c_.seq_len);
        data["next_row_offsets"] = next;
        data["state"] = "reset at each checkpoint and when the rows wrap around";
    } else {
        data["mode"] = "random windows";
    }
    state["data"] = data;
    state["rng"] = {{"model_init", "torch::manual_seed(seed)"},
                    {"windows", "splitmix64 seeded by (seed, step): window_starts(seed, step, batch*world_size, n - seq_len - 1)"},
                    {"validation", "evenly spaced windows, no seed"}};
    state["schedule"] = {{"steps", c_.steps}, {"warmup_steps", c_.warmup_steps()}, {"lr", c_.lr}, {"min_lr", c_.min_lr}};

    write_step_folder(c_.out, step, c_.keep_checkpoints, [&](const fs::path& folder) {
        SaveOptions save;
        save.dtype = st::DType::F32;
        save.tokenizer_json = tokenizer_json_;
        save.metadata["step"] = std::to_string(step);
        save.metadata["tokens"] = std::to_string(tokens);
        save_checkpoint(*model_, folder, save);
        save_optimizer(*opt_, *model_, folder / "optimizer.safetensors");
        write_trainer_state(folder, state);
    });
}

TrainResult Run::go() {
    choose_device();
    open_folder();
    open_tokenizer();
    // Rank 0 tokenizes into the shared token cache first; the others then find it there.
    if (hooks_.sync && c_.rank != 0) hooks_.sync->barrier();
    open_data();
    if (hooks_.sync && c_.rank == 0) hooks_.sync->barrier();
    open_model();
    open_log();
    make_graphed_step();
    train_steps();

    TrainResult result;
    result.steps = c_.steps;
    result.tokens = tokens_;
    result.last_loss_bpt = last_loss_;
    result.last_val_bpt = last_val_;
    result.checkpoint = c_.out / step_name(c_.steps);
    return result;
}

}  // namespace

double learning_rate(int64_t step, int64_t steps, int64_t warmup, double peak, double min_lr) {
    if (warmup > 0 && step <= warmup) return peak * static_cast<double>(step) / static_cast<double>(warmup);
    if (steps <= warmup) return peak;
    const double progress = std::clamp(static_cast<double>(step - warmup) / static_cast<double>(steps - warmup), 0.0, 1.0);
    return min_lr + 0.5 * (peak - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

std::vector<int64_t> window_starts(uint64_t seed, int64_t step, int64_t count, int64_t max_start) {
    if (max_start < 0) throw Error("window_starts: the stream is shorter than one window");
    uint64_t s = seed;
    uint64_t x = splitmix64(s) ^ (static_cast<uint64_t>(step) * 0xD1B54A32D192ED03ULL);
    const auto range = static_cast<u128>(max_start) + 1;
    std::vector<int64_t> out(static_cast<std::size_t>(count));
    for (auto& v : out) v = static_cast<int64_t>((static_cast<u128>(splitmix64(x)) * range) >> 64);
    return out;
}

std::vector<int64_t> eval_window_starts(int64_t stream_tokens, int64_t seq_len, int64_t count) {
    const int64_t max_start = stream_tokens - seq_len - 1;
    if (max_start < 0 || count < 1) throw Error("validation: the stream is shorter than one window of seq_len + 1 tokens");
    std::vector<int64_t> out(static_cast<std::size_t>(count));
    for (int64_t i = 0; i < count; ++i)
        out[i] = count == 1 ? 0 : static_cast<int64_t>((static_cast<i128>(i) * max_start) / (count - 1));
    return out;
}

TrainResult train(const TrainConfig& config, const TrainHooks& hooks) { return Run(config, false, hooks).go(); }

TrainConfig load_run_config(const fs::path& dir) {
    const fs::path step_dir = latest_step_dir(dir);
    const json state = read_trainer_state(step_dir);
    if (!state.contains("args")) fail_file(step_dir / "trainer_state.json", "no \"args\"");
    return TrainConfig::from_json(state.at("args"), (step_dir / "trainer_state.json").string());
}

TrainResult resume(const fs::path& dir, const std::string& device, const TrainHooks& hooks, int rank, int world_size) {
    TrainConfig c = load_run_config(dir);
    c.out = dir;
    if (!device.empty()) c.device = device;
    if (world_size != c.world_size) {
        // Same global batch over a different number of processes: the same windows per step.
        const int64_t global = c.batch * c.world_size;
        if (world_size < 1 || global % world_size != 0)
            throw Error(strf("--nproc %d: the run in %s takes %lld rows per step, which do not split evenly over %d "
                             "processes", world_size, dir.string().c_str(), static_cast<long long>(global), world_size));
        c.batch = global / world_size;
    }
    c.rank = rank;
    c.world_size = world_size;
    return Run(c, true, hooks).go();
}

}  // namespace harmonic
