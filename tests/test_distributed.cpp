// The data-parallel hook over the store's collectives (the CPU backend CI uses), with the two
// ranks as two threads of this process: rank 0 hosts a TCPStore on a port the kernel picks, rank 1
// is its client. tests/data_parallel_test.sh runs whole `harmonic train --nproc 2` jobs.
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <thread>

#include "model/distributed.h"
#include "torch_catch.h"

using namespace harmonic;

namespace {

struct TwoRanks {
    c10::intrusive_ptr<c10d::TCPStore> server, client;

    TwoRanks() {
        c10d::TCPStoreOptions host;
        host.port = 0;  // the kernel's choice, held from here on: no other job can take it
        host.isServer = true;
        host.waitWorkers = false;
        server = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", host);
        c10d::TCPStoreOptions join;
        join.port = server->getPort();
        client = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", join);
    }
    std::unique_ptr<GradientSync> rank(int r) const {
        DistributedEnv env;
        env.rank = r;
        env.world_size = 2;
        env.master_port = server->getPort();
        return process_group_over(r == 0 ? server : client, env, CollectiveBackend::Store, torch::kCPU);
    }
};

// Runs `body(rank)` for ranks 0 and 1 on two threads; rethrows the first failure.
template <typename Body>
void on_two_ranks(Body body) {
    std::exception_ptr failure[2];
    auto run = [&](int r) {
        try {
            body(r);
        } catch (...) {
            failure[r] = std::current_exception();
        }
    };
    std::thread one(run, 1);
    run(0);
    one.join();
    for (auto& f : failure)
        if (f) std::rethrow_exception(f);
}

}  // namespace

TEST_CASE("store collectives: average, broadcast and barrier agree across two ranks", "[distributed]") {
    const TwoRanks job;
    auto r0 = job.rank(0), r1 = job.rank(1);
    torch::Tensor avg[2], weights[2];
    on_two_ranks([&](int r) {
        GradientSync& sync = r == 0 ? *r0 : *r1;
        avg[r] = sync.average(torch::tensor({1.0f + 2.0f * r, -4.0f * r}));
        weights[r] = torch::full({3, 2}, float(10 + r));
        sync.broadcast({weights[r]});
        sync.barrier();
        sync.finish();
    });
    for (int r = 0; r < 2; ++r) {
        CHECK(torch::equal(avg[r], torch::tensor({2.0f, -2.0f})));
        CHECK(torch::equal(weights[r], torch::full({3, 2}, 10.0f)));  // rank 0's weights everywhere
    }
}

TEST_CASE("finish: rank 0, which hosts the store, returns only after every other rank has finished", "[distributed]") {
    // The race it closes: rank 0 exiting (and taking the store with it) while another rank's last
    // collective was still being answered, which failed that rank with "connection reset by peer".
    const TwoRanks job;
    auto r0 = job.rank(0), r1 = job.rank(1);
    std::atomic<bool> rank1_finishing{false};
    bool rank1_was_finishing = false;
    on_two_ranks([&](int r) {
        if (r == 0) {
            r0->finish();
            rank1_was_finishing = rank1_finishing.load();
        } else {
            // Late on purpose: rank 0 must wait for it however late it comes.
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            rank1_finishing = true;
            r1->finish();
        }
    });
    CHECK(rank1_was_finishing);
    r0->finish();  // a second call returns at once
}
