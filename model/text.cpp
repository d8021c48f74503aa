#include "model/text.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <system_error>

#include "model/error.h"
#include "model/utf8.h"

namespace harmonic {

namespace {

std::string human_size(uint64_t bytes) {
    char buf[64];
    if (bytes < 1024) {
        std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(bytes));
        return buf;
    }
    const char* units[] = {"KB", "MB", "GB", "TB"};
    double v = static_cast<double>(bytes) / 1024.0;
    int u = 0;
    while (v >= 1024.0 && u < 3) {
        v /= 1024.0;
        ++u;
    }
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

std::string too_large(uint64_t size, uint64_t limit) {
    std::string s = human_size(size), l = human_size(limit);
    // Rounding can make a file just over the limit print as the limit itself.
    if (s == l || limit < 1024) {
        s = std::to_string(size) + " bytes";
        l = std::to_string(limit) + "-byte";
    }
    return "is " + s + ", larger than the " + l + " limit";
}

constexpr size_t kBinarySample = 8192;

bool is_control(unsigned char b) {
    // Tab, newlines, form feed, vertical tab and ESC (colour codes in logs) occur in text.
    if (b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v' || b == 0x1B) return false;
    return b < 0x20 || b == 0x7F;
}

}  // namespace

std::optional<Utf8Problem> find_utf8_problem(std::string_view bytes) {
    const size_t n = bytes.size();
    size_t i = 0;
    while (i < n) {
        // ASCII fast path: eight bytes at a time while none has the high bit.
        while (i + 8 <= n) {
            uint64_t word;
            std::memcpy(&word, bytes.data() + i, 8);
            if (word & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n) break;
        const size_t len = utf8::sequence_length(bytes, i);
        if (len == 0) {
            Utf8Problem p;
            p.byte_offset = static_cast<int64_t>(i);
            const std::string_view before = bytes.substr(0, i);
            p.line = 1 + static_cast<int64_t>(std::count(before.begin(), before.end(), '\n'));
            const size_t nl = before.rfind('\n');
            p.column = static_cast<int64_t>(nl == std::string_view::npos ? i + 1 : i - nl);
            p.what = utf8::describe_invalid(bytes, i);
            return p;
        }
        i += len;
    }
    return std::nullopt;
}

bool looks_binary(std::string_view bytes) {
    const std::string_view sample = bytes.substr(0, std::min(bytes.size(), kBinarySample));
    if (sample.empty()) return false;
    if (sample.find('\0') != std::string_view::npos) return true;
    const auto controls = std::count_if(sample.begin(), sample.end(),
                                        [](char c) { return is_control(static_cast<unsigned char>(c)); });
    return static_cast<double>(controls) > 0.3 * static_cast<double>(sample.size());
}

std::string read_text_file(const std::filesystem::path& file, const TextReadOptions& options) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::file_status st = fs::status(file, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) fail_file(file, "cannot be accessed (" + ec.message() + ")");
    if (!fs::exists(st)) fail_file(file, "no such file");
    if (fs::is_directory(st)) fail_file(file, "is a directory");
    const uint64_t limit = options.max_bytes < 0 ? 0 : static_cast<uint64_t>(options.max_bytes);

    std::string data;
    if (fs::is_regular_file(st)) {
        const uint64_t size = fs::file_size(file, ec);
        if (ec) fail_file(file, "cannot be read (" + ec.message() + ")");
        // Refuse before allocating: a multi-gigabyte file must not exhaust memory first.
        if (size > limit) fail_file(file, too_large(size, limit));
        data.resize(static_cast<size_t>(size));
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) fail_file(file, std::string("cannot be read (") + std::strerror(errno) + ")");
    if (fs::is_regular_file(st)) {
        in.read(data.data(), static_cast<std::streamsize>(data.size()));
        if (static_cast<size_t>(in.gcount()) != data.size()) {
            // The file shrank while reading: keep what is there rather than returning garbage.
            data.resize(static_cast<size_t>(in.gcount()));
        }
        if (in.bad()) fail_file(file, "read error");
    } else {
        // Pipes and devices have no size up front: read in chunks, stop at the limit.
        char chunk[1 << 16];
        bool sampled = false;
        while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
            data.append(chunk, static_cast<size_t>(in.gcount()));
            if (data.size() > limit) fail_file(file, "is larger than the " + human_size(limit) + " limit");
            // A device may never end (/dev/zero, /dev/urandom): once the binary check's sample is
            // in, a binary stream is refused (below) instead of being read up to the limit.
            if (!sampled && data.size() >= kBinarySample) {
                sampled = true;
                if (looks_binary(data)) break;
            }
        }
        if (in.bad()) fail_file(file, "read error");
    }

    if (data.empty()) fail_file(file, "is empty");
    if (looks_binary(data)) {
        const size_t nul = std::string_view(data).substr(0, kBinarySample).find('\0');
        if (nul != std::string_view::npos) {
            fail_file(file, "looks like a binary file (NUL byte at offset " + std::to_string(nul) + ")");
        }
        fail_file(file, "looks like a binary file (over 30% control bytes in the first 8 KiB)");
    }
    if (options.require_utf8) {
        if (auto p = find_utf8_problem(data)) {
            fail_file(file, "not valid UTF-8 at line " + std::to_string(p->line) + ", column " +
                                std::to_string(p->column) + " (byte " + std::to_string(p->byte_offset) + "): " + p->what);
        }
    }
    return data;
}

}  // namespace harmonic
