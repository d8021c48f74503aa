#include "model/train_config.h"

#include <algorithm>
#include <cmath>

#include "model/error.h"

namespace harmonic {

namespace fs = std::filesystem;
using nlohmann::json;

void TrainConfig::resolve() {
    auto need = [](bool ok, const std::string& message) {
        if (!ok) throw Error(message);
    };
    need(seq_len >= 2, "--seq-len: must be at least 2, got " + std::to_string(seq_len));
    need(batch >= 0, "--batch: must be at least 1, got " + std::to_string(batch));
    need(world_size >= 1 && rank >= 0 && rank < world_size, "rank/world_size: rank must be in [0, world_size)");
    if (batch == 0) batch = std::max<int64_t>(1, 16384 / seq_len);
    need(steps >= 0 && tokens >= 0, "--steps / --tokens: must be positive");
    if (tokens > 0) {
        const int64_t per_step = batch * seq_len * world_size;
        const int64_t derived = tokens / per_step;
        need(derived >= 1, "--tokens: " + std::to_string(tokens) + " is less than one step of " + std::to_string(per_step) +
                               " tokens (batch x seq-len)");
        need(steps == 0 || steps == derived, "--steps and --tokens: give one of them, not both");
        steps = derived;
    }
    need(steps >= 1, "--steps or --tokens: one of them is required");
    need(std::isfinite(lr) && lr > 0, "--lr: must be positive");
    need(std::isfinite(min_lr) && min_lr >= 0 && min_lr <= lr, "--min-lr: must be in [0, --lr]");
    need(warmup_frac >= 0 && warmup_frac < 1, "--warmup-frac: must be in [0, 1)");
    need(weight_decay >= 0, "--weight-decay: must not be negative");
    need(clip >= 0, "--clip: must not be negative (0 turns clipping off)");
    need(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps > 0, "AdamW betas must be in [0, 1) and eps positive");
    need(checkpoint_every >= 1, "--checkpoint-every: must be at least 1");
    need(eval_every >= 0, "--eval-every: must not be negative (0: only at the end)");
    need(eval_windows >= 1, "--eval-windows: must be at least 1");
    need(log_every >= 1, "--log-every: must be at least 1");
    need(precision == "auto" || precision == "bf16" || precision == "fp32", "--precision: expected bf16, fp32 or auto");
    need(!data.empty(), "--data: required (a text file or folder)");
    need(!out.empty(), "--out: required (the run's folder)");
    model.validate("model config");
    model = model.resolved();
}

int64_t TrainConfig::warmup_steps() const { return std::llround(warmup_frac * static_cast<double>(steps)); }

json TrainConfig::to_json() const {
    auto paths = [](const std::vector<fs::path>& v) {
        json a = json::array();
        for (const auto& p : v) a.push_back(p.string());
        return a;
    };
    return json{{"model", model.to_json()},
                {"tokenizer_json", tokenizer_json.string()},
                {"data", paths(data)},
                {"valid", paths(valid)},
                {"out", out.string()},
                {"cache_dir", cache_dir.string()},
                {"seq_len", seq_len},
                {"batch", batch},
                {"steps", steps},
                {"tokens", tokens},
                {"lr", lr},
                {"min_lr", min_lr},
                {"warmup_frac", warmup_frac},
                {"weight_decay", weight_decay},
                {"beta1", beta1},
                {"beta2", beta2},
                {"eps", eps},
                {"clip", clip},
                {"checkpoint_every", checkpoint_every},
                {"eval_every", eval_every},
                {"eval_windows", eval_windows},
                {"log_every", log_every},
                {"stateful", stateful},
                {"fused_head", fused_head},
                {"device", device},
                {"precision", precision},
                {"seed", seed},
                {"keep_checkpoints", keep_checkpoints},
                {"rank", rank},
                {"world_size", world_size}};
}

TrainConfig TrainConfig::from_json(const json& j, const std::string& source) {
    TrainConfig c;
    try {
        c.model = ModelConfig::from_json(j.at("model"), source + ": args.model");
        c.tokenizer_json = j.value("tokenizer_json", "");
        for (const auto& p : j.at("data")) c.data.emplace_back(p.get<std::string>());
        for (const auto& p : j.value("valid", json::array())) c.valid.emplace_back(p.get<std::string>());
        c.out = j.value("out", "");
        c.cache_dir = j.value("cache_dir", "");
        c.seq_len = j.at("seq_len").get<int64_t>();
        c.batch = j.at("batch").get<int64_t>();
        c.steps = j.at("steps").get<int64_t>();
        c.tokens = j.value("tokens", int64_t(0));
        c.lr = j.at("lr").get<double>();
        c.min_lr = j.at("min_lr").get<double>();
        c.warmup_frac = j.at("warmup_frac").get<double>();
        c.weight_decay = j.at("weight_decay").get<double>();
        c.beta1 = j.value("beta1", c.beta1);
        c.beta2 = j.value("beta2", c.beta2);
        c.eps = j.value("eps", c.eps);
        c.clip = j.at("clip").get<double>();
        c.checkpoint_every = j.at("checkpoint_every").get<int64_t>();
        c.eval_every = j.at("eval_every").get<int64_t>();
        c.eval_windows = j.at("eval_windows").get<int64_t>();
        c.log_every = j.value("log_every", c.log_every);
        c.stateful = j.at("stateful").get<bool>();
        c.fused_head = j.value("fused_head", false);  // runs from before the fused head used the logits
        c.device = j.value("device", c.device);
        c.precision = j.value("precision", c.precision);
        c.seed = j.at("seed").get<uint64_t>();
        c.keep_checkpoints = j.value("keep_checkpoints", c.keep_checkpoints);
        c.rank = j.value("rank", 0);
        c.world_size = j.value("world_size", 1);
    } catch (const json::exception& e) {
        throw Error(source + ": invalid training arguments (" + e.what() + ")");
    }
    return c;
}

}  // namespace harmonic
