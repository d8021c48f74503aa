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
#include "model/utf8.h"

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

// How a Split pre-tokenizer treats the pieces its pattern matches (tokenizers'
// SplitDelimiterBehavior).
enum class Behavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous };

struct Span {
    size_t begin;
    size_t end;
    bool match;
};

// Calls on_match(begin, end) for each match in a valid UTF-8 run the way tokenizers' Oniguruma
// find_iter yields them: leftmost first, and an empty match right where the previous match ended
// is skipped by moving on one character, so `x*` matches once between every two characters.
template <class OnMatch>
void find_matches(const pcre2_code* re, pcre2_match_data* md, std::string_view run, OnMatch&& on_match) {
    size_t pos = 0;
    size_t last_end = std::string_view::npos;
    while (pos <= run.size()) {
        const int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(run.data()), run.size(), pos, PCRE2_NO_UTF_CHECK,
                                   md, nullptr);
        if (rc < 0) return;  // no match, or a resource limit: the rest is unmatched
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t mb = ov[0], me = ov[1];
        if (me < mb || mb < pos) return;  // \K can report such spans; nothing sensible to split on
        if (me == mb && me == last_end) {
            if (pos >= run.size()) return;
            pos += std::max<size_t>(1, utf8::sequence_length(run, pos));
            continue;
        }
        on_match(mb, me);
        last_end = pos = me;
    }
}

// Calls emit(begin, end) for the pieces of s that a Split with this behaviour keeps, in order.
// Invalid UTF-8 cannot go through a UTF regex, so each invalid byte becomes a piece of its own
// (never removed) and the valid runs between them are split; nothing throws.
template <class Emit>
void split_pieces(const pcre2_code* re, pcre2_match_data* md, Behavior behavior, bool invert, std::string_view s,
                  Emit&& emit) {
    std::vector<Span> spans;
    size_t i = 0;
    while (i < s.size()) {
        size_t run_end = i;
        while (run_end < s.size()) {
            const size_t len = utf8::sequence_length(s, run_end);
            if (len == 0) break;
            run_end += len;
        }
        if (run_end > i) {
            const std::string_view run = s.substr(i, run_end - i);
            if (behavior == Behavior::Isolated) {
                // Matches and the gaps between them are pieces; an empty match still ends a gap.
                size_t gap = 0;
                find_matches(re, md, run, [&](size_t mb, size_t me) {
                    if (mb > gap) emit(i + gap, i + mb);
                    if (me > mb) emit(i + mb, i + me);
                    gap = me;
                });
                if (gap < run.size()) emit(i + gap, i + run.size());
            } else {
                // tokenizers' NormalizedString::split: (offsets, is_match) covering the run,
                // empty matches included, folded by the behaviour, empty pieces dropped.
                spans.clear();
                size_t prev = 0;
                find_matches(re, md, run, [&](size_t mb, size_t me) {
                    if (mb > prev) spans.push_back({prev, mb, invert});
                    spans.push_back({mb, me, !invert});
                    prev = me;
                });
                if (prev < run.size()) spans.push_back({prev, run.size(), invert});
                std::vector<Span> kept;
                bool previous = false;
                if (behavior == Behavior::MergedWithNext) {
                    for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
                        if (it->match && !previous && !kept.empty()) kept.back().begin = it->begin;
                        else kept.push_back(*it);
                        previous = it->match;
                    }
                    std::reverse(kept.begin(), kept.end());
                } else {
                    for (const Span& sp : spans) {
                        if (behavior == Behavior::Removed) {
                            if (!sp.match) kept.push_back(sp);
                        } else if (!kept.empty() && (behavior == Behavior::Contiguous ? sp.match == previous
                                                                                      : sp.match && !previous)) {
                            kept.back().end = sp.end;
                        } else {
                            kept.push_back(sp);
                        }
                        previous = sp.match;
                    }
                }
                for (const Span& sp : kept)
                    if (sp.end > sp.begin) emit(i + sp.begin, i + sp.end);
            }
        }
        if (run_end < s.size()) {
            emit(run_end, run_end + 1);
            i = run_end + 1;
        } else {
            i = run_end;
        }
    }
}

// Unicode White_Space, the \s of the Rust regex crate that tokenizers strips around added tokens.
bool is_white_space(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// The Rust regex crate's Unicode \w (UTS #18: Alphabetic, marks, decimal digits, connector
// punctuation, joiners), which decides whether a single_word added token stands alone.
bool is_word(char32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    static const pcre2_code* const word = [] {
        int err = 0;
        PCRE2_SIZE offset = 0;
        const char* pattern = R"(\A[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])";
        return pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &offset,
                             nullptr);
    }();
    std::string ch;
    utf8::append(ch, c);
    pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
    const int rc = pcre2_match(word, reinterpret_cast<PCRE2_SPTR>(ch.data()), ch.size(), 0, PCRE2_NO_UTF_CHECK, md, nullptr);
    pcre2_match_data_free(md);
    return rc >= 0;
}

bool ends_with_word(std::string_view s) {
    const size_t start = s.empty() ? std::string_view::npos : utf8::previous_start(s, s.size());
    return start != std::string_view::npos && is_word(utf8::decode(s, start, s.size() - start));
}

bool starts_with_word(std::string_view s) {
    const size_t len = s.empty() ? 0 : utf8::sequence_length(s, 0);
    return len > 0 && is_word(utf8::decode(s, 0, len));
}

// Where the run of white space that ends s begins (s.size() when there is none).
size_t trailing_space_start(std::string_view s) {
    size_t end = s.size();
    while (end > 0) {
        const size_t start = utf8::previous_start(s, end);
        if (start == std::string_view::npos || !is_white_space(utf8::decode(s, start, end - start))) break;
        end = start;
    }
    return end;
}

size_t leading_space_length(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const size_t len = utf8::sequence_length(s, i);
        if (len == 0 || !is_white_space(utf8::decode(s, i, len))) break;
        i += len;
    }
    return i;
}

struct AddedToken {
    std::string content;
    int32_t id = 0;
    bool single_word = false;
    bool lstrip = false;
    bool rstrip = false;
};

// The added tokens of one matching pass, found leftmost-longest as tokenizers' Aho-Corasick
// automaton does; candidates are bucketed by first byte, longest first.
struct AddedMatcher {
    std::vector<AddedToken> tokens;
    std::array<std::vector<uint32_t>, 256> by_first_byte;

    void finish() {
        for (uint32_t k = 0; k < tokens.size(); ++k) by_first_byte[static_cast<unsigned char>(tokens[k].content[0])].push_back(k);
        for (auto& bucket : by_first_byte) {
            std::stable_sort(bucket.begin(), bucket.end(),
                             [&](uint32_t a, uint32_t b) { return tokens[a].content.size() > tokens[b].content.size(); });
        }
    }

    // Calls emit(begin, end, id) for consecutive spans covering s; id is -1 for text between
    // added tokens. Mirrors AddedVocabulary::find_matches: matches do not overlap, a single_word
    // token next to a word character is skipped, lstrip/rstrip take the white space beside it.
    template <class Emit>
    void split(std::string_view s, Emit&& emit) const {
        size_t start_offset = 0, pos = 0;
        while (pos < s.size()) {
            const AddedToken* found = nullptr;
            size_t at = pos;
            for (; at < s.size() && !found; ++at) {
                for (uint32_t k : by_first_byte[static_cast<unsigned char>(s[at])]) {
                    if (s.compare(at, tokens[k].content.size(), tokens[k].content) == 0) {
                        found = &tokens[k];
                        break;
                    }
                }
            }
            if (!found) break;
            size_t start = at - 1, stop = start + found->content.size();
            pos = stop;
            if (found->single_word && ((start > 0 && ends_with_word(s.substr(0, start))) ||
                                       (stop < s.size() && starts_with_word(s.substr(stop))))) {
                continue;
            }
            if (found->lstrip) start = trailing_space_start(s.substr(0, start));
            start = std::max(start, start_offset);
            if (found->rstrip) stop += leading_space_length(s.substr(stop));
            if (stop <= start) continue;  // a white-space token inside what the previous one took
            if (start_offset < start) emit(start_offset, start, -1);
            emit(start, stop, found->id);
            start_offset = stop;
        }
        if (start_offset < s.size()) emit(start_offset, s.size(), -1);
    }
};

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
    struct SplitStage {
        Code re;
        Behavior behavior = Behavior::Isolated;
        bool invert = false;
    };
    std::vector<SplitStage> splits;            // Split pre-tokenizers before ByteLevel
    Code byte_level_re;                        // null when use_regex is false
    bool add_prefix_space = false;
    bool ignore_merges = false;
    bool drops_text = false;                   // see lossless()
    // Added tokens: those with normalized=false are matched first, on the whole text, then those
    // with normalized=true on what is left (the order tokenizers uses; there is no normalizer).
    std::array<AddedMatcher, 2> added;
    std::vector<int64_t> before, after;        // what the post-processor adds to a whole text
    int64_t size = 0;

    Encoding encode_fragment(std::string_view text) const override {
        Encoding out;
        out.ids.reserve(text.size() / 3 + 1);
        out.byte_offsets.reserve(text.size() / 3 + 1);
        std::vector<MatchData> md;
        md.reserve(splits.size() + 1);
        for (const auto& st : splits) md.emplace_back(pcre2_match_data_create_from_pattern(st.re.get(), nullptr));
        MatchData byte_md(byte_level_re ? pcre2_match_data_create_from_pattern(byte_level_re.get(), nullptr) : nullptr);
        std::string prefixed;
        std::vector<int32_t> scratch;
        auto text_part = [&](size_t b, size_t e) {
            stage(0, text.substr(b, e - b), static_cast<int64_t>(b), md, byte_md.get(), prefixed, scratch, out);
        };
        auto token = [&](size_t b, int32_t id) {
            out.ids.push_back(id);
            out.byte_offsets.push_back(static_cast<int64_t>(b));
        };
        if (added[0].tokens.empty() && added[1].tokens.empty()) {
            text_part(0, text.size());
            return out;
        }
        added[0].split(text, [&](size_t b, size_t e, int32_t id) {
            if (id >= 0) return token(b, id);
            added[1].split(text.substr(b, e - b), [&](size_t b2, size_t e2, int32_t id2) {
                if (id2 >= 0) return token(b + b2, id2);
                text_part(b + b2, b + e2);
            });
        });
        return out;
    }

    const std::vector<int64_t>& ids_before() const override { return before; }
    const std::vector<int64_t>& ids_after() const override { return after; }
    bool lossless() const override { return !drops_text; }

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
            split_pieces(splits[k].re.get(), md[k].get(), splits[k].behavior, splits[k].invert, s, [&](size_t b, size_t e) {
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
            split_pieces(byte_level_re.get(), byte_md, Behavior::Isolated, false, piece, emit_piece);
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
            for (unsigned char b : piece) utf8::append(mapped, byte_map().to_cp[b]);
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
            const json* behavior = p.contains("behavior") ? &p["behavior"] : nullptr;
            static const std::pair<const char*, Behavior> behaviors[] = {
                {"Isolated", Behavior::Isolated},           {"Removed", Behavior::Removed},
                {"MergedWithPrevious", Behavior::MergedWithPrevious}, {"MergedWithNext", Behavior::MergedWithNext},
                {"Contiguous", Behavior::Contiguous}};
            BpeTokenizer::SplitStage stage;
            bool known = false;
            for (const auto& [name, value] : behaviors) {
                if (behavior && behavior->is_string() && behavior->get<std::string>() == name) {
                    stage.behavior = value;
                    known = true;
                }
            }
            if (!known) {
                fail_file(file, where + ".behavior is " + (behavior ? shown(*behavior) : std::string("missing")) +
                                    ", expected \"Isolated\", \"Removed\", \"MergedWithPrevious\", \"MergedWithNext\" or "
                                    "\"Contiguous\"");
            }
            stage.invert = flag(p, "invert", false, file, where);
            if (stage.behavior == Behavior::Removed) t.drops_text = true;
            stage.re = compile(regex, literal, file, where + ".pattern");
            t.splits.push_back(std::move(stage));
        } else {
            fail_file(file, where + ": pre-tokenizer type " + json_quoted(ptype) +
                                " is not supported (expected ByteLevel, optionally after Split)");
        }
    }
    if (!have_byte_level) fail_file(file, "pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
}

// The ids a post_processor adds around a single text (add_special_tokens=True), collected into
// before/after; a Sequence applies its processors in turn, each around the previous result.
void parse_post_processor(const json& pp, BpeTokenizer& t, const std::filesystem::path& file, const std::string& where) {
    if (pp.is_null()) return;
    if (!pp.is_object() || !pp.contains("type") || !pp["type"].is_string()) {
        fail_file(file, where + " must be null or an object with a \"type\"");
    }
    const std::string type = pp["type"].get<std::string>();
    auto wrap = [&](const std::vector<int64_t>& before, const std::vector<int64_t>& after) {
        t.before.insert(t.before.begin(), before.begin(), before.end());
        t.after.insert(t.after.end(), after.begin(), after.end());
    };
    if (type == "Sequence") {
        auto it = pp.find("processors");
        if (it == pp.end() || !it->is_array()) fail_file(file, where + ".processors must be a list");
        for (size_t i = 0; i < it->size(); ++i) {
            parse_post_processor((*it)[i], t, file, where + ".processors[" + std::to_string(i) + "]");
        }
    } else if (type == "ByteLevel") {
        // Only trims offsets; the ids are those of the pre-tokenizer and the model.
    } else if (type == "RobertaProcessing" || type == "BertProcessing") {
        // A single text becomes cls, text, sep.
        int64_t ids[2] = {0, 0};
        const char* const keys[2] = {"cls", "sep"};
        for (int k = 0; k < 2; ++k) {
            const std::string w = where + "." + keys[k];
            auto it = pp.find(keys[k]);
            if (it == pp.end() || !it->is_array() || it->size() != 2 || !(*it)[0].is_string()) {
                fail_file(file, w + " must be [token, id]");
            }
            ids[k] = read_id((*it)[1], file, w + "[1]");
        }
        wrap({ids[0]}, {ids[1]});
    } else if (type == "TemplateProcessing") {
        auto single = pp.find("single");
        if (single == pp.end() || !single->is_array()) fail_file(file, where + ".single must be a list");
        auto specials = pp.find("special_tokens");
        if (specials != pp.end() && !specials->is_object()) fail_file(file, where + ".special_tokens must be an object");
        std::vector<int64_t> before, after;
        int sequences = 0;
        for (size_t i = 0; i < single->size(); ++i) {
            const json& piece = (*single)[i];
            const std::string w = where + ".single[" + std::to_string(i) + "]";
            if (piece.is_object() && piece.contains("Sequence")) {
                const json& seq = piece["Sequence"];
                if (!seq.is_object() || !seq.contains("id") || seq["id"] != "A") {
                    fail_file(file, w + ": a single-text template can only hold the sequence $A, not " +
                                        (seq.is_object() && seq.contains("id") ? shown(seq["id"]) : shown(seq)));
                }
                ++sequences;
            } else if (piece.is_object() && piece.contains("SpecialToken")) {
                const json& sp = piece["SpecialToken"];
                if (!sp.is_object() || !sp.contains("id") || !sp["id"].is_string()) {
                    fail_file(file, w + ".SpecialToken must be an object with a string \"id\"");
                }
                const std::string name = sp["id"].get<std::string>();
                if (specials == pp.end() || !specials->contains(name)) {
                    fail_file(file, w + ": special token " + json_quoted(name) + " is not in " + where + ".special_tokens");
                }
                const json& entry = (*specials)[name];
                const std::string we = where + ".special_tokens[" + json_quoted(name) + "]";
                if (!entry.is_object() || !entry.contains("ids") || !entry["ids"].is_array()) {
                    fail_file(file, we + " must be an object with a list \"ids\"");
                }
                for (size_t k = 0; k < entry["ids"].size(); ++k) {
                    (sequences == 0 ? before : after)
                        .push_back(read_id(entry["ids"][k], file, we + ".ids[" + std::to_string(k) + "]"));
                }
            } else {
                fail_file(file, w + " is " + shown(piece) + ", expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
            }
        }
        if (sequences != 1) {
            fail_file(file, where + ".single must hold the sequence $A exactly once, not " + std::to_string(sequences) + " times");
        }
        wrap(before, after);
    } else {
        fail_file(file, where + ": post-processor type " + json_quoted(type) +
                            " is not supported (expected TemplateProcessing, RobertaProcessing, BertProcessing, "
                            "ByteLevel or a Sequence of them)");
    }
}

std::string after_bracket(const std::string& what) {
    // nlohmann prefixes "[json.exception.parse_error.101] "; the user needs only the rest.
    const size_t p = what.find("] ");
    return p == std::string::npos ? what : what.substr(p + 2);
}

std::unique_ptr<Tokenizer> load(const std::filesystem::path& file) {
    const std::string data = read_capped(file);
    // nlohmann skips a byte order mark; tokenizers (serde_json) refuses the file.
    if (data.compare(0, 3, "\xEF\xBB\xBF") == 0) {
        fail_file(file, "starts with a UTF-8 byte order mark (EF BB BF), which tokenizers refuses");
    }
    json root;
    try {
        root = json::parse(data);
    } catch (const json::exception& e) {
        // The parser quotes what it read, invalid bytes included: escaped (\xNN) here.
        fail_file(file, "invalid JSON: " + utf8::escaped(clip(after_bracket(e.what()), 400)));
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
    // Dropout skips merges at random: the ids would change from one run to the next.
    if (auto it = model.find("dropout"); it != model.end() && !it->is_null() && !(it->is_number() && it->get<double>() == 0.0)) {
        fail_file(file, "model.dropout is " + shown(*it) +
                            "; BPE dropout makes the ids random and is not supported (null or 0 only)");
    }
    for (const char* key : {"truncation", "padding"}) {
        if (auto it = root.find(key); it != root.end() && !it->is_null()) {
            fail_file(file, std::string(key) + " is set; it changes the ids of a text and is not supported (null only)");
        }
    }

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

    // Added tokens get their ids as tokenizers assigns them on load (the "id" written in the file
    // is only checked there, with a warning): the vocab's id when the content is a vocab token,
    // else the next id after model.vocab's entries and the added tokens so far. A file whose ids
    // disagree would give other ids here than there, so it is refused.
    std::vector<std::pair<int64_t, std::string>> added;
    if (auto ait = root.find("added_tokens"); ait != root.end() && !ait->is_null()) {
        if (!ait->is_array()) fail_file(file, "added_tokens must be a list");
        const int64_t vocab_count = static_cast<int64_t>(t->vocab.size());
        int64_t max_added = -1;
        std::unordered_map<std::string, size_t> seen;
        for (size_t i = 0; i < ait->size(); ++i) {
            const json& a = (*ait)[i];
            const std::string where = "added_tokens[" + std::to_string(i) + "]";
            if (!a.is_object() || !a.contains("id") || !a.contains("content") || !a["content"].is_string()) {
                fail_file(file, where + " must be an object with \"id\" and \"content\"");
            }
            const int64_t id = read_id(a["id"], file, where + ".id");
            check_dense(id, where + ".id");
            AddedToken token;
            token.content = a["content"].get<std::string>();
            if (token.content.empty()) fail_file(file, where + ".content is empty");
            bool flags[5];
            const char* const names[5] = {"single_word", "lstrip", "rstrip", "normalized", "special"};
            for (int k = 0; k < 5; ++k) {
                if (!a.contains(names[k])) fail_file(file, where + " has no \"" + names[k] + "\" (tokenizers requires it)");
                flags[k] = flag(a, names[k], false, file, where);
            }
            if (auto [it, fresh] = seen.emplace(token.content, i); !fresh) {
                fail_file(file, where + ".content " + json_quoted(token.content) + " is already added_tokens[" +
                                    std::to_string(it->second) + "]");
            }
            int64_t expected;
            if (auto v = t->vocab.find(token.content); v != t->vocab.end()) {
                expected = v->second;
            } else {
                expected = max_added < 0 || max_added < vocab_count ? vocab_count : max_added + 1;
            }
            if (id != expected) {
                fail_file(file, where + ".id is " + std::to_string(id) + ", but the tokenizers package gives " +
                                    json_quoted(token.content) + " the id " + std::to_string(expected) +
                                    " (a vocab token keeps its vocab id; others follow the " + std::to_string(vocab_count) +
                                    " entries of model.vocab in order)");
            }
            max_added = std::max(max_added, id);
            token.id = static_cast<int32_t>(id);
            token.single_word = flags[0];
            token.lstrip = flags[1];
            token.rstrip = flags[2];
            if (token.lstrip || token.rstrip) t->drops_text = true;
            added.emplace_back(id, token.content);
            t->added[flags[3] ? 1 : 0].tokens.push_back(std::move(token));
            max_id = std::max(max_id, id);
        }
        for (auto& matcher : t->added) matcher.finish();
    }
    t->size = max_id + 1;
    if (auto it = root.find("post_processor"); it != root.end()) parse_post_processor(*it, *t, file, "post_processor");
    for (const auto* list : {&t->before, &t->after}) {
        for (int64_t id : *list) {
            if (id >= t->size) {
                fail_file(file, "post_processor adds the id " + std::to_string(id) + ", which is not a token (the vocabulary has " +
                                    std::to_string(t->size) + ")");
            }
        }
    }

    // Token bytes: vocab entries are byte-mapped text; characters outside the byte alphabet
    // (special tokens) are kept as their own UTF-8.
    const ByteMap& bm = byte_map();
    t->bytes_of.assign(static_cast<size_t>(t->size), std::string());
    for (const auto& [text, id] : t->vocab) {
        std::string& out = t->bytes_of[static_cast<size_t>(id)];
        for (size_t i = 0; i < text.size();) {
            const size_t start = i;
            const size_t len = std::max<size_t>(1, utf8::sequence_length(text, i));  // nlohmann checked UTF-8
            const char32_t cp = utf8::decode(text, i, len);
            i += len;
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
        utf8::append(sym, bm.to_cp[b]);
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
        fail_file(tokenizer_json, "unexpected structure: " + utf8::escaped(clip(after_bracket(e.what()), 400)));
    }
}

}  // namespace harmonic
