// Where the kernels' CPU paths (sequential loops, no autograd) replace the differentiable
// references: every defined input on the CPU, and no gradient wanted through any of them (grad
// mode off, or no input requires one), as in the desktop tool and `harmonic score`.
#pragma once

#include <torch/torch.h>

#include <initializer_list>

namespace harmonic::kernels {

inline bool cpu_without_grad(std::initializer_list<const torch::Tensor*> inputs) {
    bool grad = false;
    for (const torch::Tensor* t : inputs) {
        if (!t->defined()) continue;
        if (!t->device().is_cpu()) return false;
        grad = grad || t->requires_grad();
    }
    return !(grad && torch::GradMode::is_enabled());
}

}  // namespace harmonic::kernels
