// Each `harmonic` subcommand lives in its own file and registers itself here.
#pragma once

#include <CLI/CLI.hpp>

#include "model/error.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace harmonic::cli {

// "4,32,128" -> {4, 32, 128}; throws Error naming `flag` and the bad item.
std::vector<double> parse_number_list(const std::string& text, const std::string& flag);

// A CLI11 transform for an integer flag in [lo, hi]: the value is parsed exactly by
// harmonic::integer_problem (CLI11's own strtoll conversion saturates 99999999999999999999 to
// 2^63 - 1 without a word) and handed on in canonical decimal; CLI11 prefixes the flag's name.
inline CLI::Validator integer_in(int64_t lo, int64_t hi) {
    return CLI::Validator(
        [lo, hi](std::string& value) -> std::string {
            int64_t v = 0;
            std::string problem = integer_problem(value, lo, hi, v);
            if (problem.empty()) value = std::to_string(v);
            return problem;
        },
        "INT in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

struct Command {
    CLI::App* app = nullptr;
    std::function<int()> run;
};

void register_bench(CLI::App& app, std::vector<Command>& commands);
void register_analyze(CLI::App& app, std::vector<Command>& commands);  // builds with Qt only
void register_train(CLI::App& app, std::vector<Command>& commands);
void register_eval(CLI::App& app, std::vector<Command>& commands);

}  // namespace harmonic::cli
