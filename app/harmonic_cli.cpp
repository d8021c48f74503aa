// `harmonic`: the command-line tool over the model library (init, info, score; more in later
// subcommands). Errors: one line on stderr naming the file or flag, exit status 1.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <fmt/core.h>
#include <fmt/ostream.h>

#include <cmath>
#include <iterator>
#include <optional>
#include <fstream>
#include <iostream>
#include <sstream>

#include "app/commands.h"
#include "model/analysis.h"
#include "model/checkpoint.h"
#include "model/corpus.h"
#include "model/error.h"
#include "model/io.h"
#include "model/scoring.h"
#include "model/text.h"

namespace fs = std::filesystem;
using namespace harmonic;

namespace {

struct InitArgs {
    std::string model = "harmonic", vocab = "bytes", routing = "error", cell = "gated_ema", prediction = "temporal";
    std::string timescales = "4,32,128", out, dtype = "f32";
    int64_t d_model = 256, blocks = 1, layers = 0, seed = 0, context = 2048;
    bool tie = false;
};

safetensors::DType parse_dtype(const std::string& name) {
    if (name == "f32" || name == "fp32") return safetensors::DType::F32;
    if (name == "bf16") return safetensors::DType::BF16;
    if (name == "f16" || name == "fp16") return safetensors::DType::F16;
    throw Error("--dtype: '" + name + "' is not one of f32, bf16, f16");
}

int run_init(const InitArgs& a) {
    ModelConfig c;
    c.family = family_from_name(a.model, "--model");
    c.d_model = a.d_model;
    c.tie_embeddings = a.tie;
    fs::path tokenizer_json;
    if (a.vocab == "bytes") {
        c.tokenizer = "bytes";
        c.vocab_size = 256;
    } else {
        tokenizer_json = a.vocab;
        require_regular_file(tokenizer_json);  // a FIFO would block the loader in open()
        auto tok = load_bpe_tokenizer(tokenizer_json);
        c.tokenizer = "bpe";
        c.vocab_size = tok->vocab_size();
    }
    c.harmonic.routing = a.routing;
    c.harmonic.cell = a.cell;
    c.harmonic.prediction = a.prediction;
    c.harmonic.timescales = cli::parse_number_list(a.timescales, "--timescales");
    c.harmonic.blocks = a.blocks;
    if (a.layers > 0) c.transformer.layers = c.mamba.layers = a.layers;
    c.transformer.context = a.context;
    c.validate("harmonic init");
    torch::manual_seed(static_cast<uint64_t>(a.seed));
    auto model = make_model(c);
    SaveOptions options;
    options.dtype = parse_dtype(a.dtype);
    options.tokenizer_json = tokenizer_json;
    options.metadata["seed"] = std::to_string(a.seed);
    save_checkpoint(*model, a.out, options);
    fmt::print("wrote {} ({} model, {} parameters)\n", a.out, family_name(c.family), model->parameter_count());
    return 0;
}

int run_info(const std::string& dir) {
    auto loaded = load_checkpoint(dir);
    const auto& c = loaded.model->config();
    fmt::print("checkpoint: {}\n", dir);
    fmt::print("model_type: {}\n", family_name(c.family));
    fmt::print("tokenizer: {} (vocab {})\n", c.tokenizer, c.vocab_size);
    fmt::print("config: {}\n", c.to_json().dump());
    fmt::print("parameters: {}\n", loaded.model->parameter_count());
    for (const auto& w : loaded.warnings) fmt::print(std::cerr, "warning: {}\n", w);
    return 0;
}

struct ScoreArgs {
    std::string checkpoint, text, device = "cpu", out, precision = "fp32";
    int64_t chunk = 2048;
};

int run_score(const ScoreArgs& a) {
    if (a.chunk < 1) throw Error("--chunk: must be at least 1, got " + std::to_string(a.chunk));
    const auto device = parse_device(a.device);
    require_regular_file(a.text);  // before the model loads: a FIFO must not cost a load, or hang
    auto loaded = load_checkpoint(a.checkpoint, device);
    for (const auto& w : loaded.warnings) fmt::print(std::cerr, "warning: {}\n", w);
    StreamOptions options;
    options.chunk_tokens = a.chunk;
    options.bf16 = a.precision == "bf16";

    // Constant memory: the text is read and tokenized in blocks, each chunk scored as soon as its
    // tokens are known, each row streamed to the CSV; only running sums are kept.
    std::optional<DurableFile> csv;
    std::string rows;
    if (!a.out.empty()) {
        csv.emplace(a.out);
        csv->write("index,byte_offset,token_id,bpt\n");
    }
    StreamingScorer scorer(*loaded.model, device, options, [&](int64_t index, int64_t id, int64_t offset, float bpt) {
        if (!csv) return;
        fmt::format_to(std::back_inserter(rows), "{},{},{},{:.6f}\n", index, offset, id, bpt);
        if (rows.size() >= (1u << 20)) {
            csv->write(rows);
            rows.clear();
        }
    });
    const bool bpe = loaded.tokenizer->kind() != "bytes";
    uint64_t checksum = kFnvOffset;
    int64_t bytes_before = 0;
    std::vector<int64_t> offsets;
    read_text_blocks(a.text, bpe, int64_t(1) << 20, checksum, [&](std::string_view piece) {
        Encoding enc = loaded.tokenizer->encode(piece);
        offsets.resize(enc.byte_offsets.size());
        for (std::size_t i = 0; i < offsets.size(); ++i) offsets[i] = bytes_before + enc.byte_offsets[i];
        scorer.feed(enc.ids.data(), offsets.data(), enc.ids.size());
        bytes_before += static_cast<int64_t>(piece.size());
    });
    if (bytes_before == 0) fail_file(a.text, "is empty");
    if (scorer.tokens() < 2)
        throw Error(a.text + ": needs at least 2 tokens to score, has " + std::to_string(scorer.tokens()));
    scorer.finish();
    if (csv) {
        csv->write(rows);
        csv->commit();
    }
    fmt::print("tokens: {}\nmean bpt: {:.4f}\n", scorer.tokens(), scorer.mean_bpt());
    return 0;
}

}  // namespace

std::vector<double> harmonic::cli::parse_number_list(const std::string& text, const std::string& flag) {
    std::vector<double> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) {
        try {
            std::size_t used = 0;
            out.push_back(std::stod(item, &used));
            if (used != item.size()) throw std::invalid_argument(item);
        } catch (const std::invalid_argument&) {
            throw Error(flag + ": '" + item + "' is not a number (expected e.g. 4,32,128)");
        } catch (const std::out_of_range&) {
            throw Error(flag + ": '" + item + "' is out of range");
        }
    }
    if (out.empty()) throw Error(flag + ": expected a comma-separated list such as 4,32,128");
    return out;
}

int main(int argc, char** argv) {
    CLI::App app{"harmonic: train, evaluate and inspect Harmonic, Transformer and Mamba language models"};
    app.require_subcommand(1);

    InitArgs init;
    auto* cmd_init = app.add_subcommand("init", "write a randomly initialised checkpoint");
    cmd_init->add_option("--model", init.model, "harmonic | transformer | mamba")->required();
    cmd_init->add_option("--d-model", init.d_model, "model width d")->required();
    cmd_init->add_option("--vocab", init.vocab, "bytes, or the path of a GPT-2 style tokenizer.json");
    cmd_init->add_option("--seed", init.seed, "random seed");
    cmd_init->add_option("--routing", init.routing, "Harmonic: error | raw");
    cmd_init->add_option("--timescales", init.timescales, "Harmonic: tau per level, e.g. 4,32,128");
    cmd_init->add_option("--cell", init.cell, "Harmonic: gated_ema | selective");
    cmd_init->add_option("--prediction", init.prediction, "Harmonic: temporal | top_down");
    cmd_init->add_option("--blocks", init.blocks, "Harmonic: stacked three-level blocks");
    cmd_init->add_option("--layers", init.layers, "Transformer / Mamba: layers (width is then sized for parity)");
    cmd_init->add_option("--context", init.context, "Transformer: sliding-window context of the chunked forward");
    cmd_init->add_option("--dtype", init.dtype, "weights dtype: f32 | bf16 | f16");
    cmd_init->add_flag("--tie-embeddings", init.tie, "share the input embedding and the output head");
    cmd_init->add_option("--out", init.out, "checkpoint folder to write")->required();

    std::string info_dir;
    auto* cmd_info = app.add_subcommand("info", "describe a checkpoint");
    cmd_info->add_option("dir", info_dir, "checkpoint folder")->required();

    ScoreArgs score;
    auto* cmd_score = app.add_subcommand("score", "per-token bits of a text under a checkpoint");
    cmd_score->add_option("--checkpoint", score.checkpoint, "checkpoint folder")->required();
    cmd_score->add_option("--text", score.text, "UTF-8 text file")->required();
    cmd_score->add_option("--chunk", score.chunk, "tokens per stateful chunk")->transform(cli::integer_in(1, int64_t(1) << 24));
    cmd_score->add_option("--device", score.device, "cpu | cuda | cuda:N | auto");
    cmd_score->add_option("--precision", score.precision, "fp32 | bf16 (CUDA)")->check(CLI::IsMember({"fp32", "bf16"}));
    cmd_score->add_option("--out", score.out, "CSV file: index,byte_offset,token_id,bpt");

    std::vector<cli::Command> commands;
    cli::register_bench(app, commands);
#ifdef HARMONIC_HAVE_VIEWS
    cli::register_analyze(app, commands);
#endif
    cli::register_train(app, commands);
    cli::register_eval(app, commands);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // CLI11 prints the message; its own codes (105, 106, ...) become the tool's one error status.
        return app.exit(e) == 0 ? 0 : 1;
    }
    try {
        if (*cmd_init) return run_init(init);
        if (*cmd_info) return run_info(info_dir);
        if (*cmd_score) return run_score(score);
        for (auto& command : commands)
            if (*command.app) return command.run();
    } catch (const Error& e) {
        fmt::print(std::cerr, "error: {}\n", e.what());
        return 1;
    } catch (const c10::Error& e) {
        fmt::print(std::cerr, "error: {}\n", e.what_without_backtrace());
        return 1;
    } catch (const std::exception& e) {
        fmt::print(std::cerr, "error: {}\n", e.what());
        return 1;
    }
    return 0;
}
