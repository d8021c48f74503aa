// Errors at the library boundary: one exception type whose message a user can act on.
// Every message names the file (or flag) and the problem; the CLI prints it and exits 1,
// the GUI shows it.
#pragma once

#include <cmath>
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

}  // namespace harmonic
