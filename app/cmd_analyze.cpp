// `harmonic analyze`: the desktop tool's analysis, headless — the same harmonic::analyze and the
// same figure export (views/figure_export.h) as harmonic-studio, drawn offscreen.
#include <fmt/core.h>

#include <QCoreApplication>
#include <QString>
#include <filesystem>
#include <limits>

#include "app/commands.h"
#include "model/analysis.h"
#include "model/error.h"
#include "model/io.h"
#include "model/text.h"
#include "views/figure_export.h"
#include "views/figure_style.h"

namespace harmonic::cli {

namespace {

struct AnalyzeArgs {
    std::vector<std::string> checkpoints;
    std::string text, out, formats = "pdf,svg,png,csv", device = "auto", precision = "fp32", preset = "single";
    int dpi = 300;
    int64_t chunk = 2048, max_tokens = 0;
};

int run_analyze(const AnalyzeArgs& a) {
    views::ExportFormats formats;
    try {
        formats = views::parseExportFormats(QString::fromStdString(a.formats));
    } catch (const std::invalid_argument& e) {
        throw Error(std::string("--formats: ") + e.what());
    }
    const auto preset = views::presetByName(QString::fromStdString(a.preset));
    if (!preset) throw Error("--preset: unknown preset '" + a.preset + "' (" + views::presetNames().join(", ").toStdString() + ")");
    require_regular_file(a.text);  // a FIFO would block the reader in open()
    const std::string text = read_text_file(a.text);
    AnalysisOptions options;
    options.device = a.device;
    options.precision = a.precision;
    options.chunk_tokens = a.chunk;
    options.max_tokens = a.max_tokens;
    std::vector<std::filesystem::path> dirs(a.checkpoints.begin(), a.checkpoints.end());
    int last_percent = -1;
    const auto result = analyze(dirs, text, std::filesystem::path(a.text).filename().string(), options,
                                [&](double fraction, const std::string& stage) {
                                    const int percent = static_cast<int>(fraction * 100.0);
                                    if (percent / 10 != last_percent / 10) fmt::print(stderr, "{:3d}% {}\n", percent, stage);
                                    last_percent = percent;
                                });
    for (const auto& note : result.notes) fmt::print(stderr, "note: {}\n", note);
    for (const auto& m : result.models) fmt::print("{:<24} {:<12} mean bpt {:.4f}\n", m.name, m.family, m.mean_bpt);
    views::ensureGuiApplication();
    QStringList files;
    // Written into a temporary folder beside --out and renamed into place when every file is
    // there: a failure (a full disk, out of memory) leaves no half-written output folder.
    StagingFolder staging(a.out);
    try {
        files = views::export_figures(result, QString::fromStdString(staging.path().string()), formats, a.dpi, *preset);
    } catch (const std::runtime_error& e) {
        throw Error(std::string("--out ") + a.out + ": " + e.what());
    }
    staging.commit();
    fmt::print("wrote {} files to {} ({} tokens, {:.1f} s on {})\n", files.size(), a.out, result.token_count(),
               result.seconds, result.device);
    return 0;
}

}  // namespace

void register_analyze(CLI::App& app, std::vector<Command>& commands) {
    auto args = std::make_shared<AnalyzeArgs>();
    auto* cmd = app.add_subcommand("analyze", "run the desktop tool's analysis headless and write every figure and its CSV");
    cmd->add_option("--checkpoint", args->checkpoints, "checkpoint folder (repeat for several models)")->required();
    cmd->add_option("--text", args->text, "UTF-8 text file")->required();
    cmd->add_option("--out", args->out, "output folder")->required();
    cmd->add_option("--formats", args->formats, "comma-separated: pdf,svg,png,csv");
    cmd->add_option("--dpi", args->dpi, "PNG resolution")->check(CLI::Range(36, 2400));
    cmd->add_option("--preset", args->preset, "figure preset: single (3.5 in) | double (7 in)");
    cmd->add_option("--device", args->device, "auto | cpu | cuda | cuda:N");
    cmd->add_option("--precision", args->precision, "fp32 | bf16 (CUDA)")->check(CLI::IsMember({"fp32", "bf16"}));
    cmd->add_option("--chunk", args->chunk, "tokens per stateful chunk")->transform(integer_in(1, int64_t(1) << 24));
    cmd->add_option("--max-tokens", args->max_tokens, "analyse only the first N tokens (0 = all)")
        ->transform(integer_in(0, std::numeric_limits<int64_t>::max()));
    commands.push_back({cmd, [args] { return run_analyze(*args); }});
}

}  // namespace harmonic::cli
