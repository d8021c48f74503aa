// The one exception type of the libraries and the strict reading of numeric environment settings.
// It lives in kernels/, the lowest library, so that the kernels' settings fail the same way as the
// model's without the kernels depending on model/ (model/error.h includes it). No LibTorch, no CUDA.
#pragma once

#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace harmonic {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {

// The whole of `text` as a number (strtod), or false when anything is left over or nothing parses.
inline bool strict_number(const char* text, double& value) {
    char* end = nullptr;
    value = std::strtod(text, &end);
    return end != text && *end == '\0';
}

[[noreturn]] inline void fail_env(const char* name, const char* text, const std::string& expected) {
    throw Error(std::string("environment variable ") + name + "='" + text + "': expected " + expected);
}

}  // namespace detail

// The environment variable `name` as a number in [lo, hi] (a whole number when `integer`), or
// `fallback` when it is unset or empty. Anything else throws Error naming the variable, its value
// and what was expected: a setting the user typed is never silently ignored.
inline double env_number(const char* name, double fallback, double lo, double hi, bool integer = false) {
    const char* text = std::getenv(name);
    if (!text || !*text) return fallback;
    double v = 0;
    if (!detail::strict_number(text, v) || !(v >= lo && v <= hi) || (integer && v != std::floor(v))) {
        auto bound = [integer](double b) { return integer ? std::to_string(static_cast<long long>(b)) : std::to_string(b); };
        detail::fail_env(name, text, std::string(integer ? "an integer" : "a number") + " in [" + bound(lo) + ", " +
                                         bound(hi) + "]");
    }
    return v;
}

// The environment variable `name` as one of the integers `accepted`, or `fallback` when it is unset
// or empty; anything else throws Error as env_number does, listing the accepted values.
inline int env_choice(const char* name, int fallback, std::initializer_list<int> accepted) {
    const char* text = std::getenv(name);
    if (!text || !*text) return fallback;
    double v = 0;
    if (detail::strict_number(text, v))
        for (int a : accepted)
            if (v == a) return a;
    std::string list;
    for (int a : accepted) list += (list.empty() ? "" : ", ") + std::to_string(a);
    detail::fail_env(name, text, "one of " + list);
}

}  // namespace harmonic
