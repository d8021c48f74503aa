// libFuzzer harness for the safetensors reader: any input must either parse or throw
// harmonic::Error. Anything else (a crash, a sanitizer report, another exception type, or an
// accepted file that breaks the format's invariants or does not survive our writer) is a bug.
//
// Each input is used twice:
//  - as a file, byte for byte (finds what the byte-level checks and JSON parsing miss);
//  - as a recipe for a header built from well-formed JSON (random bytes almost never make valid
//    JSON, so without this the offset, shape and contiguity checks are rarely reached).
#include "model/error.h"
#include "model/safetensors.h"

#include "fuzz_common.h"

#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace st = harmonic::safetensors;

namespace {

[[noreturn]] void bug(const char* what) {
    std::fprintf(stderr, "fuzz_safetensors: %s\n", what);
    std::abort();
}

// Invariants of an accepted file, checked independently of the reader's own logic, then the
// round trip: what we accept, our writer must reproduce and we must accept again, identically.
void check_accepted(const st::File& file, uint64_t data_size) {
    std::vector<std::pair<std::size_t, std::size_t>> ranges;
    std::vector<st::TensorToWrite> tensors;
    volatile uint8_t sink = 0;
    for (const auto& name : file.names()) {
        const auto& info = file.info(name);
        const uint8_t* p = file.data(name);
        // Touch every byte the reader claims is in bounds, so ASan checks the claim.
        for (std::size_t i = 0; i < info.nbytes; ++i) sink = static_cast<uint8_t>(sink ^ p[i]);
        if (static_cast<uint64_t>(info.numel()) * st::dtype_size(info.dtype) != info.nbytes) bug("nbytes != numel * size");
        ranges.emplace_back(info.offset, info.nbytes);
        tensors.push_back({name, info.dtype, info.shape, p});
    }
    std::sort(ranges.begin(), ranges.end());
    uint64_t at = 0;
    for (const auto& [offset, nbytes] : ranges) {
        if (offset != at) bug("accepted a gap or an overlap");
        at += nbytes;
    }
    if (at != data_size) bug("accepted tensors that do not cover the data section");

    const auto again = st::File::parse(st::serialize(tensors, file.metadata()), "fuzz-again");
    if (again.names() != file.names() || again.metadata() != file.metadata()) bug("round trip changed names or metadata");
    for (const auto& name : file.names()) {
        const auto& a = file.info(name);
        const auto& b = again.info(name);
        if (a.dtype != b.dtype || a.shape != b.shape || a.nbytes != b.nbytes) bug("round trip changed a tensor");
        if (a.nbytes && std::memcmp(file.data(name), again.data(name), a.nbytes) != 0) bug("round trip changed data");
    }
}

void run(std::vector<uint8_t> bytes) {
    uint64_t data_size = 0;
    if (bytes.size() >= 8) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<std::size_t>(i)];
        data_size = bytes.size() - 8 - std::min<uint64_t>(n, bytes.size() - 8);
    }
    std::optional<st::File> parsed;
    try {
        parsed.emplace(st::File::parse(std::move(bytes), "fuzz"));
    } catch (const harmonic::Error& e) {
        // Refusing the input is the expected outcome for most of them; the message must name
        // the source first and stay short (names, shapes and JSON errors are clipped).
        harmonic_fuzz::check_error("fuzz_safetensors", e, "fuzz");
        return;
    }
    // Outside the try: an Error from here on is a bug, and escaping uncaught reports it.
    check_accepted(*parsed, data_size);
}

// Values chosen to sit on the edges the reader checks.
nlohmann::json pick_number(FuzzedDataProvider& in, uint64_t small_max) {
    switch (in.ConsumeIntegralInRange(0, 9)) {
        case 0: return -1;
        case 1: return 1.5;
        case 2: return uint64_t{1} << 31;
        case 3: return uint64_t{1} << 62;
        case 4: return (uint64_t{1} << 62) + 1;
        case 5: return ~uint64_t{0};
        case 6: return "2";
        default: return in.ConsumeIntegralInRange<uint64_t>(0, small_max);
    }
}

uint64_t nudge(FuzzedDataProvider& in) {
    if (in.ConsumeIntegralInRange(0, 3) != 0) return 0;
    return static_cast<uint64_t>(in.ConsumeIntegralInRange<int64_t>(-1, 1));
}

std::vector<uint8_t> build_from_recipe(FuzzedDataProvider& in) {
    static const char* const dtypes[] = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", ""};
    static const char* const names[] = {"a", "b", "c", "d", "__metadata__"};
    std::string header = "{";
    auto add = [&](const std::string& key, const nlohmann::json& value) {
        header += (header.size() > 1 ? "," : "") + nlohmann::json(key).dump() + ":" + value.dump();
    };

    if (in.ConsumeBool()) {
        nlohmann::json meta = nlohmann::json::object();
        meta["format"] = in.ConsumeBool() ? nlohmann::json("pt") : nlohmann::json(1);
        add("__metadata__", meta);
    }
    uint64_t offset = 0;
    const int count = in.ConsumeIntegralInRange(0, 4);
    for (int t = 0; t < count; ++t) {
        const bool exact = in.ConsumeBool();  // mostly consistent entries, so later checks are reached
        const char* dtype = dtypes[in.ConsumeIntegralInRange<std::size_t>(0, exact ? 9 : 11)];
        nlohmann::json shape = nlohmann::json::array();
        uint64_t numel = 1;
        const int rank = in.ConsumeIntegralInRange(0, 3);
        for (int r = 0; r < rank; ++r) {
            if (exact) {
                const uint64_t d = in.ConsumeIntegralInRange<uint64_t>(0, 4);
                shape.push_back(d);
                numel *= d;
            } else {
                shape.push_back(pick_number(in, 8));
            }
        }
        nlohmann::json entry = nlohmann::json::object();
        entry["dtype"] = dtype;
        entry["shape"] = shape;
        if (exact) {
            std::size_t size = 1;
            try {
                size = st::dtype_size(st::dtype_from_name(dtype));
            } catch (const harmonic::Error&) {
            }
            // Usually contiguous; now and then a byte off (a gap, an overlap, a size mismatch).
            // Unsigned wrap-around at 0 gives an absurd offset, which is worth trying too.
            const uint64_t begin = offset + nudge(in);
            const uint64_t nbytes = numel * size;
            entry["data_offsets"] = {begin, begin + nbytes + nudge(in)};
            offset = begin + nbytes;
        } else {
            entry["data_offsets"] = {pick_number(in, 64), pick_number(in, 64)};
        }
        if (in.ConsumeIntegralInRange(0, 15) == 0) entry["extra"] = 0;
        add(names[in.ConsumeIntegralInRange<std::size_t>(0, 4)], entry);
    }
    header += "}";
    header.append(in.ConsumeIntegralInRange<std::size_t>(0, 8), ' ');

    const uint64_t data_size = offset + nudge(in);
    std::vector<uint8_t> bytes(8 + header.size() + std::min<uint64_t>(data_size, 1 << 12));
    const uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
    std::memcpy(bytes.data() + 8, header.data(), header.size());
    return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    run(std::vector<uint8_t>(data, data + size));
    FuzzedDataProvider recipe(data, size);
    run(build_from_recipe(recipe));
    return 0;
}
