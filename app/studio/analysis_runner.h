// Runs an analysis on a worker thread: progress and the result come back to the UI thread as
// signals, cancel is a flag the analysis checks between chunks. The UI thread never waits.
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QPointer>
#include <QThread>
#include <QTimer>
#include <atomic>
#include <memory>

#include "app/studio/studio_backend.h"
#include "views/analysis_view.h"

namespace harmonic::studio {

struct AnalysisRequest {
    std::vector<std::filesystem::path> checkpoints;
    std::shared_ptr<const std::string> text;
    std::string textName;
    AnalysisOptions options;
    // Run on the worker thread after the analysis, so the views only install their data.
    std::vector<views::Preparer> preparers;
};

// Measures the longest gap between UI event-loop turns while it runs: the "window freezes"
// number of the product requirements (keep it under 50 ms).
class StallMonitor : public QObject {
    Q_OBJECT
public:
    explicit StallMonitor(QObject* parent = nullptr);
    void start();
    void stop();
    double longestStallMs() const { return longest_; }

private:
    void tick();
    QTimer timer_;
    QElapsedTimer clock_;
    qint64 last_ = 0;
    double longest_ = 0;
};

class AnalysisRunner : public QObject {
    Q_OBJECT
public:
    explicit AnalysisRunner(StudioBackend backend, QObject* parent = nullptr);
    ~AnalysisRunner() override;

    bool isRunning() const { return thread_ != nullptr; }
    // Starts a run; returns false (and does nothing) while one is running.
    bool start(const AnalysisRequest& request);
    void cancel();
    // Longest UI stall during the last (or current) run.
    double longestStallMs() const { return stall_.longestStallMs(); }

signals:
    void progress(double fraction, const QString& stage);
    // prepared[i] is what request.preparers[i] made (null when it had none or failed).
    void finished(std::shared_ptr<const harmonic::AnalysisResult> result, std::vector<harmonic::views::PreparedData> prepared);
    // cancelled: the user asked for it (not an error).
    void failed(const QString& message, bool cancelled);

private:
    StudioBackend backend_;
    QPointer<QThread> thread_;
    std::shared_ptr<std::atomic<bool>> cancel_;
    StallMonitor stall_;
};

}  // namespace harmonic::studio
