// Runs an analysis on a worker thread: progress and the result come back to the UI thread as
// signals, cancel is a flag the analysis checks between chunks. The UI thread never waits.
#pragma once

#include <QElapsedTimer>
#include <QObject>
#include <QStringList>
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

// Analyses each checkpoint on its own and joins the models that succeeded into one result, so
// one bad checkpoint costs only its own row. errors[i] is why checkpoints[i] failed (empty when
// it was analysed); throws Cancelled, and returns null when no model succeeded.
std::shared_ptr<const AnalysisResult> analyzeEach(const StudioBackend& backend, const AnalysisRequest& request,
                                                  const ProgressFn& progress, const std::atomic<bool>* cancel, QStringList& errors);

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
    // modelErrors[i] is why request.checkpoints[i] failed, empty when it was analysed.
    void finished(std::shared_ptr<const harmonic::AnalysisResult> result, std::vector<harmonic::views::PreparedData> prepared,
                  QStringList modelErrors);
    // cancelled: the user asked for it (not an error). modelErrors as above (empty when the
    // run stopped before every model was tried).
    void failed(const QString& message, bool cancelled, QStringList modelErrors);

private:
    StudioBackend backend_;
    QPointer<QThread> thread_;
    std::shared_ptr<std::atomic<bool>> cancel_;
    StallMonitor stall_;
};

}  // namespace harmonic::studio
