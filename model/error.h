// Errors at the library boundary: one exception type whose message a user can act on.
// Every message names the file (or flag) and the problem; the CLI prints it and exits 1,
// the GUI shows it.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace harmonic {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// "FILE: problem" — the one format for errors about a file.
[[noreturn]] inline void fail_file(const std::filesystem::path& file, const std::string& problem) {
    throw Error(file.string() + ": " + problem);
}

// The environment variable `name` as a number in [lo, hi] (a whole number when `integer`), or
// `fallback` when it is unset or empty. Anything else throws Error naming the variable, its value
// and what was expected: a setting the user typed is never silently ignored.
inline double env_number(const char* name, double fallback, double lo, double hi, bool integer = false) {
    const char* text = std::getenv(name);
    if (!text || !*text) return fallback;
    char* end = nullptr;
    const double v = std::strtod(text, &end);
    if (*end != '\0' || !(v >= lo && v <= hi) || (integer && v != std::floor(v))) {
        auto bound = [integer](double b) { return integer ? std::to_string(static_cast<long long>(b)) : std::to_string(b); };
        throw Error(std::string("environment variable ") + name + "='" + text + "': expected " +
                    (integer ? "an integer" : "a number") + " in [" + bound(lo) + ", " + bound(hi) + "]");
    }
    return v;
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
