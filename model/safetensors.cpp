#include "model/safetensors.h"

#include "model/error.h"
#include "model/json_strict.h"
#include "model/io.h"
#include "model/utf8.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <set>
#include <string_view>
#include <tuple>

namespace harmonic::safetensors {

// Tensor bytes are copied to and from memory as they are; the format is little-endian.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using json = nlohmann::json;

// The reference implementation's limit: no real header comes near it, and it bounds the memory
// a hostile header length can make us spend on JSON.
constexpr uint64_t max_header_bytes = 100'000'000;
// Real headers nest 3 deep; the bound keeps a "[[[[..." header from costing a deep stack or a
// long chain of allocations anywhere JSON is walked recursively.
constexpr int max_json_depth = 64;
constexpr uint64_t max_numel = uint64_t{1} << 62;
// Files up to this size are read whole; the header checks, not this cap, are the defence.
constexpr uint64_t max_file_bytes = uint64_t{64} << 30;

struct DTypeEntry {
    DType dtype;
    const char* name;
    std::size_t size;
};
constexpr DTypeEntry dtype_table[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1},
};

const DTypeEntry& entry_of(DType dtype) {
    for (const auto& e : dtype_table)
        if (e.dtype == dtype) return e;
    throw Error("safetensors: invalid dtype value " + std::to_string(static_cast<int>(dtype)));
}

std::string known_dtypes() {
    std::string s;
    for (const auto& e : dtype_table) s += std::string(s.empty() ? "" : ", ") + e.name;
    return s;
}

// Everything quoted from the file is clipped: a 100 MB header must not make a 100 MB message.
constexpr std::size_t max_shown = 200;

// Cut at a character boundary, so the message stays valid UTF-8 for the GUI.
std::size_t cut_point(std::string_view s, std::size_t limit = max_shown) {
    std::size_t n = limit;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    return n;
}

std::string clip(std::string s, std::size_t limit = max_shown) {
    if (s.size() <= limit) return s;
    const std::size_t full = s.size();
    s.resize(cut_point(s, limit));
    return s + "... (" + std::to_string(full) + " bytes)";
}

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    std::size_t i = 0;
    for (; i < shape.size() && s.size() <= max_shown; ++i) s += (i ? "," : "") + std::to_string(shape[i]);
    if (i < shape.size()) return s + ",...] (" + std::to_string(shape.size()) + " dimensions)";
    return s + "]";
}

std::string short_dump(const json& v) { return clip(v.dump()); }

// Names and keys from the file are escaped (\xNN): control characters never reach a terminal
// or dialog raw.
std::string quote_name(std::string_view name) {
    if (name.size() <= max_shown) return "'" + utf8::escaped(name) + "'";
    return "'" + utf8::escaped(name.substr(0, cut_point(name))) + "...' (" + std::to_string(name.size()) +
           " bytes)";
}

uint64_t read_le_u64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// Scans the raw header before nlohmann sees it; returns the problem, or "" when there is none.
//  - Depth: no JSON value deeper than the bound is ever built. Brackets inside strings do not count.
//  - NUL: nlohmann's lexer takes a NUL byte for the end of input and ignores what follows, so
//    "{...}\0{...}" would parse here but fail (or read differently) elsewhere. JSON never
//    contains a raw NUL, so refusing it costs nothing.
std::string prescan_header(std::string_view text) {
    if (auto nul = text.find('\0'); nul != std::string_view::npos)
        return "safetensors header contains a NUL byte at offset " + std::to_string(nul);
    int depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_json_depth)
                return "safetensors header JSON is nested more than " + std::to_string(max_json_depth) +
                       " levels deep";
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return {};
}

// A non-negative JSON integer, as nlohmann keeps them: unsigned. Floats ("2.0", "1e3") and
// integers past 2^64 (which nlohmann turns into floats) are refused.
bool as_count(const json& v, uint64_t& out) {
    if (!v.is_number_unsigned()) return false;
    out = v.get<uint64_t>();
    return true;
}

// "an array", "a string", "null": for messages about a value of the wrong kind.
std::string a_type(const json& v) {
    if (v.is_null()) return "null";
    const std::string name = v.type_name();
    return (v.is_array() || v.is_object() ? "an " : "a ") + name;
}

std::string describe_number(const json& v) {
    if (v.is_number_integer() && !v.is_number_unsigned()) return "negative";
    if (v.is_number_float()) return "not an integer";
    return a_type(v) + ", not an integer";
}

TensorInfo parse_tensor(const std::string& source, const std::string& name, const json& entry,
                        uint64_t data_size) {
    const std::string where = "tensor " + quote_name(name) + ": ";
    auto bad = [&](const std::string& problem) { fail_file(source, where + problem); };

    if (!entry.is_object()) bad("header entry is " + a_type(entry) + ", not an object");
    for (const auto& [key, value] : entry.items()) {
        if (key != "dtype" && key != "shape" && key != "data_offsets")
            bad("unexpected key " + quote_name(key) + " in header entry (allowed: dtype, shape, data_offsets)");
    }
    for (const char* key : {"dtype", "shape", "data_offsets"})
        if (!entry.contains(key)) bad(std::string("header entry has no \"") + key + "\"");

    TensorInfo info;
    info.name = name;

    const json& dtype = entry["dtype"];
    if (!dtype.is_string()) bad("dtype is " + a_type(dtype) + ", not a string");
    const auto& dtype_str = dtype.get_ref<const std::string&>();
    const DTypeEntry* de = nullptr;
    for (const auto& e : dtype_table)
        if (dtype_str == e.name) de = &e;
    if (!de) bad("unknown dtype " + quote_name(dtype_str) + " (known: " + known_dtypes() + ")");
    info.dtype = de->dtype;

    const json& shape = entry["shape"];
    if (!shape.is_array()) bad("shape is " + a_type(shape) + ", not an array");
    uint64_t numel = 1;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        uint64_t dim = 0;
        if (!as_count(shape[i], dim))
            bad("shape dimension " + std::to_string(i) + " is " + describe_number(shape[i]) +
                " (" + short_dump(shape[i]) + "); dimensions must be non-negative integers");
        if (dim > max_numel || (dim != 0 && numel > max_numel / dim))
            bad("shape " + short_dump(shape) + " has more than 2^62 elements (overflow)");
        numel *= dim;
        info.shape.push_back(static_cast<int64_t>(dim));
    }

    const json& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2)
        bad("data_offsets must be an array of two integers [begin, end], not " +
            (offsets.is_array() ? "an array of " + std::to_string(offsets.size()) : a_type(offsets)));
    uint64_t begin = 0, end = 0;
    for (int i = 0; i < 2; ++i) {
        uint64_t& out = i == 0 ? begin : end;
        if (!as_count(offsets[i], out))
            bad(std::string("data_offsets ") + (i == 0 ? "begin" : "end") + " is " + describe_number(offsets[i]) +
                " (" + short_dump(offsets[i]) + "); offsets must be non-negative integers");
    }
    if (end < begin)
        bad("data_offsets end " + std::to_string(end) + " is before begin " + std::to_string(begin));
    if (end > data_size)
        bad("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] are out of bounds: the data section is " +
            std::to_string(data_size) + " bytes");

    // numel <= 2^62 and sizes <= 8 could still overflow 64 bits, so compare by division first.
    const uint64_t span = end - begin;
    const bool fits = numel <= std::numeric_limits<uint64_t>::max() / de->size;
    if (!fits || numel * de->size != span)
        bad("shape " + shape_text(info.shape) + " of " + de->name + " needs " +
            (fits ? std::to_string(numel * de->size) : "more than 2^64") + " bytes but data_offsets span " +
            std::to_string(span));

    info.offset = static_cast<std::size_t>(begin);
    info.nbytes = static_cast<std::size_t>(span);
    return info;
}

// The checked header of a file holding `tensors` (laid out in name order): the 8-byte length and
// the padded JSON, plus the tensors in that order with their byte sizes.
struct Layout {
    std::string head;  // length prefix + header JSON + padding
    std::vector<const TensorToWrite*> order;
    std::vector<std::size_t> sizes;
    uint64_t data_bytes = 0;
};

Layout layout_checked(const std::string& target, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata) {
    auto bad = [&](const std::string& problem) { fail_file(target, problem); };

    Layout layout;
    std::vector<const TensorToWrite*>& sorted = layout.order;
    sorted.reserve(tensors.size());
    for (const auto& t : tensors) sorted.push_back(&t);
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });
    // ordered_json: "__metadata__" first, then tensors in name order, keys as the reference writes them.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) {
        auto& m = header["__metadata__"] = nlohmann::ordered_json::object();
        for (const auto& [k, v] : metadata) m[k] = v;
    }
    std::vector<std::size_t>& sizes = layout.sizes;
    uint64_t offset = 0;
    for (std::size_t i = 0; i < sorted.size(); ++i) {
        const TensorToWrite& t = *sorted[i];
        if (t.name == "__metadata__") bad("a tensor cannot be named \"__metadata__\"");
        if (i > 0 && sorted[i - 1]->name == t.name) bad("two tensors are named " + quote_name(t.name));
        uint64_t numel = 1;
        for (int64_t d : t.shape) {
            if (d < 0) bad("tensor " + quote_name(t.name) + ": shape " + shape_text(t.shape) + " has a negative dimension");
            const auto dim = static_cast<uint64_t>(d);
            if (dim != 0 && numel > max_numel / dim)
                bad("tensor " + quote_name(t.name) + ": shape " + shape_text(t.shape) + " has more than 2^62 elements");
            numel *= dim;
        }
        const std::size_t elem = dtype_size(t.dtype);
        if (numel > std::numeric_limits<std::size_t>::max() / elem)
            bad("tensor " + quote_name(t.name) + ": too large to hold in memory");
        const std::size_t nbytes = static_cast<std::size_t>(numel) * elem;
        if (nbytes > 0 && t.data == nullptr) bad("tensor " + quote_name(t.name) + ": no data");
        if (offset > std::numeric_limits<std::size_t>::max() - 64 - nbytes)
            bad("tensor " + quote_name(t.name) + ": the tensors together are too large to hold in memory");
        nlohmann::ordered_json e = nlohmann::ordered_json::object();
        e["dtype"] = dtype_name(t.dtype);
        e["shape"] = t.shape;
        e["data_offsets"] = {offset, offset + nbytes};
        header[t.name] = std::move(e);
        sizes.push_back(nbytes);
        offset += nbytes;
    }

    std::string text;
    try {
        text = header.dump();
    } catch (const nlohmann::json::exception& e) {
        // dump() refuses names and metadata that are not UTF-8; readers would refuse them too.
        bad(std::string("cannot encode the header (names and metadata must be UTF-8): ") + e.what());
    }
    // The reference pads with spaces so the data section starts 8-byte aligned.
    text.append((8 - text.size() % 8) % 8, ' ');

    uint64_t n = text.size();
    layout.head.resize(8);
    for (int i = 0; i < 8; ++i) layout.head[static_cast<std::size_t>(i)] = static_cast<char>(n >> (8 * i));
    layout.head += text;
    layout.data_bytes = offset;
    return layout;
}

}  // namespace

std::size_t dtype_size(DType dtype) { return entry_of(dtype).size; }

std::string dtype_name(DType dtype) { return entry_of(dtype).name; }

DType dtype_from_name(const std::string& name) {
    for (const auto& e : dtype_table)
        if (name == e.name) return e.dtype;
    throw Error("unknown safetensors dtype " + quote_name(name) + " (known: " + known_dtypes() + ")");
}

int64_t TensorInfo::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

File File::read(const std::filesystem::path& file) {
    // Mapped, not read: the tensors' bytes are paged in as they are used, and a pipe or device
    // (no size to check the header against, maybe endless) is refused by MappedFile::open.
    auto mapped = MappedFile::open(file, max_file_bytes);
    const uint8_t* data = mapped->data();
    const std::size_t size = mapped->size();
    File f = parse_view(mapped, data, size, file.string());
    f.mapped_ = std::move(mapped);
    return f;
}

File File::parse(std::vector<uint8_t> bytes, const std::string& source) {
    auto owner = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
    return parse_view(owner, owner->data(), owner->size(), source);
}

File File::parse_view(std::shared_ptr<const void> owner, const uint8_t* bytes, std::size_t byte_count,
                      const std::string& source) {
    auto bad = [&](const std::string& problem) { fail_file(source, problem); };

    const uint64_t size = byte_count;
    if (size < 8)
        bad("is " + std::to_string(size) + " bytes, too short for a safetensors file (at least 8 needed)");
    const uint64_t n = read_le_u64(bytes);
    // Every bound on N is checked before N is used to size anything.
    if (n > size - 8)
        bad("safetensors header length " + std::to_string(n) + " exceeds the file size (" + std::to_string(size) +
            " bytes)");
    if (n > max_header_bytes)
        bad("safetensors header length " + std::to_string(n) + " exceeds the " + std::to_string(max_header_bytes) +
            "-byte limit");
    if (n < 2) bad("safetensors header length " + std::to_string(n) + " is too small for a JSON object");

    const auto* hbegin = reinterpret_cast<const char*>(bytes + 8);
    const std::string_view text(hbegin, static_cast<std::size_t>(n));
    // nlohmann skips a byte order mark; the reference (serde_json) refuses one.
    if (text.substr(0, 3) == "\xEF\xBB\xBF")
        bad("safetensors header starts with a UTF-8 byte order mark (EF BB BF), which the format does not allow");
    if (const std::string problem = prescan_header(text); !problem.empty()) bad(problem);

    json header;
    std::string duplicate;
    try {
        auto parsed = parse_json_noting_duplicates(text);
        header = std::move(parsed.value);
        duplicate = std::move(parsed.duplicate_key);
    } catch (const json::exception& e) {
        // nlohmann quotes the last token read, which can be most of the header.
        bad("safetensors header is not valid JSON: " + utf8::escaped(clip(e.what(), 2 * max_shown)));
    }
    if (!duplicate.empty()) bad("safetensors header has duplicate key " + quote_name(duplicate));
    if (!header.is_object())
        bad("safetensors header is a JSON " + std::string(header.type_name()) + ", not an object");

    File f;
    f.source_ = source;
    f.data_start_ = static_cast<std::size_t>(8 + n);
    const uint64_t data_size = size - 8 - n;

    for (const auto& [key, value] : header.items()) {
        if (key == "__metadata__") {
            // The reference reads it as Option<map>, so null means "no metadata" there too.
            if (value.is_null()) continue;
            if (!value.is_object())
                bad("\"__metadata__\" is " + a_type(value) + ", not a map of string to string");
            for (const auto& [mk, mv] : value.items()) {
                if (!mv.is_string())
                    bad("\"__metadata__\" value of " + quote_name(mk) + " is " + a_type(mv) +
                        ", not a string (metadata must map string to string)");
                f.metadata_[mk] = mv.get<std::string>();
            }
            continue;
        }
        f.tensors_.emplace(key, parse_tensor(source, key, value, data_size));
    }

    // Each byte of the data section belongs to exactly one tensor: sort by offsets and walk.
    std::vector<const TensorInfo*> order;
    order.reserve(f.tensors_.size());
    for (const auto& [name, info] : f.tensors_) order.push_back(&info);
    std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
        return std::tie(a->offset, a->nbytes, a->name) < std::tie(b->offset, b->nbytes, b->name);
    });
    uint64_t covered = 0;
    const TensorInfo* prev = nullptr;
    for (const TensorInfo* t : order) {
        const std::string range = "[" + std::to_string(t->offset) + ", " + std::to_string(t->offset + t->nbytes) + "]";
        if (t->offset < covered)
            bad("tensor " + quote_name(t->name) + ": data_offsets " + range + " overlap tensor " + quote_name(prev->name) +
                ", which ends at " + std::to_string(covered));
        if (t->offset > covered)
            bad("tensor " + quote_name(t->name) + ": data_offsets " + range + " leave a gap of " +
                std::to_string(t->offset - covered) + " bytes after " +
                (prev ? "tensor " + quote_name(prev->name) : std::string("the start of the data section")));
        covered = t->offset + t->nbytes;
        prev = t;
    }
    if (covered != data_size)
        bad("tensors cover " + std::to_string(covered) + " bytes but the data section is " + std::to_string(data_size) +
            " bytes (" + std::to_string(data_size - covered) + " trailing bytes)");

    f.owner_ = std::move(owner);
    f.bytes_ = bytes;
    return f;
}

std::vector<std::string> File::names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (const auto& [name, info] : tensors_) out.push_back(name);
    return out;
}

bool File::contains(const std::string& name) const { return tensors_.count(name) != 0; }

const TensorInfo& File::info(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) fail_file(source_, "no tensor named " + quote_name(name));
    return it->second;
}

const uint8_t* File::data(const std::string& name) const { return bytes_ + data_start_ + info(name).offset; }

void File::release(const std::string& name) const {
    if (mapped_) mapped_->release(data(name), info(name).nbytes);
}

void write(const std::filesystem::path& file, const std::vector<TensorToWrite>& tensors,
           const std::map<std::string, std::string>& metadata) {
    // Streamed: the tensors go from their own memory to the file, never through a copy of it all.
    const Layout layout = layout_checked(file.string(), tensors, metadata);
    DurableFile out(file);
    out.write(layout.head);
    for (std::size_t i = 0; i < layout.order.size(); ++i)
        if (layout.sizes[i] > 0)
            out.write(std::string_view(static_cast<const char*>(layout.order[i]->data), layout.sizes[i]));
    out.commit();
}

std::vector<uint8_t> serialize(const std::vector<TensorToWrite>& tensors,
                               const std::map<std::string, std::string>& metadata) {
    const Layout layout = layout_checked("safetensors", tensors, metadata);
    std::vector<uint8_t> out(layout.head.size() + layout.data_bytes);
    std::memcpy(out.data(), layout.head.data(), layout.head.size());
    uint8_t* dst = out.data() + layout.head.size();
    for (std::size_t i = 0; i < layout.order.size(); ++i) {
        if (layout.sizes[i] > 0) std::memcpy(dst, layout.order[i]->data, layout.sizes[i]);
        dst += layout.sizes[i];
    }
    return out;
}

}  // namespace harmonic::safetensors
