// `harmonic train`: trains a Harmonic, Transformer or Mamba model on text files or folders
// (docs/TRAINING.md). The loop lives in model/trainer.cpp; this file maps flags to a TrainConfig.
#include <fmt/core.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "app/cli_count.h"
#include "app/commands.h"
#include "model/checkpoint.h"
#include "model/distributed.h"
#include "model/error.h"
#include "model/io.h"
#include "model/tokenizer.h"
#include "model/trainer.h"

namespace harmonic::cli {

namespace {

struct TrainArgs {
    std::string model, config, tokenizer, timescales, routing, cell, out, resume, cache_dir;
    std::vector<std::string> data, valid;
    int64_t d_model = 0, layers = 0, blocks = 0, window = 0, vocab_size = 0;
    int nproc = 1;
    bool tie = false;
    TrainConfig train;  // numeric settings with their defaults
    std::string steps, tokens;
    std::string device = "auto", precision = "auto", head = "fused";
};

ModelConfig model_from_flags(const TrainArgs& a, std::filesystem::path& tokenizer_json) {
    ModelConfig c;
    if (!a.config.empty()) {
        c = ModelConfig::load(a.config);
        if (!a.model.empty() && family_from_name(a.model, "--model") != c.family)
            throw Error("--model " + a.model + ": " + a.config + " describes a " + family_name(c.family) + " model");
    } else {
        if (a.model.empty()) throw Error("--model: required (harmonic, transformer or mamba) unless --config is given");
        c.family = family_from_name(a.model, "--model");
    }
    const bool resize = a.d_model > 0 || a.layers > 0;
    if (a.d_model > 0) c.d_model = a.d_model;
    if (a.layers > 0) c.transformer.layers = c.mamba.layers = a.layers;
    if (a.blocks > 0) c.harmonic.blocks = a.blocks;
    // A Transformer attends to the distances it was trained on: by default its window is the
    // training length (RoPE fails badly beyond it, e.g. 7.5 bits/byte instead of 1.5 when a model
    // trained on 512-byte windows read 2048), unless --window or the config file says otherwise.
    if (a.window > 0) c.transformer.context = a.window;
    else if (a.config.empty()) c.transformer.context = a.train.seq_len;
    if (resize) {  // sizes that follow from the width are solved again (parity with Harmonic)
        c.transformer.d_ff = c.transformer.heads = 0;
        c.mamba.d_inner = c.mamba.dt_rank = 0;
    }
    if (!a.routing.empty()) c.harmonic.routing = a.routing;
    if (!a.cell.empty()) c.harmonic.cell = a.cell;
    if (!a.timescales.empty()) c.harmonic.timescales = parse_number_list(a.timescales, "--timescales");
    if (a.tie) c.tie_embeddings = true;
    if (!a.tokenizer.empty() && a.tokenizer != "bytes") {
        tokenizer_json = a.tokenizer;
        require_regular_file(tokenizer_json);  // a FIFO would block the loader in open()
        auto tok = load_bpe_tokenizer(tokenizer_json);
        c.tokenizer = "bpe";
        c.vocab_size = tok->vocab_size();
    } else if (c.tokenizer == "bpe" && a.tokenizer.empty()) {
        throw Error("--config " + a.config + " names a BPE tokenizer: pass its tokenizer.json with --tokenizer");
    } else {
        c.tokenizer = "bytes";
        c.vocab_size = 256;
    }
    if (a.vocab_size > 0) {
        // Room beyond the tokenizer's ids (e.g. the paper's 50,257-way head on byte data, to
        // measure its cost): those outputs are simply never targets.
        if (a.vocab_size < c.vocab_size)
            throw Error("--vocab-size " + std::to_string(a.vocab_size) + ": smaller than the tokenizer's " +
                        std::to_string(c.vocab_size) + " tokens");
        c.vocab_size = a.vocab_size;
    }
    c.validate(a.config.empty() ? "harmonic train" : a.config);
    return c;
}

// A free TCP port on this machine for the workers' rendezvous (the kernel's choice).
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        if (fd >= 0) ::close(fd);
        throw Error(std::string("--nproc: no free local port for the workers' rendezvous: ") + std::strerror(errno));
    }
    ::close(fd);
    return ntohs(addr.sin_port);
}

// `--nproc N` without a job around it: start N copies of this very command as ranks 0..N-1 of a
// local job, in the environment torchrun would give them, and wait. When one fails, the others
// are stopped (they would wait for it forever) and its exit status is returned.
int launch_workers(int nproc) {
    std::ifstream cmdline("/proc/self/cmdline", std::ios::binary);
    std::vector<std::string> args;
    for (std::string arg; std::getline(cmdline, arg, '\0');) args.push_back(arg);
    if (args.empty()) throw Error("--nproc: cannot read this process's command line");
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const std::string port = std::to_string(free_port());
    std::vector<pid_t> children;
    for (int r = 0; r < nproc; ++r) {
        const pid_t pid = ::fork();
        if (pid < 0) throw Error(std::string("--nproc: cannot start a worker: ") + std::strerror(errno));
        if (pid == 0) {
            ::setenv("RANK", std::to_string(r).c_str(), 1);
            ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
            ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
            ::setenv("MASTER_ADDR", "127.0.0.1", 1);
            ::setenv("MASTER_PORT", port.c_str(), 1);
            // NVLink multicast (NVLS) stays off unless the user asked for it.
            ::setenv("NCCL_NVLS_ENABLE", "0", 0);
            ::execv("/proc/self/exe", argv.data());
            std::fprintf(stderr, "error: --nproc: cannot start worker %d: %s\n", r, std::strerror(errno));
            ::_exit(127);
        }
        children.push_back(pid);
    }
    int status_out = 0;
    for (std::size_t left = children.size(); left > 0; --left) {
        int status = 0;
        const pid_t pid = ::waitpid(-1, &status, 0);
        if (pid < 0) break;
        const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (code != 0 && status_out == 0) {
            status_out = code;
            for (pid_t other : children)
                if (other != pid) ::kill(other, SIGTERM);
        }
    }
    return status_out;
}

int run_train(const TrainArgs& a, CLI::App* cmd) {
    const auto job = distributed_env();
    if (a.nproc > 1 && !job) return launch_workers(a.nproc);
    if (job && cmd->get_option("--nproc")->count() && a.nproc != job->world_size)
        throw Error("--nproc " + std::to_string(a.nproc) + ": this process is one of WORLD_SIZE=" +
                    std::to_string(job->world_size) + " (set by the launcher); drop --nproc or make them agree");
    TrainHooks hooks;
    hooks.out = &std::cout;
    std::unique_ptr<GradientSync> sync;
    std::string device = a.device;
    int rank = 0, world_size = 1;
    if (job) {
        // One device per process: GPU LOCAL_RANK, or the CPU with the store's collectives.
        rank = job->rank;
        world_size = job->world_size;
        const bool cpu = a.device == "cpu" || (a.device == "auto" && !torch::cuda::is_available());
        if (!cpu && job->local_rank >= static_cast<int>(torch::cuda::device_count()))
            throw Error("--nproc " + std::to_string(world_size) + ": this machine has " +
                        std::to_string(torch::cuda::device_count()) + " CUDA device(s); one process per GPU");
        device = cpu ? "cpu" : "cuda:" + std::to_string(job->local_rank);
        sync = connect_process_group(*job, cpu ? CollectiveBackend::Store : CollectiveBackend::Nccl, parse_device(device));
        hooks.sync = sync.get();
    }
    TrainResult result;
    if (!a.resume.empty()) {
        // A resumed run takes every setting from its checkpoint; only the device may change.
        static const std::set<std::string> allowed{"--resume", "--device", "--out", "--nproc", "--help"};
        for (const CLI::Option* opt : cmd->get_options()) {
            if (opt->count() == 0) continue;
            const std::string name = opt->get_name();
            if (!allowed.count(name))
                throw Error(name + ": --resume continues a run with exactly its own settings (its trainer_state.json); "
                                   "drop " + name);
        }
        if (!a.out.empty() && std::filesystem::absolute(a.out) != std::filesystem::absolute(a.resume))
            throw Error("--out " + a.out + ": a resumed run writes into its own folder " + a.resume);
        result = resume(a.resume, cmd->get_option("--device")->count() || job ? device : "", hooks, rank, world_size);
    } else {
        TrainConfig c = a.train;
        c.model = model_from_flags(a, c.tokenizer_json);
        for (const auto& d : a.data) c.data.emplace_back(d);
        for (const auto& v : a.valid) c.valid.emplace_back(v);
        if (a.out.empty()) throw Error("--out: required (the run's folder)");
        c.out = a.out;
        c.cache_dir = a.cache_dir;
        if (!a.steps.empty() && !a.tokens.empty()) throw Error("--steps and --tokens: give one of them, not both");
        if (a.steps.empty() && a.tokens.empty()) throw Error("--steps or --tokens: one of them is required");
        if (!a.steps.empty()) c.steps = parse_count(a.steps, "--steps");
        if (!a.tokens.empty()) c.tokens = parse_count(a.tokens, "--tokens");
        if (c.steps == 0 && c.tokens == 0) throw Error("--steps / --tokens: must be at least 1");
        c.device = device;
        c.precision = a.precision;
        c.fused_head = a.head == "fused";
        c.rank = rank;
        c.world_size = world_size;
        result = train(c, hooks);
    }
    if (sync) sync->finish();
    if (rank != 0) return 0;
    fmt::print("done: {} steps, {} tokens, loss {:.4f} bpt", result.steps, result.tokens, result.last_loss_bpt);
    if (result.last_val_bpt >= 0) fmt::print(", valid {:.4f} bpt", result.last_val_bpt);
    if (const auto d = parse_device(device); d.is_cuda()) fmt::print(", peak GPU memory {:.2f} GB", cuda_peak_memory_gb(d));
    fmt::print("\ncheckpoint: {} (loadable: {})\n", result.checkpoint.string(), result.checkpoint.parent_path().string());
    return 0;
}

}  // namespace

void register_train(CLI::App& app, std::vector<Command>& commands) {
    auto a = std::make_shared<TrainArgs>();
    auto* cmd = app.add_subcommand("train", "train a model on text files or folders (docs/TRAINING.md)");
    TrainConfig& t = a->train;
    cmd->add_option("--model", a->model, "harmonic | transformer | mamba");
    cmd->add_option("--config", a->config, "model config.json to start from (flags below override it)");
    cmd->add_option("--d-model", a->d_model, "model width d (default 256)")->check(CLI::Range(1, 65536));
    cmd->add_option("--layers", a->layers, "Transformer / Mamba layers (width solved for parity)")->check(CLI::Range(1, 1024));
    cmd->add_option("--blocks", a->blocks, "Harmonic: stacked three-level blocks")->check(CLI::Range(1, 1024));
    cmd->add_option("--routing", a->routing, "Harmonic: error | raw");
    cmd->add_option("--timescales", a->timescales, "Harmonic: tau per level, e.g. 4,32,128");
    cmd->add_option("--cell", a->cell, "Harmonic: gated_ema | selective");
    cmd->add_option("--window", a->window, "Transformer: attention window (default: --seq-len)")->check(CLI::Range(1, 1 << 30));
    cmd->add_flag("--tie-embeddings", a->tie, "share the input embedding and the output head");
    cmd->add_option("--vocab-size", a->vocab_size, "output vocabulary if larger than the tokenizer's")->check(CLI::Range(2, 1 << 24));
    cmd->add_option("--tokenizer", a->tokenizer, "bytes (default) or a GPT-2 style tokenizer.json");
    cmd->add_option("--data", a->data, "training text: files and/or folders (recursive)")->expected(1, -1);
    cmd->add_option("--valid", a->valid, "validation text: files and/or folders")->expected(1, -1);
    cmd->add_option("--seq-len", t.seq_len, "tokens per training window / chunk (default 1024)")->check(CLI::Range(2, 1 << 26));
    cmd->add_option("--batch", t.batch, "rows per step (default max(1, 16384 / seq-len))")->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--steps", a->steps, "optimizer steps");
    cmd->add_option("--tokens", a->tokens, "token budget instead of --steps (e.g. 100M)");
    cmd->add_option("--lr", t.lr, "peak learning rate (default 2e-4)");
    cmd->add_option("--min-lr", t.min_lr, "learning rate at the end of the cosine (default 1e-5)");
    cmd->add_option("--warmup-frac", t.warmup_frac, "fraction of the steps spent warming up (default 0.05)");
    cmd->add_option("--weight-decay", t.weight_decay, "AdamW weight decay on matrices (default 0.1)");
    cmd->add_option("--clip", t.clip, "gradient-norm clip, 0 = off (default 1.0)");
    cmd->add_option("--checkpoint-every", t.checkpoint_every, "checkpoint every K steps (default 1000)")->check(CLI::Range(int64_t(1), int64_t(1) << 40));
    cmd->add_option("--eval-every", t.eval_every, "validation every K steps, 0 = only at the end (default 500)")->check(CLI::Range(int64_t(0), int64_t(1) << 40));
    cmd->add_option("--eval-windows", t.eval_windows, "fixed validation windows (default 32)")->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--log-every", t.log_every, "log.csv row every K steps (default 10)")->check(CLI::Range(int64_t(1), int64_t(1) << 40));
    cmd->add_flag("--stateful", t.stateful, "sequential batches, state carried (detached) between chunks");
    cmd->add_flag("!--no-cuda-graph", a->train.cuda_graph,
                  "run every step eagerly instead of replaying it as a CUDA graph (CUDA, one process, windowed)");
    cmd->add_option("--head", a->head, "fused (default: loss chunk by chunk, no logits in memory) | full (the logits and LibTorch's cross-entropy)")
        ->check(CLI::IsMember({"fused", "full"}));
    cmd->add_option("--device", a->device, "cpu | cuda | cuda:N | auto (default)");
    cmd->add_option("--nproc", a->nproc, "data-parallel processes on this machine, one per GPU (c10d + NCCL); "
                                          "--batch is per process")->check(CLI::Range(1, 4096));
    cmd->add_option("--precision", a->precision, "bf16 | fp32 | auto (bf16 on CUDA)")->check(CLI::IsMember({"bf16", "fp32", "auto"}));
    cmd->add_option("--seed", t.seed, "seed of the initial weights and the batch windows (default 0)");
    cmd->add_option("--keep", t.keep_checkpoints, "step folders to keep (default 2)")->check(CLI::Range(1, 1000));
    cmd->add_option("--cache-dir", a->cache_dir, "token caches (default ~/.cache/harmonic/tokens)");
    cmd->add_option("--out", a->out, "the run's folder (checkpoints, log.csv)");
    cmd->add_option("--resume", a->resume, "continue the run in DIR exactly where its last checkpoint left it");
    commands.push_back({cmd, [a, cmd] { return run_train(*a, cmd); }});
}

}  // namespace harmonic::cli
