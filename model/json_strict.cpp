#include "model/json_strict.h"

#include <set>
#include <vector>

namespace harmonic {

StrictJson parse_json_noting_duplicates(std::string_view text) {
    using json = nlohmann::json;
    StrictJson out;
    std::vector<std::set<std::string>> keys_seen;  // one set per object being parsed
    auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::object_start) {
            keys_seen.emplace_back();
        } else if (event == json::parse_event_t::object_end) {
            if (!keys_seen.empty()) keys_seen.pop_back();
        } else if (event == json::parse_event_t::key && !keys_seen.empty() && out.duplicate_key.empty()) {
            const auto& key = parsed.get_ref<const std::string&>();
            if (!keys_seen.back().insert(key).second) out.duplicate_key = key;
        }
        return true;
    };
    out.value = json::parse(text.begin(), text.end(), callback);
    return out;
}

}  // namespace harmonic
