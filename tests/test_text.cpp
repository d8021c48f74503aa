#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "model/error.h"
#include "model/text.h"

using namespace harmonic;
namespace fs = std::filesystem;

namespace {

// A fresh folder per test, removed afterwards, so tests never see each other's files.
struct TempDir {
    fs::path path;
    TempDir() {
        static std::atomic<int> counter{0};
        path = fs::temp_directory_path() /
               ("harmonic_test_text_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fs::path write(const std::string& name, const std::string& bytes) const {
        const fs::path p = path / name;
        std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        return p;
    }
};

std::string error_of(const fs::path& file, const TextReadOptions& options = {}) {
    try {
        read_text_file(file, options);
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("find_utf8_problem accepts valid UTF-8", "[text]") {
    CHECK_FALSE(find_utf8_problem(""));
    CHECK_FALSE(find_utf8_problem("plain ASCII\n\twith controls\x01\x7f"));
    CHECK_FALSE(find_utf8_problem("Gr\xC3\xB6\xC3\x9F" "e \xCE\xBA\xCF\x8C\xCF\x83\xCE\xBC\xCE\xB5"));  // Größe κόσμε
    CHECK_FALSE(find_utf8_problem("\xE6\x9D\xB1\xE4\xBA\xAC"));                                       // 東京
    CHECK_FALSE(find_utf8_problem("\xF0\x9F\x98\x80"));                                                // U+1F600
    // Boundaries of each range.
    CHECK_FALSE(find_utf8_problem("\xC2\x80"));          // U+0080
    CHECK_FALSE(find_utf8_problem("\xDF\xBF"));          // U+07FF
    CHECK_FALSE(find_utf8_problem("\xE0\xA0\x80"));      // U+0800
    CHECK_FALSE(find_utf8_problem("\xED\x9F\xBF"));      // U+D7FF, just below the surrogates
    CHECK_FALSE(find_utf8_problem("\xEE\x80\x80"));      // U+E000, just above them
    CHECK_FALSE(find_utf8_problem("\xEF\xBF\xBF"));      // U+FFFF
    CHECK_FALSE(find_utf8_problem("\xF0\x90\x80\x80"));  // U+10000
    CHECK_FALSE(find_utf8_problem("\xF4\x8F\xBF\xBF"));  // U+10FFFF
    CHECK_FALSE(find_utf8_problem(std::string_view("a\0b", 3)));
}

TEST_CASE("find_utf8_problem reports each kind of invalid sequence", "[text]") {
    struct Case {
        std::string bytes;
        int64_t offset, line, column;
        std::string what;
    };
    const Case cases[] = {
        {"ab\x80", 2, 1, 3, "unexpected continuation byte 0x80"},
        {"\xBF", 0, 1, 1, "unexpected continuation byte 0xBF"},
        {"x\xC0\x80", 1, 1, 2, "overlong encoding: lead byte 0xC0"},
        {"\xC1\xBF", 0, 1, 1, "overlong encoding: lead byte 0xC1"},
        {"\xE0\x80\x80", 0, 1, 1, "overlong encoding 0xE0 0x80"},
        {"\xE0\x9F\xBF", 0, 1, 1, "overlong encoding 0xE0 0x9F"},
        {"\xF0\x80\x80\x80", 0, 1, 1, "overlong encoding 0xF0 0x80"},
        {"\xF0\x8F\xBF\xBF", 0, 1, 1, "overlong encoding 0xF0 0x8F"},
        {"ok \xED\xA0\x80", 3, 1, 4, "UTF-16 surrogate"},
        {"\xED\xBF\xBF", 0, 1, 1, "UTF-16 surrogate"},
        {"\xF4\x90\x80\x80", 0, 1, 1, "code point above U+10FFFF"},
        {"\xF5\x80\x80\x80", 0, 1, 1, "invalid byte 0xF5"},
        {"\xFF", 0, 1, 1, "invalid byte 0xFF"},
        {"\xFE", 0, 1, 1, "invalid byte 0xFE"},
        {"abc\xE2\x82", 3, 1, 4, "truncated sequence at end of input: lead byte 0xE2 needs 2 continuation bytes, found 1"},
        {"\xF0\x9F\x98", 0, 1, 1, "truncated sequence at end of input: lead byte 0xF0 needs 3 continuation bytes, found 2"},
        {"\xC3", 0, 1, 1, "truncated sequence at end of input: lead byte 0xC3 needs 1 continuation byte, found 0"},
        {"x\xE2\x41", 1, 1, 2, "invalid continuation byte 0x41 after lead byte 0xE2"},
        {"\xE2\x82\x41", 0, 1, 1, "invalid continuation byte 0x41 after lead byte 0xE2"},
        {"\xF0\x9F\x98\x0A", 0, 1, 1, "invalid continuation byte 0x0A after lead byte 0xF0"},
        {"\xC3\xC3", 0, 1, 1, "invalid continuation byte 0xC3 after lead byte 0xC3"},
        // Line and column count bytes from 1, newlines from the start of the buffer.
        {"line1\nline2\nab\xE2\x41", 14, 3, 3, "invalid continuation byte 0x41"},
        {"\n\n\n\xFF", 3, 4, 1, "invalid byte 0xFF"},
        {"\xC3\xA9t\xC3\xA9\n\xC3\xA9\xFF", 8, 2, 3, "invalid byte 0xFF"},
    };
    for (const Case& c : cases) {
        INFO("bytes of length " << c.bytes.size() << ", expecting " << c.what);
        const auto p = find_utf8_problem(c.bytes);
        REQUIRE(p);
        CHECK(p->byte_offset == c.offset);
        CHECK(p->line == c.line);
        CHECK(p->column == c.column);
        CHECK_THAT(p->what, Catch::Contains(c.what));
    }
}

TEST_CASE("find_utf8_problem finds the first problem past the ASCII fast path", "[text]") {
    for (size_t n : {0u, 1u, 7u, 8u, 9u, 15u, 16u, 17u, 1000u, 1001u}) {
        std::string s(n, 'a');
        s += "\xC3\xA9";  // valid, breaks the 8-byte stride alignment
        s += std::string(13, 'b');
        const size_t bad = s.size();
        s += "\x80tail";
        const auto p = find_utf8_problem(s);
        REQUIRE(p);
        CHECK(p->byte_offset == static_cast<int64_t>(bad));
        CHECK(p->column == static_cast<int64_t>(bad) + 1);
        CHECK(p->line == 1);
        // And the prefix before it is valid.
        CHECK_FALSE(find_utf8_problem(std::string_view(s).substr(0, bad)));
    }
}

TEST_CASE("looks_binary", "[text]") {
    CHECK_FALSE(looks_binary(""));
    CHECK_FALSE(looks_binary("Hello, world.\n\tIndented\r\n"));
    CHECK_FALSE(looks_binary("\x1b[31mred\x1b[0m log line\n"));
    CHECK(looks_binary(std::string("abc\0def", 7)));
    CHECK(looks_binary(std::string(1, '\0')));
    // Only the first 8 KiB are looked at.
    std::string late(9000, 'x');
    late[8500] = '\0';
    CHECK_FALSE(looks_binary(late));
    late[8191] = '\0';
    CHECK(looks_binary(late));
    // Control bytes: over 30% is binary, under is text.
    std::string ctl;
    for (int i = 0; i < 100; ++i) ctl += (i % 3 == 0) ? '\x01' : 'a';  // 34%
    CHECK(looks_binary(ctl));
    std::string fewer;
    for (int i = 0; i < 100; ++i) fewer += (i % 4 == 0) ? '\x02' : 'a';  // 25%
    CHECK_FALSE(looks_binary(fewer));
}

TEST_CASE("read_text_file reads valid files whole", "[text]") {
    TempDir dir;
    const std::string text = "first line\nGr\xC3\xB6\xC3\x9F" "e \xF0\x9F\x98\x80\n\tend without newline";
    CHECK(read_text_file(dir.write("ok.txt", text)) == text);
    const std::string big(300000, 'z');
    CHECK(read_text_file(dir.write("big.txt", big)) == big);
    // Byte-level models accept any bytes: invalid UTF-8 passes when not required.
    const std::string latin1 = "caf\xE9 cr\xE8me\n";
    TextReadOptions any;
    any.require_utf8 = false;
    CHECK(read_text_file(dir.write("latin1.txt", latin1), any) == latin1);
}

TEST_CASE("read_text_file errors name the file and the problem", "[text]") {
    TempDir dir;
    const fs::path missing = dir.path / "missing.txt";
    CHECK(error_of(missing) == missing.string() + ": no such file");
    CHECK(error_of(dir.path) == dir.path.string() + ": is a directory");

    const fs::path empty = dir.write("empty.txt", "");
    CHECK(error_of(empty) == empty.string() + ": is empty");

    const fs::path binary = dir.write("data.bin", std::string("0123456789\0\0\x01\x02", 14));
    CHECK(error_of(binary) == binary.string() + ": looks like a binary file (NUL byte at offset 10)");
    TextReadOptions any;
    any.require_utf8 = false;
    CHECK(error_of(binary, any) == binary.string() + ": looks like a binary file (NUL byte at offset 10)");
    const fs::path controls = dir.write("controls.bin", std::string(50, '\x03') + std::string(50, 'a'));
    CHECK_THAT(error_of(controls), Catch::StartsWith(controls.string() + ": looks like a binary file (over 30% control"));

    const fs::path bad = dir.write("bad.txt", "one\ntwo\nthree \xE2\x41 four\n");
    CHECK(error_of(bad) == bad.string() +
                               ": not valid UTF-8 at line 3, column 7 (byte 14): invalid continuation byte 0x41 after "
                               "lead byte 0xE2");
    const fs::path truncated = dir.write("truncated.txt", "ok\n\xF0\x9F\x98");
    CHECK(error_of(truncated) == truncated.string() +
                                     ": not valid UTF-8 at line 2, column 1 (byte 3): truncated sequence at end of "
                                     "input: lead byte 0xF0 needs 3 continuation bytes, found 2");
}

TEST_CASE("read_text_file refuses files over the size limit before reading them", "[text]") {
    TempDir dir;
    TextReadOptions small;
    small.max_bytes = 10;
    const fs::path eleven = dir.write("eleven.txt", "0123456789\n");
    CHECK(error_of(eleven, small) == eleven.string() + ": is 11 bytes, larger than the 10-byte limit");
    small.max_bytes = 11;
    CHECK(read_text_file(eleven, small) == "0123456789\n");

    // Just over a limit that rounds to the same size: exact byte counts instead.
    TextReadOptions two_k;
    two_k.max_bytes = 2048;
    const fs::path just_over = dir.write("2049.txt", std::string(2049, 'a'));
    CHECK(error_of(just_over, two_k) == just_over.string() + ": is 2049 bytes, larger than the 2048-byte limit");

    // A sparse 3.1 GB file against the default 2 GB limit: refused from its size alone.
    const fs::path huge = dir.path / "huge.txt";
    std::ofstream(huge).put('a');
    std::error_code ec;
    fs::resize_file(huge, static_cast<uintmax_t>(3.1 * 1024 * 1024 * 1024), ec);
    if (!ec) {
        CHECK(error_of(huge) == huge.string() + ": is 3.1 GB, larger than the 2.0 GB limit");
    } else {
        WARN("could not create a sparse file: " << ec.message());
    }
}
