// Differential fuzzing of the UTF-8 validator and the binary-file heuristic (model/text.cpp)
// against a reference written here from the definitions, in a different style: decode a code
// point from the lead byte's count of leading ones, then reject overlong forms, surrogates and
// values above U+10FFFF by value (model/text.cpp instead checks the second byte's range).
// Both must agree on validity, on the offset of the first problem, and on its line and column.
#include "model/text.h"

#include "fuzz_common.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace {

constexpr const char* harness = "fuzz_utf8";

// Offset of the first byte of the first invalid sequence, or nullopt.
std::optional<std::size_t> reference_first_problem(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto lead = static_cast<unsigned char>(s[i]);
        int ones = 0;
        while (ones < 8 && (lead & (0x80 >> ones))) ++ones;
        if (ones == 0) {
            ++i;
            continue;
        }
        if (ones == 1 || ones > 4) return i;  // a continuation byte, or 5+ byte forms (never valid)
        const std::size_t len = static_cast<std::size_t>(ones);
        if (i + len > s.size()) return i;  // truncated (whatever the bytes present are)
        uint32_t cp = lead & (0x7Fu >> ones);
        for (std::size_t k = 1; k < len; ++k) {
            const auto b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (b & 0x3Fu);
        }
        static constexpr uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < smallest[len]) return i;              // overlong
        if (cp >= 0xD800 && cp <= 0xDFFF) return i;    // UTF-16 surrogate
        if (cp > 0x10FFFF) return i;                   // beyond Unicode
        i += len;
    }
    return std::nullopt;
}

bool reference_looks_binary(std::string_view s) {
    const std::string_view sample = s.substr(0, 8192);
    std::size_t controls = 0;
    for (unsigned char c : sample) {
        if (c == 0) return true;
        const bool text_control = c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == 0x1B;
        if ((c < 0x20 || c == 0x7F) && !text_control) ++controls;
    }
    return controls * 10 > sample.size() * 3;  // more than 30%
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // No copy: the view ends exactly where libFuzzer's buffer does, so any read past the end
    // (the eight-byte fast path included) is an ASan report.
    const std::string_view s(reinterpret_cast<const char*>(data), size);

    const auto got = harmonic::find_utf8_problem(s);
    const auto want = reference_first_problem(s);
    if (got.has_value() != want.has_value())
        harmonic_fuzz::bug(harness, want ? "valid per find_utf8_problem, invalid at byte " + std::to_string(*want) +
                                               " per the reference"
                                         : "invalid per find_utf8_problem at byte " +
                                               std::to_string(got->byte_offset) + ", valid per the reference");
    if (got) {
        const std::size_t at = *want;
        if (got->byte_offset != static_cast<int64_t>(at))
            harmonic_fuzz::bug(harness, "first problem at byte " + std::to_string(got->byte_offset) +
                                            ", the reference says " + std::to_string(at));
        int64_t line = 1;
        std::size_t line_start = 0;
        for (std::size_t k = 0; k < at; ++k)
            if (s[k] == '\n') {
                ++line;
                line_start = k + 1;
            }
        const auto column = static_cast<int64_t>(at - line_start + 1);
        if (got->line != line || got->column != column)
            harmonic_fuzz::bug(harness, "problem at line " + std::to_string(got->line) + ", column " +
                                            std::to_string(got->column) + "; the reference says line " +
                                            std::to_string(line) + ", column " + std::to_string(column));
        if (got->what.empty()) harmonic_fuzz::bug(harness, "problem without a description");
        // The description goes into messages: it must itself be printable ASCII.
        for (char c : got->what)
            if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7E)
                harmonic_fuzz::bug(harness, "description is not printable ASCII: " + got->what);
    }

    if (harmonic::looks_binary(s) != reference_looks_binary(s))
        harmonic_fuzz::bug(harness, std::string("looks_binary says ") + (harmonic::looks_binary(s) ? "binary" : "text") +
                                        ", the reference the opposite");
    return 0;
}
