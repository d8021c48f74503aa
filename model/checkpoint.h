// Checkpoints: a folder with config.json + model.safetensors (+ tokenizer.json for BPE), the format
// the ecosystem uses; never pickle. Weight names are the modules' parameter paths
// (docs/CHECKPOINTS.md lists them).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/language_model.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"

namespace harmonic {

struct LoadedModel {
    std::filesystem::path dir;
    ModelConfig config;
    std::shared_ptr<LanguageModel> model;
    std::shared_ptr<Tokenizer> tokenizer;
    std::map<std::string, std::string> metadata;  // the safetensors __metadata__
    std::vector<std::string> warnings;            // e.g. NaN/Inf weights
};

struct SaveOptions {
    safetensors::DType dtype = safetensors::DType::F32;   // F32, F16 or BF16
    std::filesystem::path tokenizer_json;                  // copied in for BPE models
    std::map<std::string, std::string> metadata;
};

// Writes weights first and config.json last, each atomically, so a folder with a config.json
// always holds a complete checkpoint. Creates DIR if needed.
void save_checkpoint(const LanguageModel& model, const std::filesystem::path& dir, const SaveOptions& options = {});

// Throws Error naming the file and the problem: missing folder/file, bad config, tokenizer that
// does not fit vocab_size, tensors missing / extra / of the wrong shape or dtype. Nothing is
// half-loaded: the model is returned only when every tensor was checked and copied.
LoadedModel load_checkpoint(const std::filesystem::path& dir, const torch::Device& device = torch::kCPU);

// Copies the model's parameters into a safetensors-ready list (dtype conversion included).
struct TensorBlob {
    std::string name;
    safetensors::DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
};
std::vector<TensorBlob> export_parameters(const LanguageModel& model, safetensors::DType dtype);

torch::Device parse_device(const std::string& name);  // "cpu", "cuda", "cuda:1", "auto"; Error if unavailable
// Peak bytes the caching allocator has handed out on a CUDA device since the last reset, in GB
// (0 on the CPU): what `harmonic bench` and `harmonic train` report as memory.
double cuda_peak_memory_gb(const torch::Device& device);
void cuda_reset_peak_memory(const torch::Device& device);
// Caps what this process may allocate on a CUDA device at `gb` (<= 0: the whole card again);
// beyond it allocations fail with an out-of-memory error as if the card were that small.
// HARMONIC_CUDA_MEMORY_LIMIT_GB=N in the environment applies it to every device parse_device
// hands out (to share a GPU, and to test the out-of-memory paths on a large card).
void cuda_limit_memory(const torch::Device& device, double gb);
// Whether a LibTorch error is the CUDA caching allocator running out of memory.
bool is_out_of_memory(const c10::Error& error);
// Returns the allocator's cached blocks to the driver (after an out-of-memory error, before retrying).
void cuda_release_cached_memory(const torch::Device& device);

}  // namespace harmonic
