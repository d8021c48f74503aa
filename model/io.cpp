#include "model/io.h"

#include <ftw.h>

#include "model/error.h"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace harmonic {

std::string errno_text(int err) { return std::generic_category().message(err); }

std::string hex64(uint64_t v) {
    char buf[20];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

namespace {

// Closes on scope exit; close errors on the read path cannot lose data, so they are ignored.
class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const { return fd_; }
    int release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }

private:
    int fd_;
};

std::string limit_message(uint64_t size, uint64_t max_bytes) {
    return "is " + std::to_string(size) + " bytes, larger than the " + std::to_string(max_bytes) + "-byte limit";
}

const char* kind_of(mode_t mode) {
    if (S_ISDIR(mode)) return "is a directory";
    if (S_ISFIFO(mode)) return "is not a regular file (a FIFO or pipe); give a file";
    if (S_ISCHR(mode) || S_ISBLK(mode)) return "is not a regular file (a device); give a file";
    if (S_ISSOCK(mode)) return "is not a regular file (a socket); give a file";
    return "is not a regular file";
}

// A unique temporary name beside `path`: pid + counter, so two processes, or two threads of one,
// never share it.
std::filesystem::path temp_name(const std::filesystem::path& path) {
    static std::atomic<unsigned long> counter{0};
    std::filesystem::path temp = path;
    temp += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    return temp;
}

std::filesystem::path folder_of(const std::filesystem::path& file) {
    std::filesystem::path folder = file.parent_path();
    return folder.empty() ? std::filesystem::path(".") : folder;
}

}  // namespace

int open_regular_file(const std::filesystem::path& file) {
    // O_NONBLOCK: opening a FIFO that has no writer returns at once instead of blocking forever.
    Fd fd(::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (fd.get() < 0) {
        const int err = errno;
        if (err == ENOENT) fail_file(file, "no such file");
        if (err == EISDIR) fail_file(file, "is a directory");
        fail_file(file, "cannot open: " + errno_text(err));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) fail_file(file, "cannot stat: " + errno_text(errno));
    if (!S_ISREG(st.st_mode)) fail_file(file, kind_of(st.st_mode));
    const int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
        fail_file(file, "cannot set blocking mode: " + errno_text(errno));
    return fd.release();
}

std::size_t read_up_to(int fd, void* dst, std::size_t want, const std::filesystem::path& file) {
    auto* out = static_cast<uint8_t*>(dst);
    std::size_t got = 0;
    while (got < want) {
        const ssize_t n = ::read(fd, out + got, want - got);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_file(file, "read failed: " + errno_text(errno));
        }
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    return got;
}

void require_regular_file(const std::filesystem::path& file) { ::close(open_regular_file(file)); }

std::vector<uint8_t> read_file_bytes(const std::filesystem::path& file, uint64_t max_bytes) {
    Fd fd(open_regular_file(file));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) fail_file(file, "cannot stat: " + errno_text(errno));
    // The size is checked before anything is allocated, so a huge file costs nothing to refuse.
    const auto expected = static_cast<uint64_t>(st.st_size);
    if (expected > max_bytes) fail_file(file, limit_message(expected, max_bytes));

    // The file may change between fstat and read: read what is there, never more than max_bytes.
    std::vector<uint8_t> bytes(static_cast<std::size_t>(expected));
    std::size_t size = read_up_to(fd.get(), bytes.data(), bytes.size(), file);
    if (size < bytes.size()) {
        bytes.resize(size);
        return bytes;
    }
    constexpr std::size_t chunk = 1 << 16;
    for (;;) {
        if (bytes.size() - size < chunk) bytes.resize(size + chunk);
        std::size_t n = read_up_to(fd.get(), bytes.data() + size, chunk, file);
        size += n;
        if (size > max_bytes) fail_file(file, "is larger than the " + std::to_string(max_bytes) + "-byte limit");
        if (n < chunk) break;
    }
    bytes.resize(size);
    return bytes;
}

std::shared_ptr<const MappedFile> MappedFile::open(const std::filesystem::path& file, uint64_t max_bytes) {
    Fd fd(open_regular_file(file));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) fail_file(file, "cannot stat: " + errno_text(errno));
    const auto size = static_cast<uint64_t>(st.st_size);
    if (size > max_bytes) fail_file(file, limit_message(size, max_bytes));
    std::shared_ptr<MappedFile> m(new MappedFile());
    m->path_ = file;
    m->size_ = static_cast<std::size_t>(size);
    if (size == 0) return m;  // mmap refuses length 0; an empty file maps to nothing
    void* addr = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (addr == MAP_FAILED) fail_file(file, "cannot map " + std::to_string(size) + " bytes: " + errno_text(errno));
    m->data_ = static_cast<const uint8_t*>(addr);
    return m;
}

MappedFile::~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void MappedFile::release(const void* p, std::size_t n) const {
    if (!data_ || n == 0) return;
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = reinterpret_cast<uintptr_t>(p), end = begin + n;
    const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
    // Only whole pages: a page shared with a neighbouring tensor may still be read.
    if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

DurableFile::DurableFile(std::filesystem::path file) : file_(std::move(file)), temp_(temp_name(file_)) {
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    // Nothing of ours was created; with O_EXCL an existing name belongs to someone else.
    if (fd_ < 0) fail_file(file_, "cannot create temporary file " + temp_.string() + ": " + errno_text(errno));
    // Replacing a file must not widen its permissions (a private file stays private), so the
    // new one takes the old one's mode rather than the umask default.
    struct stat old {};
    if (::stat(file_.c_str(), &old) == 0 && S_ISREG(old.st_mode) && ::fchmod(fd_, old.st_mode & 07777) != 0)
        fail("cannot set the mode of " + temp_.string(), errno);
}

DurableFile::~DurableFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!temp_.empty()) ::unlink(temp_.c_str());
}

void DurableFile::fail(const std::string& what, int err) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ::unlink(temp_.c_str());
    temp_.clear();
    fail_file(file_, what + ": " + errno_text(err));
}

void DurableFile::write(std::string_view bytes) {
    if (fd_ < 0) throw Error(file_.string() + ": write after the file was committed or failed");
    constexpr std::size_t kFlushAt = std::size_t(4) << 20;
    if (buffer_.size() + bytes.size() >= kFlushAt) flush();
    // A large write goes straight to the file rather than through a copy in the buffer.
    if (bytes.size() >= kFlushAt)
        write_all(bytes);
    else
        buffer_.append(bytes);
}

int write_fully(int fd, std::string_view bytes) {
    const char* p = bytes.data();
    std::size_t left = bytes.size();
    while (left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    return 0;
}

void DurableFile::write_all(std::string_view bytes) {
    if (const int err = write_fully(fd_, bytes); err != 0) fail("cannot write " + temp_.string(), err);
    written_ += bytes.size();
}

void DurableFile::flush() {
    write_all(buffer_);
    buffer_.clear();
}

void DurableFile::write_at(uint64_t offset, std::string_view bytes) {
    if (fd_ < 0) throw Error(file_.string() + ": write after the file was committed or failed");
    flush();
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("cannot write " + temp_.string(), errno);
        }
        done += static_cast<std::size_t>(n);
    }
}

void DurableFile::commit() {
    if (fd_ < 0) throw Error(file_.string() + ": committed twice or after a failure");
    flush();
    if (::fsync(fd_) != 0) fail("cannot sync " + temp_.string(), errno);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("cannot close " + temp_.string(), errno);
    if (::rename(temp_.c_str(), file_.c_str()) != 0) fail("cannot rename " + temp_.string() + " over it", errno);
    temp_.clear();
    // Without this the rename itself may not survive a crash.
    fsync_folder(folder_of(file_));
}

void write_file_atomically(const std::filesystem::path& file, std::string_view bytes) {
    DurableFile out(file);
    out.write(bytes);
    out.commit();
}

void fsync_folder(const std::filesystem::path& folder) {
    Fd dir(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0) fail_file(folder, "cannot open the folder to sync it: " + errno_text(errno));
    // Some file systems cannot fsync a directory; the rename is as durable as they allow.
    if (::fsync(dir.get()) != 0 && errno != EINVAL && errno != ENOTSUP)
        fail_file(folder, "syncing the folder failed: " + errno_text(errno));
}

StagingFolder::StagingFolder(std::filesystem::path folder) : folder_(std::move(folder)) {
    while (!folder_.empty() && !folder_.has_filename()) folder_ = folder_.parent_path();  // "out/" -> "out"
    temp_ = temp_name(folder_);
    std::error_code ec;
    std::filesystem::create_directories(folder_of(folder_), ec);
    if (ec) fail_file(folder_of(folder_), "cannot create folder: " + ec.message());
    if (::mkdir(temp_.c_str(), 0777) != 0)
        fail_file(folder_, "cannot create the temporary folder " + temp_.string() + ": " + errno_text(errno));
}

StagingFolder::~StagingFolder() {
    if (!done_) remove_tree(temp_);
}

void StagingFolder::commit() {
    struct stat st {};
    std::filesystem::path old;
    if (::lstat(folder_.c_str(), &st) == 0) {
        // rename(2) cannot replace a non-empty folder: move the old one aside first.
        old = temp_name(folder_);
        if (::rename(folder_.c_str(), old.c_str()) != 0)
            fail_file(folder_, "cannot move the existing folder aside: " + errno_text(errno));
    }
    if (::rename(temp_.c_str(), folder_.c_str()) != 0) {
        const int err = errno;
        if (!old.empty()) ::rename(old.c_str(), folder_.c_str());
        fail_file(folder_, "cannot rename " + temp_.string() + " into place: " + errno_text(err));
    }
    done_ = true;
    if (!old.empty()) remove_tree(old);
    fsync_folder(folder_of(folder_));
}

namespace {
int remove_entry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }
}  // namespace

void remove_tree(const std::filesystem::path& path) {
    ::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

}  // namespace harmonic
