// The optimizer of `harmonic train`: AdamW with multi-tensor or fused updates, the gradient clip
// that precedes it, and its state's file in a checkpoint (optimizer.safetensors).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/language_model.h"
#include "model/train_config.h"

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

// harmonic train's optimizer for a model: weight decay on matrices and embeddings (dim ≥ 2) only,
// betas, eps and learning rate from the config.
std::unique_ptr<ForeachAdamW> make_foreach_adamw(LanguageModel& model, const TrainConfig& c);

// Sets every parameter group's learning rate (the schedule's value for the coming step).
void set_lr(torch::optim::AdamW& opt, double lr);

// The AdamW moments and step counts keyed by parameter name, as F32 safetensors ("harmonic-adamw").
void save_optimizer(const torch::optim::AdamW& opt, const LanguageModel& model, const std::filesystem::path& file);
// Restores what save_optimizer wrote onto the model's parameters (on their device).
void load_optimizer(torch::optim::AdamW& opt, LanguageModel& model, const std::filesystem::path& file);

}  // namespace harmonic
