#include "model/tokenizer.h"

#include "model/error.h"
#include "model/io.h"

namespace harmonic {

namespace {

// One token per byte: the tokenizer every byte-level model uses, so it needs no file.
class ByteTokenizer final : public Tokenizer {
public:
    Encoding encode_fragment(std::string_view text) const override {
        Encoding out;
        out.ids.resize(text.size());
        out.byte_offsets.resize(text.size());
        for (size_t i = 0; i < text.size(); ++i) {
            out.ids[i] = static_cast<unsigned char>(text[i]);
            out.byte_offsets[i] = static_cast<int64_t>(i);
        }
        return out;
    }

    std::string decode(const std::vector<int64_t>& ids) const override {
        std::string out;
        out.reserve(ids.size());
        for (int64_t id : ids) {
            check(id);
            out.push_back(static_cast<char>(static_cast<unsigned char>(id)));
        }
        return out;
    }

    std::string token_bytes(int64_t id) const override {
        check(id);
        return std::string(1, static_cast<char>(static_cast<unsigned char>(id)));
    }

    int64_t vocab_size() const override { return 256; }
    std::string kind() const override { return "bytes"; }

private:
    static void check(int64_t id) {
        if (id < 0 || id >= 256) {
            throw Error("byte tokenizer: token id " + std::to_string(id) + " is outside [0, 256)");
        }
    }
};

}  // namespace

Encoding Tokenizer::encode(std::string_view text) const {
    Encoding out = encode_fragment(text);
    const auto& before = ids_before();
    const auto& after = ids_after();
    if (before.empty() && after.empty()) return out;
    out.ids.insert(out.ids.begin(), before.begin(), before.end());
    out.byte_offsets.insert(out.byte_offsets.begin(), before.size(), 0);
    out.ids.insert(out.ids.end(), after.begin(), after.end());
    out.byte_offsets.insert(out.byte_offsets.end(), after.size(), static_cast<int64_t>(text.size()));
    out.added_before = static_cast<int64_t>(before.size());
    out.added_after = static_cast<int64_t>(after.size());
    return out;
}

namespace {
const std::vector<int64_t> kNoIds;
}  // namespace

const std::vector<int64_t>& Tokenizer::ids_before() const { return kNoIds; }
const std::vector<int64_t>& Tokenizer::ids_after() const { return kNoIds; }

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& kind, const std::filesystem::path& checkpoint_dir) {
    if (kind == "bytes") return make_byte_tokenizer();
    if (kind == "bpe") {
        // The BPE loader opens the file itself; a FIFO there would block it forever.
        require_regular_file(checkpoint_dir / "tokenizer.json");
        return load_bpe_tokenizer(checkpoint_dir / "tokenizer.json");
    }
    fail_file(checkpoint_dir / "config.json",
              "unknown tokenizer \"" + kind + "\" (expected \"bytes\" or \"bpe\")");
}

}  // namespace harmonic
