// The safetensors format (https://huggingface.co/docs/safetensors): 8-byte little-endian header
// length N, N bytes of JSON header, then the tensor data. Our own reader/writer, no torch:
// every rule of the format is enforced so that a hostile file is rejected before any
// allocation larger than the file itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace harmonic {
class MappedFile;
}

namespace harmonic::safetensors {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

std::size_t dtype_size(DType dtype);
std::string dtype_name(DType dtype);          // "F32", "BF16", ... as in the header
DType dtype_from_name(const std::string& name);  // throws Error for unknown names

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    std::size_t offset = 0;  // into the data section
    std::size_t nbytes = 0;
    int64_t numel() const;
};

// A parsed, validated file held in memory. Rules checked (each failure throws Error
// "FILE: problem" with the tensor name where there is one):
//  - file at least 8 bytes; header length N with 2 <= N <= min(100 MB, file size - 8)
//  - header is valid UTF-8 JSON, an object; nesting depth bounded; "__metadata__" optional and
//    a map of string to string
//  - each tensor: known dtype, shape of non-negative integers whose product fits in 2^62,
//    data_offsets [begin, end] with begin <= end <= data size and end - begin == numel * dtype size
//  - tensors sorted by offset are contiguous from 0, do not overlap, and cover the data
//    section exactly (no trailing bytes)
class File {
public:
    // Memory-maps the file (read-only): the header is parsed and checked before any tensor byte is
    // touched, and tensor data is paged in only when used. Regular files only.
    static File read(const std::filesystem::path& file);
    // Parses bytes already in memory; `source` names them in error messages.
    static File parse(std::vector<uint8_t> bytes, const std::string& source);

    const std::string& source() const { return source_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    // Tensor names in header order sorted by name (deterministic).
    std::vector<std::string> names() const;
    bool contains(const std::string& name) const;
    // Throws Error "FILE: no tensor named X" when absent.
    const TensorInfo& info(const std::string& name) const;
    // Pointer to the tensor's bytes (little-endian, row-major), valid while the File lives.
    const uint8_t* data(const std::string& name) const;
    // Keeps the bytes alive (the mapping or the buffer): hold it while a tensor made over data()
    // is in use after the File is gone.
    std::shared_ptr<const void> owner() const { return owner_; }
    // The tensor's bytes were copied elsewhere: lets the kernel drop its pages from memory (they
    // are read again from the file if used). Nothing to do for a file parsed from memory.
    void release(const std::string& name) const;

private:
    static File parse_view(std::shared_ptr<const void> owner, const uint8_t* bytes, std::size_t size,
                           const std::string& source);

    std::string source_;
    std::shared_ptr<const void> owner_;
    std::shared_ptr<const MappedFile> mapped_;
    const uint8_t* bytes_ = nullptr;
    std::size_t data_start_ = 0;
    std::map<std::string, std::string> metadata_;
    std::map<std::string, TensorInfo> tensors_;
};

struct TensorToWrite {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const void* data = nullptr;  // numel * dtype_size bytes, little-endian, row-major
};

// Streams to FILE through a DurableFile (model/io.h): a reader (or a crash) never sees a
// half-written file, and the tensors are not copied into one buffer first. Tensors are laid out
// in name order.
void write(const std::filesystem::path& file, const std::vector<TensorToWrite>& tensors,
           const std::map<std::string, std::string>& metadata = {});

// Same layout, to memory (for tests and fuzzing).
std::vector<uint8_t> serialize(const std::vector<TensorToWrite>& tensors,
                               const std::map<std::string, std::string>& metadata = {});

}  // namespace harmonic::safetensors
