// Each `harmonic` subcommand lives in its own file and registers itself here.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace harmonic::cli {

// "4,32,128" -> {4, 32, 128}; throws Error naming `flag` and the bad item.
std::vector<double> parse_number_list(const std::string& text, const std::string& flag);

struct Command {
    CLI::App* app = nullptr;
    std::function<int()> run;
};

void register_bench(CLI::App& app, std::vector<Command>& commands);
void register_analyze(CLI::App& app, std::vector<Command>& commands);  // builds with Qt only
void register_train(CLI::App& app, std::vector<Command>& commands);
void register_eval(CLI::App& app, std::vector<Command>& commands);

}  // namespace harmonic::cli
