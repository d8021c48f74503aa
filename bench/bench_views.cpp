// Pan/zoom frame times of the per-token bpt plot at 10K and 1M tokens (three models, synthetic
// results): level of detail should make the frame cost independent of the text length.
//
//   bench_views [TOKENS...]     default: 10000 1000000; runs offscreen unless QT_QPA_PLATFORM is set
#include <QApplication>
#include <QElapsedTimer>
#include <qcustomplot.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "synthetic_result.h"
#include "views/bpt_view.h"
#include "views/token_axis.h"

using namespace harmonic;
using harmonic::views::BptView;

int main(int argc, char** argv) {
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication app(argc, argv);
    std::vector<int64_t> sizes;
    for (int i = 1; i < argc; ++i) {
        char* end = nullptr;
        const long long n = std::strtoll(argv[i], &end, 10);
        if (!end || *end || n < 10) {
            std::fprintf(stderr, "bench_views: '%s' is not a token count (at least 10)\n", argv[i]);
            return 2;
        }
        sizes.push_back(n);
    }
    if (sizes.empty()) sizes = {10'000, 1'000'000};
    std::printf("tokens,set_result_ms,mean_frame_ms,worst_frame_ms\n");
    for (int64_t tokens : sizes) {
        testing::SyntheticOptions options;
        options.tokens = tokens;
        options.traces = false;
        auto result = std::make_shared<const AnalysisResult>(testing::syntheticResult(options));
        BptView view;
        view.resize(1000, 700);
        view.show();
        QElapsedTimer setup;
        setup.start();
        view.setResult(result);
        const qint64 setupMs = setup.elapsed();
        QApplication::processEvents();
        view.plot()->replot(QCustomPlot::rpImmediateRefresh);
        QElapsedTimer total;
        total.start();
        int frames = 0;
        qint64 worst = 0;
        auto frame = [&](double lower, double upper) {
            QElapsedTimer t;
            t.start();
            view.tokenAxis()->setRange(lower, upper);
            view.plot()->replot(QCustomPlot::rpImmediateRefresh);
            worst = std::max(worst, t.elapsed());
            ++frames;
        };
        const double n = static_cast<double>(tokens);
        for (int i = 0; i < 10; ++i) frame(i * 0.05 * n, (i * 0.05 + 0.5) * n);
        for (double f : {1.0, 0.1, 0.01, 0.001}) frame(0.4 * n, (0.4 + f) * n);
        std::printf("%lld,%lld,%.2f,%lld\n", static_cast<long long>(tokens), static_cast<long long>(setupMs),
                    static_cast<double>(total.elapsed()) / frames, static_cast<long long>(worst));
    }
    return 0;
}
