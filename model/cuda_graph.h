// CUDA-graph capture and replay of a training step (harmonic train) and of an inference call
// (harmonic bench): replaying a recorded graph removes the host's per-kernel launch time.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/optimizer.h"

namespace harmonic {

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

}  // namespace harmonic
