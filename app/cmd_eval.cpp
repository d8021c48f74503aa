// `harmonic eval`: bits per token of a checkpoint on a text or corpus split at a list of context
// lengths, from non-overlapping windows or stateful sequential passes, with a 95% interval.
#include <fmt/core.h>
#include <fmt/ostream.h>

#include <cmath>
#include <iostream>
#include <sstream>

#include "app/cli_count.h"
#include "app/commands.h"
#include "model/checkpoint.h"
#include "model/corpus.h"
#include "model/error.h"
#include "model/io.h"
#include "model/evaluation.h"

namespace harmonic::cli {

namespace {

struct EvalArgs {
    std::string checkpoint, contexts = "1024", device = "auto", precision = "fp32", out, cache_dir, max_tokens, head = "fused";
    std::vector<std::string> data;
    bool stateful = false;
    int64_t warmup_chunks = 0, batch = 0;
};

int run_eval(const EvalArgs& a) {
    EvalOptions options;
    options.contexts.clear();
    std::stringstream ss(a.contexts);
    std::string item;
    while (std::getline(ss, item, ',')) options.contexts.push_back(parse_count(item, "--context"));
    if (options.contexts.empty()) throw Error("--context: expected a list such as 1024,4096");
    options.stateful = a.stateful;
    options.warmup_chunks = a.warmup_chunks;
    options.batch = a.batch;
    if (!a.max_tokens.empty()) options.max_tokens = parse_count(a.max_tokens, "--max-tokens");
    if (a.warmup_chunks > 0 && !a.stateful) throw Error("--warmup-chunks: needs --stateful");

    const torch::Device device = parse_device(a.device);
    if (a.precision == "bf16" && !device.is_cuda())
        throw Error("--precision bf16: bf16 autocast needs a CUDA device (use --precision fp32 on CPU)");
    options.bf16 = a.precision == "bf16";
    options.fused_head = a.head == "fused";

    auto loaded = load_checkpoint(a.checkpoint, device);
    for (const auto& w : loaded.warnings) fmt::print(std::cerr, "warning: {}\n", w);
    std::vector<std::filesystem::path> inputs(a.data.begin(), a.data.end());
    CorpusOptions corpus_options;
    corpus_options.cache_dir = a.cache_dir;
    corpus_options.on_message = [](const std::string& line) { fmt::print("{}\n", line); };
    const Corpus corpus = open_corpus(inputs, *loaded.tokenizer,
                                      tokenizer_cache_key(loaded.config.tokenizer, loaded.dir / "tokenizer.json"),
                                      corpus_options);
    fmt::print("checkpoint: {} ({}, {} parameters)\n", a.checkpoint, family_name(loaded.config.family),
               loaded.model->parameter_count());
    fmt::print("data: {} tokens from {} file{}{}\n", corpus.tokens.size(), corpus.files.size(),
               corpus.files.size() == 1 ? "" : "s",
               options.max_tokens > 0 && options.max_tokens < corpus.tokens.size()
                   ? fmt::format(" (first {} used)", options.max_tokens)
                   : std::string());

    const auto rows = evaluate_contexts(*loaded.model, corpus.tokens, device, options);
    fmt::print("{:>8}  {:<9} {:>7} {:>8} {:>11} {:>9}  {}\n", "context", "mode", "warm-up", "windows", "tokens",
               "mean bpt", "95% interval");
    std::string csv =
        "context,mode,warmup_chunks,windows,tokens,mean_bpt,sd,ci95_low,ci95_high\n";
    for (const auto& r : rows) {
        const std::string ci = std::isnan(r.ci95) ? "n/a (one window)" : fmt::format("± {:.4f}", r.ci95);
        fmt::print("{:>8}  {:<9} {:>7} {:>8} {:>11} {:>9.4f}  {}\n", r.context, r.mode, r.warmup_chunks, r.windows,
                   r.tokens, r.mean_bpt, ci);
        auto num = [](double v) { return std::isnan(v) ? std::string() : fmt::format("{:.6f}", v); };
        csv += fmt::format("{},{},{},{},{},{:.6f},{},{},{}\n", r.context, r.mode, r.warmup_chunks, r.windows, r.tokens,
                           r.mean_bpt, num(r.sd), num(r.mean_bpt - r.ci95), num(r.mean_bpt + r.ci95));
    }
    if (!a.out.empty()) write_file_atomically(a.out, csv);
    return 0;
}

}  // namespace

void register_eval(CLI::App& app, std::vector<Command>& commands) {
    auto a = std::make_shared<EvalArgs>();
    auto* cmd = app.add_subcommand("eval", "bits per token of a checkpoint at several context lengths");
    cmd->add_option("--checkpoint", a->checkpoint, "checkpoint folder")->required();
    cmd->add_option("--data", a->data, "text files and/or folders (e.g. a corpus split)")->required()->expected(1, -1);
    cmd->add_option("--context", a->contexts, "context lengths in tokens, e.g. 1024,4096,16384,65536");
    cmd->add_flag("--stateful", a->stateful, "one sequential pass per context, chunk = context, state carried");
    cmd->add_option("--warmup-chunks", a->warmup_chunks, "stateful: leading chunks run but not scored")
        ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
    cmd->add_option("--batch", a->batch, "windowed: windows per forward (default max(1, 16384 / context))")
        ->check(CLI::Range(1, 1 << 20));
    cmd->add_option("--max-tokens", a->max_tokens, "use only the first N tokens of the data (e.g. 1M)");
    cmd->add_option("--head", a->head, "fused (default: bits without materialising the logits) | full (through the logits)")
        ->check(CLI::IsMember({"full", "fused"}));
    cmd->add_option("--device", a->device, "cpu | cuda | cuda:N | auto (default)");
    cmd->add_option("--precision", a->precision, "fp32 (default) | bf16 (CUDA autocast)")->check(CLI::IsMember({"fp32", "bf16"}));
    cmd->add_option("--cache-dir", a->cache_dir, "token caches (default ~/.cache/harmonic/tokens)");
    cmd->add_option("--out", a->out, "write the table as CSV");
    commands.push_back({cmd, [a] { return run_eval(*a); }});
}

}  // namespace harmonic::cli
