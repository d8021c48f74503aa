#include "model/run_folder.h"

#include <algorithm>
#include <cerrno>
#include <exception>
#include <sstream>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "model/error.h"
#include "model/format.h"
#include "model/io.h"

namespace harmonic {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kStateFormat = "harmonic-trainer-state";
constexpr int kStateVersion = 1;
constexpr const char* kLogHeader = "step,tokens,lr,loss_bpt,val_bpt,tokens_per_s,elapsed_s\n";

// Keeps the newest `keep` step folders (and always `current`).
void prune_step_folders(const fs::path& dir, const std::string& current, int keep_checkpoints) {
    std::vector<std::pair<int64_t, fs::path>> steps;
    for (const auto& entry : fs::directory_iterator(dir)) {
        const auto name = entry.path().filename().string();
        if (auto s = parse_step_name(name); s && entry.is_directory()) steps.emplace_back(*s, entry.path());
    }
    std::sort(steps.begin(), steps.end());
    const auto keep = static_cast<std::size_t>(std::max(1, keep_checkpoints));
    for (std::size_t i = 0; i + keep < steps.size(); ++i) {
        if (steps[i].second.filename() == current) continue;
        remove_tree(steps[i].second);
    }
}

}  // namespace

std::string step_name(int64_t step) { return strf("step-%07lld", static_cast<long long>(step)); }

std::optional<int64_t> parse_step_name(const std::string& name) {
    if (name.size() < 6 || name.compare(0, 5, "step-") != 0) return std::nullopt;
    int64_t v = 0;
    for (std::size_t i = 5; i < name.size(); ++i) {
        if (name[i] < '0' || name[i] > '9') return std::nullopt;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

void install_file(const fs::path& src, const fs::path& dst) {
    fs::path tmp = dst;
    tmp += ".tmp-" + std::to_string(::getpid()) + "-link";
    ::unlink(tmp.c_str());
    if (::link(src.c_str(), tmp.c_str()) != 0) {
        const auto bytes = read_file_bytes(src, uint64_t(1) << 40);
        write_file_atomically(dst, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
        return;
    }
    if (::rename(tmp.c_str(), dst.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        fail_file(dst, "cannot replace: " + errno_text(err));
    }
    fsync_folder(dst.parent_path().empty() ? fs::path(".") : dst.parent_path());
}

RunLock::RunLock(const fs::path& dir) {
    const fs::path file = dir / ".lock";
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail_file(file, "cannot create the run lock: " + errno_text(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        ::close(fd_);
        fd_ = -1;
        fail_file(dir, "another `harmonic train` is writing to this folder");
    }
}

RunLock::~RunLock() {
    if (fd_ >= 0) ::close(fd_);
}

RunLog::~RunLog() {
    if (fd_ >= 0) ::close(fd_);
}

void RunLog::create() {
    if (!enabled_) return;
    write_file_atomically(path_, kLogHeader);
    open_append();
}

void RunLog::truncate_to(int64_t step) {
    if (!enabled_) return;
    std::string kept = kLogHeader;
    if (fs::exists(path_)) {
        const auto bytes = read_file_bytes(path_, uint64_t(1) << 34);
        std::istringstream in(std::string(bytes.begin(), bytes.end()));
        std::string line;
        bool header = true;
        while (std::getline(in, line)) {
            if (header) {
                header = false;
                continue;
            }
            if (in.eof()) break;  // no newline: a row cut short by a kill
            const auto comma = line.find(',');
            if (comma == std::string::npos) continue;
            try {
                if (std::stoll(line.substr(0, comma)) <= step) kept += line + "\n";
            } catch (const std::exception&) {
            }
        }
    }
    write_file_atomically(path_, kept);
    open_append();
}

void RunLog::row(int64_t step, int64_t tokens, double lr, double loss, double val, double tps, double elapsed) {
    if (!enabled_) return;
    std::string line = strf("%lld,%lld,%.6e,%.8f,", static_cast<long long>(step), static_cast<long long>(tokens), lr, loss);
    if (val >= 0) line += strf("%.8f", val);
    line += strf(",%.1f,%.2f\n", tps, elapsed);
    if (const int err = write_fully(fd_, line); err != 0) fail_file(path_, "cannot append: " + errno_text(err));
}

void RunLog::sync() {
    if (enabled_ && fd_ >= 0 && ::fsync(fd_) != 0) fail_file(path_, "cannot sync: " + errno_text(errno));
}

void RunLog::open_append() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd_ < 0) fail_file(path_, "cannot open for appending: " + errno_text(errno));
}

fs::path latest_step_dir(const fs::path& dir) {
    const fs::path latest = dir / "latest";
    if (!fs::exists(dir)) fail_file(dir, "no such run folder");
    if (!fs::exists(latest)) fail_file(latest, "missing: no checkpoint was completed in this folder, nothing to resume");
    const auto bytes = read_file_bytes(latest, 4096);
    std::string name(bytes.begin(), bytes.end());
    while (!name.empty() && (name.back() == '\n' || name.back() == '\r' || name.back() == ' ')) name.pop_back();
    if (!parse_step_name(name)) fail_file(latest, "does not name a step folder ('" + name + "')");
    const fs::path step_dir = dir / name;
    if (!fs::exists(step_dir / "trainer_state.json")) fail_file(step_dir, "missing or incomplete (no trainer_state.json)");
    return step_dir;
}

json read_trainer_state(const fs::path& step_dir) {
    const fs::path file = step_dir / "trainer_state.json";
    const auto bytes = read_file_bytes(file, 64u << 20);
    json j;
    try {
        j = json::parse(bytes.begin(), bytes.end());
    } catch (const json::exception& e) {
        fail_file(file, std::string("invalid JSON: ") + e.what());
    }
    if (!j.is_object() || j.value("format", "") != kStateFormat)
        fail_file(file, "not a harmonic trainer state");
    if (j.value("version", 0) != kStateVersion)
        fail_file(file, "trainer state version " + j.value("version", json(0)).dump() + ", expected " +
                            std::to_string(kStateVersion));
    return j;
}

void write_trainer_state(const fs::path& step_dir, json state) {
    state["format"] = kStateFormat;
    state["version"] = kStateVersion;
    write_file_atomically(step_dir / "trainer_state.json", state.dump(2) + "\n");
}

void remove_leftovers(const fs::path& dir) {
    for (const auto& entry : fs::directory_iterator(dir))
        if (entry.path().filename().string().find(".tmp-") != std::string::npos) remove_tree(entry.path());
}

void write_step_folder(const fs::path& dir, int64_t step, int keep, const std::function<void(const fs::path&)>& fill) {
    const std::string name = step_name(step);
    const fs::path final_dir = dir / name;
    // Built under a temporary name and renamed into place whole; a failure (a full disk) removes it.
    StagingFolder staging(final_dir);
    fill(staging.path());
    staging.commit();
    // The loadable top-level checkpoint: weights first, config last, each replaced atomically;
    // then `latest`, so that a folder with a `latest` always has a loadable top level too.
    install_file(final_dir / "model.safetensors", dir / "model.safetensors");
    install_file(final_dir / "config.json", dir / "config.json");
    write_file_atomically(dir / "latest", name + "\n");
    prune_step_folders(dir, name, keep);
}

}  // namespace harmonic
