// GPT-2 style byte-level BPE, read from a Hugging Face tokenizer.json and checked token for
// token against the reference `tokenizers` package (tests/fixtures/tokenizer).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <queue>
#include <system_error>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "model/error.h"
#include "model/tokenizer.h"

namespace harmonic {

namespace {

using nlohmann::json;

constexpr uint64_t kMaxFileBytes = uint64_t(256) << 20;
// Ids index dense tables; a stray huge id must not allocate gigabytes.
constexpr int64_t kMaxId = int64_t(1) << 24;
constexpr size_t kMaxCacheEntries = size_t(1) << 16;
constexpr size_t kMaxCachedPieceBytes = 128;

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order, so every token is printable text in vocab.json.
struct ByteMap {
    std::array<char32_t, 256> to_cp{};
    std::array<int16_t, 324> to_byte{};  // code point -> byte, -1 when not in the table

    ByteMap() {
        to_byte.fill(-1);
        char32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            to_cp[b] = printable ? char32_t(b) : next++;
            to_byte[to_cp[b]] = static_cast<int16_t>(b);
        }
    }
};

const ByteMap& byte_map() {
    static const ByteMap map;
    return map;
}

void append_utf8(std::string& out, char32_t cp) {
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

// Length of the strictly valid UTF-8 sequence at s[i] (RFC 3629: no overlongs, surrogates or
// code points > U+10FFFF), 0 when invalid. Kept here rather than shared with text.cpp because
// this runs per character on the encode path and must not compute line numbers.
size_t utf8_length(std::string_view s, size_t i) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
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
    for (size_t k = 1; k <= need; ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return 0;
    }
    return need + 1;
}

// Decodes one code point of a string nlohmann already validated as UTF-8.
char32_t next_code_point(std::string_view s, size_t& i) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    const size_t len = b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
    char32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (size_t k = 1; k < len && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    i += len;
    return cp;
}

struct CodeDeleter {
    void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct MatchDataDeleter {
    void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
using Code = std::unique_ptr<pcre2_code, CodeDeleter>;
using MatchData = std::unique_ptr<pcre2_match_data, MatchDataDeleter>;

std::string pcre2_message(int code) {
    PCRE2_UCHAR buf[256];
    if (pcre2_get_error_message(code, buf, sizeof buf) < 0) return "error " + std::to_string(code);
    return reinterpret_cast<const char*>(buf);
}

// tokenizers runs its regexes with Oniguruma, whose \s is exactly Unicode White_Space; PCRE2's
// UCP \s also matches U+180E (Mongolian vowel separator), which would split differently. So
// \s and \S are spelled out as that set. Escapes and character classes are tracked so that
// "\\s" (a backslash then s) and "[^\s\p{L}]" are rewritten correctly.
std::string onig_whitespace(const std::string& pattern) {
    static const std::string ws = R"(\t\n\x{0B}\f\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
    if (pattern.find("\\Q") != std::string::npos) return pattern;  // quoted text: leave it alone
    std::string out;
    bool in_class = false;
    size_t class_start = 0;
    for (size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            const char e = pattern[i + 1];
            if (e == 's') {
                out += in_class ? ws : "[" + ws + "]";
            } else if (e == 'S' && !in_class) {
                out += "[^" + ws + "]";
            } else {
                out += c;
                out += e;
            }
            ++i;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            class_start = i;
        } else if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
            const size_t end = pattern.find(":]", i + 2);
            if (end != std::string::npos) {
                out.append(pattern, i, end + 2 - i);
                i = end + 1;
                continue;
            }
        } else if (in_class && c == ']') {
            // A ']' right after '[' or '[^' is a literal member, not the end of the class.
            const bool first = i == class_start + 1 || (i == class_start + 2 && pattern[class_start + 1] == '^');
            if (!first) in_class = false;
        }
        out += c;
    }
    return out;
}

Code compile(const std::string& pattern, bool literal, const std::filesystem::path& file, const std::string& where) {
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    const uint32_t options = literal ? (PCRE2_UTF | PCRE2_LITERAL) : (PCRE2_UTF | PCRE2_UCP);
    const std::string rewritten = literal ? pattern : onig_whitespace(pattern);
    Code code(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(), options, &err,
                            &err_offset, nullptr));
    if (!code) {
        // Report the error against the pattern as written in the file, not the rewritten one.
        pcre2_code_free(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &err,
                                      &err_offset, nullptr));
        fail_file(file, where + ": regex does not compile at offset " + std::to_string(err_offset) + ": " +
                            pcre2_message(err));
    }
    // JIT is several times faster; without it (unsupported CPU) the interpreter still works.
    pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE);
    return code;
}

// Calls emit(begin, end) for consecutive pieces covering s: regex matches and the gaps between
// them are both pieces (the "Isolated" split of tokenizers). Invalid UTF-8 cannot go through a
// UTF regex, so each invalid byte becomes a piece of its own and the valid runs between them
// are split by the regex; nothing throws and no byte is lost.
template <class Emit>
void split_isolated(const pcre2_code* re, pcre2_match_data* md, std::string_view s, Emit&& emit) {
    size_t i = 0;
    while (i < s.size()) {
        size_t run_end = i;
        while (run_end < s.size()) {
            const size_t len = utf8_length(s, run_end);
            if (len == 0) break;
            run_end += len;
        }
        if (run_end > i) {
            const std::string_view run = s.substr(i, run_end - i);
            // `gap` is where the next unmatched stretch starts; an empty match splits nothing.
            size_t gap = 0, search = 0;
            while (search < run.size()) {
                const int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(run.data()), run.size(), search,
                                           PCRE2_NO_UTF_CHECK, md, nullptr);
                if (rc < 0) break;  // no match, or a resource limit: the rest is one piece
                const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
                const size_t mb = ov[0], me = ov[1];
                if (me <= mb) {
                    if (mb >= run.size()) break;
                    search = mb + utf8_length(run, mb);
                    continue;
                }
                if (mb > gap) emit(i + gap, i + mb);
                emit(i + mb, i + me);
                gap = search = me;
            }
            if (gap < run.size()) emit(i + gap, i + run.size());
        }
        if (run_end < s.size()) {
            emit(run_end, run_end + 1);
            i = run_end + 1;
        } else {
            i = run_end;
        }
    }
}

struct MergeInfo {
    int32_t rank;
    int32_t new_id;
};

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;
using PieceCache = std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>>;

// Built field by field by load() below (hence the public members); immutable afterwards except
// for the piece cache, which is guarded by its mutex so one tokenizer can serve several threads.
class BpeTokenizer final : public Tokenizer {
public:
    std::filesystem::path file;
    StringMap vocab;                           // byte-mapped token text -> id
    std::vector<std::string> bytes_of;         // id -> raw bytes ("" for unused ids)
    std::array<int32_t, 256> byte_id{};        // id of each single-byte token
    std::unordered_map<uint64_t, MergeInfo> merges;
    std::vector<Code> splits;                  // Split pre-tokenizers before ByteLevel
    Code byte_level_re;                        // null when use_regex is false
    bool add_prefix_space = false;
    bool ignore_merges = false;
    int64_t size = 0;

    Encoding encode(std::string_view text) const override {
        Encoding out;
        out.ids.reserve(text.size() / 3 + 1);
        out.byte_offsets.reserve(text.size() / 3 + 1);
        std::vector<MatchData> md;
        md.reserve(splits.size() + 1);
        for (const auto& re : splits) md.emplace_back(pcre2_match_data_create_from_pattern(re.get(), nullptr));
        MatchData byte_md(byte_level_re ? pcre2_match_data_create_from_pattern(byte_level_re.get(), nullptr) : nullptr);
        std::string prefixed;
        std::vector<int32_t> scratch;
        stage(0, text, 0, md, byte_md.get(), prefixed, scratch, out);
        return out;
    }

    std::string decode(const std::vector<int64_t>& ids) const override {
        std::string out;
        for (int64_t id : ids) out += bytes_of[checked(id)];
        return out;
    }

    std::string token_bytes(int64_t id) const override { return bytes_of[checked(id)]; }
    int64_t vocab_size() const override { return size; }
    std::string kind() const override { return "bpe"; }

private:
    mutable std::mutex cache_mutex_;
    mutable PieceCache cache_;

    size_t checked(int64_t id) const {
        if (id < 0 || id >= size) {
            throw Error(file.string() + ": token id " + std::to_string(id) + " is outside [0, " +
                        std::to_string(size) + ")");
        }
        return static_cast<size_t>(id);
    }

    // Applies Split stage k to `s` (which starts at input offset `base`), then the ByteLevel stage.
    void stage(size_t k, std::string_view s, int64_t base, std::vector<MatchData>& md, pcre2_match_data* byte_md,
               std::string& prefixed, std::vector<int32_t>& scratch, Encoding& out) const {
        if (s.empty()) return;
        if (k < splits.size()) {
            split_isolated(splits[k].get(), md[k].get(), s, [&](size_t b, size_t e) {
                stage(k + 1, s.substr(b, e - b), base + static_cast<int64_t>(b), md, byte_md, prefixed, scratch, out);
            });
            return;
        }
        // tokenizers prepends the space to every piece the earlier stages produced, not only
        // to the start of the text; the inserted byte maps to the piece's first input byte.
        std::string_view piece = s;
        int64_t shift = 0;
        if (add_prefix_space && s.front() != ' ') {
            prefixed.assign(1, ' ');
            prefixed.append(s);
            piece = prefixed;
            shift = 1;
        }
        auto emit_piece = [&](size_t b, size_t e) {
            bpe(piece.substr(b, e - b), scratch);
            int64_t t = static_cast<int64_t>(b);
            for (int32_t id : scratch) {
                out.ids.push_back(id);
                out.byte_offsets.push_back(base + std::max<int64_t>(0, t - shift));
                t += static_cast<int64_t>(bytes_of[static_cast<size_t>(id)].size());
            }
        };
        if (byte_level_re) {
            split_isolated(byte_level_re.get(), byte_md, piece, emit_piece);
        } else {
            emit_piece(0, piece.size());
        }
    }

    void bpe(std::string_view piece, std::vector<int32_t>& ids) const {
        const bool cacheable = piece.size() <= kMaxCachedPieceBytes;
        if (cacheable) {
            std::lock_guard lock(cache_mutex_);
            if (auto it = cache_.find(piece); it != cache_.end()) {
                ids = it->second;
                return;
            }
        }
        merge(piece, ids);
        if (cacheable) {
            std::lock_guard lock(cache_mutex_);
            // Bounded: a long document of unique pieces must not grow memory without limit.
            if (cache_.size() >= kMaxCacheEntries) cache_.clear();
            cache_.emplace(std::string(piece), ids);
        }
    }

    // Merges by rank exactly as tokenizers' Word::merge_all does: a heap of (rank, position)
    // candidates, stale ones skipped, so long pieces cost O(n log n) and ties go leftmost first.
    void merge(std::string_view piece, std::vector<int32_t>& ids) const {
        ids.clear();
        if (ignore_merges) {
            std::string mapped;
            for (unsigned char b : piece) append_utf8(mapped, byte_map().to_cp[b]);
            if (auto it = vocab.find(mapped); it != vocab.end()) {
                ids.push_back(it->second);
                return;
            }
        }
        const size_t n = piece.size();
        if (n == 1) {
            ids.push_back(byte_id[static_cast<unsigned char>(piece[0])]);
            return;
        }
        struct Symbol {
            int32_t id;
            int32_t prev;
            int32_t next;
            bool alive;
        };
        std::vector<Symbol> sym(n);
        for (size_t i = 0; i < n; ++i) {
            sym[i] = {byte_id[static_cast<unsigned char>(piece[i])], static_cast<int32_t>(i) - 1,
                      i + 1 < n ? static_cast<int32_t>(i + 1) : -1, true};
        }
        struct Candidate {
            int32_t rank;
            int32_t pos;
            int32_t new_id;
            bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
        };
        std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
        auto find = [&](int32_t a, int32_t b) -> const MergeInfo* {
            auto it = merges.find((uint64_t(uint32_t(a)) << 32) | uint32_t(b));
            return it == merges.end() ? nullptr : &it->second;
        };
        for (size_t i = 0; i + 1 < n; ++i) {
            if (const MergeInfo* m = find(sym[i].id, sym[i + 1].id)) {
                heap.push({m->rank, static_cast<int32_t>(i), m->new_id});
            }
        }
        while (!heap.empty()) {
            const Candidate top = heap.top();
            heap.pop();
            Symbol& left = sym[static_cast<size_t>(top.pos)];
            if (!left.alive || left.next < 0) continue;
            Symbol& right = sym[static_cast<size_t>(left.next)];
            const MergeInfo* m = find(left.id, right.id);
            if (!m || m->new_id != top.new_id) continue;  // stale: a neighbour changed since
            left.id = top.new_id;
            right.alive = false;
            left.next = right.next;
            if (right.next >= 0) sym[static_cast<size_t>(right.next)].prev = top.pos;
            if (left.prev >= 0) {
                if (const MergeInfo* p = find(sym[static_cast<size_t>(left.prev)].id, left.id)) {
                    heap.push({p->rank, left.prev, p->new_id});
                }
            }
            if (left.next >= 0) {
                if (const MergeInfo* q = find(left.id, sym[static_cast<size_t>(left.next)].id)) {
                    heap.push({q->rank, top.pos, q->new_id});
                }
            }
        }
        for (int32_t i = 0; i >= 0; i = sym[static_cast<size_t>(i)].next) ids.push_back(sym[static_cast<size_t>(i)].id);
    }
};

std::string read_capped(const std::filesystem::path& file) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto st = fs::status(file, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) fail_file(file, "cannot be accessed (" + ec.message() + ")");
    if (!fs::exists(st)) fail_file(file, "no such file");
    if (fs::is_directory(st)) fail_file(file, "is a directory");
    const uint64_t size = fs::file_size(file, ec);
    if (ec) fail_file(file, "cannot be read (" + ec.message() + ")");
    if (size > kMaxFileBytes) {
        fail_file(file, "is " + std::to_string(size >> 20) + " MB, larger than the 256 MB limit for a tokenizer");
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) fail_file(file, "cannot be opened");
    std::string data(static_cast<size_t>(size), '\0');
    in.read(data.data(), static_cast<std::streamsize>(size));
    if (static_cast<uint64_t>(in.gcount()) != size) fail_file(file, "read error");
    return data;
}

// Text quoted from the file into a message is clipped: a megabyte-long token must not make a
// megabyte-long message (cut at a character boundary, so the message stays valid UTF-8).
std::string clip(std::string s, size_t limit = 200) {
    if (s.size() <= limit) return s;
    const size_t full = s.size();
    size_t n = limit;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    s.resize(n);
    return s + "... (" + std::to_string(full) + " bytes)";
}

std::string json_quoted(const std::string& s) { return clip(json(s).dump(-1, ' ', false, json::error_handler_t::replace)); }

// A value for a message. dump() recurses once per level of nesting, and a 256 MB file can nest
// a hundred million levels deep: a value with nested arrays or objects is named by its type.
std::string shown(const json& v) {
    if (v.is_structured()) {
        for (const auto& element : v)
            if (element.is_structured()) return v.is_array() ? "an array" : "an object";
    }
    return clip(v.dump(-1, ' ', false, json::error_handler_t::replace));
}

// Ids are validated once here so the encode path can index tables without checks.
int64_t read_id(const json& v, const std::filesystem::path& file, const std::string& where) {
    if (!v.is_number_integer()) fail_file(file, where + " is " + shown(v) + ", not an integer id");
    if (v.is_number_unsigned()) {
        const uint64_t u = v.get<uint64_t>();
        if (u >= static_cast<uint64_t>(kMaxId)) {
            fail_file(file, where + " is " + std::to_string(u) + ", above the limit of " + std::to_string(kMaxId - 1));
        }
        return static_cast<int64_t>(u);
    }
    const int64_t id = v.get<int64_t>();
    if (id < 0) fail_file(file, where + " is " + std::to_string(id) + ": ids must be >= 0");
    if (id >= kMaxId) fail_file(file, where + " is " + std::to_string(id) + ", above the limit of " + std::to_string(kMaxId - 1));
    return id;
}

bool flag(const json& obj, const char* key, bool fallback, const std::filesystem::path& file, const std::string& where) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) fail_file(file, where + "." + key + " must be true or false");
    return it->get<bool>();
}

void parse_pre_tokenizer(const json& pre, BpeTokenizer& t, const std::filesystem::path& file) {
    if (pre.is_null()) {
        fail_file(file, "pre_tokenizer is null; a byte-level BPE needs a ByteLevel pre_tokenizer (GPT-2 style)");
    }
    std::vector<std::pair<const json*, std::string>> list;
    if (!pre.is_object()) fail_file(file, "pre_tokenizer must be an object");
    const auto type = pre.value("type", std::string());
    if (type == "Sequence") {
        auto it = pre.find("pretokenizers");
        if (it == pre.end() || !it->is_array()) fail_file(file, "pre_tokenizer.pretokenizers must be a list");
        for (size_t i = 0; i < it->size(); ++i) {
            list.emplace_back(&(*it)[i], "pre_tokenizer.pretokenizers[" + std::to_string(i) + "]");
        }
    } else {
        list.emplace_back(&pre, "pre_tokenizer");
    }
    bool have_byte_level = false;
    for (size_t i = 0; i < list.size(); ++i) {
        const json& p = *list[i].first;
        const std::string& where = list[i].second;
        if (!p.is_object() || !p.contains("type") || !p["type"].is_string()) {
            fail_file(file, where + " must be an object with a \"type\"");
        }
        const std::string ptype = p["type"].get<std::string>();
        if (ptype == "ByteLevel") {
            // Splits after ByteLevel would see the remapped characters; no known tokenizer does that.
            if (i + 1 != list.size()) fail_file(file, where + ": ByteLevel must be the last pre-tokenizer");
            have_byte_level = true;
            t.add_prefix_space = flag(p, "add_prefix_space", true, file, where);
            if (flag(p, "use_regex", true, file, where)) t.byte_level_re = compile(kGpt2Pattern, false, file, where);
        } else if (ptype == "Split") {
            const json* pattern = p.contains("pattern") ? &p["pattern"] : nullptr;
            std::string regex;
            bool literal = false;
            if (pattern && pattern->is_object() && pattern->contains("Regex") && (*pattern)["Regex"].is_string()) {
                regex = (*pattern)["Regex"].get<std::string>();
            } else if (pattern && pattern->is_object() && pattern->contains("String") &&
                       (*pattern)["String"].is_string()) {
                regex = (*pattern)["String"].get<std::string>();
                literal = true;
            } else {
                fail_file(file, where + ".pattern must be {\"Regex\": ...} or {\"String\": ...}");
            }
            const std::string behavior = p.value("behavior", std::string());
            if (behavior != "Isolated") {
                fail_file(file, where + ": Split behavior " + json_quoted(behavior) + " is not supported (only \"Isolated\")");
            }
            if (flag(p, "invert", false, file, where)) fail_file(file, where + ": Split with invert=true is not supported");
            t.splits.push_back(compile(regex, literal, file, where + ".pattern"));
        } else {
            fail_file(file, where + ": pre-tokenizer type " + json_quoted(ptype) +
                                " is not supported (expected ByteLevel, optionally after Split)");
        }
    }
    if (!have_byte_level) fail_file(file, "pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
}

std::string after_bracket(const std::string& what) {
    // nlohmann prefixes "[json.exception.parse_error.101] "; the user needs only the rest.
    const size_t p = what.find("] ");
    return p == std::string::npos ? what : what.substr(p + 2);
}

std::unique_ptr<Tokenizer> load(const std::filesystem::path& file) {
    const std::string data = read_capped(file);
    json root;
    try {
        root = json::parse(data);
    } catch (const json::exception& e) {
        fail_file(file, "invalid JSON: " + clip(after_bracket(e.what()), 400));
    }
    if (!root.is_object()) fail_file(file, "expected a JSON object at the top level");
    auto t = std::make_unique<BpeTokenizer>();
    t->file = file;

    auto mit = root.find("model");
    if (mit == root.end() || !mit->is_object()) fail_file(file, "has no \"model\" object");
    const json& model = *mit;
    const std::string type = model.contains("type") && model["type"].is_string() ? model["type"].get<std::string>() : "";
    if (type != "BPE") {
        fail_file(file, "model.type is " + (model.contains("type") ? shown(model["type"]) : std::string("missing")) +
                            ", expected \"BPE\"");
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        auto it = model.find(key);
        if (it != model.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty())) {
            fail_file(file, std::string("model.") + key + " is not supported by byte-level BPE");
        }
    }
    t->ignore_merges = flag(model, "ignore_merges", false, file, "model");

    // A normalizer would change the text before tokenization; silently skipping it would give
    // ids the model never saw, so refuse instead.
    if (auto it = root.find("normalizer"); it != root.end() && !it->is_null()) {
        const bool empty_sequence = it->is_object() && it->value("type", std::string()) == "Sequence" &&
                                    it->contains("normalizers") && (*it)["normalizers"].is_array() &&
                                    (*it)["normalizers"].empty();
        if (!empty_sequence) {
            fail_file(file, "normalizer " + (it->is_object() && it->contains("type") ? shown((*it)["type"]) : shown(*it)) +
                                " is not supported (byte-level BPE without a normalizer only)");
        }
    }
    auto pit = root.find("pre_tokenizer");
    if (pit == root.end()) fail_file(file, "has no \"pre_tokenizer\"; expected a ByteLevel pre_tokenizer");
    parse_pre_tokenizer(*pit, *t, file);

    auto vit = model.find("vocab");
    if (vit == model.end() || !vit->is_object()) fail_file(file, "model.vocab must be an object {token: id}");
    if (vit->empty()) fail_file(file, "model.vocab is empty");
    std::vector<const std::string*> token_of;  // id -> vocab key, for duplicate messages
    // Tables are indexed by id (bytes_of holds a string per id, ~40 bytes with token_of). Writing
    // down N tokens takes more than N bytes, so an id at or past the file's size cannot belong to
    // a dense vocabulary: refused before anything is sized by it, so that a small file cannot
    // make us allocate hundreds of megabytes.
    auto check_dense = [&](int64_t id, const std::string& where) {
        if (static_cast<uint64_t>(id) >= data.size()) {
            fail_file(file, where + " is " + std::to_string(id) + ", beyond the " + std::to_string(data.size()) +
                                "-byte file's possible vocabulary (ids must be dense)");
        }
    };
    int64_t max_id = -1;
    t->vocab.reserve(vit->size());
    for (auto it = vit->begin(); it != vit->end(); ++it) {
        const std::string where = "model.vocab[" + json_quoted(it.key()) + "]";
        const int64_t id = read_id(it.value(), file, where);
        check_dense(id, where);
        if (static_cast<size_t>(id) >= token_of.size()) token_of.resize(static_cast<size_t>(id) + 1, nullptr);
        if (token_of[static_cast<size_t>(id)]) {
            fail_file(file, "model.vocab: id " + std::to_string(id) + " is used by both " +
                                json_quoted(*token_of[static_cast<size_t>(id)]) + " and " + json_quoted(it.key()));
        }
        token_of[static_cast<size_t>(id)] = &it.key();
        t->vocab.emplace(it.key(), static_cast<int32_t>(id));
        max_id = std::max(max_id, id);
    }

    std::vector<std::pair<int64_t, std::string>> added;
    if (auto ait = root.find("added_tokens"); ait != root.end() && !ait->is_null()) {
        if (!ait->is_array()) fail_file(file, "added_tokens must be a list");
        for (size_t i = 0; i < ait->size(); ++i) {
            const json& a = (*ait)[i];
            const std::string where = "added_tokens[" + std::to_string(i) + "]";
            if (!a.is_object() || !a.contains("id") || !a.contains("content") || !a["content"].is_string()) {
                fail_file(file, where + " must be an object with \"id\" and \"content\"");
            }
            const int64_t id = read_id(a["id"], file, where + ".id");
            check_dense(id, where + ".id");
            added.emplace_back(id, a["content"].get<std::string>());
            max_id = std::max(max_id, id);
        }
    }
    t->size = max_id + 1;

    // Token bytes: vocab entries are byte-mapped text; characters outside the byte alphabet
    // (special tokens) are kept as their own UTF-8.
    const ByteMap& bm = byte_map();
    t->bytes_of.assign(static_cast<size_t>(t->size), std::string());
    for (const auto& [text, id] : t->vocab) {
        std::string& out = t->bytes_of[static_cast<size_t>(id)];
        for (size_t i = 0; i < text.size();) {
            const size_t start = i;
            const char32_t cp = next_code_point(text, i);
            if (cp < bm.to_byte.size() && bm.to_byte[cp] >= 0) {
                out.push_back(static_cast<char>(bm.to_byte[cp]));
            } else {
                out.append(text, start, i - start);
            }
        }
    }
    for (const auto& [id, content] : added) {
        if (static_cast<size_t>(id) >= token_of.size() || !token_of[static_cast<size_t>(id)]) {
            t->bytes_of[static_cast<size_t>(id)] = content;
        }
    }

    // Every byte must have a token, or encoding would drop bytes it cannot represent.
    for (int b = 0; b < 256; ++b) {
        std::string sym;
        append_utf8(sym, bm.to_cp[b]);
        auto it = t->vocab.find(sym);
        if (it == t->vocab.end()) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%02X", b);
            fail_file(file, "model.vocab has no token for byte " + std::string(hex) + " (" + json_quoted(sym) +
                                "); a byte-level BPE needs all 256");
        }
        t->byte_id[static_cast<size_t>(b)] = it->second;
    }

    if (auto git = model.find("merges"); git != model.end() && !git->is_null()) {
        if (!git->is_array()) fail_file(file, "model.merges must be a list");
        t->merges.reserve(git->size());
        for (size_t i = 0; i < git->size(); ++i) {
            const json& m = (*git)[i];
            const std::string where = "model.merges[" + std::to_string(i) + "]";
            std::string a, b;
            if (m.is_string()) {
                const std::string s = m.get<std::string>();
                const size_t sp = s.find(' ');
                if (sp == std::string::npos || sp == 0 || sp + 1 == s.size() || s.find(' ', sp + 1) != std::string::npos) {
                    fail_file(file, where + " is " + json_quoted(s) + ", expected two tokens separated by one space");
                }
                a = s.substr(0, sp);
                b = s.substr(sp + 1);
            } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
                a = m[0].get<std::string>();
                b = m[1].get<std::string>();
            } else {
                fail_file(file, where + " is " + shown(m) + ", expected \"a b\" or [\"a\", \"b\"]");
            }
            auto ia = t->vocab.find(a), ib = t->vocab.find(b), iab = t->vocab.find(a + b);
            if (ia == t->vocab.end()) fail_file(file, where + ": token " + json_quoted(a) + " is not in model.vocab");
            if (ib == t->vocab.end()) fail_file(file, where + ": token " + json_quoted(b) + " is not in model.vocab");
            if (iab == t->vocab.end()) {
                fail_file(file, where + ": merged token " + json_quoted(a + b) + " is not in model.vocab");
            }
            // Later duplicates overwrite earlier ones, as in tokenizers' HashMap.
            t->merges[(uint64_t(uint32_t(ia->second)) << 32) | uint32_t(ib->second)] =
                MergeInfo{static_cast<int32_t>(i), iab->second};
        }
    }
    return t;
}

}  // namespace

std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::filesystem::path& tokenizer_json) {
    try {
        return load(tokenizer_json);
    } catch (const json::exception& e) {
        // Type checks above should catch everything; this keeps any miss a clean Error.
        fail_file(tokenizer_json, "unexpected structure: " + clip(after_bracket(e.what()), 400));
    }
}

}  // namespace harmonic
