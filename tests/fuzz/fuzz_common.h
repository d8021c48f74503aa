// Shared by the libFuzzer harnesses: how a harness reports a bug, the checks every error message
// must pass, and a scratch file on tmpfs for readers that only take a path.
#pragma once

#include "model/error.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include <cerrno>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

namespace harmonic_fuzz {

// A broken invariant: abort, so libFuzzer saves the input as a crash.
[[noreturn]] inline void bug(const char* harness, const std::string& what) {
    std::fprintf(stderr, "%s: %s\n", harness, what.c_str());
    std::abort();
}

// Messages are shown in the GUI and printed by the CLI: they must name the file first and stay
// short whatever the input (anything quoted from the file is clipped).
constexpr std::size_t max_message_bytes = 4096;

inline void check_error(const char* harness, const harmonic::Error& e, std::string_view source) {
    const std::string_view message = e.what();
    if (message.substr(0, source.size() + 2) != std::string(source) + ": ")
        bug(harness, "error message does not start with \"" + std::string(source) + ": \": " +
                         std::string(message.substr(0, 300)));
    if (message.size() > max_message_bytes)
        bug(harness, "error message is " + std::to_string(message.size()) + " bytes long: " +
                         std::string(message.substr(0, 300)));
}

// A file in a private folder under /dev/shm (or $TMPDIR when there is no /dev/shm), rewritten for
// every input: the readers under test take paths, and tmpfs keeps that cheap.
class ScratchFile {
public:
    explicit ScratchFile(const std::string& name) {
        std::error_code ec;
        std::filesystem::path base = "/dev/shm";
        if (!std::filesystem::is_directory(base, ec)) base = std::filesystem::temp_directory_path();
        remove_stale(base);
        dir_ = base / ("harmonic-fuzz-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_, ec);
        path_ = dir_ / name;
    }
    ~ScratchFile() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    ScratchFile(const ScratchFile&) = delete;
    ScratchFile& operator=(const ScratchFile&) = delete;

    const std::filesystem::path& path() const { return path_; }

    void write(const void* data, std::size_t size) const {
        const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) bug("ScratchFile", "cannot create " + path_.string());
        const char* p = static_cast<const char*>(data);
        while (size > 0) {
            const ssize_t n = ::write(fd, p, size);
            if (n <= 0) bug("ScratchFile", "cannot write " + path_.string());
            p += n;
            size -= static_cast<std::size_t>(n);
        }
        ::close(fd);
    }

private:
    // A harness that crashed (abort, sanitizer report) never ran the destructor: remove the
    // folders of processes that are gone.
    static void remove_stale(const std::filesystem::path& base) {
        std::error_code ec;
        for (const auto& entry : std::filesystem::directory_iterator(base, ec)) {
            const std::string name = entry.path().filename().string();
            const std::string prefix = "harmonic-fuzz-";
            if (name.rfind(prefix, 0) != 0) continue;
            const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
            if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
                std::filesystem::remove_all(entry.path(), ec);
        }
    }

    std::filesystem::path dir_;
    std::filesystem::path path_;
};

}  // namespace harmonic_fuzz
