#include "model/corpus.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <system_error>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/error.h"
#include "model/io.h"
#include "model/text.h"
#include "model/tokenizer.h"

namespace harmonic {

namespace fs = std::filesystem;

static_assert(std::endian::native == std::endian::little, "the token cache is little-endian");

namespace {

constexpr std::size_t kHeaderBytes = sizeof(TokenCacheHeader);

std::string human_bytes(uint64_t n) {
    char buf[64];
    if (n < 1024) std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(n));
    else if (n < 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f KB", double(n) / 1024.0);
    else if (n < (uint64_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.1f MB", double(n) / (1024.0 * 1024.0));
    else std::snprintf(buf, sizeof buf, "%.2f GB", double(n) / double(uint64_t(1) << 30));
    return buf;
}

uint64_t hash_u64(uint64_t v, uint64_t hash) {
    char bytes[8];
    std::memcpy(bytes, &v, 8);
    return fnv1a64(std::string_view(bytes, 8), hash);
}

bool is_hidden(const fs::path& p) {
    const std::string name = p.filename().string();
    return !name.empty() && name[0] == '.';
}

bool ascii_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool ascii_non_space(unsigned char c) { return c < 0x80 && !ascii_space(c); }

// End of the last complete UTF-8 character in buf (a sequence cut off at the end is left over).
std::size_t char_boundary(std::string_view buf) {
    std::size_t p = buf.size(), k = 0;
    while (p > 0 && k < 4 && (static_cast<unsigned char>(buf[p - 1]) & 0xC0) == 0x80) {
        --p;
        ++k;
    }
    if (p == 0) return buf.size();
    const auto lead = static_cast<unsigned char>(buf[p - 1]);
    const std::size_t len = lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : lead < 0xF8 ? 4 : 1;
    return (p - 1) + len > buf.size() ? p - 1 : buf.size();
}

// Where to end a block that is not the file's last (the rest waits for the next block).
std::size_t block_cut(std::string_view buf, bool bpe) {
    if (bpe && buf.size() >= 3) {
        // A lone newline between two ASCII non-space characters: every GPT-2 style pre-tokenizer
        // splits on both sides of it, so tokenizing the halves equals tokenizing the whole.
        for (std::size_t p = buf.size() - 1; p >= 2; --p) {
            if (buf[p - 1] == '\n' && ascii_non_space(static_cast<unsigned char>(buf[p - 2])) &&
                ascii_non_space(static_cast<unsigned char>(buf[p])))
                return p;
        }
        const std::size_t nl = buf.rfind('\n');
        if (nl != std::string_view::npos) return nl + 1;
    }
    return char_boundary(buf);
}

// Writes the token file through a DurableFile: renamed into place only when complete.
class CacheWriter {
public:
    CacheWriter(const fs::path& file, int width, int64_t vocab) : out_(file), width_(width), vocab_(vocab) {
        out_.write(std::string(kHeaderBytes, '\0'));  // the header is written last, over these bytes
    }

    void add_bytes(std::string_view bytes) {
        out_.write(bytes);
        count_ += bytes.size();
    }

    void add_ids(const std::vector<int64_t>& ids) {
        buf_.clear();
        for (int64_t id : ids) {
            if (id < 0 || id >= vocab_)
                fail_file(out_.path(), "tokenizer produced id " + std::to_string(id) + " outside its vocabulary");
            if (width_ == 1) {
                buf_.push_back(static_cast<char>(id));
            } else {
                const auto v = static_cast<uint32_t>(id);
                buf_.append(reinterpret_cast<const char*>(&v), 4);
            }
        }
        out_.write(buf_);
        count_ += ids.size();
    }

    uint64_t count() const { return count_; }

    void finish(TokenCacheHeader header) {
        header.count = count_;
        out_.write_at(0, std::string_view(reinterpret_cast<const char*>(&header), sizeof header));
        out_.commit();
    }

private:
    DurableFile out_;
    int width_;
    int64_t vocab_;
    uint64_t count_ = 0;
    std::string buf_;
};

}  // namespace

void read_text_blocks(const fs::path& file, bool bpe, int64_t block_bytes, uint64_t& checksum,
                   const std::function<void(std::string_view)>& emit) {
    const int fd = open_regular_file(file);
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    std::string buf;
    int64_t lines_before = 0, column_before = 0, bytes_before = 0;
    bool first = true;
    const auto block = static_cast<std::size_t>(std::max<int64_t>(block_bytes, 16));
    for (;;) {
        // The first read covers the whole binary sample (8 KiB), so that whether a file counts
        // as binary does not depend on the block size (fuzz: a 5-byte block refused a text).
        const std::size_t want = first ? std::max<std::size_t>(block, 8192) : block;
        const std::size_t old = buf.size();
        buf.resize(old + want);
        const std::size_t got = read_up_to(fd, buf.data() + old, want, file);
        buf.resize(old + got);
        const bool last = got < want;
        if (first && looks_binary(buf)) {
            const std::size_t nul = std::string_view(buf).substr(0, 8192).find('\0');
            if (nul != std::string::npos)
                fail_file(file, "looks like a binary file (NUL byte at offset " + std::to_string(nul) + ")");
            fail_file(file, "looks like a binary file (over 30% control bytes in the first 8 KiB)");
        }
        first = false;
        const std::size_t cut = last ? buf.size() : block_cut(buf, bpe);
        const std::string_view part(buf.data(), cut);
        if (auto p = find_utf8_problem(part)) {
            const int64_t line = lines_before + p->line;
            const int64_t column = p->line == 1 ? column_before + p->column : p->column;
            fail_file(file, "not valid UTF-8 at line " + std::to_string(line) + ", column " + std::to_string(column) +
                                " (byte " + std::to_string(bytes_before + p->byte_offset) + "): " + p->what);
        }
        if (!part.empty()) {
            checksum = fnv1a64(part, checksum);
            emit(part);
            const auto newlines = std::count(part.begin(), part.end(), '\n');
            const std::size_t nl = part.rfind('\n');
            column_before = nl == std::string_view::npos ? column_before + static_cast<int64_t>(part.size())
                                                         : static_cast<int64_t>(part.size() - nl - 1);
            lines_before += newlines;
            bytes_before += static_cast<int64_t>(part.size());
        }
        buf.erase(0, cut);
        if (last) break;
    }
}

namespace {

std::string sanitize(std::string s) {
    for (char& c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) c = '_';
    if (s.size() > 40) s.resize(40);
    if (s.empty()) s = "corpus";
    return s;
}

}  // namespace

uint64_t fnv1a64(std::string_view bytes, uint64_t hash) {
    for (unsigned char c : bytes) {
        hash ^= c;
        hash *= 1099511628211ULL;
    }
    return hash;
}

std::vector<fs::path> list_corpus_files(const std::vector<fs::path>& inputs) {
    if (inputs.empty()) throw Error("corpus: no text files or folders given");
    std::vector<fs::path> out;
    for (const auto& input : inputs) {
        std::error_code ec;
        const auto st = fs::status(input, ec);
        if (!fs::exists(st)) fail_file(input, "no such file or folder");
        if (fs::is_directory(st)) {
            std::vector<std::pair<std::string, fs::path>> found;
            fs::recursive_directory_iterator it(input, ec), end;
            if (ec) fail_file(input, "cannot list the folder: " + ec.message());
            for (; it != end; it.increment(ec)) {
                if (ec) fail_file(input, "cannot list the folder: " + ec.message());
                const fs::path& p = it->path();
                if (is_hidden(p)) {
                    if (it->is_directory(ec)) it.disable_recursion_pending();
                    continue;
                }
                if (!it->is_regular_file(ec)) continue;
                if (it->file_size(ec) == 0 || ec) continue;
                found.emplace_back(fs::relative(p, input, ec).generic_string(), p);
            }
            if (found.empty())
                fail_file(input, "no text files in this folder (hidden and empty files are skipped)");
            std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
            for (auto& f : found) out.push_back(std::move(f.second));
        } else if (fs::is_regular_file(st)) {
            if (fs::file_size(input, ec) == 0) fail_file(input, "is empty");
            out.push_back(input);
        } else {
            require_regular_file(input);  // names what it is instead (a FIFO, a device, ...)
            fail_file(input, "is neither a text file nor a folder");
        }
    }
    return out;
}

struct TokenStream::Mapping {
    void* addr = nullptr;
    std::size_t length = 0;
    ~Mapping() {
        if (addr && length) ::munmap(addr, length);
    }
};

TokenStream TokenStream::open(const fs::path& cache_file) {
    const int fd = open_regular_file(cache_file);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        fail_file(cache_file, "cannot stat: " + errno_text(err));
    }
    const auto size = static_cast<uint64_t>(st.st_size);
    if (size < kHeaderBytes) {
        ::close(fd);
        fail_file(cache_file, "truncated token cache (" + std::to_string(size) + " bytes, the header alone is 64)");
    }
    void* addr = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    const int err = errno;
    ::close(fd);
    if (addr == MAP_FAILED) fail_file(cache_file, "cannot map the token cache: " + errno_text(err));
    auto map = std::make_shared<Mapping>();
    map->addr = addr;
    map->length = size;

    TokenCacheHeader h{};
    std::memcpy(&h, addr, sizeof h);
    if (std::memcmp(h.magic, kTokenCacheMagic, 8) != 0) fail_file(cache_file, "not a harmonic token cache (bad magic)");
    if (h.version != kTokenCacheVersion)
        fail_file(cache_file, "token cache version " + std::to_string(h.version) + ", expected " + std::to_string(kTokenCacheVersion));
    if (h.token_bytes != 1 && h.token_bytes != 4)
        fail_file(cache_file, "token width " + std::to_string(h.token_bytes) + " (expected 1 or 4)");
    if (h.vocab_size == 0 || h.vocab_size > (uint64_t(1) << 32) || (h.token_bytes == 1 && h.vocab_size > 256))
        fail_file(cache_file, "implausible vocab_size " + std::to_string(h.vocab_size));
    if (h.count > (size - kHeaderBytes) / h.token_bytes || kHeaderBytes + h.count * h.token_bytes != size)
        fail_file(cache_file, "size " + std::to_string(size) + " does not match its header (" + std::to_string(h.count) +
                                  " tokens of " + std::to_string(h.token_bytes) + " bytes): truncated or damaged");
    TokenStream s;
    s.map_ = std::move(map);
    s.ids_ = static_cast<const uint8_t*>(addr) + kHeaderBytes;
    s.path_ = cache_file;
    s.count_ = static_cast<int64_t>(h.count);
    s.vocab_ = static_cast<int64_t>(h.vocab_size);
    s.width_ = static_cast<int>(h.token_bytes);
    s.checksum_ = h.checksum;
    s.fingerprint_ = h.fingerprint;
    s.files_ = static_cast<int64_t>(h.files);
    s.source_bytes_ = static_cast<int64_t>(h.source_bytes);
    return s;
}

void TokenStream::read(int64_t start, int64_t count, int64_t* out) const {
    if (start < 0 || count < 0 || start > count_ || count > count_ - start)
        fail_file(path_, "tokens [" + std::to_string(start) + ", " + std::to_string(start + count) +
                             ") are outside the stream of " + std::to_string(count_) + " tokens");
    if (width_ == 1) {
        const uint8_t* p = ids_ + start;
        for (int64_t i = 0; i < count; ++i) out[i] = p[i];
    } else {
        const uint8_t* p = ids_ + start * 4;
        for (int64_t i = 0; i < count; ++i) {
            uint32_t v;
            std::memcpy(&v, p + i * 4, 4);
            out[i] = v;
        }
    }
    for (int64_t i = 0; i < count; ++i)
        if (out[i] >= vocab_)
            fail_file(path_, "token id " + std::to_string(out[i]) + " at position " + std::to_string(start + i) +
                                 " is outside the vocabulary (" + std::to_string(vocab_) +
                                 "): the cache is damaged, delete it to rebuild");
}

std::vector<int64_t> TokenStream::read(int64_t start, int64_t count) const {
    std::vector<int64_t> out(static_cast<std::size_t>(std::max<int64_t>(count, 0)));
    read(start, count, out.data());
    return out;
}

void TokenStream::release(int64_t start, int64_t count) const {
    if (!map_ || start < 0 || count <= 0 || start > count_ || count > count_ - start) return;
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = reinterpret_cast<uintptr_t>(ids_ + start * width_);
    const auto end = reinterpret_cast<uintptr_t>(ids_ + (start + count) * width_);
    const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
    if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

int64_t TokenStream::at(int64_t index) const {
    int64_t v = 0;
    read(index, 1, &v);
    return v;
}

fs::path default_cache_dir() {
    if (const char* d = std::getenv("HARMONIC_CACHE_DIR"); d && *d) return fs::path(d);
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "harmonic" / "tokens";
    if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "harmonic" / "tokens";
    return fs::temp_directory_path() / "harmonic-tokens";
}

std::string tokenizer_cache_key(const std::string& kind, const fs::path& tokenizer_json) {
    if (kind == "bytes") return "bytes";
    const auto bytes = read_file_bytes(tokenizer_json, uint64_t(1) << 30);
    return kind + "-" + hex64(fnv1a64(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size())));
}

Corpus open_corpus(const std::vector<fs::path>& inputs, const Tokenizer& tokenizer, const std::string& tokenizer_key,
                   const CorpusOptions& options) {
    Corpus corpus;
    corpus.files = list_corpus_files(inputs);
    const bool bytes = tokenizer.kind() == "bytes";
    const int64_t vocab = tokenizer.vocab_size();

    // Cache key: what was asked for (inputs, tokenizer, separator); fingerprint: what is there now.
    uint64_t key = fnv1a64("harmonic-corpus-v1");
    key = fnv1a64(tokenizer_key + '\0' + options.separator + '\0', key);
    for (const auto& in : inputs) {
        std::error_code ec;
        fs::path abs = fs::weakly_canonical(fs::absolute(in), ec);
        key = fnv1a64(abs.string() + '\0', key);
    }
    uint64_t fingerprint = key;
    uint64_t source_bytes = 0;
    for (const auto& f : corpus.files) {
        std::error_code ec;
        const uint64_t size = fs::file_size(f, ec);
        if (ec) fail_file(f, "cannot be read (" + ec.message() + ")");
        struct stat st {};
        int64_t mtime_ns = 0;
        if (::stat(f.c_str(), &st) == 0) mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        fingerprint = fnv1a64(fs::absolute(f).string() + '\0', fingerprint);
        fingerprint = hash_u64(size, fingerprint);
        fingerprint = hash_u64(static_cast<uint64_t>(mtime_ns), fingerprint);
        source_bytes += size;
    }

    const fs::path dir = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fail_file(dir, "cannot create the token cache folder: " + ec.message());
    const std::string kind = bytes ? "bytes" : "bpe";
    const fs::path cache = dir / (sanitize(inputs.front().filename().string().empty()
                                               ? fs::absolute(inputs.front()).parent_path().filename().string()
                                               : inputs.front().filename().string()) +
                                  "-" + kind + "-" + hex64(key) + ".tokens");

    if (!options.rebuild && fs::exists(cache)) {
        try {
            TokenStream s = TokenStream::open(cache);
            if (s.fingerprint() == fingerprint && s.vocab_size() == vocab) {
                corpus.tokens = std::move(s);
                corpus.from_cache = true;
                return corpus;
            }
        } catch (const Error&) {
            // A damaged or stale cache is rebuilt below.
        }
    }

    if (options.on_message)
        options.on_message("tokenizing " + std::to_string(corpus.files.size()) + " file" +
                           (corpus.files.size() == 1 ? "" : "s") + " (" + human_bytes(source_bytes) + ") into " +
                           cache.string());
    const int width = vocab <= 256 ? 1 : 4;
    CacheWriter writer(cache, width, vocab);
    const std::vector<int64_t> separator_ids = bytes ? std::vector<int64_t>{} : tokenizer.encode_fragment(options.separator).ids;
    uint64_t checksum = kFnvOffset;
    // Progress for big corpora (a 2 GB text takes seconds as bytes, minutes through BPE).
    uint64_t done_bytes = 0;
    auto last_report = std::chrono::steady_clock::now();
    auto progress = [&](std::size_t n) {
        done_bytes += n;
        const auto now = std::chrono::steady_clock::now();
        if (!options.on_message || now - last_report < options.progress_interval) return;
        last_report = now;
        options.on_message("tokenized " + human_bytes(done_bytes) + " of " + human_bytes(source_bytes) + " (" +
                           std::to_string(source_bytes ? done_bytes * 100 / source_bytes : 100) + "%)");
    };
    for (std::size_t i = 0; i < corpus.files.size(); ++i) {
        if (i > 0 && !options.separator.empty()) {
            checksum = fnv1a64(options.separator, checksum);
            if (bytes) writer.add_bytes(options.separator);
            else writer.add_ids(separator_ids);
        }
        read_text_blocks(corpus.files[i], !bytes, options.block_bytes, checksum, [&](std::string_view part) {
            if (bytes) writer.add_bytes(part);
            else writer.add_ids(tokenizer.encode_fragment(part).ids);
            progress(part.size());
        });
    }
    TokenCacheHeader h{};
    std::memcpy(h.magic, kTokenCacheMagic, 8);
    h.version = kTokenCacheVersion;
    h.token_bytes = static_cast<uint32_t>(width);
    h.vocab_size = static_cast<uint64_t>(vocab);
    h.checksum = checksum;
    h.fingerprint = fingerprint;
    h.files = corpus.files.size();
    h.source_bytes = source_bytes;
    writer.finish(h);
    corpus.tokens = TokenStream::open(cache);
    if (options.on_message)
        options.on_message("wrote " + std::to_string(corpus.tokens.size()) + " tokens to " + cache.string());
    return corpus;
}

}  // namespace harmonic
