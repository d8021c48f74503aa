// c10d process group behind the trainer's GradientSync (see distributed.h).
#include "model/distributed.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#if defined(HARMONIC_WITH_NCCL)
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <cstring>

#include "model/error.h"

namespace harmonic {

namespace {

int env_int(const char* name, int fallback, int lo, int hi) {
    return static_cast<int>(env_number(name, fallback, lo, hi, /*integer=*/true));
}

// Gradients travel in buckets of about this many bytes: few enough collectives that launch
// latency does not dominate, small enough that the flat copies stay cheap (DDP's default).
constexpr int64_t kBucketBytes = 25 << 20;

std::vector<std::vector<torch::Tensor>> buckets_of(const std::vector<torch::Tensor>& tensors) {
    std::vector<std::vector<torch::Tensor>> buckets;
    int64_t bytes = 0;
    for (const auto& t : tensors) {
        const int64_t n = t.numel() * static_cast<int64_t>(t.element_size());
        if (buckets.empty() || bytes + n > kBucketBytes || buckets.back().front().scalar_type() != t.scalar_type()) {
            buckets.emplace_back();
            bytes = 0;
        }
        buckets.back().push_back(t);
        bytes += n;
    }
    return buckets;
}

torch::Tensor flatten(const std::vector<torch::Tensor>& tensors) {
    std::vector<torch::Tensor> flat;
    flat.reserve(tensors.size());
    for (const auto& t : tensors) flat.push_back(t.reshape({-1}));
    return torch::cat(flat);
}

void unflatten_into(const torch::Tensor& flat, const std::vector<torch::Tensor>& tensors) {
    int64_t offset = 0;
    for (const auto& t : tensors) {
        t.copy_(flat.slice(0, offset, offset + t.numel()).view(t.sizes()));
        offset += t.numel();
    }
}

class ProcessGroupSync final : public GradientSync {
public:
    ProcessGroupSync(c10::intrusive_ptr<c10d::Store> store, const DistributedEnv& env, CollectiveBackend backend,
                     const torch::Device& device)
        : store_(std::move(store)), rank_(env.rank), world_(env.world_size), device_(device) {
        if (backend == CollectiveBackend::Nccl) {
#if defined(HARMONIC_WITH_NCCL)
            if (!device.is_cuda()) throw Error("--nproc: NCCL needs a CUDA device for every process");
            c10::cuda::set_device(device.index());
            auto options = c10d::ProcessGroupNCCL::Options::create();
            nccl_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(
                c10::make_intrusive<c10d::PrefixStore>("nccl", store_), rank_, world_, options);
#else
            throw Error("--nproc: this build of harmonic has no NCCL (LibTorch without CUDA)");
#endif
        }
    }

    void sync_gradients(const std::vector<torch::Tensor>& parameters) override {
        std::vector<torch::Tensor> grads;
        for (const auto& p : parameters) {
            // Every rank must send the same bucket layout, so a missing gradient counts as zero.
            if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
            grads.push_back(p.grad());
        }
        auto buckets = buckets_of(grads);
        std::vector<torch::Tensor> flats;
        for (const auto& b : buckets) flats.push_back(flatten(b));
        allreduce_sum(flats);
        for (std::size_t i = 0; i < buckets.size(); ++i) unflatten_into(flats[i].div_(world_), buckets[i]);
    }

    torch::Tensor average(const torch::Tensor& value) override {
        std::vector<torch::Tensor> v{value.detach().to(device_, value.scalar_type()).clone().reshape({-1})};
        allreduce_sum(v);
        return (v[0] / world_).view(value.sizes()).to(value.device());
    }

    void broadcast(const std::vector<torch::Tensor>& tensors) override {
        torch::NoGradGuard no_grad;
        for (const auto& bucket : buckets_of(tensors)) {
            auto flat = flatten(bucket);
#if defined(HARMONIC_WITH_NCCL)
            if (nccl_) {
                std::vector<torch::Tensor> v{flat};
                nccl_->broadcast(v)->wait();
                unflatten_into(flat, bucket);
                continue;
            }
#endif
            const std::string key = "bcast/" + std::to_string(sequence_++);
            if (rank_ == 0) {
                store_->set(key, bytes_of(flat));
            } else {
                const auto bytes = store_->get(key);
                auto host = flat.to(torch::kCPU).contiguous();
                check_size(bytes, host);
                std::memcpy(host.data_ptr(), bytes.data(), bytes.size());
                unflatten_into(host.to(flat.device()), bucket);
            }
        }
        barrier();  // nobody starts training before every rank holds rank 0's weights
    }

    void barrier() override {
        const std::string key = "barrier/" + std::to_string(sequence_++);
        if (store_->add(key, 1) == world_) store_->set(key + "/done", std::vector<uint8_t>{1});
        store_->wait({key + "/done"});
    }

    // The other ranks' last requests are an add (and, from the last of them, a set); rank 0, whose
    // process hosts the store, waits for that set. A barrier would not do: rank 0 could leave it
    // while another rank's wait was still being answered.
    void finish() override {
        if (finished_) return;
        finished_ = true;
        if (rank_ != 0) {
            if (store_->add("finish", 1) == world_ - 1) store_->set("finish/done", std::vector<uint8_t>{1});
        } else {
            store_->wait({"finish/done"});
        }
    }

private:
    static std::vector<uint8_t> bytes_of(const torch::Tensor& t) {
        auto host = t.to(torch::kCPU).contiguous();
        const auto* p = static_cast<const uint8_t*>(host.data_ptr());
        return {p, p + host.numel() * host.element_size()};
    }
    static void check_size(const std::vector<uint8_t>& bytes, const torch::Tensor& host) {
        if (bytes.size() != static_cast<std::size_t>(host.numel() * host.element_size()))
            throw Error("data-parallel training: ranks disagree on the model (a collective received " +
                        std::to_string(bytes.size()) + " bytes, expected " +
                        std::to_string(host.numel() * host.element_size()) + ")");
    }

    // Sums each tensor over the ranks, in place. NCCL: every bucket is launched before any is
    // waited on, so the transfers queue back to back on NCCL's stream. Store: every rank adds the
    // ranks' contributions in rank order, so all ranks get bit-identical sums.
    void allreduce_sum(std::vector<torch::Tensor>& tensors) {
#if defined(HARMONIC_WITH_NCCL)
        if (nccl_) {
            std::vector<c10::intrusive_ptr<c10d::Work>> work;
            for (auto& t : tensors) {
                std::vector<torch::Tensor> v{t};
                work.push_back(nccl_->allreduce(v));
            }
            for (auto& w : work) w->wait();
            return;
        }
#endif
        for (auto& t : tensors) {
            const int64_t seq = sequence_++;
            const std::string prefix = "sum/" + std::to_string(seq) + "/";
            store_->set(prefix + std::to_string(rank_), bytes_of(t));
            auto sum = torch::zeros_like(t, torch::TensorOptions().device(torch::kCPU)).contiguous();
            for (int r = 0; r < world_; ++r) {
                const auto bytes = store_->get(prefix + std::to_string(r));
                auto part = torch::empty_like(sum);
                check_size(bytes, part);
                std::memcpy(part.data_ptr(), bytes.data(), bytes.size());
                sum += part;
            }
            t.copy_(sum);
            // Every rank has read the keys of two collectives ago (it could not reach the last one
            // before that), so this rank's old key can go.
            if (seq >= 2) store_->deleteKey("sum/" + std::to_string(seq - 2) + "/" + std::to_string(rank_));
        }
    }

    c10::intrusive_ptr<c10d::Store> store_;
    int rank_, world_;
    torch::Device device_;
    int64_t sequence_ = 0;
    bool finished_ = false;
#if defined(HARMONIC_WITH_NCCL)
    c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl_;
#endif
};

}  // namespace

std::optional<DistributedEnv> distributed_env() {
    DistributedEnv env;
    env.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 16);
    if (env.world_size == 1) return std::nullopt;
    env.rank = env_int("RANK", -1, 0, env.world_size - 1);
    if (env.rank < 0) throw Error("environment variable RANK: required when WORLD_SIZE is " + std::to_string(env.world_size));
    env.local_rank = env_int("LOCAL_RANK", env.rank, 0, env.world_size - 1);
    env.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
    if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) env.master_addr = addr;
    return env;
}

std::unique_ptr<GradientSync> connect_process_group(const DistributedEnv& env, CollectiveBackend backend,
                                                    const torch::Device& device) {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(env.master_port);
    options.isServer = env.rank == 0;
    options.numWorkers = env.world_size;
    options.waitWorkers = true;
    options.timeout = std::chrono::minutes(10);
    c10::intrusive_ptr<c10d::Store> store;
    try {
        store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    } catch (const std::exception& e) {
        throw Error("data-parallel rendezvous at " + env.master_addr + ":" + std::to_string(env.master_port) + " (rank " +
                    std::to_string(env.rank) + " of " + std::to_string(env.world_size) + ") failed: " + e.what());
    }
    return process_group_over(std::move(store), env, backend, device);
}

std::unique_ptr<GradientSync> process_group_over(c10::intrusive_ptr<c10d::Store> store, const DistributedEnv& env,
                                                 CollectiveBackend backend, const torch::Device& device) {
    return std::make_unique<ProcessGroupSync>(std::move(store), env, backend, device);
}

}  // namespace harmonic
