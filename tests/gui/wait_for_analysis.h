// Runs the event loop until the window's analysis finishes (true) or timeoutMs passes (false);
// *ok gets whether the analysis succeeded. False at once when no analysis is running.
#pragma once

#include <QEventLoop>
#include <QTimer>

#include "app/studio/main_window.h"

inline bool waitForFinish(harmonic::studio::MainWindow& window, int timeoutMs, bool* ok = nullptr) {
    if (!window.isAnalysing()) return false;
    QEventLoop loop;
    bool finished = false;
    QObject::connect(&window, &harmonic::studio::MainWindow::analysisFinished, &loop, [&](bool success) {
        finished = true;
        if (ok) *ok = success;
        loop.quit();
    });
    QTimer::singleShot(timeoutMs, &loop, &QEventLoop::quit);
    loop.exec();
    return finished;
}
