#include "app/studio/analysis_runner.h"

#include <QMetaObject>
#include <exception>

#include "model/error.h"

namespace harmonic::studio {

StallMonitor::StallMonitor(QObject* parent) : QObject(parent) {
    timer_.setInterval(5);
    timer_.setTimerType(Qt::PreciseTimer);
    connect(&timer_, &QTimer::timeout, this, &StallMonitor::tick);
}

void StallMonitor::start() {
    longest_ = 0;
    clock_.start();
    last_ = 0;
    timer_.start();
}

void StallMonitor::stop() {
    tick();
    timer_.stop();
}

void StallMonitor::tick() {
    if (!clock_.isValid()) return;
    const qint64 now = clock_.nsecsElapsed();
    // A tick is due every 5 ms; anything beyond that is time the event loop was blocked.
    const double gap = static_cast<double>(now - last_) / 1e6 - timer_.interval();
    if (last_ > 0 && gap > longest_) longest_ = gap;
    last_ = now;
}

AnalysisRunner::AnalysisRunner(StudioBackend backend, QObject* parent) : QObject(parent), backend_(std::move(backend)) {}

AnalysisRunner::~AnalysisRunner() {
    if (thread_) {
        cancel();
        // The analysis checks the flag between chunks; wait for it rather than kill a thread
        // that may hold GPU memory.
        thread_->wait();
        delete thread_.data();
    }
}

void AnalysisRunner::cancel() {
    if (cancel_) cancel_->store(true);
}

bool AnalysisRunner::start(const AnalysisRequest& request) {
    if (thread_) return false;
    if (!backend_.analyze) {
        emit failed(tr("This build has no analysis backend."), false);
        return false;
    }
    cancel_ = std::make_shared<std::atomic<bool>>(false);
    auto cancel = cancel_;
    auto analyze = backend_.analyze;
    QPointer<AnalysisRunner> self(this);

    // Progress arrives from the worker as often as the analysis likes; forward at most every
    // 50 ms so the UI thread is not flooded.
    auto lastReport = std::make_shared<QElapsedTimer>();
    lastReport->start();
    ProgressFn progressFn = [self, lastReport](double fraction, const std::string& stage) {
        if (lastReport->elapsed() < 50 && fraction < 1.0) return;
        lastReport->restart();
        const QString text = QString::fromStdString(stage);
        QMetaObject::invokeMethod(self.data(), [self, fraction, text] {
            if (self) emit self->progress(fraction, text);
        }, Qt::QueuedConnection);
    };

    QThread* thread = QThread::create([self, request, cancel, analyze, progressFn] {
        std::shared_ptr<const AnalysisResult> result;
        std::vector<views::PreparedData> prepared;
        QString error;
        bool cancelled = false;
        try {
            result = std::make_shared<const AnalysisResult>(
                analyze(request.checkpoints, *request.text, request.textName, request.options, progressFn, cancel.get()));
        } catch (const Cancelled&) {
            cancelled = true;
        } catch (const std::bad_alloc&) {
            error = tr("Out of memory while analysing. Analyse fewer tokens (Analysis ▸ Maximum tokens) or fewer models.");
        } catch (const std::exception& e) {
            error = QString::fromUtf8(e.what());
        } catch (...) {
            error = tr("The analysis failed with an unknown error.");
        }
        if (cancel->load() && !result) cancelled = true;
        if (result) {
            if (progressFn) progressFn(1.0, "preparing the views");
            for (const auto& prepare : request.preparers) {
                try {
                    prepared.push_back(prepare ? prepare(*result) : nullptr);
                } catch (const std::exception&) {
                    prepared.push_back(nullptr);  // the view derives it itself on the UI thread
                }
            }
        }
        QMetaObject::invokeMethod(self.data(), [self, result, prepared, error, cancelled] {
            if (!self) return;
            self->stall_.stop();
            if (self->thread_) {
                self->thread_->wait();
                self->thread_->deleteLater();
                self->thread_ = nullptr;
            }
            if (result) emit self->finished(result, prepared);
            else emit self->failed(cancelled ? tr("Analysis cancelled.") : error, cancelled);
        }, Qt::QueuedConnection);
    });
    thread_ = thread;
    stall_.start();
    thread->start();
    return true;
}

}  // namespace harmonic::studio
