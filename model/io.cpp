#include "model/io.h"

#include <ftw.h>

#include "model/error.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace harmonic {

namespace {

std::string errno_text(int err) { return std::generic_category().message(err); }

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
    // For the write path, where a failing close() can mean the data never reached the disk.
    int release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }

private:
    int fd_;
};

// Reads until `want` bytes or end of file; returns the count read. Retries EINTR and short reads.
std::size_t read_some(int fd, uint8_t* dst, std::size_t want, const std::filesystem::path& file) {
    std::size_t got = 0;
    while (got < want) {
        ssize_t n = ::read(fd, dst + got, want - got);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_file(file, "read failed: " + errno_text(errno));
        }
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    return got;
}

std::string limit_message(uint64_t size, uint64_t max_bytes) {
    return "is " + std::to_string(size) + " bytes, larger than the " + std::to_string(max_bytes) + "-byte limit";
}

}  // namespace

std::vector<uint8_t> read_file_bytes(const std::filesystem::path& file, uint64_t max_bytes) {
    std::error_code ec;
    const auto st = std::filesystem::status(file, ec);
    if (st.type() == std::filesystem::file_type::not_found) fail_file(file, "no such file");
    if (ec) fail_file(file, "cannot access: " + ec.message());
    if (st.type() == std::filesystem::file_type::directory) fail_file(file, "is a directory");

    // The size is checked before anything is allocated, so a huge file costs nothing to refuse.
    uint64_t expected = 0;
    if (st.type() == std::filesystem::file_type::regular) {
        expected = std::filesystem::file_size(file, ec);
        if (ec) fail_file(file, "cannot get its size: " + ec.message());
        if (expected > max_bytes) fail_file(file, limit_message(expected, max_bytes));
    }

    Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) fail_file(file, "cannot open: " + errno_text(errno));

    // The file may change between stat and read (or be a pipe with no size): read what is
    // there, but never hold more than max_bytes.
    std::vector<uint8_t> bytes(static_cast<std::size_t>(expected));
    std::size_t size = read_some(fd.get(), bytes.data(), bytes.size(), file);
    if (size < bytes.size()) {
        bytes.resize(size);
        return bytes;
    }
    constexpr std::size_t chunk = 1 << 16;
    for (;;) {
        if (bytes.size() - size < chunk) bytes.resize(size + chunk);
        std::size_t n = read_some(fd.get(), bytes.data() + size, chunk, file);
        size += n;
        if (size > max_bytes)
            fail_file(file, "is larger than the " + std::to_string(max_bytes) + "-byte limit");
        if (n < chunk) break;
    }
    bytes.resize(size);
    return bytes;
}

void write_file_atomically(const std::filesystem::path& file, std::string_view bytes) {
    // pid + counter: two processes, or two threads of one, never share a temporary file.
    static std::atomic<unsigned long> counter{0};
    std::filesystem::path temp = file;
    temp += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);

    std::filesystem::path folder = file.parent_path();
    if (folder.empty()) folder = ".";

    auto fail = [&](const std::string& what, int err) {
        ::unlink(temp.c_str());
        fail_file(file, what + ": " + errno_text(err));
    };

    Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
    if (fd.get() < 0) {
        // Nothing of ours was created; with O_EXCL an existing name belongs to someone else.
        fail_file(file, "cannot create temporary file " + temp.string() + ": " + errno_text(errno));
    }

    // Replacing a file must not widen its permissions (a private file stays private), so the
    // new one takes the old one's mode rather than the umask default.
    struct stat old {};
    if (::stat(file.c_str(), &old) == 0 && S_ISREG(old.st_mode) && ::fchmod(fd.get(), old.st_mode & 07777) != 0)
        fail("cannot set the mode of " + temp.string(), errno);

    const char* p = bytes.data();
    std::size_t left = bytes.size();
    while (left > 0) {
        ssize_t n = ::write(fd.get(), p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("cannot write " + temp.string(), errno);
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) fail("cannot sync " + temp.string(), errno);
    // close() can report a deferred write error (NFS, quota): it must be checked before rename.
    if (::close(fd.release()) != 0) fail("cannot close " + temp.string(), errno);
    if (::rename(temp.c_str(), file.c_str()) != 0)
        fail("cannot rename " + temp.string() + " over it", errno);

    // Without this the rename itself may not survive a crash.
    Fd dir(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0) fail_file(file, "written, but cannot open its folder to sync: " + errno_text(errno));
    // Some file systems cannot fsync a directory; the rename is as durable as they allow.
    if (::fsync(dir.get()) != 0 && errno != EINVAL && errno != ENOTSUP)
        fail_file(file, "written, but syncing its folder failed: " + errno_text(errno));
}

namespace {
int remove_entry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }
}  // namespace

void remove_tree(const std::filesystem::path& path) {
    ::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

}  // namespace harmonic
