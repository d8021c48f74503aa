#include "model/cuda_graph.h"

#ifdef HARMONIC_WITH_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include <exception>
#include <utility>

namespace harmonic {

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

}  // namespace harmonic
