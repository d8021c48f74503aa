// Errors at the library boundary: one exception type whose message a user can act on.
// Every message names the file (or flag) and the problem; the CLI prints it and exits 1,
// the GUI shows it.
#pragma once

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

}  // namespace harmonic
