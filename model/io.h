// File I/O used by every writer and reader of the project: atomic replacement and bounded reads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

namespace harmonic {

// Reads a whole file. Throws Error "FILE: ..." when it is missing, is a directory, cannot be
// read, or is larger than max_bytes (nothing is allocated in that case).
std::vector<uint8_t> read_file_bytes(const std::filesystem::path& file, uint64_t max_bytes);

// Writes `bytes` to FILE.tmp-<pid>-<n> in the same folder, fsyncs it, renames it over FILE and
// fsyncs the folder: a crash at any moment leaves either the old file or the new one, whole.
// Throws Error naming the file on failure (and removes the temporary file).
void write_file_atomically(const std::filesystem::path& file, std::string_view bytes);

// Removes a file or a whole folder tree; a missing path is not an error. Use this, not
// std::filesystem::remove_all: libtorch.so exports its own copy of remove_all, built against a
// newer libstdc++, which crashes on a non-empty folder in any program linked with LibTorch on
// Debian 12.
void remove_tree(const std::filesystem::path& path);

}  // namespace harmonic
