// The safetensors reader/writer against the reference implementation, and every malformed-file
// rule; plus the atomic-write and bounded-read helpers it relies on.
#include <catch2/catch.hpp>

#include "model/error.h"
#include "model/io.h"
#include "model/safetensors.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
namespace st = harmonic::safetensors;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

const fs::path fixtures = fs::path(HARMONIC_FIXTURES) / "safetensors";

class TempDir {
public:
    TempDir() {
        static std::atomic<int> counter{0};
        path_ = fs::temp_directory_path() /
                ("harmonic-test-st-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        fs::remove_all(path_);
        fs::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

std::string slurp(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void spit(const fs::path& file, const std::string& bytes) {
    std::ofstream out(file, std::ios::binary);
    out << bytes;
}

std::vector<std::string> leftovers(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().find(".tmp-") != std::string::npos) out.push_back(e.path().string());
    return out;
}

float f16_to_float(uint16_t h) {
    const int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    float v;
    if (exp == 0)
        v = std::ldexp(static_cast<float>(mant), -24);
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = std::ldexp(static_cast<float>(mant | 0x400), exp - 25);
    return sign ? -v : v;
}

float bf16_to_float(uint16_t b) {
    const uint32_t bits = static_cast<uint32_t>(b) << 16;
    float v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
}

template <typename T>
T load(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

std::vector<double> values_of(const st::File& f, const std::string& name) {
    const auto& info = f.info(name);
    const uint8_t* p = f.data(name);
    const std::size_t n = static_cast<std::size_t>(info.numel());
    const std::size_t w = st::dtype_size(info.dtype);
    std::vector<double> out;
    for (std::size_t i = 0; i < n; ++i) {
        const uint8_t* q = p + i * w;
        switch (info.dtype) {
            case st::DType::F64: out.push_back(load<double>(q)); break;
            case st::DType::F32: out.push_back(load<float>(q)); break;
            case st::DType::F16: out.push_back(f16_to_float(load<uint16_t>(q))); break;
            case st::DType::BF16: out.push_back(bf16_to_float(load<uint16_t>(q))); break;
            case st::DType::I64: out.push_back(static_cast<double>(load<int64_t>(q))); break;
            case st::DType::I32: out.push_back(load<int32_t>(q)); break;
            case st::DType::I16: out.push_back(load<int16_t>(q)); break;
            case st::DType::I8: out.push_back(load<int8_t>(q)); break;
            case st::DType::U8: out.push_back(load<uint8_t>(q)); break;
            case st::DType::BOOL: out.push_back(load<uint8_t>(q) ? 1.0 : 0.0); break;
        }
    }
    return out;
}

// A file from a header text and a data section of `data_size` bytes.
std::vector<uint8_t> make_file(const std::string& header, std::size_t data_size) {
    std::vector<uint8_t> out(8 + header.size() + data_size, 0);
    const uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
    std::memcpy(out.data() + 8, header.data(), header.size());
    return out;
}

void set_length(std::vector<uint8_t>& bytes, uint64_t n) {
    for (int i = 0; i < 8; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
}

const std::string source = "mem.safetensors";

// The message of the harmonic::Error that parsing throws; fails the test for anything else.
std::string parse_error(std::vector<uint8_t> bytes) {
    try {
        st::File::parse(std::move(bytes), source);
    } catch (const harmonic::Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        FAIL("threw a non-harmonic::Error exception: " << e.what());
    }
    FAIL("the file was accepted");
    return {};
}

std::string parse_error(const std::string& header, std::size_t data_size) {
    return parse_error(make_file(header, data_size));
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t begin,
                  uint64_t end) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
           std::to_string(begin) + "," + std::to_string(end) + "]}";
}

// The interpreter with the reference `safetensors` package, or empty with the reason in `why`.
std::string find_python(std::string& why) {
    if (const char* env = std::getenv("HARMONIC_PYTHON"); env && *env) {
        if (::access(env, X_OK) == 0) return env;
        why = std::string("HARMONIC_PYTHON=") + env + " is not an executable";
        return {};
    }
    const char* home = std::getenv("HOME");
    const fs::path venv = fs::path(home ? home : "") / ".cache/harmonic/venv/bin/python";
    if (home && ::access(venv.c_str(), X_OK) == 0) return venv.string();
    why = "neither HARMONIC_PYTHON nor " + venv.string() + " is there";
    return {};
}

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

}  // namespace

TEST_CASE("safetensors: a file written by the reference package loads with its values", "[safetensors]") {
    const auto file = st::File::read(fixtures / "reference.safetensors");
    const auto expected = nlohmann::json::parse(slurp(fixtures / "reference.json"));

    CHECK(file.source() == (fixtures / "reference.safetensors").string());
    CHECK(file.metadata() == std::map<std::string, std::string>{{"format", "pt"}});

    std::vector<std::string> names;
    for (const auto& t : expected["tensors"]) names.push_back(t["name"]);
    std::sort(names.begin(), names.end());
    CHECK(file.names() == names);

    for (const auto& t : expected["tensors"]) {
        const std::string name = t["name"];
        INFO("tensor " << name);
        REQUIRE(file.contains(name));
        const auto& info = file.info(name);
        CHECK(info.name == name);
        CHECK(st::dtype_name(info.dtype) == t["dtype"].get<std::string>());
        CHECK(info.shape == t["shape"].get<std::vector<int64_t>>());
        CHECK(info.nbytes == static_cast<std::size_t>(info.numel()) * st::dtype_size(info.dtype));
        CHECK(values_of(file, name) == t["values"].get<std::vector<double>>());
    }
    CHECK_FALSE(file.contains("nope"));
    CHECK_THROWS_WITH(file.info("nope"), Contains("reference.safetensors: no tensor named 'nope'"));
}

TEST_CASE("safetensors: dtype names and sizes", "[safetensors]") {
    const std::pair<st::DType, std::size_t> all[] = {
        {st::DType::F64, 8}, {st::DType::F32, 4}, {st::DType::F16, 2}, {st::DType::BF16, 2}, {st::DType::I64, 8},
        {st::DType::I32, 4}, {st::DType::I16, 2}, {st::DType::I8, 1},  {st::DType::U8, 1},   {st::DType::BOOL, 1},
    };
    for (auto [dtype, size] : all) {
        CHECK(st::dtype_size(dtype) == size);
        CHECK(st::dtype_from_name(st::dtype_name(dtype)) == dtype);
    }
    CHECK(st::dtype_name(st::DType::BF16) == "BF16");
    CHECK_THROWS_WITH(st::dtype_from_name("F8_E4M3"), Contains("unknown") && Contains("'F8_E4M3'"));
}

namespace {

// One tensor of every dtype, named out of order, with a scalar and an empty one.
struct Sample {
    std::vector<double> f64{1.5, -2.25, 1e300};
    std::vector<float> f32{0.5f, -1.0f, 3.0f, 4.0f, 5.0f, 6.0f};
    std::vector<uint16_t> f16{0x3c00, 0xc000, 0x7bff};  // 1, -2, 65504
    std::vector<uint16_t> bf16{0x3f80, 0xbfc0};        // 1, -1.5
    std::vector<int64_t> i64{-5, 1LL << 50};
    std::vector<int32_t> i32{-70000};
    std::vector<int16_t> i16{-300, 300};
    std::vector<int8_t> i8{-128, 127, 0};
    std::vector<uint8_t> u8{255, 0};
    std::vector<uint8_t> boolean{1, 0, 1};

    std::vector<st::TensorToWrite> tensors() const {
        return {
            {"z.f32", st::DType::F32, {2, 3}, f32.data()},
            {"a.f64", st::DType::F64, {3}, f64.data()},
            {"m.f16", st::DType::F16, {3}, f16.data()},
            {"m.bf16", st::DType::BF16, {2, 1}, bf16.data()},
            {"i64", st::DType::I64, {2}, i64.data()},
            {"scalar.i32", st::DType::I32, {}, i32.data()},
            {"i16", st::DType::I16, {2}, i16.data()},
            {"i8", st::DType::I8, {1, 3}, i8.data()},
            {"u8", st::DType::U8, {2}, u8.data()},
            {"flags", st::DType::BOOL, {3}, boolean.data()},
            {"empty", st::DType::F32, {0, 4}, nullptr},
        };
    }
    const std::map<std::string, std::string> metadata{{"format", "pt"}, {"note", "h\xc3\xa9llo \"quoted\""}};
};

void check_same(const st::File& f, const std::vector<st::TensorToWrite>& tensors) {
    REQUIRE(f.names().size() == tensors.size());
    for (const auto& t : tensors) {
        INFO("tensor " << t.name);
        REQUIRE(f.contains(t.name));
        const auto& info = f.info(t.name);
        CHECK(info.dtype == t.dtype);
        CHECK(info.shape == t.shape);
        REQUIRE(info.nbytes == static_cast<std::size_t>(info.numel()) * st::dtype_size(t.dtype));
        if (info.nbytes) CHECK(std::memcmp(f.data(t.name), t.data, info.nbytes) == 0);
    }
}

}  // namespace

TEST_CASE("safetensors: our writer round-trips through our reader", "[safetensors]") {
    const Sample s;
    const auto tensors = s.tensors();
    const auto bytes = st::serialize(tensors, s.metadata);

    SECTION("layout: padded header, metadata first, tensors contiguous in name order") {
        uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<std::size_t>(i)];
        CHECK(n % 8 == 0);
        const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
        CHECK_THAT(header, StartsWith("{\"__metadata__\":{\"format\":\"pt\","));
        const auto j = nlohmann::ordered_json::parse(header);
        uint64_t expect = 0;
        std::string prev;
        for (const auto& [name, e] : j.items()) {
            if (name == "__metadata__") continue;
            CHECK(name > prev);
            prev = name;
            CHECK(e["data_offsets"][0].get<uint64_t>() == expect);
            expect = e["data_offsets"][1].get<uint64_t>();
            CHECK(e.size() == 3);
        }
        CHECK(8 + n + expect == bytes.size());
        CHECK(st::serialize(tensors, s.metadata) == bytes);  // deterministic
    }

    SECTION("in memory") {
        const auto f = st::File::parse(bytes, "round-trip");
        CHECK(f.metadata() == s.metadata);
        check_same(f, tensors);
        CHECK(values_of(f, "m.f16") == std::vector<double>{1.0, -2.0, 65504.0});
        CHECK(values_of(f, "m.bf16") == std::vector<double>{1.0, -1.5});
    }

    SECTION("through a file, replaced atomically") {
        TempDir dir;
        const auto path = dir.path() / "out.safetensors";
        spit(path, "old contents that are longer than nothing");
        st::write(path, tensors, s.metadata);
        CHECK(leftovers(dir.path()).empty());
        const auto f = st::File::read(path);
        CHECK(f.metadata() == s.metadata);
        check_same(f, tensors);
        const std::string on_disk = slurp(path);
        CHECK(std::vector<uint8_t>(on_disk.begin(), on_disk.end()) == bytes);
    }

    SECTION("no tensors, no metadata") {
        const auto empty = st::serialize({});
        CHECK(empty.size() == 16);
        const auto f = st::File::parse(empty, "empty");
        CHECK(f.names().empty());
        CHECK(f.metadata().empty());
    }
}

TEST_CASE("safetensors: the writer refuses what it cannot write correctly", "[safetensors]") {
    const float x[2] = {1, 2};
    SECTION("duplicate names") {
        CHECK_THROWS_WITH(st::serialize({{"w", st::DType::F32, {1}, x}, {"w", st::DType::F32, {1}, x + 1}}),
                          Contains("two tensors are named 'w'"));
    }
    SECTION("the reserved name") {
        CHECK_THROWS_WITH(st::serialize({{"__metadata__", st::DType::F32, {1}, x}}), Contains("__metadata__"));
    }
    SECTION("negative dimension") {
        CHECK_THROWS_WITH(st::serialize({{"w", st::DType::F32, {2, -1}, x}}),
                          Contains("'w'") && Contains("negative"));
    }
    SECTION("missing data") {
        CHECK_THROWS_WITH(st::serialize({{"w", st::DType::F32, {2}, nullptr}}), Contains("'w'") && Contains("no data"));
    }
    SECTION("a name that is not UTF-8") {
        CHECK_THROWS_WITH(st::serialize({{"bad\xff", st::DType::F32, {1}, x}}), Contains("UTF-8"));
    }
    SECTION("write names the file and leaves nothing behind") {
        TempDir dir;
        const auto path = dir.path() / "w.safetensors";
        CHECK_THROWS_WITH(st::write(path, {{"w", st::DType::F32, {2, -1}, x}}),
                          StartsWith(path.string() + ": "));
        CHECK_FALSE(fs::exists(path));
        CHECK(leftovers(dir.path()).empty());
    }
}

TEST_CASE("safetensors: a file from our writer loads in the reference package", "[safetensors]") {
    std::string why;
    const std::string python = find_python(why);
    if (python.empty()) {
        WARN("skipping the reference-package check: " << why);
        return;
    }
    const fs::path script = fs::path(HARMONIC_FIXTURES) / ".." / "scripts" / "make_safetensors_fixtures.py";
    REQUIRE(fs::exists(script));

    TempDir dir;
    const Sample s;
    auto tensors = s.tensors();
    const auto path = dir.path() / "ours.safetensors";
    st::write(path, tensors, s.metadata);
    const auto err = dir.path() / "stderr.txt";

    const std::string cmd = shell_quote(python) + " " + shell_quote(script.string()) + " --check " +
                            shell_quote(path.string()) + " 2>" + shell_quote(err.string());
    std::string out;
    FILE* pipe = ::popen(cmd.c_str(), "r");
    REQUIRE(pipe != nullptr);
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
    const int status = ::pclose(pipe);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 3) {
        WARN("skipping the reference-package check: " << python << " lacks a package: " << slurp(err));
        return;
    }
    INFO("command: " << cmd << "\nstderr: " << slurp(err));
    REQUIRE(code == 0);

    const auto ref = nlohmann::json::parse(out);
    CHECK(ref["metadata"].get<std::map<std::string, std::string>>() == s.metadata);
    const auto ours = st::File::read(path);
    REQUIRE(ref["tensors"].size() == tensors.size());
    for (const auto& t : tensors) {
        INFO("tensor " << t.name);
        const auto& r = ref.at("tensors").at(t.name);
        CHECK(r["dtype"].get<std::string>() == st::dtype_name(t.dtype));
        CHECK(r["shape"].get<std::vector<int64_t>>() == t.shape);
        CHECK(r["values"].get<std::vector<double>>() == values_of(ours, t.name));
    }
}

TEST_CASE("safetensors: malformed files are refused with the file and the problem named", "[safetensors]") {
    // The valid file every case below breaks in one way: w is 2x3 F32, 24 bytes.
    const std::string w = entry("w", "F32", "[2,3]", 0, 24);
    REQUIRE_NOTHROW(st::File::parse(make_file("{" + w + "}", 24), source));

    auto expect = [](const std::string& message, const std::string& phrase) {
        CHECK_THAT(message, StartsWith(source + ": ") && Contains(phrase));
    };

    SECTION("fewer than 8 bytes") {
        expect(parse_error(std::vector<uint8_t>{1, 2, 3}), "is 3 bytes, too short");
        expect(parse_error(std::vector<uint8_t>{}), "is 0 bytes, too short");
    }
    SECTION("truncated inside the header") {
        auto bytes = make_file("{" + w + "}", 24);
        bytes.resize(20);
        expect(parse_error(bytes), "safetensors header length " + std::to_string(w.size() + 2) +
                                       " exceeds the file size (20 bytes)");
    }
    SECTION("truncated inside the data") {
        auto bytes = make_file("{" + w + "}", 24);
        bytes.resize(bytes.size() - 4);
        expect(parse_error(bytes), "tensor 'w': data_offsets [0, 24] are out of bounds: the data section is 20 bytes");
    }
    SECTION("header length huge") {
        auto bytes = make_file("{}", 0);
        set_length(bytes, ~uint64_t{0});
        expect(parse_error(bytes), "safetensors header length 18446744073709551615 exceeds the file size (10 bytes)");
        set_length(bytes, 123456789);
        expect(parse_error(bytes), "header length 123456789 exceeds the file size (10 bytes)");
    }
    SECTION("header length over the 100 MB limit") {
        // The file really is that large, so only the limit can refuse it.
        std::vector<uint8_t> bytes(8 + 100'000'001, ' ');
        set_length(bytes, 100'000'001);
        expect(parse_error(std::move(bytes)), "header length 100000001 exceeds the 100000000-byte limit");
    }
    SECTION("a UTF-8 byte order mark before the header") {
        // nlohmann skipped it silently; the reference package (serde_json) refuses the file.
        expect(parse_error("\xEF\xBB\xBF{" + w + "}", 24), "header starts with a UTF-8 byte order mark");
    }
    SECTION("bytes from the file are escaped in messages") {
        // A tensor name with control characters, and invalid UTF-8 the JSON parser quotes.
        const std::string name_msg = parse_error("{" + entry("w\\u001b[2J", "F32", "[2,3]", 0, 20) + "}", 24);
        CHECK_THAT(name_msg, Contains("tensor 'w\\x1B[2J'"));
        CHECK(name_msg.find('\x1b') == std::string::npos);
        const std::string utf8_msg = parse_error("{\"w\xff\": 1}", 0);
        CHECK_THAT(utf8_msg, Contains("not valid JSON") && Contains("\\xFF"));
        CHECK(utf8_msg.find('\xff') == std::string::npos);
    }
    SECTION("header length below 2") {
        expect(parse_error(make_file("", 0)), "header length 0 is too small");
        expect(parse_error(make_file("{", 0)), "header length 1 is too small");
    }
    SECTION("header is not JSON") {
        expect(parse_error("{\"w\": nope}", 0), "header is not valid JSON");
        expect(parse_error("{\"w\":{}", 0), "header is not valid JSON");
        // nlohmann would stop at a NUL and ignore the rest: the smuggled second object must not pass.
        expect(parse_error(std::string("{}\0\0", 4), 0), "header contains a NUL byte at offset 2");
        expect(parse_error(std::string("{}\0{\"w\":1}", 10), 0), "NUL byte at offset 2");
        expect(parse_error(std::string("{\"a\0\":1}", 8), 0), "NUL byte at offset 3");
    }
    SECTION("a long bad token is shortened in the message") {
        const auto message = parse_error("{\"" + std::string(100000, 'x'), 0);
        expect(message, "header is not valid JSON");
        CHECK(message.size() < 1000);
    }
    SECTION("header is not UTF-8") {
        expect(parse_error("{\"w\xff\":1}", 0), "header is not valid JSON");
        expect(parse_error("{\"__metadata__\":{\"a\":\"\xc3\"}}", 0), "header is not valid JSON");
    }
    SECTION("header is not an object") {
        expect(parse_error("[1,2]", 0), "header is a JSON array, not an object");
        expect(parse_error("\"text\"", 0), "header is a JSON string, not an object");
        expect(parse_error("null", 0), "header is a JSON null, not an object");
    }
    SECTION("deeply nested JSON") {
        expect(parse_error(std::string(100000, '['), 0), "nested more than 64 levels deep");
        expect(parse_error(std::string(100000, '{'), 0), "nested more than 64 levels deep");
        // Well-formed and closed, inside the metadata, still refused.
        const std::string deep = std::string(70, '[') + std::string(70, ']');
        expect(parse_error("{\"__metadata__\":" + deep + "}", 0), "nested more than 64 levels deep");
        // Brackets inside strings are text, not nesting.
        const std::string name(200, '[');
        REQUIRE_NOTHROW(st::File::parse(make_file("{" + entry(name, "U8", "[0]", 0, 0) + "}", 0), source));
    }
    SECTION("unknown dtype") {
        expect(parse_error("{" + entry("w", "F8_E4M3", "[2,3]", 0, 6) + "}", 6),
               "tensor 'w': unknown dtype 'F8_E4M3'");
        expect(parse_error("{\"w\":{\"dtype\":5,\"shape\":[],\"data_offsets\":[0,4]}}", 4),
               "tensor 'w': dtype is a number, not a string");
    }
    SECTION("negative shape") {
        expect(parse_error("{" + entry("w", "F32", "[-2,3]", 0, 24) + "}", 24), "tensor 'w': shape dimension 0 is negative");
    }
    SECTION("shape not integers") {
        expect(parse_error("{" + entry("w", "F32", "[2.0,3]", 0, 24) + "}", 24), "dimension 0 is not an integer");
        expect(parse_error("{" + entry("w", "F32", "[2,\"3\"]", 0, 24) + "}", 24), "dimension 1 is a string");
        expect(parse_error("{" + entry("w", "F32", "6", 0, 24) + "}", 24), "tensor 'w': shape is a number, not an array");
    }
    SECTION("shape overflow") {
        expect(parse_error("{" + entry("w", "F32", "[4294967296,4294967296]", 0, 24) + "}", 24),
               "tensor 'w': shape [4294967296,4294967296] has more than 2^62 elements");
        expect(parse_error("{" + entry("w", "F32", "[18446744073709551615]", 0, 24) + "}", 24), "more than 2^62 elements");
        // 2^62 elements fit, 8 bytes each do not.
        expect(parse_error("{" + entry("w", "F64", "[4611686018427387904]", 0, 24) + "}", 24),
               "needs more than 2^64 bytes but data_offsets span 24");
    }
    SECTION("offsets out of bounds") {
        expect(parse_error("{" + entry("w", "F32", "[2,3]", 0, 28) + "}", 24), "tensor 'w': data_offsets [0, 28] are out of bounds");
        expect(parse_error("{" + entry("w", "F32", "[2,3]", 0, ~uint64_t{0}) + "}", 24), "out of bounds");
        expect(parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,18446744073709551616]}}", 24),
               "data_offsets end is not an integer");
    }
    SECTION("offsets malformed") {
        expect(parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0]}}", 24),
               "tensor 'w': data_offsets must be an array of two integers");
        expect(parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24,24]}}", 24), "array of two integers");
        expect(parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":{}}}", 24), "array of two integers");
        expect(parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[-1,23]}}", 24),
               "tensor 'w': data_offsets begin is negative");
    }
    SECTION("end before begin") {
        expect(parse_error("{" + entry("w", "F32", "[2,3]", 24, 0) + "}", 24), "tensor 'w': data_offsets end 0 is before begin 24");
    }
    SECTION("size mismatch") {
        expect(parse_error("{" + entry("w", "F32", "[2,3]", 0, 20) + "}", 20),
               "tensor 'w': shape [2,3] of F32 needs 24 bytes but data_offsets span 20");
        expect(parse_error("{" + entry("w", "BF16", "[]", 0, 4) + "}", 4), "shape [] of BF16 needs 2 bytes but data_offsets span 4");
    }
    SECTION("overlapping tensors") {
        expect(parse_error("{" + entry("a", "F32", "[4]", 0, 16) + "," + entry("b", "F32", "[4]", 8, 24) + "}", 24),
               "tensor 'b': data_offsets [8, 24] overlap tensor 'a'");
        // Same range twice.
        expect(parse_error("{" + entry("a", "F32", "[6]", 0, 24) + "," + entry("b", "F32", "[6]", 0, 24) + "}", 24),
               "overlap tensor 'a'");
        // An empty tensor inside another one.
        expect(parse_error("{" + w + "," + entry("e", "F32", "[0]", 8, 8) + "}", 24), "tensor 'e': data_offsets [8, 8] overlap tensor 'w'");
    }
    SECTION("gap between tensors") {
        expect(parse_error("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[3]", 12, 24) + "}", 24),
               "tensor 'b': data_offsets [12, 24] leave a gap of 4 bytes after tensor 'a'");
        expect(parse_error("{" + entry("w", "F32", "[2,3]", 4, 28) + "}", 28),
               "gap of 4 bytes after the start of the data section");
    }
    SECTION("tensors do not cover the data section") {
        expect(parse_error("{" + w + "}", 32), "tensors cover 24 bytes but the data section is 32 bytes (8 trailing bytes)");
        expect(parse_error("{}", 1), "tensors cover 0 bytes but the data section is 1 bytes");
    }
    SECTION("metadata not a string map") {
        expect(parse_error("{\"__metadata__\":{\"a\":1}," + w + "}", 24),
               "\"__metadata__\" value of 'a' is a number, not a string");
        expect(parse_error("{\"__metadata__\":[\"a\"]," + w + "}", 24), "\"__metadata__\" is an array, not a map");
        expect(parse_error("{\"__metadata__\":\"x\"," + w + "}", 24), "\"__metadata__\" is a string, not a map");
    }
    SECTION("tensor entry not an object, missing or extra keys") {
        expect(parse_error("{\"w\":[1,2]}", 0), "tensor 'w': header entry is an array, not an object");
        expect(parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24],\"crc\":1}}", 24),
               "tensor 'w': unexpected key 'crc'");
        expect(parse_error("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,24]}}", 24), "tensor 'w': header entry has no \"shape\"");
    }
    SECTION("duplicate keys") {
        expect(parse_error("{" + w + "," + w + "}", 24), "header has duplicate key 'w'");
        expect(parse_error("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}}", 24),
               "header has duplicate key 'dtype'");
        expect(parse_error("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0), "duplicate key 'a'");
        // The same key in different objects is fine.
        REQUIRE_NOTHROW(st::File::parse(
            make_file("{\"__metadata__\":{\"w\":\"x\"}," + entry("w", "F32", "[2,3]", 0, 24) + "}", 24), source));
    }
    SECTION("null metadata is no metadata, as in the reference") {
        const auto f = st::File::parse(make_file("{\"__metadata__\":null," + w + "}", 24), source);
        CHECK(f.metadata().empty());
    }
    SECTION("a very long name is shortened in the message") {
        const std::string name(100000, 'n');
        const auto message = parse_error("{" + entry(name, "F32", "[2,3]", 0, 20) + "}", 20);
        expect(message, "(100000 bytes)");
        CHECK(message.size() < 1000);
        // Shapes too: a million dimensions of 1 (so no overflow) with the wrong size.
        std::string dims = "[";
        for (int i = 0; i < 1000000; ++i) dims += "1,";
        dims += "5]";
        const auto shape_message = parse_error("{" + entry("w", "F32", dims, 0, 4) + "}", 4);
        expect(shape_message, "(1000001 dimensions) of F32 needs 20 bytes but data_offsets span 4");
        CHECK(shape_message.size() < 1000);
        const auto dim_message =
            parse_error("{" + entry("w", "F32", "[\"" + std::string(100000, '7') + "\"]", 0, 4) + "}", 4);
        expect(dim_message, "dimension 0 is a string, not an integer");
        CHECK(dim_message.size() < 1000);
        // nlohmann's own messages quote the token too.
        const auto number_message = parse_error("{" + entry("w", "F32", "[" + std::string(100000, '7') + "]", 0, 4) + "}", 4);
        expect(number_message, "header is not valid JSON");
        CHECK(number_message.size() < 1000);
    }
}

TEST_CASE("safetensors: File::read names the path when the file is missing", "[safetensors]") {
    TempDir dir;
    const auto path = dir.path() / "missing.safetensors";
    CHECK_THROWS_WITH(st::File::read(path), path.string() + ": no such file");
    spit(path, "short");
    CHECK_THROWS_WITH(st::File::read(path), StartsWith(path.string() + ": ") && Contains("too short"));
}

TEST_CASE("io: write_file_atomically replaces a file and leaves nothing behind", "[io]") {
    TempDir dir;
    const auto path = dir.path() / "f.txt";

    SECTION("creates") {
        harmonic::write_file_atomically(path, "hello");
        CHECK(slurp(path) == "hello");
    }
    SECTION("replaces a longer file with a shorter one") {
        spit(path, std::string(10000, 'x'));
        harmonic::write_file_atomically(path, "new");
        CHECK(slurp(path) == "new");
        harmonic::write_file_atomically(path, "");
        CHECK(fs::file_size(path) == 0);
    }
    SECTION("keeps the mode of the file it replaces") {
        spit(path, "old");
        fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
        harmonic::write_file_atomically(path, "new");
        CHECK(slurp(path) == "new");
        CHECK((fs::status(path).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));
    }
    SECTION("binary contents, including NUL bytes") {
        const std::string bytes("a\0b\xff", 4);
        harmonic::write_file_atomically(path, bytes);
        CHECK(slurp(path) == bytes);
    }
    SECTION("a missing folder is reported with the file and the reason") {
        const auto bad = dir.path() / "no-such-folder" / "f.txt";
        CHECK_THROWS_WITH(harmonic::write_file_atomically(bad, "x"),
                          StartsWith(bad.string() + ": ") && Contains("No such file or directory"));
    }
    SECTION("a directory in the way is reported, and the directory survives") {
        fs::create_directory(path);
        CHECK_THROWS_WITH(harmonic::write_file_atomically(path, "x"), StartsWith(path.string() + ": ") && Contains("rename"));
        CHECK(fs::is_directory(path));
    }
    CHECK(leftovers(dir.path()).empty());
}

TEST_CASE("io: read_file_bytes refuses missing, directory and oversized files", "[io]") {
    TempDir dir;
    const auto path = dir.path() / "data.bin";
    spit(path, std::string(100, 'a'));

    CHECK(harmonic::read_file_bytes(path, 100).size() == 100);
    CHECK(harmonic::read_file_bytes(path, 1000) == std::vector<uint8_t>(100, 'a'));
    CHECK_THROWS_WITH(harmonic::read_file_bytes(path, 99),
                      path.string() + ": is 100 bytes, larger than the 99-byte limit");
    CHECK_THROWS_WITH(harmonic::read_file_bytes(dir.path() / "nope", 99), (dir.path() / "nope").string() + ": no such file");
    CHECK_THROWS_WITH(harmonic::read_file_bytes(dir.path(), 99), dir.path().string() + ": is a directory");

    const auto empty = dir.path() / "empty";
    spit(empty, "");
    CHECK(harmonic::read_file_bytes(empty, 0).empty());
    CHECK_THROWS_AS(harmonic::read_file_bytes(dir.path() / "nope", 99), harmonic::Error);
}
