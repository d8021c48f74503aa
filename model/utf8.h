// UTF-8 decoding shared by the text reader, the tokenizer and the text view. No torch, no Qt:
// the decoding functions are inline so that views/ can use them without linking harmonic_core.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace harmonic::utf8 {

// Length (1-4) of the strictly valid UTF-8 sequence at s[i], or 0 when it is invalid. Strict per
// RFC 3629: the second-byte ranges exclude overlong forms, UTF-16 surrogates and code points above
// U+10FFFF, and a sequence cut by the end of `s` is invalid.
inline std::size_t sequence_length(std::string_view s, std::size_t i) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) return 1;
    std::size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (i + need >= s.size()) return 0;
    for (std::size_t k = 1; k <= need; ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return 0;
    }
    return need + 1;
}

// The code point of the valid sequence of `length` bytes at s[i] (from sequence_length).
inline char32_t decode(std::string_view s, std::size_t i, std::size_t length) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    char32_t cp = length == 1 ? b0 : length == 2 ? (b0 & 0x1F) : length == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (std::size_t k = 1; k < length; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    return cp;
}

// Decodes the character at s[i] and returns its length; an invalid byte decodes as U+FFFD with
// length 1, so a loop over any bytes always advances.
inline std::size_t decode_or_replacement(std::string_view s, std::size_t i, char32_t& cp) {
    const std::size_t length = sequence_length(s, i);
    if (length == 0) {
        cp = 0xFFFD;
        return 1;
    }
    cp = decode(s, i, length);
    return length;
}

// Start of the valid character that ends exactly at `end` (> 0), or std::string_view::npos when
// the bytes before `end` do not end with a valid sequence.
inline std::size_t previous_start(std::string_view s, std::size_t end) {
    for (std::size_t back = 1; back <= 4 && back <= end; ++back) {
        const std::size_t start = end - back;
        if ((static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) continue;
        return sequence_length(s, start) == back ? start : std::string_view::npos;
    }
    return std::string_view::npos;
}

inline void append(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

// Why the sequence at s[i] is invalid, e.g. "invalid continuation byte 0x41 after lead byte
// 0xE2" (call only where sequence_length(s, i) == 0).
std::string describe_invalid(std::string_view s, std::size_t i);

// Bytes from a file made safe to put into a message: valid printable UTF-8 is kept, invalid
// bytes, control characters and backslashes are written \xNN (a backslash as \\).
std::string escaped(std::string_view bytes);

}  // namespace harmonic::utf8
