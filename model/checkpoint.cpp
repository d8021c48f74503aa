#include "model/checkpoint.h"

#if __has_include(<c10/cuda/CUDACachingAllocator.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#define HARMONIC_HAVE_CUDA_ALLOCATOR 1
#endif

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <fstream>

#include "model/error.h"
#include "model/io.h"

namespace harmonic {

namespace fs = std::filesystem;
namespace st = safetensors;

namespace {

torch::ScalarType torch_dtype(st::DType dtype) {
    switch (dtype) {
        case st::DType::F32: return torch::kFloat32;
        case st::DType::F16: return torch::kFloat16;
        case st::DType::BF16: return torch::kBFloat16;
        case st::DType::F64: return torch::kFloat64;
        default: return torch::kFloat32;
    }
}

bool is_float(st::DType dtype) {
    return dtype == st::DType::F32 || dtype == st::DType::F16 || dtype == st::DType::BF16 || dtype == st::DType::F64;
}

std::string shape_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
}

std::string gigabytes(double bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f GB", bytes / 1e9);
    return buf;
}

// What building the model asks for, in the words of an error message.
std::string out_of_memory_text(const ModelConfig& config) {
    const int64_t n = config.parameter_count();
    return "out of memory building the model config.json describes (" + std::to_string(n) + " parameters, " +
           gigabytes(4.0 * static_cast<double>(n)) + " as F32)";
}

// Before anything is allocated, the config's closed-form parameter count is compared with the
// elements the file declares (the safetensors reader has checked those against the file's size):
// a config that asks for far more than the file holds (a d_model typo, more blocks) is refused at
// the cost of reading the header. A small disagreement is left to the per-tensor checks, whose
// messages name the tensor.
void check_sizes_before_allocating(const ModelConfig& config, const st::File& file, const fs::path& config_path,
                                   const fs::path& weights_path) {
    const int64_t expected = config.parameter_count();
    int64_t held = 0, bytes = 0;
    for (const auto& name : file.names()) {
        const auto& info = file.info(name);
        held += info.numel();
        bytes += static_cast<int64_t>(info.nbytes);
    }
    constexpr double kSmallModelBytes = 256e6;
    const double model_bytes = 4.0 * static_cast<double>(expected);
    if (held == expected || model_bytes <= std::max(kSmallModelBytes, 2.0 * static_cast<double>(bytes))) return;
    fail_file(config_path, "describes a " + family_name(config.family) + " model of " + std::to_string(expected) +
                               " parameters (" + gigabytes(4.0 * static_cast<double>(expected)) + " as F32), but " +
                               weights_path.string() + " holds " + std::to_string(held) + " (" +
                               std::to_string(bytes) + " bytes of tensors): the tensor shapes in the file do not fit this config "
                               "(nothing was allocated)");
}

// NaN/Inf check in slices, so the temporary mask stays small for a large tensor.
bool all_finite(const torch::Tensor& t) {
    const auto flat = t.reshape({-1});
    constexpr int64_t slice = int64_t(1) << 20;
    for (int64_t i = 0; i < flat.numel(); i += slice)
        if (!torch::isfinite(flat.slice(0, i, std::min(flat.numel(), i + slice))).all().item<bool>()) return false;
    return true;
}

}  // namespace

#ifdef HARMONIC_HAVE_CUDA_ALLOCATOR
namespace {
// "cuda" without an index means the current device; the allocator wants a number.
c10::DeviceIndex index_of(const torch::Device& device) {
    return device.has_index() ? device.index() : c10::cuda::current_device();
}
}  // namespace
#endif

double cuda_peak_memory_gb(const torch::Device& device) {
#ifdef HARMONIC_HAVE_CUDA_ALLOCATOR
    if (device.is_cuda()) {
        const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index_of(device));
        return static_cast<double>(stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak) / 1e9;
    }
#endif
    (void)device;
    return 0.0;
}

void cuda_reset_peak_memory(const torch::Device& device) {
#ifdef HARMONIC_HAVE_CUDA_ALLOCATOR
    if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(index_of(device));
#endif
    (void)device;
}

void cuda_limit_memory(const torch::Device& device, double gb) {
#ifdef HARMONIC_HAVE_CUDA_ALLOCATOR
    if (!device.is_cuda()) return;
    const int index = index_of(device);
    // The caching allocator starts on the first allocation and refuses settings before that.
    torch::empty({1}, torch::TensorOptions().device(torch::kCUDA, static_cast<c10::DeviceIndex>(index)));
    int previous = 0;
    cudaGetDevice(&previous);
    cudaSetDevice(index);
    size_t free_bytes = 0, total_bytes = 0;
    const bool ok = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess && total_bytes > 0;
    cudaSetDevice(previous);
    if (!ok) throw Error("cannot read the memory size of " + device.str());
    const double fraction = gb <= 0 ? 1.0 : std::min(1.0, gb * 1e9 / static_cast<double>(total_bytes));
    c10::cuda::CUDACachingAllocator::setMemoryFraction(fraction, index);
#else
    (void)device;
    (void)gb;
#endif
}

bool is_out_of_memory(const c10::Error& error) {
    return dynamic_cast<const c10::OutOfMemoryError*>(&error) != nullptr ||
           std::string(error.what()).find("out of memory") != std::string::npos;
}

void cuda_release_cached_memory(const torch::Device& device) {
#ifdef HARMONIC_HAVE_CUDA_ALLOCATOR
    if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
    (void)device;
}

namespace {

// HARMONIC_CUDA_MEMORY_LIMIT_GB (see cuda_limit_memory), applied to each device once.
torch::Device with_memory_limit(const torch::Device& device) {
    static std::mutex mutex;
    static std::set<int> limited;
    const char* text = std::getenv("HARMONIC_CUDA_MEMORY_LIMIT_GB");
    if (!device.is_cuda() || !text || !*text) return device;
    const int index = device.has_index() ? device.index() : 0;
    std::lock_guard<std::mutex> lock(mutex);
    if (!limited.insert(index).second) return device;
    char* end = nullptr;
    const double gb = std::strtod(text, &end);
    if (*end != '\0' || !(gb > 0))
        throw Error(std::string("environment variable HARMONIC_CUDA_MEMORY_LIMIT_GB='") + text +
                    "': expected a positive number of gigabytes");
    cuda_limit_memory(device, gb);
    return device;
}

}  // namespace

torch::Device parse_device(const std::string& name) {
    if (name == "auto")
        return with_memory_limit(torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU));
    torch::Device device(torch::kCPU);
    try {
        device = torch::Device(name);
    } catch (const std::exception&) {
        throw Error("--device: unknown device '" + name + "' (expected cpu, cuda, cuda:N or auto)");
    }
    if (device.is_cuda() && !torch::cuda::is_available())
        throw Error("--device " + name + ": no CUDA GPU is available on this machine (use --device cpu)");
    if (device.is_cuda() && device.has_index() && device.index() >= static_cast<int>(torch::cuda::device_count()))
        throw Error("--device " + name + ": this machine has " + std::to_string(torch::cuda::device_count()) + " GPU(s)");
    return with_memory_limit(device);
}

std::vector<TensorBlob> export_parameters(const LanguageModel& model, st::DType dtype) {
    if (!is_float(dtype)) throw Error("checkpoint dtype must be F32, F16, BF16 or F64");
    std::vector<TensorBlob> blobs;
    for (const auto& item : model.named_parameters()) {
        auto t = item.value().detach().to(torch::kCPU, torch_dtype(dtype)).contiguous();
        TensorBlob blob{item.key(), dtype, t.sizes().vec(), {}};
        blob.bytes.resize(t.numel() * t.element_size());
        if (!blob.bytes.empty()) std::memcpy(blob.bytes.data(), t.data_ptr(), blob.bytes.size());
        blobs.push_back(std::move(blob));
    }
    return blobs;
}

void save_checkpoint(const LanguageModel& model, const fs::path& dir, const SaveOptions& options) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fail_file(dir, "cannot create folder: " + ec.message());
    const auto& config = model.config();
    if (config.tokenizer == "bpe") {
        if (options.tokenizer_json.empty())
            throw Error(dir.string() + ": a BPE model needs its tokenizer.json (none was given)");
        if (fs::absolute(options.tokenizer_json) != fs::absolute(dir / "tokenizer.json")) {
            const auto bytes = read_file_bytes(options.tokenizer_json, 1u << 30);
            write_file_atomically(dir / "tokenizer.json", std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
        }
    }
    const auto blobs = export_parameters(model, options.dtype);
    std::vector<st::TensorToWrite> tensors;
    for (const auto& b : blobs) tensors.push_back({b.name, b.dtype, b.shape, b.bytes.data()});
    auto metadata = options.metadata;
    metadata["format"] = "pt";
    metadata["model_type"] = family_name(config.family);
    st::write(dir / "model.safetensors", tensors, metadata);
    config.save(dir / "config.json");
}

namespace {
// Builds the model the config describes and copies the checked weights into it.
void fill_model(LoadedModel& loaded, const st::File& file, const fs::path& weights_path, const torch::Device& device);
}  // namespace

LoadedModel load_checkpoint(const fs::path& dir, const torch::Device& device) {
    if (!fs::exists(dir)) fail_file(dir, "no such checkpoint folder");
    if (!fs::is_directory(dir)) fail_file(dir, "a checkpoint is a folder with config.json and model.safetensors, not a file");
    const fs::path config_path = dir / "config.json", weights_path = dir / "model.safetensors";
    if (!fs::exists(config_path)) fail_file(config_path, "missing (not a checkpoint folder?)");
    if (!fs::exists(weights_path)) fail_file(weights_path, "missing");

    LoadedModel loaded;
    loaded.dir = dir;
    loaded.config = ModelConfig::load(config_path);
    loaded.tokenizer = load_tokenizer(loaded.config.tokenizer, dir);
    if (loaded.tokenizer->vocab_size() > loaded.config.vocab_size)
        fail_file(config_path, "vocab_size " + std::to_string(loaded.config.vocab_size) + " is smaller than the tokenizer's " +
                                   std::to_string(loaded.tokenizer->vocab_size()) + " tokens");

    const st::File file = st::File::read(weights_path);
    loaded.metadata = file.metadata();
    check_sizes_before_allocating(loaded.config, file, config_path, weights_path);
    // Building and filling the model may still run out of memory: that ends in a message naming
    // the checkpoint and the size, not the allocator's own words.
    try {
        fill_model(loaded, file, weights_path, device);
    } catch (const std::bad_alloc&) {
        fail_file(weights_path, out_of_memory_text(loaded.config));
    } catch (const c10::Error& e) {
        if (is_out_of_memory(e) || std::string(e.what()).find("can't allocate memory") != std::string::npos)
            fail_file(weights_path, out_of_memory_text(loaded.config));
        throw;
    }
    return loaded;
}

namespace {

void fill_model(LoadedModel& loaded, const st::File& file, const fs::path& weights_path, const torch::Device& device) {
    auto model = make_model(loaded.config);
    const auto params = model->named_parameters();
    // Check everything before copying anything, so a bad file never leaves a half-loaded model.
    std::vector<std::string> missing, problems;
    for (const auto& item : params) {
        const std::string& name = item.key();
        if (!file.contains(name)) {
            missing.push_back(name);
            continue;
        }
        const auto& info = file.info(name);
        if (!is_float(info.dtype))
            problems.push_back("tensor '" + name + "' has dtype " + st::dtype_name(info.dtype) + ", expected a float type");
        if (info.shape != item.value().sizes().vec())
            problems.push_back("tensor '" + name + "' has shape " + shape_string(info.shape) + ", the config implies " +
                               shape_string(item.value().sizes().vec()));
    }
    if (!missing.empty()) {
        std::string list;
        for (std::size_t i = 0; i < missing.size() && i < 5; ++i) list += (i ? ", " : "") + missing[i];
        if (missing.size() > 5) list += ", ... (" + std::to_string(missing.size()) + " in all)";
        fail_file(weights_path, "missing tensors for this " + family_name(loaded.config.family) + " config: " + list);
    }
    if (!problems.empty()) fail_file(weights_path, problems.front());
    for (const auto& name : file.names())
        if (!params.contains(name))
            fail_file(weights_path, "unexpected tensor '" + name + "' (does config.json describe this model?)");

    torch::NoGradGuard no_grad;
    const auto owner = file.owner();
    for (auto& item : params) {
        const auto& info = file.info(item.key());
        // Over the file's own bytes (the mapping): the one copy is into the parameter, converting
        // the dtype on the way; the deleter keeps the mapping alive as long as the view.
        auto src = torch::from_blob(const_cast<uint8_t*>(file.data(item.key())), info.shape,
                                    [owner](void*) {}, torch::TensorOptions().dtype(torch_dtype(info.dtype)));
        item.value().copy_(src);
        file.release(item.key());
        if (!all_finite(item.value()))
            loaded.warnings.push_back(weights_path.string() + ": tensor '" + item.key() + "' contains NaN or Inf values");
    }
    model->to(device);
    model->eval();
    loaded.model = model;
}

}  // namespace

}  // namespace harmonic
