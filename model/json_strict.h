// JSON read as strictly as the reference readers of the files we load (Python's json for
// config.json, serde_json for safetensors headers): nlohmann keeps the last of duplicate keys
// silently, they refuse them, so the parse reports the first key repeated within one object.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace harmonic {

struct StrictJson {
    nlohmann::json value;
    std::string duplicate_key;  // the first key seen twice in one object; empty when none
};

// Throws nlohmann::json::exception on a syntax error, as json::parse does.
StrictJson parse_json_noting_duplicates(std::string_view text);

}  // namespace harmonic
