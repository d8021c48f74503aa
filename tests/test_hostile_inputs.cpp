// Hostile inputs for every torch-free reader: files made to crash, hang or exhaust memory.
// Each must be refused with a harmonic::Error whose message starts with the file and names the
// problem, stays short, and costs no more memory than the file itself. Cases the fuzzers found
// (tests/fuzz/, docs/RELIABILITY.md) are here as regression tests, marked "fuzz:".
// Complements test_safetensors.cpp, test_config.cpp, test_tokenizer.cpp and test_text.cpp (the
// ordinary malformed-file rules are there, not repeated here).
#include <catch2/catch.hpp>

#include "model/config.h"
#include "model/corpus.h"
#include "model/error.h"
#include "model/io.h"
#include "model/safetensors.h"
#include "model/text.h"
#include "model/tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define HARMONIC_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HARMONIC_TEST_ASAN 1
#endif
#endif

namespace fs = std::filesystem;
namespace st = harmonic::safetensors;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using nlohmann::json;

namespace {

const fs::path fixtures = fs::path(HARMONIC_FIXTURES);

struct TempDir {
    fs::path path;
    TempDir() {
        static std::atomic<int> counter{0};
        path = fs::temp_directory_path() /
               ("harmonic_test_hostile_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    fs::path write(const std::string& name, const std::string& bytes) const {
        const fs::path p = path / name;
        std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        return p;
    }
};

std::string slurp(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string le64(uint64_t n) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>(n >> (8 * i));
    return s;
}

// How a call ended: "error" (harmonic::Error, with its message), "accepted", "bad_alloc",
// "other" (another exception), or "signal N" (it crashed).
struct Outcome {
    std::string kind;
    std::string message;
};

Outcome outcome_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const harmonic::Error& e) {
        return {"error", e.what()};
    } catch (const std::bad_alloc&) {
        return {"bad_alloc", {}};
    } catch (const std::exception& e) {
        return {"other", e.what()};
    }
    return {"accepted", {}};
}

// Runs fn in a child process whose address space may grow by at most `budget` bytes, so an
// allocation sized by a lie in the file fails there (std::bad_alloc) instead of succeeding
// quietly. Under AddressSanitizer, whose shadow memory needs terabytes of address space, it
// runs here without the limit (the sanitizer build still checks every other property).
Outcome outcome_within(uint64_t budget, const std::function<void()>& fn) {
#ifdef HARMONIC_TEST_ASAN
    (void)budget;
    return outcome_of(fn);
#else
    auto address_space_now = [] {
        std::ifstream statm("/proc/self/statm");
        uint64_t pages = 0;
        statm >> pages;
        return pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    };
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(fds[0]);
        const rlim_t limit = static_cast<rlim_t>(address_space_now() + budget);
        const struct rlimit rl {limit, limit};
        ::setrlimit(RLIMIT_AS, &rl);
        const Outcome o = outcome_of(fn);
        const std::string out = o.kind + "\n" + o.message;
        const char* p = out.data();
        std::size_t left = out.size();
        while (left > 0) {
            const ssize_t n = ::write(fds[1], p, left);
            if (n <= 0) break;
            p += n;
            left -= static_cast<std::size_t>(n);
        }
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) return {"signal " + std::to_string(WTERMSIG(status)), {}};
    const auto nl = text.find('\n');
    if (nl == std::string::npos) return {"no report from the child", text};
    return {text.substr(0, nl), text.substr(nl + 1)};
#endif
}

constexpr uint64_t MiB = uint64_t{1} << 20;

// The message of the harmonic::Error that `fn` throws; fails the test for anything else.
std::string error_of(const std::function<void()>& fn) {
    const Outcome o = outcome_of(fn);
    INFO("outcome: " << o.kind << " " << o.message.substr(0, 300));
    REQUIRE(o.kind == "error");
    return o.message;
}

// Every message: the file first, then the problem, and short (the GUI shows it in a dialog).
void check_message(const std::string& message, const fs::path& file, const std::string& problem) {
    INFO(message.substr(0, 600));
    CHECK_THAT(message, StartsWith(file.string() + ": "));
    CHECK_THAT(message, Contains(problem));
    CHECK(message.size() < 1200);
}

const json& base_tokenizer() {
    static const json base = json::parse(slurp(fixtures / "tokenizer" / "tokenizer.json"));
    return base;
}

// "[[[...[1]...]]]" nested `levels` deep, as text (never as a json value in this process).
std::string nested(std::size_t levels) { return std::string(levels, '[') + "1" + std::string(levels, ']'); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// safetensors

TEST_CASE("hostile safetensors: a few bytes claiming a 2^60-byte header allocate nothing", "[hostile][safetensors]") {
    TempDir dir;
    const fs::path file = dir.write("liar.safetensors", le64(uint64_t{1} << 60) + "{}");
    const Outcome o = outcome_within(64 * MiB, [&] { st::File::read(file); });
    INFO(o.kind << " " << o.message);
    REQUIRE(o.kind == "error");
    check_message(o.message, file, "safetensors header length 1152921504606846976 exceeds the file size (10 bytes)");

    // 150 MB claimed by a 1 KB file: over the 100 MB limit too, but the file size refuses it first.
    const fs::path kilo = dir.write("kilo.safetensors", le64(150'000'000) + std::string(1016, ' '));
    const Outcome k = outcome_within(64 * MiB, [&] { st::File::read(kilo); });
    REQUIRE(k.kind == "error");
    check_message(k.message, kilo, "header length 150000000 exceeds the file size (1024 bytes)");
}

TEST_CASE("hostile safetensors: a real file cut at every length is refused, never read past its end",
          "[hostile][safetensors]") {
    TempDir dir;
    const std::string whole = slurp(fixtures / "safetensors" / "reference.safetensors");
    REQUIRE(whole.size() > 100);
    REQUIRE_NOTHROW(st::File::read(fixtures / "safetensors" / "reference.safetensors"));
    uint64_t header = 0;
    for (int i = 7; i >= 0; --i) header = (header << 8) | static_cast<unsigned char>(whole[static_cast<std::size_t>(i)]);
    for (std::size_t length = 0; length < whole.size(); ++length) {
        const fs::path file = dir.write("cut.safetensors", whole.substr(0, length));
        const std::string message = error_of([&] { st::File::read(file); });
        INFO("cut at " << length);
        if (length < 8)
            check_message(message, file, "too short for a safetensors file");
        else if (length < 8 + header)
            check_message(message, file, "exceeds the file size");
        else
            check_message(message, file, "out of bounds");  // offsets past the end of the data
    }
}

TEST_CASE("hostile safetensors: every byte of a real header changed is refused or still consistent",
          "[hostile][safetensors]") {
    const std::string whole = slurp(fixtures / "safetensors" / "reference.safetensors");
    uint64_t header = 0;
    for (int i = 7; i >= 0; --i) header = (header << 8) | static_cast<unsigned char>(whole[static_cast<std::size_t>(i)]);
    int refused = 0, accepted = 0;
    for (std::size_t at = 0; at < 8 + header; ++at) {
        for (unsigned char value : {0x00, 0x22, 0x5B, 0x7D, 0x39, 0xFF}) {
            std::vector<uint8_t> bytes(whole.begin(), whole.end());
            if (bytes[at] == value) continue;
            bytes[at] = value;
            const Outcome o = outcome_of([&] { st::File::parse(bytes, "mutated.safetensors"); });
            INFO("byte " << at << " = " << int(value) << ": " << o.kind << " " << o.message);
            REQUIRE((o.kind == "error" || o.kind == "accepted"));
            if (o.kind == "error") {
                ++refused;
                CHECK_THAT(o.message, StartsWith("mutated.safetensors: "));
                CHECK(o.message.size() < 1200);
            } else {
                ++accepted;  // e.g. a changed character inside a metadata value
            }
        }
    }
    CHECK(refused > accepted);
}

TEST_CASE("hostile safetensors: a device or pipe is refused, not read forever", "[hostile][safetensors]") {
    // /dev/zero claims a header of length 0 forever; reading it whole would never end.
    if (!fs::exists("/dev/zero")) return;
    const Outcome o = outcome_within(64 * MiB, [] { st::File::read("/dev/zero"); });
    INFO(o.kind << " " << o.message);
    REQUIRE(o.kind == "error");
    check_message(o.message, "/dev/zero", "not a regular file");
}

// ---------------------------------------------------------------------------------------------
// config.json

TEST_CASE("hostile config.json: deep nesting is refused without a stack overflow", "[hostile][config]") {
    TempDir dir;
    // fuzz: a nested value in an error message went through nlohmann's recursive dump().
    const fs::path in_field = dir.write("config.json", "{\"model_type\":\"harmonic\",\"d_model\":" + nested(1'000'000) + "}");
    check_message(error_of([&] { harmonic::ModelConfig::load(in_field); }), in_field,
                  "field 'd_model' has the wrong type (an array)");
    const fs::path in_timescales =
        dir.write("timescales.json", "{\"model_type\":\"harmonic\",\"harmonic\":{\"timescales\":[1," + nested(1'000'000) + "]}}");
    check_message(error_of([&] { harmonic::ModelConfig::load(in_timescales); }), in_timescales,
                  "field 'timescales' has the wrong type (an array)");
    const fs::path top = dir.write("top.json", nested(100'000));
    check_message(error_of([&] { harmonic::ModelConfig::load(top); }), top, "expected a JSON object");
    const fs::path unclosed = dir.write("unclosed.json", std::string(4'000'000, '{'));
    check_message(error_of([&] { harmonic::ModelConfig::load(unclosed); }), unclosed, "not valid JSON");
}

TEST_CASE("hostile config.json: huge strings are clipped in messages", "[hostile][config]") {
    TempDir dir;
    const std::string big(10'000'000, 'x');
    const fs::path type = dir.write("type.json", "{\"model_type\":\"" + big + "\"}");
    check_message(error_of([&] { harmonic::ModelConfig::load(type); }), type, "unknown model_type 'xxx");
    const fs::path key = dir.write("key.json", "{\"model_type\":\"mamba\",\"" + big + "\":1}");
    check_message(error_of([&] { harmonic::ModelConfig::load(key); }), key, "(10000000 bytes)");
    const fs::path value = dir.write("value.json", "{\"model_type\":\"mamba\",\"d_model\":\"" + big + "\"}");
    check_message(error_of([&] { harmonic::ModelConfig::load(value); }), value, "field 'd_model' has the wrong type");
    const fs::path routing = dir.write("routing.json", "{\"model_type\":\"harmonic\",\"harmonic\":{\"routing\":\"" + big + "\"}}");
    check_message(error_of([&] { harmonic::ModelConfig::load(routing); }), routing, "harmonic.routing");
    // An unterminated string: nlohmann's message quotes everything it read.
    const fs::path open_string = dir.write("open.json", "{\"model_type\":\"" + big);
    check_message(error_of([&] { harmonic::ModelConfig::load(open_string); }), open_string, "not valid JSON");
    // Over the 16 MB limit: refused from the size.
    const fs::path huge = dir.write("huge.json", "{\"model_type\":\"" + std::string(17'000'000, 'x') + "\"}");
    check_message(error_of([&] { harmonic::ModelConfig::load(huge); }), huge, "larger than the 16777216-byte limit");
}

TEST_CASE("hostile config.json: numbers that are not sizes", "[hostile][config]") {
    TempDir dir;
    auto load_error = [&](const std::string& name, const std::string& text) {
        const fs::path file = dir.write(name, text);
        return std::pair{file, error_of([&] { harmonic::ModelConfig::load(file); })};
    };
    // fuzz: floats went through a plain cast to int64 (undefined behaviour for 1e300; 64.5 became 64).
    for (const char* number : {"1e300", "-1e300", "64.5", "64.0", "18446744073709551616"}) {
        const auto [file, message] = load_error("float.json", std::string("{\"model_type\":\"harmonic\",\"d_model\":") + number + "}");
        check_message(message, file, "field 'd_model' has the wrong type (");
        CHECK_THAT(message, Contains("expected an integer"));
    }
    {
        const auto [file, message] = load_error("big.json", "{\"model_type\":\"harmonic\",\"vocab_size\":9223372036854775808}");
        check_message(message, file, "field 'vocab_size' is out of range (9223372036854775808)");
    }
    // JSON has no NaN or infinity; numbers past a double are a parse error.
    for (const char* number : {"NaN", "Infinity", "-Infinity", "1e400"}) {
        const auto [file, message] =
            load_error("nan.json", std::string("{\"model_type\":\"transformer\",\"transformer\":{\"rope_theta\":") + number + "}}");
        check_message(message, file, "not valid JSON");
    }
    // Sizes out of range, each named.
    const std::vector<std::pair<std::string, std::string>> sizes = {
        {"{\"model_type\":\"harmonic\",\"d_model\":1099511627776}", "d_model: must be in [1, 65536], got 1099511627776"},
        {"{\"model_type\":\"harmonic\",\"d_model\":-9223372036854775808}", "d_model: must be in [1, 65536]"},
        {"{\"model_type\":\"harmonic\",\"vocab_size\":-5}", "vocab_size: must be in [2, 10000000], got -5"},
        {"{\"model_type\":\"harmonic\",\"harmonic\":{\"timescales\":[4,1e308]}}", "each tau must be in [1, 1e7]"},
        // fuzz: parameter_count() overflowed int64 (undefined behaviour) for huge d_ff / d_inner.
        {"{\"model_type\":\"transformer\",\"transformer\":{\"d_ff\":9223372036854775807}}", "transformer.d_ff: must be at most 16777216"},
        {"{\"model_type\":\"mamba\",\"mamba\":{\"d_inner\":4611686018427387904}}", "mamba.d_inner: must be at most 16777216"},
        {"{\"model_type\":\"mamba\",\"mamba\":{\"dt_rank\":1099511627776}}", "mamba.dt_rank: must be at most 65536"},
        {"{\"model_type\":\"transformer\",\"transformer\":{\"rope_theta\":1e308,\"context\":-1}}", "transformer.context: must be at least 1"},
    };
    for (const auto& [text, problem] : sizes) {
        const auto [file, message] = load_error("size.json", text);
        check_message(message, file, problem);
    }
}

TEST_CASE("hostile config values built in memory: NaN, infinities, deep nesting", "[hostile][config]") {
    using harmonic::ModelConfig;
    auto error = [](const json& j) { return error_of([&] { ModelConfig::from_json(j, "mem.json"); }); };
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    check_message(error({{"model_type", "harmonic"}, {"d_model", nan}}), "mem.json", "field 'd_model' has the wrong type");
    check_message(error({{"model_type", "harmonic"}, {"d_model", inf}}), "mem.json", "expected an integer");
    check_message(error({{"model_type", "harmonic"}, {"harmonic", {{"timescales", {4.0, nan}}}}}), "mem.json", "each tau");
    check_message(error({{"model_type", "harmonic"}, {"harmonic", {{"timescales", json::array({inf})}}}}), "mem.json", "each tau");
    // fuzz: an infinite rope_theta was accepted, saved as null and then did not load.
    check_message(error({{"model_type", "transformer"}, {"transformer", {{"rope_theta", inf}}}}), "mem.json",
                  "transformer.rope_theta: must be a finite number > 1");
    check_message(error({{"model_type", "transformer"}, {"transformer", {{"rope_theta", nan}}}}), "mem.json", "rope_theta");
    // Nesting in memory, far past what a recursive dump() survives.
    json deep = 1;
    for (int i = 0; i < 1'000'000; ++i) deep = json::array({std::move(deep)});
    json j = {{"model_type", "harmonic"}};
    j["vocab_size"] = std::move(deep);
    check_message(error(j), "mem.json", "field 'vocab_size' has the wrong type (an array)");
}

TEST_CASE("hostile config: a config that validates always resolves, counts and saves", "[hostile][config]") {
    // The largest sizes validate() allows: parameter_count() must not overflow, and the saved
    // (resolved) config must load again.
    TempDir dir;
    for (const char* family : {"harmonic", "transformer", "mamba"}) {
        json j = {{"model_type", family}, {"d_model", 65536}, {"vocab_size", 10'000'000}, {"tokenizer", "bpe"}};
        if (std::string(family) == "harmonic") j["harmonic"] = {{"timescales", std::vector<double>(8, 1e7)}, {"blocks", 64}};
        if (std::string(family) == "transformer") j["transformer"] = {{"layers", 256}, {"heads", 1}, {"d_ff", 0}};
        if (std::string(family) == "mamba") j["mamba"] = {{"layers", 256}, {"d_state", 256}, {"d_conv", 16}, {"d_inner", 0}};
        const auto c = harmonic::ModelConfig::from_json(j, family);
        INFO(family);
        CHECK(c.parameter_count() > 0);
        c.save(dir.path / "config.json");
        CHECK(harmonic::ModelConfig::load(dir.path / "config.json").to_json() == c.resolved().to_json());
        // The automatic sizes of the smallest width fit the bounds too.
        j["d_model"] = 2;
        if (std::string(family) == "transformer") j["transformer"]["heads"] = 1;
        const auto small = harmonic::ModelConfig::from_json(j, family);
        small.save(dir.path / "small.json");
        CHECK(harmonic::ModelConfig::load(dir.path / "small.json").to_json() == small.resolved().to_json());
    }
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json

TEST_CASE("hostile tokenizer.json: deep nesting is refused without a stack overflow", "[hostile][tokenizer]") {
    TempDir dir;
    // Splices a deep value (as text) in place of a marker in the fixture.
    auto with_deep = [&](const std::string& name, const std::function<void(json&)>& mark) {
        json j = base_tokenizer();
        mark(j);
        std::string text = j.dump();
        const auto at = text.find("\"@deep@\"");
        REQUIRE(at != std::string::npos);
        text.replace(at, 8, nested(1'000'000));
        return dir.write(name, text);
    };
    // fuzz: model.type nested a million deep crashed in dump() while writing the message.
    const fs::path type = with_deep("type.json", [](json& j) { j["model"]["type"] = "@deep@"; });
    check_message(error_of([&] { harmonic::load_bpe_tokenizer(type); }), type, "model.type is an array, expected \"BPE\"");
    const fs::path merge = with_deep("merge.json", [](json& j) { j["model"]["merges"].push_back("@deep@"); });
    check_message(error_of([&] { harmonic::load_bpe_tokenizer(merge); }), merge,
                  "model.merges[543] is an array, expected \"a b\" or [\"a\", \"b\"]");
    const fs::path id = with_deep("id.json", [](json& j) { j["model"]["vocab"]["the"] = "@deep@"; });
    check_message(error_of([&] { harmonic::load_bpe_tokenizer(id); }), id, "model.vocab[\"the\"] is an array, not an integer id");
    const fs::path normalizer = with_deep("normalizer.json", [](json& j) { j["normalizer"] = "@deep@"; });
    check_message(error_of([&] { harmonic::load_bpe_tokenizer(normalizer); }), normalizer,
                  "normalizer an array is not supported");
    const fs::path top = dir.write("top.json", nested(100'000));
    check_message(error_of([&] { harmonic::load_bpe_tokenizer(top); }), top, "expected a JSON object at the top level");
}

TEST_CASE("hostile tokenizer.json: huge strings are clipped in messages", "[hostile][tokenizer]") {
    TempDir dir;
    const std::string big(10'000'000, 'm');
    auto edited = [&](const std::string& name, const std::function<void(json&)>& edit) {
        json j = base_tokenizer();
        edit(j);
        return dir.write(name, j.dump());
    };
    const fs::path merge = edited("merge.json", [&](json& j) { j["model"]["merges"].push_back(big); });
    check_message(error_of([&] { harmonic::load_bpe_tokenizer(merge); }), merge, "expected two tokens separated by one space");
    const fs::path token = edited("token.json", [&](json& j) { j["model"]["merges"].push_back(json::array({"e", big})); });
    check_message(error_of([&] { harmonic::load_bpe_tokenizer(token); }), token, "(10000002 bytes) is not in model.vocab");
    const fs::path key = edited("key.json", [&](json& j) { j["model"]["vocab"][big] = -1; });
    check_message(error_of([&] { harmonic::load_bpe_tokenizer(key); }), key, "ids must be >= 0");
    const fs::path value = edited("value.json", [&](json& j) { j["model"]["vocab"]["the"] = big; });
    check_message(error_of([&] { harmonic::load_bpe_tokenizer(value); }), value, "not an integer id");
    const fs::path type = edited("type.json", [&](json& j) { j["pre_tokenizer"]["type"] = big; });
    check_message(error_of([&] { harmonic::load_bpe_tokenizer(type); }), type, "is not supported");
    const fs::path open_string = dir.write("open.json", "{\"model\":{\"type\":\"" + big);
    check_message(error_of([&] { harmonic::load_bpe_tokenizer(open_string); }), open_string, "invalid JSON");
}

TEST_CASE("hostile tokenizer.json: a huge id in a small file allocates nothing", "[hostile][tokenizer]") {
    TempDir dir;
    // fuzz: one id of 2^24 - 1 (the old upper bound) made the loader size two tables by it:
    // about 640 MB for a 20 KB file.
    json vocab_id = base_tokenizer();
    vocab_id["model"]["vocab"]["zzz"] = (1 << 24) - 1;
    const fs::path file = dir.write("vocab_id.json", vocab_id.dump());
    const Outcome o = outcome_within(128 * MiB, [&] { harmonic::load_bpe_tokenizer(file); });
    INFO(o.kind << " " << o.message);
    REQUIRE(o.kind == "error");
    check_message(o.message, file, "model.vocab[\"zzz\"] is 16777215, beyond the");
    CHECK_THAT(o.message, Contains("ids must be dense"));

    json added_id = base_tokenizer();
    added_id["added_tokens"].push_back({{"id", 5'000'000}, {"content", "<big>"}});
    const fs::path added = dir.write("added_id.json", added_id.dump());
    const Outcome a = outcome_within(128 * MiB, [&] { harmonic::load_bpe_tokenizer(added); });
    REQUIRE(a.kind == "error");
    check_message(a.message, added, "added_tokens[2].id is 5000000, beyond the");

    // Ids up to the file's size still load (sparse vocabularies with a few holes are real). The
    // added token then follows model.vocab's 801 entries, as tokenizers numbers it.
    json holes = base_tokenizer();
    holes["model"]["vocab"]["<late>"] = 5000;
    holes["added_tokens"][1]["id"] = 801;
    const fs::path late = dir.write("late.json", holes.dump());
    CHECK(harmonic::load_bpe_tokenizer(late)->vocab_size() == 5001);
}

TEST_CASE("hostile tokenizer.json: merges of missing tokens and duplicated ids, in every form", "[hostile][tokenizer]") {
    TempDir dir;
    auto edited_error = [&](const std::function<void(json&)>& edit) {
        json j = base_tokenizer();
        edit(j);
        const fs::path file = dir.write("edited.json", j.dump());
        return std::pair{file, error_of([&] { harmonic::load_bpe_tokenizer(file); })};
    };
    {  // Pair form, left side missing (the string form is in test_tokenizer.cpp).
        const auto [file, message] = edited_error([](json& j) { j["model"]["merges"].push_back(json::array({"nope", "e"})); });
        check_message(message, file, "model.merges[543]: token \"nope\" is not in model.vocab");
    }
    {  // Pair form, merged token missing.
        const auto [file, message] = edited_error([](json& j) { j["model"]["merges"].push_back(json::array({"~", "~"})); });
        check_message(message, file, "merged token \"~~\" is not in model.vocab");
    }
    {  // A merge whose halves are empty strings.
        const auto [file, message] = edited_error([](json& j) { j["model"]["merges"].push_back(json::array({"", "e"})); });
        check_message(message, file, "token \"\" is not in model.vocab");
    }
    {  // The same id for a byte token and a special token.
        const auto [file, message] = edited_error([](json& j) { j["model"]["vocab"]["<dup>"] = j["model"]["vocab"]["a"]; });
        check_message(message, file, "is used by both");
    }
    {  // Every vocabulary entry with the same id.
        const auto [file, message] = edited_error([](json& j) {
            json& vocab = j["model"]["vocab"];
            for (auto it = vocab.begin(); it != vocab.end(); ++it) *it = 7;
        });
        check_message(message, file, "model.vocab: id 7 is used by both");
    }
}

// ---------------------------------------------------------------------------------------------
// texts

TEST_CASE("hostile texts: one 10 MB line, valid and with a bad byte at its end", "[hostile][text]") {
    TempDir dir;
    std::string line(10 * MiB, 'a');
    const fs::path ok = dir.write("line.txt", line);
    CHECK(harmonic::read_text_file(ok).size() == 10 * MiB);
    line.back() = '\xC3';  // a lead byte with nothing after it
    const fs::path bad = dir.write("bad_line.txt", line);
    check_message(error_of([&] { harmonic::read_text_file(bad); }), bad,
                  "not valid UTF-8 at line 1, column 10485760 (byte 10485759): truncated sequence at end of input");
}

TEST_CASE("hostile texts: invalid UTF-8 at every position is reported at its line and column", "[hostile][text]") {
    TempDir dir;
    // Lines of different lengths (CRLF too: the CR is a column of its line), then one bad byte
    // placed at each offset in turn: across the eight-byte fast path and the line boundaries.
    const std::string text = "ab\r\ncdefghijk\n\nlmnopqrstuvwxyz0123\n4";
    for (std::size_t at = 0; at <= text.size(); ++at) {
        std::string bytes = text;
        bytes.insert(at, "\xFF");
        const fs::path file = dir.write("bad.txt", bytes);
        const std::string before = text.substr(0, at);
        const auto line = 1 + std::count(before.begin(), before.end(), '\n');
        const auto nl = before.rfind('\n');
        const auto column = nl == std::string::npos ? at + 1 : at - nl;
        INFO("bad byte at " << at);
        check_message(error_of([&] { harmonic::read_text_file(file); }), file,
                      "not valid UTF-8 at line " + std::to_string(line) + ", column " + std::to_string(column) + " (byte " +
                          std::to_string(at) + "): invalid byte 0xFF");
    }
}

TEST_CASE("hostile texts: each kind of invalid UTF-8, past the binary sample", "[hostile][text]") {
    TempDir dir;
    const std::string prefix = std::string(9000, 'x') + "\n";  // past the 8 KiB the binary check samples
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"\xC0\xAF", "overlong encoding: lead byte 0xC0"},
        {"\xE0\x80\xAF", "overlong encoding 0xE0 0x80"},
        {"\xED\xA0\x80", "UTF-16 surrogate"},
        {"\xF4\x90\x80\x80", "code point above U+10FFFF"},
        {"\xF5\x80\x80\x80", "invalid byte 0xF5"},
        {"\x80", "unexpected continuation byte 0x80"},
        {"\xE2\x82x", "invalid continuation byte 0x78 after lead byte 0xE2"},
    };
    for (const auto& [bad, problem] : cases) {
        const fs::path file = dir.write("kinds.txt", prefix + "ok " + bad + " rest\n");
        check_message(error_of([&] { harmonic::read_text_file(file); }), file, "at line 2, column 4 (byte 9004): " + problem);
    }
}

TEST_CASE("hostile texts: binary files of common kinds are named as binary", "[hostile][text]") {
    TempDir dir;
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"image.png", std::string("\x89PNG\r\n\x1A\n\0\0\0\rIHDR", 16)},
        {"program.elf", std::string("\x7F" "ELF\x02\x01\x01\0\0\0\0\0", 12)},
        {"utf16.txt", std::string("\xFF\xFEh\0e\0l\0l\0o\0", 12)},  // UTF-16LE "hello"
        {"model.safetensors", slurp(fixtures / "safetensors" / "reference.safetensors")},
    };
    for (const auto& [name, bytes] : cases) {
        const fs::path file = dir.write(name, bytes);
        check_message(error_of([&] { harmonic::read_text_file(file); }), file, "looks like a binary file (NUL byte at offset");
    }
    // Control bytes without a NUL.
    const fs::path controls = dir.write("controls.bin", std::string(40, '\x01') + std::string(60, 'a'));
    check_message(error_of([&] { harmonic::read_text_file(controls); }), controls, "over 30% control bytes");
    // Whitespace only is text, and so is a lone BOM.
    CHECK(harmonic::read_text_file(dir.write("spaces.txt", " \n\t\r\n")) == " \n\t\r\n");
    CHECK(harmonic::read_text_file(dir.write("bom.txt", "\xEF\xBB\xBF")) == "\xEF\xBB\xBF");
}

TEST_CASE("hostile texts: an endless device is refused after its first bytes", "[hostile][text]") {
    if (!fs::exists("/dev/zero")) return;
    // Not a regular file, so it is streamed; without an early binary check it would be read up
    // to the 2 GiB limit before being refused.
    const Outcome o = outcome_within(256 * MiB, [] { harmonic::read_text_file("/dev/zero"); });
    INFO(o.kind << " " << o.message);
    REQUIRE(o.kind == "error");
    check_message(o.message, "/dev/zero", "looks like a binary file (NUL byte at offset 0)");
    // A text stream over the limit is still refused by the limit.
    harmonic::TextReadOptions small;
    small.max_bytes = 100;
    check_message(error_of([&] { harmonic::read_text_file("/dev/zero", small); }), "/dev/zero", "larger than the");
}

TEST_CASE("hostile texts: empty files and files that vanish", "[hostile][text]") {
    TempDir dir;
    const fs::path empty = dir.write("empty.txt", "");
    harmonic::TextReadOptions any;
    any.require_utf8 = false;
    check_message(error_of([&] { harmonic::read_text_file(empty, any); }), empty, "is empty");
    // A dangling symlink is a missing file, named by the link's path.
    const fs::path link = dir.path / "link.txt";
    fs::create_symlink(dir.path / "gone.txt", link);
    check_message(error_of([&] { harmonic::read_text_file(link); }), link, "no such file");
    // Unreadable (skipped as root, who can read anything).
    if (::geteuid() != 0) {
        const fs::path locked = dir.write("locked.txt", "secret\n");
        fs::permissions(locked, fs::perms::none);
        check_message(error_of([&] { harmonic::read_text_file(locked); }), locked, "cannot be read");
    }
}

TEST_CASE("hostile texts: whether a corpus document is binary does not depend on the block size", "[hostile][text]") {
    // fuzz (fuzz_corpus): with 5-byte blocks, a text starting with control characters was refused
    // as binary from its first block alone, while the default blocks accepted it.
    TempDir dir;
    std::string text = "\x01\x02\x03\x04\x05\x06\x07";  // a few control bytes, then plain text
    for (int i = 0; i < 200; ++i) text += "an ordinary line of text\n";
    dir.write("doc.txt", text);
    const auto bytes = harmonic::make_byte_tokenizer();
    for (int64_t block : {5, 64, 8 << 20}) {
        INFO("block " << block);
        harmonic::CorpusOptions options;
        options.cache_dir = dir.path / ("cache" + std::to_string(block));
        options.block_bytes = block;
        const auto corpus = harmonic::open_corpus({dir.path / "doc.txt"}, *bytes, "bytes", options);
        CHECK(corpus.tokens.size() == static_cast<int64_t>(text.size()));
    }
}

TEST_CASE("hostile texts: a big corpus reports its progress while it is tokenized", "[hostile][text]") {
    TempDir dir;
    std::string text;
    for (int i = 0; i < 4000; ++i) text += "line " + std::to_string(i) + " of a long document\n";
    dir.write("big.txt", text);
    const auto bytes = harmonic::make_byte_tokenizer();
    harmonic::CorpusOptions options;
    options.cache_dir = dir.path / "cache";
    options.block_bytes = 10000;
    options.progress_interval = std::chrono::milliseconds(0);
    std::vector<std::string> news;
    options.on_message = [&](const std::string& line) { news.push_back(line); };
    const auto corpus = harmonic::open_corpus({dir.path / "big.txt"}, *bytes, "bytes", options);
    CHECK(corpus.tokens.size() == static_cast<int64_t>(text.size()));
    int progress_lines = 0;
    for (const auto& line : news) progress_lines += line.rfind("tokenized ", 0) == 0;
    CHECK(progress_lines >= static_cast<int>(text.size() / 10000));
    CHECK_THAT(news.at(news.size() - 2), Contains("(100%)"));
}

// ---------------------------------------------------------------------------------------------
// Inputs that are not regular files, and the durable writer (issue 22).

namespace {

// Runs fn in a child (as outcome_within) that SIGALRM ends after 20 s: a reader that blocks
// forever fails the test ("signal 14") instead of hanging it.
Outcome outcome_before_deadline(const std::function<void()>& fn) {
    return outcome_within(256 * MiB, [&] {
        struct Deadline {
            Deadline() { ::alarm(20); }
            ~Deadline() { ::alarm(0); }
        } deadline;
        fn();
    });
}

// Resident memory of this process in bytes (VmRSS); unused under ASan, whose shadow memory
// makes resident sizes meaningless.
[[maybe_unused]] uint64_t resident_bytes() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
    return 0;
}

}  // namespace

TEST_CASE("hostile inputs: a FIFO with no writer is refused at once, naming the file", "[hostile][fifo]") {
    TempDir dir;
    const fs::path fifo = dir.path / "fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    const std::vector<std::pair<std::string, std::function<void()>>> readers = {
        {"read_file_bytes", [&] { harmonic::read_file_bytes(fifo, 1 << 20); }},
        {"MappedFile::open", [&] { harmonic::MappedFile::open(fifo, 1 << 20); }},
        {"safetensors::File::read", [&] { st::File::read(fifo); }},
        {"ModelConfig::load", [&] { harmonic::ModelConfig::load(fifo); }},
        {"read_text_blocks", [&] {
             uint64_t checksum = harmonic::kFnvOffset;
             harmonic::read_text_blocks(fifo, true, 1 << 20, checksum, [](std::string_view) {});
         }},
        {"TokenStream::open", [&] { harmonic::TokenStream::open(fifo); }},
        {"require_regular_file", [&] { harmonic::require_regular_file(fifo); }},
    };
    for (const auto& [name, read] : readers) {
        INFO(name);
        const Outcome o = outcome_before_deadline(read);
        REQUIRE(o.kind == "error");
        check_message(o.message, fifo, "is not a regular file (a FIFO or pipe)");
    }
    // A checkpoint's tokenizer.json as a FIFO: the BPE loader is never reached.
    const fs::path ckpt = dir.path / "ckpt";
    fs::create_directories(ckpt);
    REQUIRE(::mkfifo((ckpt / "tokenizer.json").c_str(), 0600) == 0);
    const Outcome t = outcome_before_deadline([&] { harmonic::load_tokenizer("bpe", ckpt); });
    REQUIRE(t.kind == "error");
    check_message(t.message, ckpt / "tokenizer.json", "is not a regular file");
    // Devices too (they may never end), and a folder.
    if (fs::exists("/dev/null")) check_message(error_of([] { harmonic::read_file_bytes("/dev/null", 10); }), "/dev/null", "a device");
    check_message(error_of([&] { harmonic::read_file_bytes(dir.path, 10); }), dir.path, "is a directory");
}

TEST_CASE("io: a DurableFile is all or nothing, and every failure names the file", "[hostile][io]") {
    TempDir dir;
    const fs::path file = dir.path / "out.csv";
    auto entries = [&] {
        std::vector<std::string> names;
        for (const auto& e : fs::directory_iterator(dir.path)) names.push_back(e.path().filename().string());
        std::sort(names.begin(), names.end());
        return names;
    };
    {
        harmonic::DurableFile out(file);
        out.write("a,b\n");
        out.write(std::string(9 << 20, 'x'));  // past the buffer: written through
        CHECK(out.bytes_written() == 4 + (9u << 20));
        CHECK_FALSE(fs::exists(file));  // nothing visible before commit
    }
    CHECK(entries().empty());  // abandoned: the temporary file is gone too
    {
        harmonic::DurableFile out(file);
        out.write("0123456789\n");
        out.write_at(0, "AB");
        out.commit();
        CHECK_THROWS_AS(out.write("late"), harmonic::Error);
    }
    CHECK(slurp(file) == "AB23456789\n");
    CHECK(entries() == std::vector<std::string>{"out.csv"});
    // A folder that does not exist: the message names the file.
    check_message(error_of([&] { harmonic::write_file_atomically(dir.path / "no" / "x.csv", "x"); }),
                  dir.path / "no" / "x.csv", "cannot create temporary file");
    // A staging folder leaves nothing behind unless committed, and replaces an old folder whole.
    const fs::path out_dir = dir.path / "figures";
    {
        harmonic::StagingFolder staging(out_dir);
        std::ofstream(staging.path() / "a.csv") << "half";
    }
    CHECK_FALSE(fs::exists(out_dir));
    CHECK(entries() == std::vector<std::string>{"out.csv"});
    fs::create_directories(out_dir);
    std::ofstream(out_dir / "old.csv") << "old";
    {
        harmonic::StagingFolder staging(out_dir);
        std::ofstream(staging.path() / "new.csv") << "new";
        staging.commit();
    }
    CHECK(fs::exists(out_dir / "new.csv"));
    CHECK_FALSE(fs::exists(out_dir / "old.csv"));
    CHECK(entries() == std::vector<std::string>{"figures", "out.csv"});
}

TEST_CASE("hostile safetensors: a large file is mapped, not read into memory", "[hostile][safetensors][memory]") {
#ifndef HARMONIC_TEST_ASAN
    TempDir dir;
    // One 256 MB U8 tensor of zeros, as a sparse file: reading it whole would cost 256 MB.
    constexpr uint64_t tensor_bytes = 256 * MiB;
    std::string header = R"({"w":{"dtype":"U8","shape":[)" + std::to_string(tensor_bytes) + R"(],"data_offsets":[0,)" +
                         std::to_string(tensor_bytes) + "]}}";
    header.append((8 - header.size() % 8) % 8, ' ');
    const fs::path file = dir.write("big.safetensors", le64(header.size()) + header);
    fs::resize_file(file, fs::file_size(file) + tensor_bytes);
    const Outcome o = outcome_within(1024 * MiB, [&] {
        const uint64_t before = resident_bytes();
        const st::File f = st::File::read(file);
        volatile uint8_t first = f.data("w")[0];  // one page touched
        (void)first;
        const uint64_t grew = resident_bytes() - std::min(before, resident_bytes());
        if (grew > 32 * MiB) throw harmonic::Error("resident memory grew by " + std::to_string(grew) + " bytes");
        if (f.info("w").nbytes != tensor_bytes) throw harmonic::Error("wrong size");
    });
    INFO(o.kind << " " << o.message);
    CHECK(o.kind == "accepted");
#endif
}
