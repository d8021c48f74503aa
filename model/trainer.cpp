#include "model/trainer.h"

#ifdef HARMONIC_WITH_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include <algorithm>
#include <cstdarg>
#include <numbers>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <ostream>
#include <sstream>
#include <system_error>

#include <fcntl.h>
#include <ftw.h>
#include <sys/file.h>
#include <unistd.h>

#include "model/checkpoint.h"
#include "model/error.h"
#include "model/io.h"
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

constexpr const char* kStateFormat = "harmonic-trainer-state";
constexpr int kStateVersion = 1;
constexpr const char* kLogHeader = "step,tokens,lr,loss_bpt,val_bpt,tokens_per_s,elapsed_s\n";

uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}


std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string strf(const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    va_list again;
    va_copy(again, args);
    const int n = std::vsnprintf(nullptr, 0, fmt, args);
    va_end(args);
    std::string out(n > 0 ? static_cast<std::size_t>(n) : 0, '\0');
    if (n > 0) std::vsnprintf(out.data(), out.size() + 1, fmt, again);
    va_end(again);
    return out;
}

std::string duration_text(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    const auto s = static_cast<int64_t>(seconds + 0.5);
    if (s >= 3600) return strf("%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>((s / 60) % 60));
    if (s >= 60) return strf("%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
    return strf("%llds", static_cast<long long>(s));
}

std::string step_name(int64_t step) { return strf("step-%07lld", static_cast<long long>(step)); }

std::optional<int64_t> parse_step_name(const std::string& name) {
    if (name.size() < 6 || name.compare(0, 5, "step-") != 0) return std::nullopt;
    int64_t v = 0;
    for (std::size_t i = 5; i < name.size(); ++i) {
        if (name[i] < '0' || name[i] > '9') return std::nullopt;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

// Replaces dst by src's content atomically: a hard link renamed over dst (no copy), or a copy
// written atomically where the file system has no hard links.
void install_file(const fs::path& src, const fs::path& dst) {
    fs::path tmp = dst;
    tmp += ".tmp-" + std::to_string(::getpid()) + "-link";
    ::unlink(tmp.c_str());
    if (::link(src.c_str(), tmp.c_str()) != 0) {
        const auto bytes = read_file_bytes(src, uint64_t(1) << 40);
        write_file_atomically(dst, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
        return;
    }
    if (::rename(tmp.c_str(), dst.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        fail_file(dst, "cannot replace: " + errno_text(err));
    }
    fsync_folder(dst.parent_path().empty() ? fs::path(".") : dst.parent_path());
}

// One writer per run folder: an exclusive flock on DIR/.lock (released by the kernel when the
// process dies, so a killed run never leaves a stale lock).
class DirLock {
public:
    explicit DirLock(const fs::path& dir) {
        const fs::path file = dir / ".lock";
        fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) fail_file(file, "cannot create the run lock: " + errno_text(errno));
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            ::close(fd_);
            fd_ = -1;
            fail_file(dir, "another `harmonic train` is writing to this folder");
        }
    }
    DirLock(const DirLock&) = delete;
    DirLock& operator=(const DirLock&) = delete;
    ~DirLock() {
        if (fd_ >= 0) ::close(fd_);
    }

private:
    int fd_ = -1;
};

// DIR/log.csv, appended one row per write(2); rows after the resumed checkpoint are dropped.
class RunLog {
public:
    RunLog(fs::path path, bool enabled) : path_(std::move(path)), enabled_(enabled) {}
    RunLog(const RunLog&) = delete;
    RunLog& operator=(const RunLog&) = delete;
    ~RunLog() {
        if (fd_ >= 0) ::close(fd_);
    }

    void create() {
        if (!enabled_) return;
        write_file_atomically(path_, kLogHeader);
        open_append();
    }

    void truncate_to(int64_t step) {
        if (!enabled_) return;
        std::string kept = kLogHeader;
        if (fs::exists(path_)) {
            const auto bytes = read_file_bytes(path_, uint64_t(1) << 34);
            std::istringstream in(std::string(bytes.begin(), bytes.end()));
            std::string line;
            bool header = true;
            while (std::getline(in, line)) {
                if (header) {
                    header = false;
                    continue;
                }
                if (in.eof()) break;  // no newline: a row cut short by a kill
                const auto comma = line.find(',');
                if (comma == std::string::npos) continue;
                try {
                    if (std::stoll(line.substr(0, comma)) <= step) kept += line + "\n";
                } catch (const std::exception&) {
                }
            }
        }
        write_file_atomically(path_, kept);
        open_append();
    }

    void row(int64_t step, int64_t tokens, double lr, double loss, double val, double tps, double elapsed) {
        if (!enabled_) return;
        std::string line = strf("%lld,%lld,%.6e,%.8f,", static_cast<long long>(step), static_cast<long long>(tokens), lr, loss);
        if (val >= 0) line += strf("%.8f", val);
        line += strf(",%.1f,%.2f\n", tps, elapsed);
        const char* p = line.data();
        std::size_t left = line.size();
        while (left > 0) {
            const ssize_t n = ::write(fd_, p, left);
            if (n < 0) {
                if (errno == EINTR) continue;
                fail_file(path_, "cannot append: " + errno_text(errno));
            }
            p += n;
            left -= static_cast<std::size_t>(n);
        }
    }

    void sync() {
        if (enabled_ && fd_ >= 0 && ::fsync(fd_) != 0) fail_file(path_, "cannot sync: " + errno_text(errno));
    }

private:
    void open_append() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd_ < 0) fail_file(path_, "cannot open for appending: " + errno_text(errno));
    }

    fs::path path_;
    bool enabled_;
    int fd_ = -1;
};

// clip_grad_norm_'s arithmetic (global 2-norm, coefficient clamped at 1, 1e-6 guard) without its
// host synchronisation, so a GPU step is never stalled.
torch::Tensor bits_sum(const torch::Tensor& logits, const torch::Tensor& targets) {
    const int64_t V = logits.size(-1);
    return torch::nn::functional::cross_entropy(
               logits.reshape({-1, V}).to(torch::kFloat32), targets.reshape({-1}),
               torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
           std::log(2.0);
}

// Bits summed over the targets y of one forward of x (a chunk when `state` is given), through
// the fused head (no logits in memory) or through the logits.
torch::Tensor forward_bits(LanguageModel& model, const torch::Tensor& x, const torch::Tensor& y, StreamState* state,
                           bool bf16, bool fused) {
    Bf16Autocast autocast(bf16);
    HeadlessForward headless(model, fused);
    auto out = state ? model.forward_chunk(x, *state) : model.forward(x);
    return fused ? head_bits_sum(out.features, model.head_weight(), y) : bits_sum(out.logits, y);
}

}  // namespace

void clip_gradients(const std::vector<torch::Tensor>& params, double max_norm) {
    std::vector<torch::Tensor> grads;
    for (const auto& p : params)
        if (p.grad().defined()) grads.push_back(p.grad().detach());
    if (grads.empty()) return;
    auto total = torch::stack(at::_foreach_norm(grads, 2)).norm(2);
    auto coef = torch::clamp(max_norm / (total + 1e-6), std::nullopt, 1.0);
    at::_foreach_mul_(grads, coef);
}

torch::Tensor ForeachAdamW::step(LossClosure closure) {
    torch::NoGradGuard no_grad;
    torch::Tensor loss;
    if (closure) {
        at::AutoGradMode enable_grad(true);
        loss = closure();
    }
    last_stepped_.clear();
    for (std::size_t gi = 0; gi < param_groups_.size(); ++gi) {
        auto& group = param_groups_[gi];
        auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
        TORCH_CHECK(!o.amsgrad(), "ForeachAdamW: amsgrad is not supported");
        const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
        std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
        std::vector<c10::Scalar> bc2_sqrt, neg_step_size;
        bool fused = true;  // every parameter an fp32 CUDA tensor on one device
        for (auto& p : group.params()) {
            if (!p.grad().defined()) continue;
            TORCH_CHECK(!p.grad().is_sparse(), "ForeachAdamW: sparse gradients are not supported");
            auto& slot = state_[p.unsafeGetTensorImpl()];
            if (!slot) {
                auto s = std::make_unique<torch::optim::AdamWParamState>();
                s->step(0);
                s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
                s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
                slot = std::move(s);
            }
            auto& s = static_cast<torch::optim::AdamWParamState&>(*slot);
            s.step(s.step() + 1);
            last_stepped_.push_back(p.unsafeGetTensorImpl());
            const double bc1 = 1 - std::pow(beta1, s.step()), bc2 = 1 - std::pow(beta2, s.step());
            bc2_sqrt.emplace_back(std::sqrt(bc2));
            neg_step_size.emplace_back(-o.lr() / bc1);
            fused = fused && p.is_cuda() && p.scalar_type() == torch::kFloat32 &&
                    p.grad().scalar_type() == torch::kFloat32 && p.device() == group.params().front().device();
            params.push_back(p);
            grads.push_back(p.grad());
            exp_avgs.push_back(s.exp_avg());
            exp_avg_sqs.push_back(s.exp_avg_sq());
        }
        if (params.empty()) continue;
        if (fused) {
            for (const auto& p : params) {
                const int64_t n = static_cast<torch::optim::AdamWParamState&>(*state_[p.unsafeGetTensorImpl()]).step();
                auto& entry = device_steps_[p.unsafeGetTensorImpl()];
                if (!entry.first.defined() || entry.second != n - 1)
                    entry.first = torch::full({}, double(n - 1), p.options().dtype(torch::kFloat32));
                entry.second = n;
                steps.push_back(entry.first);
            }
            at::_foreach_add_(steps, 1.0);
            if (device_lr_) {
                TORCH_CHECK(gi < lr_tensors_.size(), "ForeachAdamW: write_device_lr() before a device-lr step");
                at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, {}, steps, lr_tensors_[gi], beta1, beta2,
                                  o.weight_decay(), o.eps(), /*amsgrad=*/false, /*maximize=*/false);
            } else {
                at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, {}, steps, o.lr(), beta1, beta2,
                                  o.weight_decay(), o.eps(), /*amsgrad=*/false, /*maximize=*/false);
            }
            continue;
        }
        if (o.weight_decay() != 0) at::_foreach_mul_(params, 1 - o.lr() * o.weight_decay());
        at::_foreach_mul_(exp_avgs, beta1);
        at::_foreach_add_(exp_avgs, grads, 1 - beta1);
        at::_foreach_mul_(exp_avg_sqs, beta2);
        at::_foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2);
        auto denom = at::_foreach_sqrt(exp_avg_sqs);
        at::_foreach_div_(denom, bc2_sqrt);
        at::_foreach_add_(denom, o.eps());
        at::_foreach_addcdiv_(params, exp_avgs, denom, neg_step_size);
    }
    return loss;
}

void ForeachAdamW::write_device_lr() {
    for (std::size_t gi = 0; gi < param_groups_.size(); ++gi) {
        const auto& group = param_groups_[gi];
        if (group.params().empty()) continue;
        const double lr = static_cast<const torch::optim::AdamWOptions&>(group.options()).lr();
        if (gi < lr_tensors_.size() && lr_tensors_[gi].defined()) {
            lr_tensors_[gi].fill_(lr);
        } else {
            lr_tensors_.resize(param_groups_.size());
            lr_tensors_[gi] = torch::full({}, lr, group.params().front().options().dtype(torch::kFloat32));
        }
    }
}

void ForeachAdamW::advance_host_steps() {
    for (void* key : last_stepped_) {
        auto& s = static_cast<torch::optim::AdamWParamState&>(*state_.at(key));
        s.step(s.step() + 1);
        if (auto it = device_steps_.find(key); it != device_steps_.end()) it->second.second = s.step();
    }
}

#ifdef HARMONIC_WITH_CUDA_KERNELS
namespace {

// Records fn() into a CUDA graph on a side stream of `device` (the current stream may not be
// captured). On failure leaves no capture open, clears the error it left, puts the failure's first
// line in `why` and returns null: the caller carries on eagerly.
std::unique_ptr<at::cuda::CUDAGraph> capture_graph(const std::function<void()>& fn, c10::DeviceIndex device,
                                                   std::string& why) {
    torch::cuda::synchronize(device);
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    auto side = at::cuda::getStreamFromPool(false, device);
    try {
        const c10::cuda::CUDAStreamGuard guard(side);
        graph->capture_begin();
        fn();
        graph->capture_end();
    } catch (const std::exception& e) {
        cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
        if (cudaStreamIsCapturing(side.stream(), &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
            cudaGraph_t g = nullptr;
            cudaStreamEndCapture(side.stream(), &g);
            if (g) cudaGraphDestroy(g);
        }
        (void)cudaGetLastError();
        const std::string what = e.what();
        why = what.substr(0, what.find('\n'));
        torch::cuda::synchronize(device);
        return nullptr;
    }
    torch::cuda::synchronize(device);
    return graph;
}

}  // namespace
#endif

struct GraphedTrainStep::Impl {
    Impl(std::vector<torch::Tensor> p, ForeachAdamW& o, LossFn l, double c, int eager)
        : params(std::move(p)), opt(o), loss_fn(std::move(l)), clip(c), eager_left(eager) {}
    std::vector<torch::Tensor> params;
    ForeachAdamW& opt;
    LossFn loss_fn;
    double clip;
    int eager_left;
    bool failed = false;
    torch::Tensor x, y, loss;  // the captured step's inputs and output
#ifdef HARMONIC_WITH_CUDA_KERNELS
    std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif

    torch::Tensor eager(const torch::Tensor& xs, const torch::Tensor& ys) {
        opt.zero_grad();
        auto l = loss_fn(xs, ys);
        l.backward();
        if (clip > 0) clip_gradients(params, clip);
        opt.step();
        return l.detach();
    }
};

GraphedTrainStep::GraphedTrainStep(std::vector<torch::Tensor> params, ForeachAdamW& opt, LossFn loss, double clip,
                                   int eager_steps)
    : impl_(new Impl(std::move(params), opt, std::move(loss), clip, eager_steps)) {}

GraphedTrainStep::~GraphedTrainStep() = default;

bool GraphedTrainStep::replaying() const {
#ifdef HARMONIC_WITH_CUDA_KERNELS
    return impl_->graph != nullptr;
#else
    return false;
#endif
}

torch::Tensor GraphedTrainStep::step(const torch::Tensor& x, const torch::Tensor& y) {
    auto& m = *impl_;
#ifdef HARMONIC_WITH_CUDA_KERNELS
    if (!x.is_cuda() || m.failed) return m.eager(x, y);
    if (m.graph) {
        TORCH_CHECK(x.sizes() == m.x.sizes() && y.sizes() == m.y.sizes(), "GraphedTrainStep: the step was captured for inputs ",
                    m.x.sizes(), " and ", m.y.sizes(), ", got ", x.sizes(), " and ", y.sizes());
        m.x.copy_(x);
        m.y.copy_(y);
        m.opt.write_device_lr();
        m.graph->replay();
        m.opt.advance_host_steps();
        return m.loss;
    }
    if (m.eager_left > 0) {
        --m.eager_left;
        return m.eager(x, y);
    }
    // The gradients unset before the capture, so that the captured backward allocates them in the
    // graph's memory pool and every replay rewrites them in place.
    m.x = x.clone();
    m.y = y.clone();
    m.opt.use_device_lr(true);
    m.opt.write_device_lr();
    m.opt.zero_grad(true);
    std::string why;
    m.graph = capture_graph(
        [&] {
            auto l = m.loss_fn(m.x, m.y);
            l.backward();
            if (m.clip > 0) clip_gradients(m.params, m.clip);
            m.opt.step();
            m.loss = l.detach();
        },
        x.device().index(), why);
    if (!m.graph) {
        m.failed = true;
        m.opt.use_device_lr(false);
        note_ = "CUDA graph capture failed, training without it: " + why;
        return m.eager(x, y);
    }
    m.graph->replay();  // the captured step itself: nothing ran while it was recorded
    return m.loss;
#else
    return m.eager(x, y);
#endif
}

struct GraphedForward::Impl {
    Impl(Fn f, int eager) : fn(std::move(f)), eager_left(eager) {}
    Fn fn;
    int eager_left;
    bool failed = false;
    torch::Tensor x, out;  // the captured call's input and output
#ifdef HARMONIC_WITH_CUDA_KERNELS
    std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
};

GraphedForward::GraphedForward(Fn fn, int eager_calls) : impl_(new Impl(std::move(fn), eager_calls)) {}

GraphedForward::~GraphedForward() = default;

bool GraphedForward::replaying() const {
#ifdef HARMONIC_WITH_CUDA_KERNELS
    return impl_->graph != nullptr;
#else
    return false;
#endif
}

torch::Tensor GraphedForward::operator()(const torch::Tensor& x) {
    auto& m = *impl_;
    torch::NoGradGuard no_grad;
#ifdef HARMONIC_WITH_CUDA_KERNELS
    if (!x.is_cuda() || m.failed) return m.fn(x);
    if (m.graph) {
        TORCH_CHECK(x.sizes() == m.x.sizes() && x.scalar_type() == m.x.scalar_type(),
                    "GraphedForward: the call was captured for an input of ", m.x.sizes(), ", got ", x.sizes());
        m.x.copy_(x);
        m.graph->replay();
        return m.out;
    }
    if (m.eager_left > 0) {
        --m.eager_left;
        return m.fn(x);
    }
    m.x = x.clone();
    std::string why;
    m.graph = capture_graph([&] { m.out = m.fn(m.x); }, x.device().index(), why);
    if (!m.graph) {
        m.failed = true;
        note_ = "CUDA graph capture failed, running eagerly: " + why;
        return m.fn(x);
    }
    m.graph->replay();
    return m.out;
#else
    return m.fn(x);
#endif
}

std::unique_ptr<ForeachAdamW> make_foreach_adamw(LanguageModel& model, const TrainConfig& c) {
    std::vector<torch::Tensor> decay, no_decay;
    for (const auto& item : model.named_parameters()) (item.value().dim() >= 2 ? decay : no_decay).push_back(item.value());
    auto options = [&](double wd) {
        return torch::optim::AdamWOptions(c.lr).betas(std::make_tuple(c.beta1, c.beta2)).eps(c.eps).weight_decay(wd);
    };
    std::vector<torch::optim::OptimizerParamGroup> groups;
    if (!decay.empty()) groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(options(c.weight_decay)));
    if (!no_decay.empty()) groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(options(0.0)));
    return std::make_unique<ForeachAdamW>(groups, options(c.weight_decay));
}

namespace {

void set_lr(torch::optim::AdamW& opt, double lr) {
    for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

void save_optimizer(const torch::optim::AdamW& opt, const LanguageModel& model, const fs::path& file) {
    std::vector<torch::Tensor> keep;
    std::vector<st::TensorToWrite> tensors;
    json steps = json::object();
    for (const auto& item : model.named_parameters()) {
        const auto it = opt.state().find(item.value().unsafeGetTensorImpl());
        if (it == opt.state().end()) continue;
        const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
        steps[item.key()] = s.step();
        for (const auto& [prefix, t] : {std::pair<std::string, torch::Tensor>{"exp_avg.", s.exp_avg()},
                                        std::pair<std::string, torch::Tensor>{"exp_avg_sq.", s.exp_avg_sq()}}) {
            keep.push_back(t.detach().to(torch::kCPU, torch::kFloat32).contiguous());
            tensors.push_back({prefix + item.key(), st::DType::F32, keep.back().sizes().vec(), keep.back().data_ptr()});
        }
    }
    st::write(file, tensors, {{"format", "harmonic-adamw"}, {"steps", steps.dump()}});
}

void load_optimizer(torch::optim::AdamW& opt, LanguageModel& model, const fs::path& file) {
    const st::File f = st::File::read(file);
    json steps;
    try {
        steps = json::parse(f.metadata().at("steps"));
    } catch (const std::exception&) {
        fail_file(file, "no valid \"steps\" entry in its metadata (not a harmonic optimizer state)");
    }
    for (const auto& item : model.named_parameters()) {
        const std::string a = "exp_avg." + item.key(), b = "exp_avg_sq." + item.key();
        const bool has = f.contains(a) && f.contains(b) && steps.contains(item.key());
        if (!has) {
            // No state yet (a step-0 checkpoint, or a parameter that never had a gradient).
            if (steps.contains(item.key())) fail_file(file, "no AdamW moments for parameter '" + item.key() + "'");
            continue;
        }
        auto load = [&](const std::string& name) {
            const auto& info = f.info(name);
            if (info.dtype != st::DType::F32 || info.shape != item.value().sizes().vec())
                fail_file(file, "tensor '" + name + "' does not match the parameter's shape or is not F32");
            return torch::from_blob(const_cast<uint8_t*>(f.data(name)), info.shape, torch::kFloat32)
                .clone()
                .to(item.value().device());
        };
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(steps.at(item.key()).get<int64_t>());
        s->exp_avg(load(a));
        s->exp_avg_sq(load(b));
        opt.state()[item.value().unsafeGetTensorImpl()] = std::move(s);
    }
}

fs::path latest_step_dir(const fs::path& dir) {
    const fs::path latest = dir / "latest";
    if (!fs::exists(dir)) fail_file(dir, "no such run folder");
    if (!fs::exists(latest)) fail_file(latest, "missing: no checkpoint was completed in this folder, nothing to resume");
    const auto bytes = read_file_bytes(latest, 4096);
    std::string name(bytes.begin(), bytes.end());
    while (!name.empty() && (name.back() == '\n' || name.back() == '\r' || name.back() == ' ')) name.pop_back();
    if (!parse_step_name(name)) fail_file(latest, "does not name a step folder ('" + name + "')");
    const fs::path step_dir = dir / name;
    if (!fs::exists(step_dir / "trainer_state.json")) fail_file(step_dir, "missing or incomplete (no trainer_state.json)");
    return step_dir;
}

json read_state(const fs::path& step_dir) {
    const fs::path file = step_dir / "trainer_state.json";
    const auto bytes = read_file_bytes(file, 64u << 20);
    json j;
    try {
        j = json::parse(bytes.begin(), bytes.end());
    } catch (const json::exception& e) {
        fail_file(file, std::string("invalid JSON: ") + e.what());
    }
    if (!j.is_object() || j.value("format", "") != kStateFormat)
        fail_file(file, "not a harmonic trainer state");
    if (j.value("version", 0) != kStateVersion)
        fail_file(file, "trainer state version " + j.value("version", json(0)).dump() + ", expected " +
                            std::to_string(kStateVersion));
    return j;
}

// Everything one run needs, set up by start() and used by the step loop.
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
    void open_data();
    torch::Tensor batch(int64_t step);
    double validate();
    void write_checkpoint(int64_t step, int64_t tokens, double elapsed);
    void prune(const std::string& current);

    TrainConfig c_;
    bool resuming_;
    TrainHooks hooks_;
    bool writer_;
    RunLog log_;
    torch::Device device_{torch::kCPU};
    bool bf16_ = false;
    std::shared_ptr<Tokenizer> tokenizer_;
    fs::path tokenizer_json_;  // BPE: DIR/tokenizer.json
    std::optional<TokenStream> train_, valid_;
    std::vector<int64_t> eval_starts_;
    std::shared_ptr<LanguageModel> model_;
    std::unique_ptr<ForeachAdamW> opt_;
    int64_t rows_ = 0, row_len_ = 0, chunks_per_row_ = 0;  // stateful layout (global rows)
};

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

void Run::prune(const std::string& current) {
    std::vector<std::pair<int64_t, fs::path>> steps;
    for (const auto& entry : fs::directory_iterator(c_.out)) {
        const auto name = entry.path().filename().string();
        if (auto s = parse_step_name(name); s && entry.is_directory()) steps.emplace_back(*s, entry.path());
    }
    std::sort(steps.begin(), steps.end());
    const auto keep = static_cast<std::size_t>(std::max(1, c_.keep_checkpoints));
    for (std::size_t i = 0; i + keep < steps.size(); ++i) {
        if (steps[i].second.filename() == current) continue;
        remove_tree(steps[i].second);
    }
}

void Run::write_checkpoint(int64_t step, int64_t tokens, double elapsed) {
    log_.sync();
    const std::string name = step_name(step);
    const fs::path final_dir = c_.out / name;
    // Built under a temporary name and renamed into place whole; a failure (a full disk) removes it.
    StagingFolder staging(final_dir);
    const fs::path& tmp = staging.path();

    SaveOptions save;
    save.dtype = st::DType::F32;
    save.tokenizer_json = tokenizer_json_;
    save.metadata["step"] = std::to_string(step);
    save.metadata["tokens"] = std::to_string(tokens);
    save_checkpoint(*model_, tmp, save);
    save_optimizer(*opt_, *model_, tmp / "optimizer.safetensors");

    json state;
    state["format"] = kStateFormat;
    state["version"] = kStateVersion;
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
    write_file_atomically(tmp / "trainer_state.json", state.dump(2) + "\n");

    staging.commit();
    // The loadable top-level checkpoint: weights first, config last, each replaced atomically;
    // then `latest`, so that a folder with a `latest` always has a loadable top level too.
    install_file(final_dir / "model.safetensors", c_.out / "model.safetensors");
    install_file(final_dir / "config.json", c_.out / "config.json");
    write_file_atomically(c_.out / "latest", name + "\n");
    prune(name);
}

TrainResult Run::go() {
    c_.resolve();
    device_ = parse_device(c_.device);
    if (c_.precision == "bf16" && !device_.is_cuda())
        throw Error("--precision bf16: bf16 autocast needs a CUDA device (use --precision fp32 on CPU)");
    bf16_ = device_.is_cuda() && c_.precision != "fp32";
    if (device_.is_cuda()) at::globalContext().setAllowTF32CuBLAS(true);

    std::error_code ec;
    fs::create_directories(c_.out, ec);
    if (ec) fail_file(c_.out, "cannot create the run folder: " + ec.message());
    std::optional<DirLock> lock;
    if (writer_) lock.emplace(c_.out);

    int64_t start_step = 0, tokens = 0;
    double elapsed_before = 0.0;
    json saved;
    fs::path step_dir;
    if (resuming_) {
        step_dir = latest_step_dir(c_.out);
        saved = read_state(step_dir);
        start_step = saved.at("step").get<int64_t>();
        tokens = saved.at("tokens").get<int64_t>();
        elapsed_before = saved.value("elapsed_s", 0.0);
        if (writer_) {
            // Leftovers of a killed run: temporary files and unfinished step folders.
            for (const auto& entry : fs::directory_iterator(c_.out))
                if (entry.path().filename().string().find(".tmp-") != std::string::npos) remove_tree(entry.path());
        }
    } else if (fs::exists(c_.out / "latest")) {
        fail_file(c_.out, "already holds a training run; continue it with --resume " + c_.out.string() +
                              " or choose another --out");
    }

    if (c_.model.tokenizer == "bpe") {
        // The run keeps its own copy, DIR/tokenizer.json, for every checkpoint it writes.
        tokenizer_json_ = c_.out / "tokenizer.json";
        if (!resuming_) {
            if (c_.tokenizer_json.empty()) throw Error("--tokenizer: a BPE model needs its tokenizer.json");
            if (!fs::exists(c_.tokenizer_json)) fail_file(c_.tokenizer_json, "no such file");
            if (!fs::equivalent(c_.tokenizer_json, tokenizer_json_, ec)) {
                const auto bytes = read_file_bytes(c_.tokenizer_json, uint64_t(1) << 30);
                write_file_atomically(tokenizer_json_, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
            }
        } else if (!fs::exists(tokenizer_json_)) {
            install_file(step_dir / "tokenizer.json", tokenizer_json_);
        }
        require_regular_file(tokenizer_json_);  // a FIFO would block the loader in open()
        tokenizer_ = load_bpe_tokenizer(tokenizer_json_);
    } else {
        tokenizer_ = make_byte_tokenizer();
    }
    if (tokenizer_->vocab_size() > c_.model.vocab_size)
        throw Error(strf("--tokenizer: %lld tokens do not fit the model's vocab_size %lld",
                           static_cast<long long>(tokenizer_->vocab_size()), static_cast<long long>(c_.model.vocab_size)));

    // Rank 0 tokenizes into the shared token cache first; the others then find it there.
    if (hooks_.sync && c_.rank != 0) hooks_.sync->barrier();
    open_data();
    if (hooks_.sync && c_.rank == 0) hooks_.sync->barrier();
    if (resuming_) {
        const json& d = saved.at("data");
        if (d.value("train_checksum", "") != hex64(train_->source_checksum()) ||
            d.value("train_tokens", int64_t(-1)) != train_->size())
            fail_file(c_.out, "the training data changed since this run started (checksum " + d.value("train_checksum", "?") +
                                  ", now " + hex64(train_->source_checksum()) + "): resume needs the same text");
        auto loaded = load_checkpoint(step_dir, device_);
        model_ = loaded.model;
    } else {
        torch::manual_seed(c_.seed);
        model_ = make_model(c_.model);
        model_->to(device_);
    }
    model_->train();
    const auto params = model_->parameters();
    if (hooks_.sync) hooks_.sync->broadcast(params);
    opt_ = make_foreach_adamw(*model_, c_);
    if (resuming_) load_optimizer(*opt_, *model_, step_dir / "optimizer.safetensors");

    message(strf("%s: %lld parameters, %s, batch %lld x %lld tokens, %lld steps (%lld tokens), %s%s",
                   family_name(c_.model.family).c_str(), static_cast<long long>(model_->parameter_count()),
                   device_.str().c_str(), static_cast<long long>(c_.batch), static_cast<long long>(c_.seq_len),
                   static_cast<long long>(c_.steps),
                   static_cast<long long>(c_.steps * c_.batch * c_.seq_len * c_.world_size), bf16_ ? "bf16" : "fp32",
                   c_.stateful ? ", stateful" : ""));

    if (resuming_) {
        log_.truncate_to(start_step);
        message(strf("resuming %s at step %lld", c_.out.string().c_str(), static_cast<long long>(start_step)));
    } else {
        log_.create();
        if (writer_) write_checkpoint(0, 0, 0.0);
    }

    TrainResult result;
    const int64_t L = c_.seq_len, B = c_.batch;
    const int64_t step_tokens = B * L * c_.world_size;
    const int64_t warmup = c_.warmup_steps();
    std::unique_ptr<StreamState> state;
    auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device_));
    int64_t interval_steps = 0, interval_tokens = 0;
    const auto run_start = Clock::now();
    auto interval_start = run_start, last_print = run_start;
    double last_loss = std::numeric_limits<double>::quiet_NaN(), last_val = -1.0, last_tps = 0.0;
    auto seconds = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };

    // Windowed single-process training on CUDA replays the step as a CUDA graph (stateful rows
    // change the step's inputs every step; data-parallel steps synchronise between its parts).
    std::unique_ptr<GraphedTrainStep> graphed;
    if (device_.is_cuda() && c_.cuda_graph && !c_.stateful && !hooks_.sync)
        graphed = std::make_unique<GraphedTrainStep>(
            params, *opt_,
            [this, B, L](const torch::Tensor& xs, const torch::Tensor& ys) {
                return forward_bits(*model_, xs, ys, nullptr, bf16_, c_.fused_head) / static_cast<double>(B * L);
            },
            c_.clip);
    if (graphed && start_step + 3 <= c_.steps)
        message(strf("steps from %lld on replay a CUDA graph of the step (--no-cuda-graph: all eager)",
                     static_cast<long long>(start_step + 3)));
    bool graph_noted = false;

    int64_t step_now = start_step;
    try {
    for (int64_t step = start_step + 1; step <= c_.steps; ++step) {
        step_now = step;
        const double lr = learning_rate(step, c_.steps, warmup, c_.lr, c_.min_lr);
        set_lr(*opt_, lr);
        auto all = batch(step);
        auto x = all.slice(1, 0, L).contiguous(), y = all.slice(1, 1, L + 1).contiguous();
        if (c_.stateful && (!state || (step - 1) % chunks_per_row_ == 0 || (step - 1) % c_.checkpoint_every == 0))
            state = model_->initial_state(B, device_);
        torch::Tensor loss;
        if (graphed) {
            loss = graphed->step(x, y);
            if (!graph_noted && !graphed->note().empty()) message(graphed->note());
            graph_noted = graph_noted || !graphed->note().empty();
        } else {
            loss = forward_bits(*model_, x, y, c_.stateful ? state.get() : nullptr, bf16_, c_.fused_head) /
                   static_cast<double>(B * L);
            opt_->zero_grad();
            loss.backward();
            if (hooks_.sync) hooks_.sync->sync_gradients(params);
            if (c_.clip > 0) clip_gradients(params, c_.clip);
            opt_->step();
        }
        if (state) state->detach();
        loss_sum = loss_sum + loss.detach();
        ++interval_steps;
        interval_tokens += step_tokens;
        tokens += step_tokens;
        if (hooks_.after_step) hooks_.after_step(step);

        const bool last = step == c_.steps;
        const bool do_eval = valid_ && (last || (c_.eval_every > 0 && step % c_.eval_every == 0));
        const bool do_ckpt = last || step % c_.checkpoint_every == 0;
        const bool do_log = do_eval || do_ckpt || step % c_.log_every == 0;
        const auto now = Clock::now();
        if (do_log) {
            auto mean = loss_sum / static_cast<double>(interval_steps);
            if (hooks_.sync) mean = hooks_.sync->average(mean);
            last_loss = mean.item<double>();
            last_tps = static_cast<double>(interval_tokens) / std::max(1e-9, seconds(interval_start, Clock::now()));
            if (!std::isfinite(last_loss))
                throw Error(strf("training diverged at step %lld (loss is %s); the last checkpoint is in %s: "
                                   "try a lower --lr or a smaller --clip",
                                   static_cast<long long>(step), std::isnan(last_loss) ? "NaN" : "infinite",
                                   c_.out.string().c_str()));
            double val = -1.0;
            if (do_eval) {
                val = last_val = validate();
            }
            const double elapsed = elapsed_before + seconds(run_start, Clock::now());
            log_.row(step, tokens, lr, last_loss, val, last_tps, elapsed);
            if (do_ckpt && writer_) write_checkpoint(step, tokens, elapsed);
            loss_sum = torch::zeros_like(loss_sum);
            interval_steps = interval_tokens = 0;
            interval_start = Clock::now();
        }
        if (hooks_.out && writer_ && (last || seconds(last_print, now) >= hooks_.progress_seconds)) {
            double shown = last_loss;
            if (interval_steps > 0) shown = (loss_sum / static_cast<double>(interval_steps)).item<double>();
            const double done = static_cast<double>(step - start_step);
            const double spent = seconds(run_start, Clock::now());
            const double eta = spent / done * static_cast<double>(c_.steps - step);
            std::string line = strf("step %lld/%lld (%.1f%%)  loss %.4f bpt", static_cast<long long>(step),
                                      static_cast<long long>(c_.steps), 100.0 * double(step) / double(c_.steps), shown);
            if (last_val >= 0) line += strf("  val %.4f", last_val);
            line += strf("  lr %.2e  %.0f tok/s  elapsed %s  ETA %s", lr,
                           last_tps > 0 ? last_tps : double(tokens) / std::max(spent, 1e-9),
                           duration_text(elapsed_before + spent).c_str(), duration_text(eta).c_str());
            *hooks_.out << line << std::endl;
            last_print = Clock::now();
        }
    }
    } catch (const c10::Error& e) {
        if (!is_out_of_memory(e)) throw;
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
                         static_cast<long long>(step_now), device_.str().c_str(), static_cast<long long>(B),
                         static_cast<long long>(L), cuda_peak_memory_gb(device_), latest.c_str(),
                         c_.out.string().c_str()));
    }
    result.steps = c_.steps;
    result.tokens = tokens;
    result.last_loss_bpt = last_loss;
    result.last_val_bpt = last_val;
    result.checkpoint = c_.out / step_name(c_.steps);
    return result;
}

}  // namespace

// ---- TrainConfig ----

void TrainConfig::resolve() {
    auto need = [](bool ok, const std::string& message) {
        if (!ok) throw Error(message);
    };
    need(seq_len >= 2, "--seq-len: must be at least 2, got " + std::to_string(seq_len));
    need(batch >= 0, "--batch: must be at least 1, got " + std::to_string(batch));
    need(world_size >= 1 && rank >= 0 && rank < world_size, "rank/world_size: rank must be in [0, world_size)");
    if (batch == 0) batch = std::max<int64_t>(1, 16384 / seq_len);
    need(steps >= 0 && tokens >= 0, "--steps / --tokens: must be positive");
    if (tokens > 0) {
        const int64_t per_step = batch * seq_len * world_size;
        const int64_t derived = tokens / per_step;
        need(derived >= 1, "--tokens: " + std::to_string(tokens) + " is less than one step of " + std::to_string(per_step) +
                               " tokens (batch x seq-len)");
        need(steps == 0 || steps == derived, "--steps and --tokens: give one of them, not both");
        steps = derived;
    }
    need(steps >= 1, "--steps or --tokens: one of them is required");
    need(std::isfinite(lr) && lr > 0, "--lr: must be positive");
    need(std::isfinite(min_lr) && min_lr >= 0 && min_lr <= lr, "--min-lr: must be in [0, --lr]");
    need(warmup_frac >= 0 && warmup_frac < 1, "--warmup-frac: must be in [0, 1)");
    need(weight_decay >= 0, "--weight-decay: must not be negative");
    need(clip >= 0, "--clip: must not be negative (0 turns clipping off)");
    need(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps > 0, "AdamW betas must be in [0, 1) and eps positive");
    need(checkpoint_every >= 1, "--checkpoint-every: must be at least 1");
    need(eval_every >= 0, "--eval-every: must not be negative (0: only at the end)");
    need(eval_windows >= 1, "--eval-windows: must be at least 1");
    need(log_every >= 1, "--log-every: must be at least 1");
    need(precision == "auto" || precision == "bf16" || precision == "fp32", "--precision: expected bf16, fp32 or auto");
    need(!data.empty(), "--data: required (a text file or folder)");
    need(!out.empty(), "--out: required (the run's folder)");
    model.validate("model config");
    model = model.resolved();
}

int64_t TrainConfig::warmup_steps() const { return std::llround(warmup_frac * static_cast<double>(steps)); }

json TrainConfig::to_json() const {
    auto paths = [](const std::vector<fs::path>& v) {
        json a = json::array();
        for (const auto& p : v) a.push_back(p.string());
        return a;
    };
    return json{{"model", model.to_json()},
                {"tokenizer_json", tokenizer_json.string()},
                {"data", paths(data)},
                {"valid", paths(valid)},
                {"out", out.string()},
                {"cache_dir", cache_dir.string()},
                {"seq_len", seq_len},
                {"batch", batch},
                {"steps", steps},
                {"tokens", tokens},
                {"lr", lr},
                {"min_lr", min_lr},
                {"warmup_frac", warmup_frac},
                {"weight_decay", weight_decay},
                {"beta1", beta1},
                {"beta2", beta2},
                {"eps", eps},
                {"clip", clip},
                {"checkpoint_every", checkpoint_every},
                {"eval_every", eval_every},
                {"eval_windows", eval_windows},
                {"log_every", log_every},
                {"stateful", stateful},
                {"fused_head", fused_head},
                {"device", device},
                {"precision", precision},
                {"seed", seed},
                {"keep_checkpoints", keep_checkpoints},
                {"rank", rank},
                {"world_size", world_size}};
}

TrainConfig TrainConfig::from_json(const json& j, const std::string& source) {
    TrainConfig c;
    try {
        c.model = ModelConfig::from_json(j.at("model"), source + ": args.model");
        c.tokenizer_json = j.value("tokenizer_json", "");
        for (const auto& p : j.at("data")) c.data.emplace_back(p.get<std::string>());
        for (const auto& p : j.value("valid", json::array())) c.valid.emplace_back(p.get<std::string>());
        c.out = j.value("out", "");
        c.cache_dir = j.value("cache_dir", "");
        c.seq_len = j.at("seq_len").get<int64_t>();
        c.batch = j.at("batch").get<int64_t>();
        c.steps = j.at("steps").get<int64_t>();
        c.tokens = j.value("tokens", int64_t(0));
        c.lr = j.at("lr").get<double>();
        c.min_lr = j.at("min_lr").get<double>();
        c.warmup_frac = j.at("warmup_frac").get<double>();
        c.weight_decay = j.at("weight_decay").get<double>();
        c.beta1 = j.value("beta1", c.beta1);
        c.beta2 = j.value("beta2", c.beta2);
        c.eps = j.value("eps", c.eps);
        c.clip = j.at("clip").get<double>();
        c.checkpoint_every = j.at("checkpoint_every").get<int64_t>();
        c.eval_every = j.at("eval_every").get<int64_t>();
        c.eval_windows = j.at("eval_windows").get<int64_t>();
        c.log_every = j.value("log_every", c.log_every);
        c.stateful = j.at("stateful").get<bool>();
        c.fused_head = j.value("fused_head", false);  // runs from before the fused head used the logits
        c.device = j.value("device", c.device);
        c.precision = j.value("precision", c.precision);
        c.seed = j.at("seed").get<uint64_t>();
        c.keep_checkpoints = j.value("keep_checkpoints", c.keep_checkpoints);
        c.rank = j.value("rank", 0);
        c.world_size = j.value("world_size", 1);
    } catch (const json::exception& e) {
        throw Error(source + ": invalid training arguments (" + e.what() + ")");
    }
    return c;
}

int64_t parse_count(const std::string& text, const std::string& flag) {
    std::size_t used = 0;
    double value = 0.0;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    double scale = 1.0;
    if (used > 0 && used + 1 == text.size()) {
        switch (text.back()) {
            case 'k': case 'K': scale = 1e3; break;
            case 'm': case 'M': scale = 1e6; break;
            case 'g': case 'G': scale = 1e9; break;
            case 't': case 'T': scale = 1e12; break;
            default: used = 0;
        }
        if (used > 0) ++used;
    }
    const double v = value * scale;
    if (used == 0 || used != text.size() || !std::isfinite(v) || v < 0 || v > 9e18 || v != std::floor(v))
        throw Error(flag + ": '" + text + "' is not a count (expected e.g. 16384, 64K, 100M or 2.5G)");
    return static_cast<int64_t>(v);
}

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
    const json state = read_state(step_dir);
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

// ---- evaluation ----

namespace {

// Count, sum and sum of squared deviations (Welford), updated one value at a time.
struct RunningStats {
    int64_t n = 0;
    double sum = 0.0, mean = 0.0, m2 = 0.0;
    void add(double x) {
        ++n;
        sum += x;
        const double delta = x - mean;
        mean += delta / static_cast<double>(n);
        m2 += delta * (x - mean);
    }
};

}  // namespace

std::vector<EvalRow> evaluate_contexts(LanguageModel& model, const TokenStream& tokens, const torch::Device& device,
                                       const EvalOptions& options) {
    torch::NoGradGuard no_grad;
    model.eval();
    int64_t n = tokens.size();
    if (options.max_tokens > 0) n = std::min(n, options.max_tokens);
    if (options.warmup_chunks < 0) throw Error("--warmup-chunks: must not be negative");
    if (options.warmup_chunks > 0 && !options.stateful) throw Error("--warmup-chunks: needs --stateful");
    std::vector<EvalRow> rows;
    for (const int64_t C : options.contexts) {
        if (C < 1) throw Error("--context: each length must be at least 1, got " + std::to_string(C));
        const int64_t windows = (n - 1) / C;  // complete windows of C inputs and C shifted targets
        if (windows < 1)
            throw Error(strf("--context %lld is longer than the data: %lld tokens, a window needs %lld",
                               static_cast<long long>(C), static_cast<long long>(n), static_cast<long long>(C + 1)));
        if (options.stateful && windows <= options.warmup_chunks)
            throw Error(strf("--context %lld: the data has %lld tokens, %lld chunk(s); --warmup-chunks %lld leaves none to "
                               "score (needs at least %lld tokens)",
                               static_cast<long long>(C), static_cast<long long>(n), static_cast<long long>(windows),
                               static_cast<long long>(options.warmup_chunks),
                               static_cast<long long>((options.warmup_chunks + 1) * C + 1)));
        RunningStats bpt;  // constant memory however many windows
        std::vector<int64_t> host;
        const bool bf16 = options.bf16 && device.is_cuda();
        if (options.stateful) {
            auto state = model.initial_state(1, device);
            host.resize(static_cast<std::size_t>(C + 1));
            for (int64_t k = 0; k < windows; ++k) {
                tokens.read(k * C, C + 1, host.data());
                auto all = torch::from_blob(host.data(), {1, C + 1}, torch::kLong).clone().to(device);
                const double bits = forward_bits(model, all.slice(1, 0, C).contiguous(), all.slice(1, 1, C + 1), state.get(),
                                                 bf16, options.fused_head)
                                        .item<double>();
                if (k >= options.warmup_chunks) bpt.add(bits / double(C));
                tokens.release(k * C, C);
            }
        } else {
            const int64_t B = options.batch > 0 ? options.batch : std::max<int64_t>(1, 16384 / C);
            for (int64_t k = 0; k < windows; k += B) {
                const int64_t rows_now = std::min(B, windows - k);
                host.resize(static_cast<std::size_t>(rows_now * (C + 1)));
                for (int64_t r = 0; r < rows_now; ++r) tokens.read((k + r) * C, C + 1, host.data() + r * (C + 1));
                tokens.release(k * C, rows_now * C);
                auto all = torch::from_blob(host.data(), {rows_now, C + 1}, torch::kLong).clone().to(device);
                if (options.fused_head) {
                    // One window's bits at a time through the fused head: the logits never exist.
                    Bf16Autocast autocast(bf16);
                    HeadlessForward headless(model);
                    const auto features = model.forward(all.slice(1, 0, C).contiguous()).features;
                    for (int64_t r = 0; r < rows_now; ++r)
                        bpt.add(head_bits_sum(features[r], model.head_weight(), all[r].slice(0, 1, C + 1)).item<double>() /
                                      double(C));
                    continue;
                }
                torch::Tensor logits;
                {
                    Bf16Autocast autocast(bf16);
                    logits = model.forward(all.slice(1, 0, C).contiguous()).logits;
                }
                const int64_t V = logits.size(-1);
                auto bits = torch::nn::functional::cross_entropy(
                                logits.reshape({-1, V}).to(torch::kFloat32), all.slice(1, 1, C + 1).reshape({-1}),
                                torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
                                .view({rows_now, C})
                                .mean(1)
                                .div(std::log(2.0))
                                .to(torch::kCPU, torch::kFloat64)
                                .contiguous();
                const double* b = bits.data_ptr<double>();
                for (int64_t r = 0; r < rows_now; ++r) bpt.add(b[r]);
            }
        }
        EvalRow row;
        row.context = C;
        row.mode = options.stateful ? "stateful" : "windowed";
        row.warmup_chunks = options.stateful ? options.warmup_chunks : 0;
        row.windows = bpt.n;
        row.tokens = row.windows * C;
        row.mean_bpt = bpt.sum / static_cast<double>(bpt.n);
        if (bpt.n >= 2) {
            row.sd = std::sqrt(bpt.m2 / static_cast<double>(bpt.n - 1));
            row.ci95 = 1.96 * row.sd / std::sqrt(static_cast<double>(bpt.n));
        } else {
            row.sd = row.ci95 = std::numeric_limits<double>::quiet_NaN();
        }
        rows.push_back(row);
    }
    return rows;
}

}  // namespace harmonic
