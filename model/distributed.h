// Data-parallel training on LibTorch's c10d (docs/TRAINING.md, "Several GPUs"): one process per
// GPU, a TCPStore rendezvous, NCCL collectives. The trainer sees only its GradientSync hook.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "model/trainer.h"

namespace c10d {
class Store;
}

namespace harmonic {

// Where this process sits in a data-parallel job. Read from the environment variables torchrun
// sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so `harmonic train --nproc N`
// and torchrun itself (`torchrun --nproc-per-node N --no-python harmonic train ...`) both work.
struct DistributedEnv {
    int rank = 0, world_size = 1, local_rank = 0;
    std::string master_addr = "127.0.0.1";
    int master_port = 29500;
};

// The job this process belongs to; nullopt when WORLD_SIZE is unset or 1. Error naming the
// variable when one is malformed or inconsistent.
std::optional<DistributedEnv> distributed_env();

// Which collectives carry the gradients.
enum class CollectiveBackend {
    Nccl,   // c10d::ProcessGroupNCCL: CUDA tensors, the production path
    Store,  // through the TCPStore itself: CPU tensors, slow; for machines without a GPU (CI).
            // LibTorch's wheel builds Gloo in but ships none of gloo's headers, which
            // ProcessGroupGloo.hpp needs, so a C++ program cannot construct a Gloo group.
};

// Joins the job (rank 0 hosts the TCPStore) and returns the hook that all-reduces gradients in
// buckets, broadcasts rank 0's weights, averages logged scalars and provides a barrier.
// `device` is this rank's device (CUDA for Nccl).
std::unique_ptr<GradientSync> connect_process_group(const DistributedEnv& env, CollectiveBackend backend,
                                                    const torch::Device& device);

// The same hook over a store this process already holds (connect_process_group makes a TCPStore
// from env; tests make one on a port the kernel picks, and its clients).
std::unique_ptr<GradientSync> process_group_over(c10::intrusive_ptr<c10d::Store> store, const DistributedEnv& env,
                                                 CollectiveBackend backend, const torch::Device& device);

}  // namespace harmonic
