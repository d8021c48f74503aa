#include "model/utf8.h"

#include <cstdio>

namespace harmonic::utf8 {

namespace {

std::string hex_byte(unsigned char b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02X", b);
    return buf;
}

}  // namespace

std::string describe_invalid(std::string_view s, std::size_t i) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    // Bytes that can never appear in UTF-8 get their own message: they usually mean the file is
    // in another encoding (Latin-1, UTF-16) rather than damaged.
    if (b0 >= 0x80 && b0 <= 0xBF) return "unexpected continuation byte " + hex_byte(b0) + " (no lead byte before it)";
    if (b0 == 0xC0 || b0 == 0xC1) return "overlong encoding: lead byte " + hex_byte(b0) + " never appears in UTF-8";
    if (b0 >= 0xF5) return "invalid byte " + hex_byte(b0) + " (never appears in UTF-8)";
    const std::size_t need = b0 <= 0xDF ? 1 : b0 <= 0xEF ? 2 : 3;
    const unsigned char lo = b0 == 0xE0 ? 0xA0 : b0 == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = b0 == 0xED ? 0x9F : b0 == 0xF4 ? 0x8F : 0xBF;
    for (std::size_t k = 1; k <= need; ++k) {
        if (i + k >= s.size()) {
            return "truncated sequence at end of input: lead byte " + hex_byte(b0) + " needs " + std::to_string(need) +
                   " continuation byte" + (need == 1 ? "" : "s") + ", found " + std::to_string(k - 1);
        }
        const auto b = static_cast<unsigned char>(s[i + k]);
        if (b < 0x80 || b > 0xBF) return "invalid continuation byte " + hex_byte(b) + " after lead byte " + hex_byte(b0);
        if (k == 1 && (b < lo || b > hi)) {
            const std::string pair = hex_byte(b0) + " " + hex_byte(b);
            if (b0 == 0xED) return "UTF-16 surrogate (U+D800..U+DFFF) encoded as " + pair;
            if (b0 == 0xF4) return "code point above U+10FFFF (" + pair + ")";
            return "overlong encoding " + pair;
        }
    }
    return "valid UTF-8";
}

std::string escaped(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (std::size_t i = 0; i < bytes.size();) {
        const auto b = static_cast<unsigned char>(bytes[i]);
        const std::size_t length = sequence_length(bytes, i);
        // C1 controls (U+0080..U+009F) are as invisible as C0 ones.
        const bool c1 = length == 2 && b == 0xC2 && static_cast<unsigned char>(bytes[i + 1]) < 0xA0;
        if (length == 0 || b < 0x20 || b == 0x7F || c1) {
            const std::size_t n = c1 ? 2 : 1;
            for (std::size_t k = 0; k < n; ++k) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned char>(bytes[i + k]));
                out += buf;
            }
            i += n;
        } else if (b == '\\') {
            out += "\\\\";
            ++i;
        } else {
            out.append(bytes, i, length);
            i += length;
        }
    }
    return out;
}

}  // namespace harmonic::utf8
