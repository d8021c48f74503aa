#include "app/studio/analysis_runner.h"

#include <QMetaObject>
#include <exception>
#include <algorithm>
#include <map>

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

std::shared_ptr<const AnalysisResult> analyzeEach(const StudioBackend& backend, const AnalysisRequest& request,
                                                  const ProgressFn& progress, const std::atomic<bool>* cancel, QStringList& errors) {
    const size_t n = request.checkpoints.size();
    errors = QStringList();
    for (size_t i = 0; i < n; ++i) errors << QString();
    std::shared_ptr<AnalysisResult> merged;
    std::string firstCheckpoint;
    for (size_t i = 0; i < n; ++i) {
        if (cancel && cancel->load()) throw Cancelled();
        const auto& checkpoint = request.checkpoints[i];
        ProgressFn part;
        if (progress)
            part = [&progress, i, n](double fraction, const std::string& stage) {
                progress((static_cast<double>(i) + std::clamp(fraction, 0.0, 1.0)) / static_cast<double>(n), stage);
            };
        try {
            AnalysisResult r = backend.analyze({checkpoint}, *request.text, request.textName, request.options, part, cancel);
            if (r.models.empty()) throw std::runtime_error(checkpoint.string() + ": the analysis produced no model");
            if (!merged) {
                merged = std::make_shared<AnalysisResult>(std::move(r));
                firstCheckpoint = checkpoint.string();
                continue;
            }
            if (r.token_ids != merged->token_ids)
                throw std::runtime_error(checkpoint.string() + ": uses a different tokenizer from " + firstCheckpoint +
                                         "; models compared on one token axis must share their tokenizer");
            for (auto& m : r.models) merged->models.push_back(std::move(m));
            merged->seconds += r.seconds;
            for (auto& note : r.notes)
                if (std::find(merged->notes.begin(), merged->notes.end(), note) == merged->notes.end()) merged->notes.push_back(note);
        } catch (const Cancelled&) {
            throw;
        } catch (const std::bad_alloc&) {
            errors[static_cast<int>(i)] =
                QObject::tr("Out of memory while analysing. Analyse fewer tokens (Analysis ▸ Maximum tokens) or fewer models.");
        } catch (const std::exception& e) {
            errors[static_cast<int>(i)] = QString::fromUtf8(e.what());
        } catch (...) {
            errors[static_cast<int>(i)] = QObject::tr("The analysis failed with an unknown error.");
        }
    }
    if (!merged) return nullptr;
    // Names stay unique across separately analysed models ("model", "model (2)").
    std::map<std::string, int> seen;
    for (auto& m : merged->models) {
        const int k = ++seen[m.name];
        if (k > 1) m.name += " (" + std::to_string(k) + ")";
    }
    return merged;
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
        emit failed(tr("This build has no analysis backend."), false, {});
        return false;
    }
    cancel_ = std::make_shared<std::atomic<bool>>(false);
    auto cancel = cancel_;
    const StudioBackend backend = backend_;
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

    QThread* thread = QThread::create([self, request, cancel, backend, progressFn] {
        std::shared_ptr<const AnalysisResult> result;
        std::vector<views::PreparedData> prepared;
        QString error;
        QStringList modelErrors;
        bool cancelled = false;
        try {
            result = analyzeEach(backend, request, progressFn, cancel.get(), modelErrors);
            if (!result) {
                QStringList lines;
                for (const QString& e : modelErrors)
                    if (!e.isEmpty()) lines << e;
                error = lines.join(QLatin1Char('\n'));
            }
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
        if (cancelled) modelErrors.clear();
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
        QMetaObject::invokeMethod(self.data(), [self, result, prepared, error, cancelled, modelErrors] {
            if (!self) return;
            self->stall_.stop();
            if (self->thread_) {
                self->thread_->wait();
                self->thread_->deleteLater();
                self->thread_ = nullptr;
            }
            if (result) emit self->finished(result, prepared, modelErrors);
            else emit self->failed(cancelled ? tr("Analysis cancelled.") : error, cancelled, modelErrors);
        }, Qt::QueuedConnection);
    });
    thread_ = thread;
    stall_.start();
    thread->start();
    return true;
}

}  // namespace harmonic::studio
