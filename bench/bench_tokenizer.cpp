// Encoding speed of the byte-level BPE tokenizer on English text with numbers mixed in (pieces
// its cache has not seen), and on single pieces of 200K letters (merging must not be quadratic).
//
//   bench_tokenizer TOKENIZER_JSON [MEGABYTES]     default 4 MB
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <random>
#include <string>

#include "model/tokenizer.h"

using namespace harmonic;

namespace {

double seconds_to_encode(const Tokenizer& tok, const std::string& text, size_t* tokens) {
    const auto t0 = std::chrono::steady_clock::now();
    *tokens = tok.encode(text).ids.size();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: bench_tokenizer TOKENIZER_JSON [MEGABYTES]\n");
        return 2;
    }
    const long megabytes = argc == 3 ? std::strtol(argv[2], nullptr, 10) : 4;
    if (megabytes < 1 || megabytes > 4096) {
        std::fprintf(stderr, "bench_tokenizer: MEGABYTES must be 1..4096, got '%s'\n", argv[2]);
        return 2;
    }
    try {
        auto tok = load_bpe_tokenizer(argv[1]);
        const std::string para =
            "The quick brown fox jumps over the lazy dog. It's a state-space model; we'll see what they've "
            "learned from 2024 documents, don't we? Language models read text as tokens.\n";
        std::string text;
        std::mt19937 rng(3);
        while (text.size() < static_cast<size_t>(megabytes) << 20) {
            text += para;
            text += std::to_string(rng());
            text += ' ';
        }
        std::printf("input,bytes,tokens,seconds,MB_per_s\n");
        auto report = [&](const char* name, const std::string& input) {
            size_t tokens = 0;
            const double s = seconds_to_encode(*tok, input, &tokens);
            std::printf("%s,%zu,%zu,%.3f,%.2f\n", name, input.size(), tokens, s, input.size() / 1e6 / s);
        };
        report("english_cold", text);
        report("english_warm", text);
        report("one_piece_200k_letters", std::string(200000, 'a'));
        report("one_piece_200k_spaces", std::string(200000, ' ') + "x");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
        return 1;
    }
    return 0;
}
