// Errors at the library boundary: one exception type whose message a user can act on.
// Every message names the file (or flag) and the problem; the CLI prints it and exits 1,
// the GUI shows it.
#pragma once

#include <charconv>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>

#include "kernels/error.h"  // Error, env_number: shared with the kernels

namespace harmonic {

// Thrown when a caller's cancel flag is set during a long computation (analysis, scoring); the
// desktop tool treats it as a stop, not a failure.
class Cancelled : public std::exception {
public:
    const char* what() const noexcept override { return "analysis cancelled"; }
};

// "FILE: problem" — the one format for errors about a file.
[[noreturn]] inline void fail_file(const std::filesystem::path& file, const std::string& problem) {
    throw Error(file.string() + ": " + problem);
}

// What is wrong with `text` as a whole number in [lo, hi] ("" when nothing is, and `out` set):
// decimal digits with an optional '-', nothing else. Unlike strtoll, which CLI11 uses, a value
// past int64 is refused instead of saturating, and "010" is ten, not octal eight.
inline std::string integer_problem(const std::string& text, int64_t lo, int64_t hi, int64_t& out) {
    const std::string expected = "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    const char* const end = text.data() + text.size();
    int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && ptr == end && (v < lo || v > hi)))
        return "'" + text + "' is out of range (" + expected + ")";
    if (ec != std::errc() || ptr != end || text.empty()) return "'" + text + "' is not an integer (" + expected + ")";
    out = v;
    return {};
}

// `text` as a whole number in [lo, hi]; throws Error "FLAG: 'TEXT' is out of range (...)".
inline int64_t parse_integer(const std::string& text, const std::string& flag, int64_t lo, int64_t hi) {
    int64_t v = 0;
    if (const std::string problem = integer_problem(text, lo, hi, v); !problem.empty()) throw Error(flag + ": " + problem);
    return v;
}

}  // namespace harmonic
