#include "model/optimizer.h"

#include <cmath>
#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

#include "model/error.h"
#include "model/safetensors.h"

namespace harmonic {

namespace fs = std::filesystem;
namespace st = safetensors;
using nlohmann::json;

// clip_grad_norm_'s arithmetic (global 2-norm, coefficient clamped at 1, 1e-6 guard) without its
// host synchronisation, so a GPU step is never stalled.
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

}  // namespace harmonic
