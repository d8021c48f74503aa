#include "synthetic_backend.h"

#include <QDir>
#include <QFile>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "synthetic_result.h"

namespace harmonic::testing {


studio::StudioBackend syntheticBackend(int chunkMs) {
    studio::StudioBackend b;
    b.analyze = [chunkMs](const std::vector<std::filesystem::path>& checkpoints, const std::string&, const std::string& name,
                          const AnalysisOptions& options, const ProgressFn& progress, const std::atomic<bool>* cancel) {
        if (checkpoints.size() != 1) throw std::runtime_error("the studio analyses one checkpoint at a time");
        const std::string dir = checkpoints.front().string();
        for (int i = 0; i < 10; ++i) {
            if (cancel && cancel->load()) throw Cancelled();
            std::this_thread::sleep_for(std::chrono::milliseconds(chunkMs));
            if (progress) progress((i + 1) / 10.0, "synthetic");
        }
        if (QDir(QString::fromStdString(dir)).dirName().contains(QStringLiteral("bad")))
            throw std::runtime_error(dir + "/config.json: unknown model family 'rnn'");
        AnalysisResult r = syntheticModelResult(dir);
        r.text_name = name;
        r.device = options.device;
        return r;
    };
    b.readText = [](const std::filesystem::path& file) {
        QFile f(QString::fromStdString(file.string()));
        if (!f.open(QIODevice::ReadOnly)) throw std::runtime_error(file.string() + ": cannot be opened");
        return f.readAll().toStdString();
    };
    return b;
}

QString makeFolder(const QString& folder, const QString& name) {
    QDir(folder).mkpath(name);
    return QDir(QDir(folder).filePath(name)).absolutePath();
}

}  // namespace harmonic::testing
