// A studio backend without a model: each checkpoint folder analyses to the synthetic model of
// its family (synthetic_result.h); a folder whose name contains "bad" fails the way a broken
// checkpoint does, naming its config.json.
#pragma once

#include <QString>

#include "app/studio/studio_backend.h"

namespace harmonic::testing {

studio::StudioBackend syntheticBackend(int chunkMs = 2);

// Makes folder/name (a checkpoint folder) and returns its absolute path.
QString makeFolder(const QString& folder, const QString& name);

}  // namespace harmonic::testing
