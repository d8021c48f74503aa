// Training and evaluation corpora: any UTF-8 text files or folders, tokenized once into a cache
// file that is memory-mapped for reading (a corpus never has to fit in memory). No torch here.
//
// The token stream of a corpus is every document (file) in a fixed order, joined by a separator
// ("\n\n" by default): folders are walked recursively, their files sorted by path (byte order),
// hidden files/folders (name starting with '.') and empty files skipped. Each file is checked as
// it is read: invalid UTF-8 names the file, line and column; a file that looks binary is refused.
//
// Cache file (little-endian): a 64-byte header
//   0  magic "HRMTOKS\0"        8  u32 version (1)     12 u32 bytes per token (1 or 4)
//   16 u64 vocab_size           24 u64 token count      32 u64 FNV-1a 64 of the joined source text
//   40 u64 fingerprint (tokenizer, separator, each file's path, size and mtime)
//   48 u64 number of files      56 u64 source bytes
// then the ids: uint8 when vocab_size <= 256 (the byte tokenizer), uint32 otherwise (BPE).
#pragma once

#include <cstdint>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace harmonic {

class Tokenizer;

// FNV-1a 64: the cache's checksum and fingerprint hash (stable across platforms and versions).
constexpr uint64_t kFnvOffset = 14695981039346656037ULL;
uint64_t fnv1a64(std::string_view bytes, uint64_t hash = kFnvOffset);

// The documents of a corpus, in stream order. Each input is a file (used as given, even when
// hidden) or a folder (walked recursively, sorted). Throws Error naming the input for a missing
// path, a folder without any non-empty text file, or no inputs at all.
std::vector<std::filesystem::path> list_corpus_files(const std::vector<std::filesystem::path>& inputs);

// The token cache file: this 64-byte little-endian header, then `count` ids of `token_bytes`
// bytes each (1 when the vocabulary fits a byte, else 4).
struct TokenCacheHeader {
    char magic[8];
    uint32_t version;
    uint32_t token_bytes;
    uint64_t vocab_size;
    uint64_t count;
    uint64_t checksum;      // FNV-1a 64 of the source bytes as read, separators included
    uint64_t fingerprint;   // inputs, tokenizer and separator, with the files' sizes and times
    uint64_t files;
    uint64_t source_bytes;
};
static_assert(sizeof(TokenCacheHeader) == 64);
inline constexpr char kTokenCacheMagic[8] = {'H', 'R', 'M', 'T', 'O', 'K', 'S', '\0'};
inline constexpr uint32_t kTokenCacheVersion = 1;

// A read-only, memory-mapped token cache. Cheap to copy (the mapping is shared).
class TokenStream {
public:
    // Throws Error "FILE: ..." for a missing, truncated or corrupt cache.
    static TokenStream open(const std::filesystem::path& cache_file);

    int64_t size() const { return count_; }
    int64_t vocab_size() const { return vocab_; }
    int token_bytes() const { return width_; }
    uint64_t source_checksum() const { return checksum_; }
    uint64_t fingerprint() const { return fingerprint_; }
    int64_t files() const { return files_; }
    int64_t source_bytes() const { return source_bytes_; }
    const std::filesystem::path& path() const { return path_; }

    int64_t at(int64_t index) const;
    // Copies ids [start, start + count) into `out`. Throws Error for a range outside the stream or
    // an id >= vocab_size (a damaged cache).
    void read(int64_t start, int64_t count, int64_t* out) const;
    std::vector<int64_t> read(int64_t start, int64_t count) const;
    // Ids [start, start + count) are done with (a sequential pass): their pages may leave memory,
    // so reading a stream once keeps memory flat. They can still be read again.
    void release(int64_t start, int64_t count) const;

private:
    struct Mapping;
    std::shared_ptr<const Mapping> map_;
    const uint8_t* ids_ = nullptr;
    std::filesystem::path path_;
    int64_t count_ = 0, vocab_ = 0, files_ = 0, source_bytes_ = 0;
    int width_ = 1;
    uint64_t checksum_ = 0, fingerprint_ = 0;
};

struct CorpusOptions {
    std::filesystem::path cache_dir;   // empty: default_cache_dir()
    std::string separator = "\n\n";    // between documents
    int64_t block_bytes = 8 << 20;     // files are read and tokenized in blocks of about this size
    bool rebuild = false;              // ignore an existing cache
    // Called with one line of news (e.g. "tokenizing 3 files (21.4 MB) ...", and while a cache is
    // built, "tokenized 1.2 GB of 2.01 GB (59%)" at most once per progress_interval).
    std::chrono::milliseconds progress_interval{5000};
    std::function<void(const std::string&)> on_message;
};

struct Corpus {
    TokenStream tokens;
    std::vector<std::filesystem::path> files;
    bool from_cache = false;  // true when an up-to-date cache was reused
};

// Reads one text file (a regular file only) in blocks of about block_bytes and hands `emit` pieces
// that can be tokenized on their own, cut as open_corpus describes (BPE: where a GPT-2 style
// pre-tokenizer always splits; always at a UTF-8 character boundary). Each piece is checked
// first: a binary file, or invalid UTF-8 (with its line, column and byte), throws Error naming the
// file. `checksum` is carried on with FNV-1a 64 of the bytes. Memory: about two blocks.
void read_text_blocks(const std::filesystem::path& file, bool bpe, int64_t block_bytes, uint64_t& checksum,
                      const std::function<void(std::string_view)>& emit);

// $HARMONIC_CACHE_DIR, else $XDG_CACHE_HOME/harmonic/tokens, else ~/.cache/harmonic/tokens.
std::filesystem::path default_cache_dir();

// Identifies a tokenizer in cache keys: "bytes", or "bpe-<hash of the tokenizer.json bytes>".
std::string tokenizer_cache_key(const std::string& kind, const std::filesystem::path& tokenizer_json);

// Tokenizes `inputs` with `tokenizer` into a cache file (once: an up-to-date cache for the same
// inputs, tokenizer and separator is reused) and maps it. Big files are streamed in blocks; BPE
// blocks are cut at a single newline between two non-space characters (where a GPT-2 style
// pre-tokenizer always splits, so the cache equals encoding each whole file), else at a newline,
// else at a character boundary. The cache is written to a temporary file and renamed into place,
// so an interrupted build leaves no half cache. Throws Error naming the file for every bad input.
Corpus open_corpus(const std::vector<std::filesystem::path>& inputs, const Tokenizer& tokenizer,
                   const std::string& tokenizer_key, const CorpusOptions& options = {});

}  // namespace harmonic
