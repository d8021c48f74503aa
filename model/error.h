// Errors at the library boundary: one exception type whose message a user can act on.
// Every message names the file (or flag) and the problem; the CLI prints it and exits 1,
// the GUI shows it.
#pragma once

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

}  // namespace harmonic
