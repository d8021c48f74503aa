// The folder of a training run (`harmonic train --out DIR`): its layout, its lock, its log and the
// durable, crash-safe replacement of its checkpoints. No LibTorch: what goes into a step folder is
// the trainer's business (model/trainer.cpp).
//
//   DIR/log.csv                     step,tokens,lr,loss_bpt,val_bpt,tokens_per_s,elapsed_s
//   DIR/step-NNNNNNN/               config.json, model.safetensors (fp32), optimizer.safetensors
//                                   (AdamW exp_avg / exp_avg_sq per parameter name),
//                                   trainer_state.json (step, tokens, args, data position, RNG)
//   DIR/latest                      one line: the name of the newest complete step folder
//   DIR/config.json, model.safetensors   the newest weights as a loadable checkpoint
// Step folders are written under a temporary name and renamed when complete; then the top-level
// files are replaced atomically (weights first, config last), then `latest`, so killing the
// process at any moment leaves the last checkpoint loadable and resumable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace harmonic {

// "step-0001000" for step 1000, and back (nullopt for any other name).
std::string step_name(int64_t step);
std::optional<int64_t> parse_step_name(const std::string& name);

// Replaces dst by src's content atomically: a hard link renamed over dst (no copy), or a copy
// written atomically where the file system has no hard links.
void install_file(const std::filesystem::path& src, const std::filesystem::path& dst);

// One writer per run folder: an exclusive flock on DIR/.lock (released by the kernel when the
// process dies, so a killed run never leaves a stale lock).
class RunLock {
public:
    explicit RunLock(const std::filesystem::path& dir);
    RunLock(const RunLock&) = delete;
    RunLock& operator=(const RunLock&) = delete;
    ~RunLock();

private:
    int fd_ = -1;
};

// DIR/log.csv, appended one row per write(2); rows after the resumed checkpoint are dropped.
// A disabled log (every rank but 0) writes nothing.
class RunLog {
public:
    RunLog(std::filesystem::path path, bool enabled) : path_(std::move(path)), enabled_(enabled) {}
    RunLog(const RunLog&) = delete;
    RunLog& operator=(const RunLog&) = delete;
    ~RunLog();

    void create();
    void truncate_to(int64_t step);
    void row(int64_t step, int64_t tokens, double lr, double loss, double val, double tps, double elapsed);
    void sync();

private:
    void open_append();

    std::filesystem::path path_;
    bool enabled_;
    int fd_ = -1;
};

// The newest complete step folder named by DIR/latest; Error naming what is missing otherwise.
std::filesystem::path latest_step_dir(const std::filesystem::path& dir);

// STEP_DIR/trainer_state.json, checked to be a harmonic trainer state of the supported version.
nlohmann::json read_trainer_state(const std::filesystem::path& step_dir);
// Writes `state` with the format and version stamped in, atomically.
void write_trainer_state(const std::filesystem::path& step_dir, nlohmann::json state);

// Removes the leftovers of a killed run: temporary files and unfinished step folders.
void remove_leftovers(const std::filesystem::path& dir);

// Writes the step folder for `step` through `fill` (given the temporary folder to write into),
// renames it into place, then publishes it as DIR's top-level checkpoint and `latest`, and removes
// the oldest step folders beyond `keep`.
void write_step_folder(const std::filesystem::path& dir, int64_t step, int keep,
                       const std::function<void(const std::filesystem::path& folder)>& fill);

}  // namespace harmonic
