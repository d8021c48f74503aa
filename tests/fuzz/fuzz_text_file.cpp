// libFuzzer harness for read_text_file (model/text.cpp): the input is written to a file on tmpfs
// and read back under three sets of options. For each, the outcome is predicted independently
// (size limit, empty, binary, invalid UTF-8 with its line and column, or the bytes unchanged)
// and the reader must give exactly that: the right refusal with the file named first, or the
// file's bytes.
#include "model/text.h"

#include "fuzz_common.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace {

constexpr const char* harness = "fuzz_text_file";

void check(const harmonic_fuzz::ScratchFile& file, std::string_view bytes, const harmonic::TextReadOptions& options) {
    const std::string path = file.path().string();
    // What the reader must do, worked out from the bytes (the UTF-8 details are fuzzed
    // differentially in fuzz_utf8; here they only have to reach the message intact).
    std::string expected;
    if (bytes.size() > static_cast<uint64_t>(options.max_bytes)) {
        expected = "larger than the";
    } else if (bytes.empty()) {
        expected = "is empty";
    } else if (harmonic::looks_binary(bytes)) {
        expected = "looks like a binary file";
    } else if (options.require_utf8) {
        if (const auto p = harmonic::find_utf8_problem(bytes))
            expected = "not valid UTF-8 at line " + std::to_string(p->line) + ", column " + std::to_string(p->column) +
                       " (byte " + std::to_string(p->byte_offset) + "): " + p->what;
    }

    std::string text;
    try {
        text = harmonic::read_text_file(file.path(), options);
    } catch (const harmonic::Error& e) {
        harmonic_fuzz::check_error(harness, e, path);
        if (expected.empty()) harmonic_fuzz::bug(harness, std::string("refused a valid text: ") + e.what());
        if (std::string_view(e.what()).find(expected) == std::string_view::npos)
            harmonic_fuzz::bug(harness, "expected \"" + expected + "\" in: " + e.what());
        return;
    }
    if (!expected.empty()) harmonic_fuzz::bug(harness, "accepted a file that should give \"" + expected + "\"");
    if (text != bytes) harmonic_fuzz::bug(harness, "the text read differs from the file's bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const harmonic_fuzz::ScratchFile file("input.txt");
    file.write(data, size);
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);

    harmonic::TextReadOptions strict;  // the defaults: UTF-8 required, 2 GiB limit
    check(file, bytes, strict);

    harmonic::TextReadOptions any;
    any.require_utf8 = false;
    check(file, bytes, any);

    // A limit inside the file: refused from the size alone, before anything is read.
    harmonic::TextReadOptions small;
    small.max_bytes = static_cast<int64_t>(size / 2);
    check(file, bytes, small);
    return 0;
}
