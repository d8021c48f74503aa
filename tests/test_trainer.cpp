// Corpus caches, the learning-rate schedule, training on CPU (loss goes down, resume is exact)
// and evaluation at several context lengths. Every case runs in well under a few seconds.
#include "torch_catch.h"
#include "app/cli_count.h"
#include "model/io.h"

#include <ftw.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/checkpoint.h"
#include "model/corpus.h"
#include "model/error.h"
#include "model/tokenizer.h"
#include "model/trainer.h"

using namespace harmonic;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
    auto dir = fs::temp_directory_path() / ("harmonic_test_train_" + std::to_string(::getpid()) + "_" + name);
    remove_tree(dir);
    fs::create_directories(dir);
    return dir;
}

void write(const fs::path& file, const std::string& bytes) {
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << bytes;
}

std::string read(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string repeated(const std::string& unit, int times) {
    std::string s;
    for (int i = 0; i < times; ++i) s += unit;
    return s;
}

std::vector<std::vector<std::string>> csv_rows(const fs::path& file) {
    std::vector<std::vector<std::string>> rows;
    std::istringstream in(read(file));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        std::vector<std::string> cols;
        std::stringstream ls(line);
        std::string col;
        while (std::getline(ls, col, ',')) cols.push_back(col);
        if (line.back() == ',') cols.push_back("");
        rows.push_back(cols);
    }
    return rows;
}

// The columns that must not depend on timing: step, tokens, lr, loss_bpt, val_bpt.
std::vector<std::string> deterministic_log(const fs::path& file) {
    std::vector<std::string> out;
    for (const auto& r : csv_rows(file)) out.push_back(r.at(0) + "," + r.at(1) + "," + r.at(2) + "," + r.at(3) + "," + r.at(4));
    return out;
}

TrainConfig tiny_run(const fs::path& dir, const fs::path& data, Family family = Family::Harmonic) {
    TrainConfig c;
    c.model.family = family;
    c.model.d_model = 16;
    c.model.vocab_size = 256;
    c.model.transformer.layers = 1;
    c.model.mamba.layers = 1;
    c.data = {data};
    c.out = dir / "run";
    c.cache_dir = dir / "cache";
    c.seq_len = 32;
    c.batch = 4;
    c.steps = 30;
    c.lr = 1e-2;
    c.min_lr = 1e-3;
    c.warmup_frac = 0.1;
    c.checkpoint_every = 10;
    c.eval_every = 10;
    c.eval_windows = 4;
    c.log_every = 5;
    c.device = "cpu";
    c.seed = 3;
    return c;
}

}  // namespace

TEST_CASE("corpus: byte cache round trip, sorted recursive walk, reuse and rebuild", "[train][corpus]") {
    auto dir = fresh_dir("corpus_bytes");
    write(dir / "data" / "b.txt", "second file\n");
    write(dir / "data" / "a.txt", "first — file");
    write(dir / "data" / "sub" / "c.txt", "third");
    write(dir / "data" / ".hidden.txt", "never read");
    write(dir / "data" / ".git" / "x.txt", "never read");
    write(dir / "data" / "empty.txt", "");
    auto bytes = make_byte_tokenizer();
    CorpusOptions options;
    options.cache_dir = dir / "cache";
    options.block_bytes = 5;  // forces many blocks, cut inside the 3-byte em dash
    auto corpus = open_corpus({dir / "data"}, *bytes, "bytes", options);
    const std::string expected = "first — file\n\nsecond file\n\n\nthird";
    REQUIRE(corpus.files.size() == 3);
    CHECK(corpus.files[0].filename() == "a.txt");
    CHECK(corpus.files[2].filename() == "c.txt");
    CHECK_FALSE(corpus.from_cache);
    REQUIRE(corpus.tokens.size() == static_cast<int64_t>(expected.size()));
    CHECK(corpus.tokens.token_bytes() == 1);
    CHECK(corpus.tokens.vocab_size() == 256);
    CHECK(corpus.tokens.files() == 3);
    CHECK(corpus.tokens.source_checksum() == fnv1a64(expected));
    CHECK(bytes->decode(corpus.tokens.read(0, corpus.tokens.size())) == expected);
    CHECK(fs::file_size(corpus.tokens.path()) == 64 + expected.size());

    auto again = open_corpus({dir / "data"}, *bytes, "bytes", options);
    CHECK(again.from_cache);
    CHECK(again.tokens.path() == corpus.tokens.path());

    write(dir / "data" / "sub" / "c.txt", "third, longer now");
    auto changed = open_corpus({dir / "data"}, *bytes, "bytes", options);
    CHECK_FALSE(changed.from_cache);
    CHECK(changed.tokens.size() == static_cast<int64_t>(expected.size()) + 12);

    CHECK_THROWS_WITH(corpus.tokens.read(corpus.tokens.size() - 1, 2), Contains("outside the stream"));

    // A damaged cache is rebuilt, and opening it directly names the problem.
    {
        std::ofstream(changed.tokens.path(), std::ios::binary | std::ios::app) << "xx";
    }
    CHECK_THROWS_WITH(TokenStream::open(changed.tokens.path()), Contains("does not match its header"));
    auto rebuilt = open_corpus({dir / "data"}, *bytes, "bytes", options);
    CHECK_FALSE(rebuilt.from_cache);
    CHECK(rebuilt.tokens.size() == changed.tokens.size());
    remove_tree(dir);
}

TEST_CASE("corpus: BPE cache in small blocks equals encoding each whole file", "[train][corpus]") {
    auto dir = fresh_dir("corpus_bpe");
    auto tok = load_bpe_tokenizer(fs::path(HARMONIC_FIXTURES) / "tokenizer" / "tokenizer.json");
    std::string one, two = "Another document.\nIt has lines too.\n\n  indented line\nend";
    for (int i = 0; i < 40; ++i) one += "Line " + std::to_string(i) + " of the first text, with words.\n";
    write(dir / "one.txt", one);
    write(dir / "two.txt", two);
    CorpusOptions options;
    options.cache_dir = dir / "cache";
    options.block_bytes = 50;
    const std::string key = tokenizer_cache_key("bpe", fs::path(HARMONIC_FIXTURES) / "tokenizer" / "tokenizer.json");
    auto corpus = open_corpus({dir / "one.txt", dir / "two.txt"}, *tok, key, options);
    std::vector<int64_t> expected = tok->encode_fragment(one).ids;
    const auto sep = tok->encode_fragment("\n\n").ids, second = tok->encode_fragment(two).ids;
    expected.insert(expected.end(), sep.begin(), sep.end());
    expected.insert(expected.end(), second.begin(), second.end());
    CHECK(corpus.tokens.token_bytes() == 4);
    CHECK(corpus.tokens.vocab_size() == tok->vocab_size());
    CHECK(corpus.tokens.read(0, corpus.tokens.size()) == expected);
    CHECK(tok->decode(corpus.tokens.read(0, corpus.tokens.size())) == one + "\n\n" + two);
    // The cache key includes the tokenizer: the byte cache of the same files is another file.
    auto bytes = make_byte_tokenizer();
    auto byte_corpus = open_corpus({dir / "one.txt", dir / "two.txt"}, *bytes, "bytes", options);
    CHECK(byte_corpus.tokens.path() != corpus.tokens.path());
    CHECK(byte_corpus.tokens.size() == static_cast<int64_t>(one.size() + 2 + two.size()));
    remove_tree(dir);
}

TEST_CASE("corpus: invalid UTF-8 names the file, line and column; empty inputs are errors", "[train][corpus]") {
    auto dir = fresh_dir("corpus_bad");
    auto bytes = make_byte_tokenizer();
    CorpusOptions options;
    options.cache_dir = dir / "cache";
    options.block_bytes = 7;  // the bad byte lies several blocks in
    write(dir / "data" / "a_good.txt", "fine\n");
    write(dir / "data" / "b_bad.txt", "line one\nline two\nab\xff" "cd\n");
    CHECK_THROWS_WITH(open_corpus({dir / "data"}, *bytes, "bytes", options),
                      Contains("b_bad.txt") && Contains("not valid UTF-8 at line 3, column 3") && Contains("0xFF"));
    options.block_bytes = 1 << 20;
    CHECK_THROWS_WITH(open_corpus({dir / "data" / "b_bad.txt"}, *bytes, "bytes", options),
                      Contains("line 3, column 3 (byte 20)"));
    write(dir / "bin.txt", std::string("a\0b", 3));
    CHECK_THROWS_WITH(open_corpus({dir / "bin.txt"}, *bytes, "bytes", options), Contains("bin.txt") && Contains("binary"));

    fs::create_directories(dir / "empty");
    CHECK_THROWS_WITH(list_corpus_files({dir / "empty"}), Contains("empty") && Contains("no text files"));
    write(dir / "only_hidden" / ".x", "hidden");
    write(dir / "only_hidden" / "zero.txt", "");
    CHECK_THROWS_WITH(list_corpus_files({dir / "only_hidden"}), Contains("no text files"));
    CHECK_THROWS_WITH(list_corpus_files({dir / "missing"}), Contains("missing") && Contains("no such file or folder"));
    CHECK_THROWS_WITH(list_corpus_files({dir / "only_hidden" / "zero.txt"}), Contains("zero.txt: is empty"));
    CHECK_THROWS_WITH(list_corpus_files({}), Contains("no text files or folders given"));
    remove_tree(dir);
}

TEST_CASE("learning-rate schedule: linear warm-up, cosine to min_lr", "[train]") {
    CHECK(learning_rate(1, 105, 5, 1e-3, 1e-5) == Approx(2e-4));
    CHECK(learning_rate(5, 105, 5, 1e-3, 1e-5) == Approx(1e-3));
    CHECK(learning_rate(55, 105, 5, 1e-3, 1e-5) == Approx((1e-3 + 1e-5) / 2));
    CHECK(learning_rate(105, 105, 5, 1e-3, 1e-5) == Approx(1e-5));
    CHECK(learning_rate(30, 105, 5, 1e-3, 1e-5) > learning_rate(31, 105, 5, 1e-3, 1e-5));
    CHECK(learning_rate(1, 10, 0, 1e-3, 0.0) < 1e-3);  // no warm-up: decay from the first step
    TrainConfig c;
    c.data = {"x"};
    c.out = "y";
    c.steps = 1000;
    c.resolve();
    CHECK(c.warmup_steps() == 50);
    CHECK(c.lr == 2e-4);
    CHECK(c.min_lr == 1e-5);
    CHECK(c.batch == 16);  // 16384 / 1024

    // Equal token budget: batch from the sequence length, steps from the budget.
    TrainConfig t;
    t.data = {"x"};
    t.out = "y";
    t.seq_len = 4096;
    t.tokens = 100'000'000;
    t.resolve();
    CHECK(t.batch == 4);
    CHECK(t.steps == 100'000'000 / (4 * 4096));
    TrainConfig big;
    big.data = {"x"};
    big.out = "y";
    big.seq_len = 65536;
    big.tokens = 1'000'000;
    big.resolve();
    CHECK(big.batch == 1);
    CHECK(big.steps == 15);
    TrainConfig few = t;
    few.steps = 0;
    few.tokens = 100;
    CHECK_THROWS_WITH(few.resolve(), Contains("--tokens") && Contains("less than one step"));

    CHECK(parse_count("64K", "--x") == 64000);
    CHECK(parse_count("2.5M", "--x") == 2'500'000);
    CHECK(parse_count("16384", "--x") == 16384);
    CHECK_THROWS_WITH(parse_count("12q", "--tokens"), Contains("--tokens: '12q' is not a count"));
}

TEST_CASE("random windows are a function of (seed, step) only; validation windows are fixed", "[train]") {
    const auto a = window_starts(7, 12, 64, 1000);
    CHECK(a == window_starts(7, 12, 64, 1000));
    CHECK(a != window_starts(7, 13, 64, 1000));
    CHECK(a != window_starts(8, 12, 64, 1000));
    for (auto s : a) CHECK((s >= 0 && s <= 1000));
    // Taking more rows keeps the first ones (rank sharding slices one global draw).
    const auto more = window_starts(7, 12, 128, 1000);
    CHECK(std::vector<int64_t>(more.begin(), more.begin() + 64) == a);
    // Roughly uniform: every tenth of the range is hit.
    const auto many = window_starts(1, 1, 2000, 999);
    std::vector<int> bins(10, 0);
    for (auto s : many) bins[static_cast<std::size_t>(s / 100)]++;
    for (int b : bins) CHECK(b > 120);

    const auto v = eval_window_starts(10'000, 100, 5);
    CHECK(v == std::vector<int64_t>{0, 2474, 4949, 7424, 9899});
    CHECK(eval_window_starts(101, 100, 3) == std::vector<int64_t>{0, 0, 0});
    CHECK_THROWS(eval_window_starts(100, 100, 3));
}

TEST_CASE("training on CPU: the loss goes down and the checkpoint loads", "[train]") {
    OneThread one_thread;
    auto dir = fresh_dir("loss");
    write(dir / "train.txt", repeated("the cat sat on the mat. ", 200));
    write(dir / "valid.txt", repeated("the cat sat on the mat. ", 20));
    auto c = tiny_run(dir, dir / "train.txt");
    c.valid = {dir / "valid.txt"};
    const auto result = train(c);
    CHECK(result.steps == 30);
    CHECK(result.tokens == 30 * 4 * 32);
    const auto rows = csv_rows(c.out / "log.csv");
    REQUIRE(rows.size() == 6);  // steps 5, 10, ..., 30
    const double first = std::stod(rows.front().at(3)), last = std::stod(rows.back().at(3));
    INFO("first interval loss " << first << ", last " << last);
    CHECK(first > 5.0);          // close to log2(256) = 8 at the start
    CHECK(last < first - 2.0);   // a repetitive text is learned quickly
    CHECK(std::stod(rows.back().at(4)) < first - 2.0);  // validation bpt at the end
    CHECK(rows.at(1).at(4) != "");  // validation at step 10
    CHECK(rows.at(0).at(4) == "");  // not at step 5
    CHECK(read(c.out / "latest") == "step-0000030\n");
    auto loaded = load_checkpoint(c.out);
    CHECK(loaded.model->parameter_count() == make_model(c.model)->parameter_count());
    CHECK(fs::exists(c.out / "step-0000030" / "optimizer.safetensors"));
    CHECK(fs::exists(c.out / "step-0000020" / "trainer_state.json"));
    CHECK_FALSE(fs::exists(c.out / "step-0000010"));  // only the last two step folders are kept
    CHECK_FALSE(fs::exists(c.out / "step-0000000"));

    // The folder now holds a run: starting again there is refused, resuming a finished run is a no-op.
    CHECK_THROWS_WITH(train(c), Contains("already holds a training run") && Contains("--resume"));
    const auto again = resume(c.out);
    CHECK(again.steps == 30);
    CHECK(csv_rows(c.out / "log.csv").size() == 6);
    remove_tree(dir);
}

TEST_CASE("resume after a crash reproduces the uninterrupted run exactly (CPU fp32)", "[train]") {
    OneThread one_thread;
    auto dir = fresh_dir("resume");
    std::string text;
    for (int i = 0; i < 300; ++i) text += "line " + std::to_string(i * 7919 % 1000) + ": the quick brown fox.\n";
    write(dir / "train.txt", text);
    write(dir / "valid.txt", text.substr(0, 2000));
    for (const bool stateful : {false, true}) {
        DYNAMIC_SECTION((stateful ? "stateful" : "random windows")) {
            auto a = tiny_run(dir, dir / "train.txt", stateful ? Family::Mamba : Family::Harmonic);
            a.valid = {dir / "valid.txt"};
            a.steps = 12;
            a.checkpoint_every = 4;
            a.eval_every = 3;
            a.log_every = 1;
            a.stateful = stateful;
            a.out = dir / (stateful ? "a_stateful" : "a");
            train(a);

            auto b = a;
            b.out = dir / (stateful ? "b_stateful" : "b");
            TrainHooks crash;
            crash.after_step = [](int64_t step) {
                if (step == 7) throw std::runtime_error("simulated crash");
            };
            CHECK_THROWS_WITH(train(b, crash), Contains("simulated crash"));
            CHECK(read(b.out / "latest") == "step-0000004\n");
            CHECK(csv_rows(b.out / "log.csv").size() == 6);  // rows 1..6 were written before the crash
            load_checkpoint(b.out);                           // the last checkpoint loads
            const auto saved = load_run_config(b.out);
            CHECK(saved.steps == 12);
            CHECK(saved.stateful == stateful);
            resume(b.out);

            CHECK(deterministic_log(b.out / "log.csv") == deterministic_log(a.out / "log.csv"));
            CHECK(deterministic_log(a.out / "log.csv").size() == 12);
            auto wa = load_checkpoint(a.out), wb = load_checkpoint(b.out);
            auto pa = wa.model->named_parameters(), pb = wb.model->named_parameters();
            for (const auto& item : pa) CHECK(torch::equal(item.value(), pb[item.key()]));
        }
    }
    remove_tree(dir);
}

TEST_CASE("training input errors name the flag or file", "[train]") {
    auto dir = fresh_dir("errors");
    write(dir / "short.txt", "too short");
    auto c = tiny_run(dir, dir / "short.txt");
    CHECK_THROWS_WITH(train(c), Contains("--data") && Contains("fewer than --seq-len + 1"));
    c.data = {dir / "nope"};
    CHECK_THROWS_WITH(train(c), Contains("nope") && Contains("no such file or folder"));
    c.data = {dir / "short.txt"};
    c.precision = "bf16";
    CHECK_THROWS_WITH(train(c), Contains("--precision bf16"));
    CHECK_THROWS_WITH(resume(dir / "empty_run"), Contains("empty_run"));
    fs::create_directories(dir / "empty_run");
    CHECK_THROWS_WITH(resume(dir / "empty_run"), Contains("latest") && Contains("nothing to resume"));
    remove_tree(dir);
}

TEST_CASE("eval: windowed and stateful bpt at several contexts; too-short data is an error", "[train]") {
    OneThread one_thread;
    auto dir = fresh_dir("eval");
    write(dir / "text.txt", repeated("Evaluation text, a little varied: 0123456789.\n", 12));
    auto bytes = make_byte_tokenizer();
    CorpusOptions options;
    options.cache_dir = dir / "cache";
    auto corpus = open_corpus({dir / "text.txt"}, *bytes, "bytes", options);
    const int64_t n = corpus.tokens.size();
    for (Family family : {Family::Harmonic, Family::Transformer, Family::Mamba}) {
        ModelConfig mc;
        mc.family = family;
        mc.d_model = 16;
        mc.transformer.layers = mc.mamba.layers = 1;
        torch::manual_seed(0);
        const fs::path ckpt = dir / ("ckpt_" + family_name(family));
        save_checkpoint(*make_model(mc), ckpt);
        auto model = load_checkpoint(ckpt).model;
        EvalOptions windowed;
        windowed.contexts = {16, 64};
        const auto w = evaluate_contexts(*model, corpus.tokens, torch::kCPU, windowed);
        REQUIRE(w.size() == 2);
        CHECK(w[0].windows == (n - 1) / 16);
        CHECK(w[1].windows == (n - 1) / 64);
        CHECK(w[1].tokens == w[1].windows * 64);
        for (const auto& r : w) {
            CHECK(std::isfinite(r.mean_bpt));
            CHECK(std::isfinite(r.ci95));
            CHECK((r.mean_bpt > 4.0 && r.mean_bpt < 12.0));  // untrained: near log2(256) = 8
        }
        EvalOptions stateful = windowed;
        stateful.stateful = true;
        stateful.warmup_chunks = 2;
        const auto s = evaluate_contexts(*model, corpus.tokens, torch::kCPU, stateful);
        CHECK(s[0].windows == (n - 1) / 16 - 2);
        CHECK(s[0].mode == "stateful");
        for (const auto& r : s) CHECK(std::isfinite(r.mean_bpt));
        // The fused head gives the same numbers without the logits, both ways.
        for (EvalOptions o : {windowed, stateful}) {
            CHECK(o.fused_head);  // the default
            o.fused_head = false;
            const auto plain = evaluate_contexts(*model, corpus.tokens, torch::kCPU, o);
            o.fused_head = true;
            const auto fused = evaluate_contexts(*model, corpus.tokens, torch::kCPU, o);
            REQUIRE(fused.size() == plain.size());
            for (std::size_t i = 0; i < plain.size(); ++i) {
                CHECK(fused[i].windows == plain[i].windows);
                CHECK(std::abs(fused[i].mean_bpt - plain[i].mean_bpt) < 1e-5 * plain[i].mean_bpt);
                CHECK(std::abs(fused[i].ci95 - plain[i].ci95) < 1e-5);  // bits; the spread itself is tiny here
            }
        }

        EvalOptions too_long;
        too_long.contexts = {1024};
        CHECK_THROWS_WITH(evaluate_contexts(*model, corpus.tokens, torch::kCPU, too_long),
                          Contains("--context 1024 is longer than the data") && Contains(std::to_string(n) + " tokens"));
        stateful.contexts = {64};
        stateful.warmup_chunks = 8;
        CHECK_THROWS_WITH(evaluate_contexts(*model, corpus.tokens, torch::kCPU, stateful),
                          Contains("--warmup-chunks 8 leaves none to score"));
        EvalOptions capped = windowed;
        capped.max_tokens = 100;
        CHECK(evaluate_contexts(*model, corpus.tokens, torch::kCPU, capped)[0].windows == 6);
    }
    remove_tree(dir);
}

TEST_CASE("training through the fused head follows the logits path's curve", "[train][head]") {
    OneThread one_thread;
    auto dir = fresh_dir("fused_head");
    write(dir / "train.txt", repeated("the cat sat on the mat. ", 200));
    write(dir / "valid.txt", repeated("the cat sat on the mat. ", 20));
    for (Family family : {Family::Harmonic, Family::Transformer, Family::Mamba}) {
        INFO(family_name(family));
        auto full = tiny_run(dir, dir / "train.txt", family);
        full.valid = {dir / "valid.txt"};
        full.steps = 10;
        full.out = dir / ("full_" + family_name(family));
        CHECK(full.fused_head);  // the default
        full.fused_head = false;
        auto fused = full;
        fused.fused_head = true;
        fused.out = dir / ("fused_" + family_name(family));
        train(full);
        train(fused);
        const auto a = csv_rows(full.out / "log.csv"), b = csv_rows(fused.out / "log.csv");
        REQUIRE(a.size() == b.size());
        for (std::size_t i = 0; i < a.size(); ++i) {
            for (int col : {3, 4}) {
                if (a[i].at(col).empty()) continue;
                const double x = std::stod(a[i].at(col)), y = std::stod(b[i].at(col));
                CHECK(std::abs(x - y) <= 1e-4 * std::abs(x));
            }
        }
        CHECK(load_run_config(fused.out).fused_head);
        CHECK_FALSE(load_run_config(full.out).fused_head);
    }
}

namespace {

// Five steps of ForeachAdamW and of LibTorch's AdamW on the same parameters and gradients (two
// groups, one without weight decay, a parameter without a gradient, a learning-rate change):
// the largest difference of the parameters and moments, relative to their size.
double foreach_adamw_difference(const torch::Device& device) {
    torch::manual_seed(51);
    auto make = [&] {
        return std::vector<torch::Tensor>{torch::randn({17, 5}).to(device).requires_grad_(),
                                          torch::randn({5}).to(device).requires_grad_(),
                                          torch::randn({3, 3}).to(device).requires_grad_()};
    };
    auto a = make();
    std::vector<torch::Tensor> b;
    for (auto& t : a) b.push_back(t.detach().clone().requires_grad_());
    auto groups = [](std::vector<torch::Tensor>& p) {
        std::vector<torch::optim::OptimizerParamGroup> g;
        g.emplace_back(std::vector<torch::Tensor>{p[0], p[2]},
                       std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(3e-3).weight_decay(0.1)));
        g.emplace_back(std::vector<torch::Tensor>{p[1]},
                       std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(3e-3).weight_decay(0.0)));
        return g;
    };
    torch::optim::AdamW reference(groups(a), torch::optim::AdamWOptions(3e-3));
    ForeachAdamW foreach(groups(b), torch::optim::AdamWOptions(3e-3));
    for (int step = 0; step < 5; ++step) {
        if (step == 3)
            for (auto* opt : std::vector<torch::optim::Optimizer*>{&reference, &foreach})
                for (auto& g : opt->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(1e-3);
        for (std::size_t i = 0; i < a.size(); ++i) {
            if (i == 2 && step < 2) continue;  // no gradient yet: skipped, its state starts later
            auto g = torch::randn(a[i].sizes()).to(device);
            a[i].mutable_grad() = g.clone();
            b[i].mutable_grad() = g.clone();
        }
        reference.step();
        foreach.step();
    }
    double worst = 0.0;
    auto diff = [&](const torch::Tensor& x, const torch::Tensor& y) {
        worst = std::max(worst, ((x - y).abs().max() / y.abs().max().clamp_min(1e-30)).item<double>());
    };
    for (std::size_t i = 0; i < a.size(); ++i) {
        diff(b[i], a[i]);
        const auto& sa = static_cast<const torch::optim::AdamWParamState&>(*reference.state().at(a[i].unsafeGetTensorImpl()));
        const auto& sb = static_cast<const torch::optim::AdamWParamState&>(*foreach.state().at(b[i].unsafeGetTensorImpl()));
        CHECK(sa.step() == sb.step());
        diff(sb.exp_avg(), sa.exp_avg());
        diff(sb.exp_avg_sq(), sa.exp_avg_sq());
    }
    return worst;
}

}  // namespace

TEST_CASE("ForeachAdamW: the same update and state as LibTorch's AdamW", "[train][optim]") {
    CHECK(foreach_adamw_difference(torch::kCPU) <= 1e-6);
}

TEST_CASE("ForeachAdamW on CUDA: the same update and state as LibTorch's AdamW", "[gpu][optim]") {
    if (!have_cuda_gpu()) return;
    // The fused kernel forms 1 − β₂ and the bias corrections in fp32 (1 − 0.999f is 0.00099998713):
    // the second moment differs from AdamW's (formed in double) by about 1e-5 relative on CUDA.
    CHECK(foreach_adamw_difference(torch::kCUDA) <= 3e-5);
}

TEST_CASE("GraphedTrainStep on CUDA: replayed steps equal eager steps, learning rate and step counts follow",
          "[gpu][optim]") {
    if (!have_cuda_gpu()) return;
    ModelConfig c;
    c.family = Family::Harmonic;
    c.d_model = 32;
    c.vocab_size = 300;  // not a multiple of 64: the padded head inside the captured step
    const torch::Device gpu(torch::kCUDA);
    auto run = [&](bool graph, std::string* note) {
        torch::manual_seed(61);
        auto model = make_model(c);
        model->to(gpu);
        TrainConfig t;
        t.model = c;
        auto opt = make_foreach_adamw(*model, t);
        auto loss_fn = [&](const torch::Tensor& x, const torch::Tensor& y) {
            HeadlessForward headless(*model);
            auto out = model->forward(x);
            return head_bits_sum(out.features, model->head_weight(), y) / double(x.numel());
        };
        GraphedTrainStep step(model->parameters(), *opt, loss_fn, 1.0, graph ? 2 : 1000);
        torch::manual_seed(62);
        std::vector<double> losses;
        for (int i = 0; i < 7; ++i) {
            for (auto& g : opt->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(1e-3 * (i + 1));
            auto all = torch::randint(0, 300, {2, 65}, torch::TensorOptions().dtype(torch::kLong)).to(gpu);
            losses.push_back(step.step(all.slice(1, 0, 64).contiguous(), all.slice(1, 1, 65).contiguous()).item<double>());
        }
        CHECK(step.replaying() == graph);
        if (note) *note = step.note();
        for (const auto& p : model->parameters()) {
            const auto& s = static_cast<const torch::optim::AdamWParamState&>(*opt->state().at(p.unsafeGetTensorImpl()));
            CHECK(s.step() == 7);
        }
        std::vector<torch::Tensor> params;
        for (const auto& p : model->parameters()) params.push_back(p.detach().cpu());
        return std::make_pair(losses, params);
    };
    std::string note;
    const auto graphed = run(true, &note);
    INFO(note);
    CHECK(note.empty());
    const auto eager = run(false, nullptr);
    for (std::size_t i = 0; i < eager.first.size(); ++i) CHECK(std::abs(graphed.first[i] - eager.first[i]) <= 1e-5 * eager.first[i]);
    double worst = 0.0;
    for (std::size_t i = 0; i < eager.second.size(); ++i)
        worst = std::max(worst, ((graphed.second[i] - eager.second[i]).abs().max() /
                                 eager.second[i].abs().max().clamp_min(1e-12)).item<double>());
    CHECK(worst <= 1e-5);
}

namespace {
// GraphedForward against eager forwards on one device: replays on CUDA, runs eagerly on the CPU.
void check_graphed_forward(bool cuda) {
    {
        const torch::Device device = cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
        for (Family family : {Family::Harmonic, Family::Transformer, Family::Mamba}) {
            INFO(family_name(family) << (cuda ? " on CUDA" : " on the CPU"));
            ModelConfig c;
            c.family = family;
            c.d_model = 64;  // d = 64: the fused head's Hopper kernel takes it under bf16
            c.vocab_size = 300;
            c.transformer.layers = 2;
            c.mamba.layers = 2;
            torch::manual_seed(63);
            auto model = make_model(c);
            model->to(device);
            // Per-token bits through the fused head under bf16 autocast, as harmonic bench scores.
            auto bits = [&](const torch::Tensor& toks) {
                Bf16Autocast autocast(cuda);
                HeadlessForward headless(*model);
                auto out = model->forward(toks);
                return head_bits_sum(out.features.slice(1, 0, toks.size(1) - 1), model->head_weight(), toks.slice(1, 1));
            };
            GraphedForward graphed(bits, 2);
            torch::manual_seed(64);
            for (int i = 0; i < 5; ++i) {
                auto toks = torch::randint(0, 300, {2, 200}, torch::TensorOptions().dtype(torch::kLong)).to(device);
                torch::Tensor want;
                {
                    torch::NoGradGuard no_grad;
                    want = bits(toks);
                }
                const auto got = graphed(toks);
                CHECK(std::abs(got.item<double>() - want.item<double>()) <= 1e-6 * std::abs(want.item<double>()));
            }
            CHECK(graphed.replaying() == cuda);
            INFO(graphed.note());
            CHECK(graphed.note().empty());
            if (cuda) {
                auto wrong = torch::zeros({2, 100}, torch::TensorOptions().dtype(torch::kLong).device(device));
                CHECK_THROWS(graphed(wrong));  // a replay needs the captured shape
            }
        }
    }
}
}  // namespace

TEST_CASE("GraphedForward on the CPU runs eagerly and equals plain forwards for every family", "[optim]") {
    check_graphed_forward(false);
}

TEST_CASE("GraphedForward: replayed CUDA forwards equal eager ones for every family and the fused head", "[gpu][optim]") {
    if (!have_cuda_gpu()) return;
    check_graphed_forward(true);
}
