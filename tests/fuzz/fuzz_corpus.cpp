// libFuzzer harness for the corpus reader (model/corpus.cpp), three ways by the first byte:
//  0: the bytes as a token-cache file (TokenStream::open): refused with the file named, or opened,
//     and then every read stays in bounds and every id it returns is below vocab_size (a damaged
//     id is an Error, never a wild value);
//  1: a well-formed cache header built from the input (version, width, vocab, count, sometimes a
//     lie about the count) over ids from the input: the same checks;
//  2: the rest split into up to three documents in a folder (one nested, one hidden), read by
//     open_corpus with the byte tokenizer in small blocks: refused with a file or the folder
//     named, or the token stream is exactly the documents' bytes joined by the separator, in
//     sorted order, hidden and empty files left out; opening it again reuses the cache.
#include "model/corpus.h"
#include "model/text.h"
#include "model/tokenizer.h"

#include "fuzz_common.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr const char* harness = "fuzz_corpus";


void check_stream(const harmonic_fuzz::ScratchFile& file) {
    const std::string path = file.path().string();
    harmonic::TokenStream s;
    try {
        s = harmonic::TokenStream::open(file.path());
    } catch (const harmonic::Error& e) {
        harmonic_fuzz::check_error(harness, e, path);
        return;
    }
    if (s.token_bytes() != 1 && s.token_bytes() != 4) harmonic_fuzz::bug(harness, "opened a cache of another width");
    if (s.size() < 0 || s.vocab_size() < 1) harmonic_fuzz::bug(harness, "negative size or vocab");
    std::vector<int64_t> ids(static_cast<std::size_t>(std::min<int64_t>(s.size(), 4096)) + 1);
    for (int64_t start = 0; start < s.size(); start += 4096) {
        const int64_t n = std::min<int64_t>(4096, s.size() - start);
        try {
            s.read(start, n, ids.data());
        } catch (const harmonic::Error& e) {
            harmonic_fuzz::check_error(harness, e, path);
            continue;  // a damaged id: refused, fine
        }
        for (int64_t i = 0; i < n; ++i)
            if (ids[i] < 0 || ids[i] >= s.vocab_size()) harmonic_fuzz::bug(harness, "read returned an id outside the vocabulary");
    }
    // Ranges past the end are refused.
    bool refused = false;
    try {
        s.read(s.size(), 1, ids.data());
    } catch (const harmonic::Error&) {
        refused = true;
    }
    if (!refused) harmonic_fuzz::bug(harness, "a read past the end was accepted");
}

uint64_t take(std::string_view& in, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes && !in.empty(); ++i) {
        v |= uint64_t(static_cast<uint8_t>(in.front())) << (8 * i);
        in.remove_prefix(1);
    }
    return v;
}

void recipe_cache(const harmonic_fuzz::ScratchFile& file, std::string_view in) {
    harmonic::TokenCacheHeader h{};
    std::memcpy(h.magic, harmonic::kTokenCacheMagic, 8);
    const uint64_t knobs = take(in, 2);
    h.version = (knobs & 7) == 0 ? harmonic::kTokenCacheVersion + 1 : harmonic::kTokenCacheVersion;
    const uint32_t widths[4] = {1, 4, 1, 3};
    h.token_bytes = widths[(knobs >> 3) & 3];
    const uint64_t vocabs[8] = {256, 1, 0, 50257, 255, 257, uint64_t(1) << 32, (uint64_t(1) << 32) + 1};
    h.vocab_size = vocabs[(knobs >> 5) & 7];
    const std::string ids(in);
    const uint64_t true_count = h.token_bytes ? ids.size() / h.token_bytes : 0;
    const uint64_t lies[4] = {true_count, true_count + 1, true_count ? true_count - 1 : 0, ~uint64_t(0) / 2};
    h.count = lies[(knobs >> 8) & 3];
    h.files = take(in, 1);
    std::string bytes(reinterpret_cast<const char*>(&h), sizeof h);
    bytes += ids.substr(0, static_cast<std::size_t>(true_count * h.token_bytes));
    file.write(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    check_stream(file);
}

void corpus_from_documents(const harmonic_fuzz::ScratchFile& scratch, std::string_view in) {
    namespace fs = std::filesystem;
    const fs::path root = scratch.path().parent_path() / "docs";
    const fs::path cache = scratch.path().parent_path() / "cache";
    std::error_code ec;
    fs::remove_all(root, ec);
    fs::remove_all(cache, ec);
    fs::create_directories(root / "sub", ec);
    const int64_t block = 1 + static_cast<int64_t>(take(in, 1));
    // Documents separated by 0xFF bytes (never valid UTF-8, so never inside a text document).
    std::vector<std::string> parts;
    std::size_t at = 0;
    while (parts.size() < 3) {
        const std::size_t next = in.find('\xff', at);
        parts.emplace_back(in.substr(at, next == std::string_view::npos ? std::string_view::npos : next - at));
        if (next == std::string_view::npos) break;
        at = next + 1;
    }
    const fs::path names[3] = {root / "b.txt", root / "sub" / "a.txt", root / ".hidden.txt"};
    for (std::size_t i = 0; i < parts.size(); ++i) std::ofstream(names[i], std::ios::binary) << parts[i];
    // What must come out: sorted by relative path ("b.txt" < "sub/a.txt"), hidden and empty out.
    std::string expected;
    bool any = false;
    for (std::size_t i : {std::size_t(0), std::size_t(1)}) {
        if (i >= parts.size() || parts[i].empty()) continue;
        if (any) expected += "\n\n";
        expected += parts[i];
        any = true;
    }
    const auto tokenizer = harmonic::make_byte_tokenizer();
    harmonic::CorpusOptions options;
    options.cache_dir = cache;
    options.block_bytes = block;
    harmonic::Corpus corpus;
    try {
        corpus = harmonic::open_corpus({root}, *tokenizer, "bytes", options);
    } catch (const harmonic::Error& e) {
        const std::string_view m = e.what();
        const bool named = m.rfind(root.string(), 0) == 0 || m.rfind(cache.string(), 0) == 0;
        if (!named) harmonic_fuzz::bug(harness, "corpus error names no file: " + std::string(m.substr(0, 300)));
        if (m.size() > harmonic_fuzz::max_message_bytes) harmonic_fuzz::bug(harness, "corpus error too long");
        if (!any && m.find("no text files") == std::string_view::npos)
            harmonic_fuzz::bug(harness, "unexpected error for a folder without documents: " + std::string(m.substr(0, 300)));
        bool bad_text = false;
        for (std::size_t i : {std::size_t(0), std::size_t(1)})
            if (i < parts.size() && !parts[i].empty() &&
                (harmonic::find_utf8_problem(parts[i]) || harmonic::looks_binary(parts[i])))
                bad_text = true;
        if (any && !bad_text) harmonic_fuzz::bug(harness, "refused valid documents: " + std::string(m.substr(0, 300)));
        return;
    }
    if (!any) harmonic_fuzz::bug(harness, "accepted a folder without documents");
    const auto ids = corpus.tokens.read(0, corpus.tokens.size());
    std::string got(ids.size(), '\0');
    for (std::size_t i = 0; i < ids.size(); ++i) got[i] = static_cast<char>(ids[i]);
    if (got != expected) harmonic_fuzz::bug(harness, "the token stream differs from the documents joined");
    options.block_bytes = block + 1;
    const auto again = harmonic::open_corpus({root}, *tokenizer, "bytes", options);
    if (!again.from_cache || again.tokens.size() != corpus.tokens.size())
        harmonic_fuzz::bug(harness, "an unchanged corpus was not reused from its cache");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const harmonic_fuzz::ScratchFile file("tokens.cache");
    if (size == 0) return 0;
    std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 3) {
        case 0:
            file.write(data + 1, size - 1);
            check_stream(file);
            break;
        case 1:
            recipe_cache(file, in);
            break;
        default:
            corpus_from_documents(file, in);
    }
    return 0;
}
