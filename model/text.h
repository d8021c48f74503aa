// Reading user texts: validation that names the file and the byte/line of the problem.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace harmonic {

struct Utf8Problem {
    int64_t byte_offset = 0;  // offset of the first bad byte
    int64_t line = 0;         // 1-based line of that byte
    int64_t column = 0;       // 1-based byte column within the line
    std::string what;         // e.g. "invalid continuation byte 0x41 after lead byte 0xE2"
};

// First UTF-8 problem in `bytes` (overlong forms, surrogates, > U+10FFFF and truncated
// sequences are all problems), or nullopt when the whole buffer is valid.
std::optional<Utf8Problem> find_utf8_problem(std::string_view bytes);

// Heuristic: a NUL byte in the first 8 KiB, or > 30% control bytes there, means "binary".
bool looks_binary(std::string_view bytes);

struct TextReadOptions {
    bool require_utf8 = true;        // false: bytes are passed through (byte-level models accept any)
    int64_t max_bytes = int64_t(1) << 31;  // larger files are refused with a message saying so
};

// Reads a whole text file. Throws Error "FILE: ..." for a missing/unreadable file, an empty
// file, a binary file, invalid UTF-8 (with line, column and byte offset), or a file over max_bytes.
std::string read_text_file(const std::filesystem::path& file, const TextReadOptions& options = {});

}  // namespace harmonic
