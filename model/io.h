// File I/O used by every writer and reader of the project: durable atomic writes, bounded reads
// of regular files only, read-only mappings, and the shared small helpers (errno_text, hex64).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace harmonic {

// strerror-style text for an errno value ("No space left on device").
std::string errno_text(int err);

// 16 lower-case hex digits: how checksums and cache keys are written.
std::string hex64(uint64_t v);

// Opens FILE for reading, refusing anything that is not a regular file: a FIFO with no writer
// would block in open(2) forever and a device may never end, so the file is opened with
// O_NONBLOCK and fstat-ed before a byte is read. Returns the descriptor (blocking again, the
// caller closes it). Throws Error "FILE: ..." for a missing file, a folder, a FIFO, a device,
// a socket or an open failure.
int open_regular_file(const std::filesystem::path& file);

// Reads from fd until `want` bytes or the end of the file; returns the count read. Retries EINTR
// and short reads; a read error throws Error naming `file`.
std::size_t read_up_to(int fd, void* dst, std::size_t want, const std::filesystem::path& file);

// The same check without keeping the file open (for readers that open the file themselves).
void require_regular_file(const std::filesystem::path& file);

// Reads a whole regular file. Throws Error "FILE: ..." when it is missing, is not a regular file,
// cannot be read, or is larger than max_bytes (nothing is allocated in that case).
std::vector<uint8_t> read_file_bytes(const std::filesystem::path& file, uint64_t max_bytes);

// A regular file mapped read-only (MAP_PRIVATE). Readers hold it through a shared_ptr, so
// tensors made over the mapping keep it alive.
class MappedFile {
public:
    // Throws Error "FILE: ..." like read_file_bytes (larger than max_bytes, not a regular file...).
    static std::shared_ptr<const MappedFile> open(const std::filesystem::path& file, uint64_t max_bytes);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    std::size_t size() const { return size_; }
    const std::filesystem::path& path() const { return path_; }
    // Tells the kernel the whole pages inside [p, p + n) are no longer needed, so a file read
    // once (weights copied elsewhere) does not stay resident; the bytes remain readable.
    void release(const void* p, std::size_t n) const;

private:
    MappedFile() = default;
    std::filesystem::path path_;
    const uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
};

// Writes all of `bytes` to the descriptor, retrying short writes and EINTR. Returns 0, or the
// errno of the write that failed (the caller names the file).
int write_fully(int fd, std::string_view bytes);

// A file written durably and atomically: bytes go to FILE.tmp-<pid>-<n> in the same folder, every
// write is checked, and commit() fsyncs it, closes it (checked: close can report a deferred write
// error), renames it over FILE and fsyncs the folder. Without commit() (an exception, a crash)
// FILE is untouched and the destructor removes the temporary file: no reader ever sees a partial
// FILE. Every failure throws Error naming FILE and the reason (e.g. "No space left on device").
class DurableFile {
public:
    explicit DurableFile(std::filesystem::path file);
    ~DurableFile();
    DurableFile(const DurableFile&) = delete;
    DurableFile& operator=(const DurableFile&) = delete;

    // Buffered; the buffer is written out whenever it passes a few MB, so memory stays bounded.
    void write(std::string_view bytes);
    // Writes at an absolute offset of the temporary file (a header filled in last).
    void write_at(uint64_t offset, std::string_view bytes);
    uint64_t bytes_written() const { return written_ + buffer_.size(); }
    void commit();
    const std::filesystem::path& path() const { return file_; }

private:
    void flush();
    void write_all(std::string_view bytes);
    [[noreturn]] void fail(const std::string& what, int err);

    std::filesystem::path file_, temp_;
    int fd_ = -1;
    uint64_t written_ = 0;
    std::string buffer_;
};

// Writes `bytes` to FILE through a DurableFile: a crash at any moment leaves either the old file
// or the new one, whole. Throws Error naming the file on failure.
void write_file_atomically(const std::filesystem::path& file, std::string_view bytes);

// fsyncs a folder so that a rename or a new entry in it survives a crash. Throws Error naming the
// folder when it cannot be opened or synced (file systems that cannot sync a folder are accepted).
void fsync_folder(const std::filesystem::path& folder);

// An output folder built under a temporary name beside it (FOLDER.tmp-<pid>-<n>) and renamed into
// place by commit(): a failed run leaves no half-written FOLDER (the destructor removes the
// temporary one). An existing FOLDER is replaced only at commit.
class StagingFolder {
public:
    explicit StagingFolder(std::filesystem::path folder);
    ~StagingFolder();
    StagingFolder(const StagingFolder&) = delete;
    StagingFolder& operator=(const StagingFolder&) = delete;
    // Where to write meanwhile.
    const std::filesystem::path& path() const { return temp_; }
    void commit();

private:
    std::filesystem::path folder_, temp_;
    bool done_ = false;
};

// Removes a file or a whole folder tree; a missing path is not an error. Use this, not
// std::filesystem::remove_all: libtorch.so exports its own copy of remove_all, built against a
// newer libstdc++, which crashes on a non-empty folder in any program linked with LibTorch on
// Debian 12.
void remove_tree(const std::filesystem::path& path);

}  // namespace harmonic
