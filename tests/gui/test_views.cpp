// The views draw exactly the numbers of the analysis result, follow one token axis, and stay
// fast with a million points.
#include <QApplication>
#include <QDir>
#include <QMouseEvent>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QWheelEvent>
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <qcustomplot.h>

#include "synthetic_result.h"
#include "views/bpt_view.h"
#include "views/derived.h"
#include "views/figure_export.h"
#include "views/levels_view.h"
#include "views/summary_view.h"
#include "views/text_view.h"
#include "views/timescale_view.h"
#include "views/token_axis.h"

using namespace harmonic;
using namespace harmonic::views;

namespace {

std::shared_ptr<const AnalysisResult> synthetic(int64_t tokens = 2000, int models = 3) {
    testing::SyntheticOptions options;
    options.tokens = tokens;
    options.models = models;
    return std::make_shared<const AnalysisResult>(testing::syntheticResult(options));
}

// Graph data as (key, value) pairs, for comparisons.
std::vector<std::pair<double, double>> points(const QCPGraphDataContainer& data) {
    std::vector<std::pair<double, double>> out;
    for (auto it = data.constBegin(); it != data.constEnd(); ++it) out.emplace_back(it->key, it->value);
    return out;
}

void settle(QWidget& widget) {
    widget.resize(1000, 700);
    widget.show();
    QApplication::processEvents();
}

QPoint findToken(const TextView& view, qint64 token) {
    for (int y = 2; y < view.canvas()->height(); y += 3)
        for (int x = 2; x < view.canvas()->width(); x += 2)
            if (view.tokenAt(QPoint(x, y)) == token) return {x, y};
    return {-1, -1};
}

void sendMouse(QWidget* target, QEvent::Type type, QPoint pos, Qt::MouseButton button, Qt::MouseButtons buttons,
               Qt::KeyboardModifiers modifiers = Qt::NoModifier) {
    QMouseEvent event(type, QPointF(pos), target->mapToGlobal(QPointF(pos)), button, buttons, modifiers);
    QApplication::sendEvent(target, &event);
}

}  // namespace

TEST_CASE("synthetic results have the shapes of a real analysis", "[gui]") {
    const auto r = synthetic();
    REQUIRE(r->token_count() == 2000);
    REQUIRE(r->models.size() == 3);
    REQUIRE(std::isnan(r->models[0].bpt[0]));
    REQUIRE(r->models[0].levels.size() == 3);
    CHECK(r->models[0].levels[1].stride == 4);
    CHECK(r->models[0].levels[2].stride == 16);
    for (const auto& level : r->models[0].levels) {
        CHECK(static_cast<int64_t>(level.row_token_begin.size()) == level.rows + 1);
        CHECK(static_cast<int64_t>(level.hidden.size()) == level.rows * level.channels);
    }
}

TEST_CASE("BptView plots exactly the result's bpt, smoothed curves and difference", "[gui]") {
    const auto r = synthetic();
    BptView view;
    view.setResult(r);
    settle(view);
    for (int m = 0; m < 3; ++m) {
        const auto raw = points(*view.rawCurve(m).full());
        REQUIRE(raw.size() == r->models[static_cast<size_t>(m)].bpt.size() - 1);  // token 0 has no bpt
        for (const auto& [key, value] : raw) {
            const auto i = static_cast<size_t>(key);
            REQUIRE(key == static_cast<double>(i));
            REQUIRE(value == static_cast<double>(r->models[static_cast<size_t>(m)].bpt[i]));
        }
        const auto expected = movingAverage(r->models[static_cast<size_t>(m)].bpt, view.smoothingWindow());
        for (const auto& [key, value] : points(*view.smoothedCurve(m).full()))
            REQUIRE(value == Approx(expected[static_cast<size_t>(key)]).epsilon(1e-12));
        const auto running = runningMean(r->models[static_cast<size_t>(m)].bpt);
        for (const auto& [key, value] : points(*view.runningMeanCurve(m).full()))
            REQUIRE(value == Approx(running[static_cast<size_t>(key)]).epsilon(1e-12));
    }
    // Raw curves are drawn on demand; at 2000 tokens the graphs hold the full data, no level of detail.
    REQUIRE(view.rawGraph(0) == nullptr);
    view.setShowRaw(true);
    REQUIRE(view.rawGraph(0)->data() == view.rawCurve(0).full());

    std::vector<float> diff(r->models[0].bpt.size());
    for (size_t i = 0; i < diff.size(); ++i) diff[i] = r->models[0].bpt[i] - r->models[1].bpt[i];
    const auto smoothDiff = movingAverage(diff, view.smoothingWindow());
    REQUIRE(view.differenceGraph() != nullptr);
    for (const auto& [key, value] : points(*view.differenceCurve().full()))
        REQUIRE(value == Approx(smoothDiff[static_cast<size_t>(key)]).epsilon(1e-12));

    SECTION("changing the window recomputes the smoothed curve") {
        view.setSmoothingWindow(8);
        const auto expected8 = movingAverage(r->models[1].bpt, 8);
        for (const auto& [key, value] : points(*view.smoothedCurve(1).full()))
            REQUIRE(value == Approx(expected8[static_cast<size_t>(key)]).epsilon(1e-12));
    }
    SECTION("the difference of another pair") {
        view.setDifferenceModels(2, 0);
        const auto& a = r->models[2].bpt;
        const auto& b = r->models[0].bpt;
        const auto first = *view.differenceCurve().full()->constBegin();
        const auto i = static_cast<size_t>(first.key);
        double sum = 0;
        int count = 0;
        for (size_t k = i > 32 ? i - 32 : 0; k < i + 32 && k < a.size(); ++k)
            if (!std::isnan(a[k] - b[k])) {
                sum += a[k] - b[k];
                ++count;
            }
        CHECK(first.value == Approx(sum / count).epsilon(1e-6));
    }
}

TEST_CASE("level of detail keeps the envelope of a million points", "[gui]") {
    std::vector<float> values(1'000'000);
    uint64_t s = 1;
    for (auto& v : values) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        v = static_cast<float>((s >> 40) % 1000) / 100.0F;
    }
    values[123456] = 42.0F;  // a spike that must survive decimation
    values[0] = std::nanf("");
    const LodCurve curve = LodCurve::fromTokens(values);
    REQUIRE(curve.levelCount() > 3);
    REQUIRE(curve.full()->size() == 999'999);
    const int k = curve.levelFor(0, 1e6, 1000);
    const auto coarse = curve.level(k);
    CHECK(coarse->size() <= 16'384);
    bool found = false;
    const QCPRange range = coarse->valueRange(found);
    CHECK(range.upper == 42.0);
    CHECK(range.lower == 0.0);
    // Zoomed in to 1000 tokens: full resolution.
    CHECK(curve.levelFor(5000, 6000, 1000) == 0);
}

TEST_CASE("BptView draws a million tokens through level of detail (frame times: bench/bench_views)", "[gui]") {
    testing::SyntheticOptions options;
    options.tokens = 1'000'000;
    options.traces = false;
    BptView view;
    view.resize(1200, 500);
    view.setResult(std::make_shared<const AnalysisResult>(testing::syntheticResult(options)));
    settle(view);
    // Points a replot draws (those in the visible range, across the graphs) after each frame of a
    // pan and a zoom: bounded by the plot's width whatever the text length, and every token of
    // the range when zoomed in far enough.
    auto pointsHeld = [&](double lower, double upper) {
        view.tokenAxis()->setRange(lower, upper);
        view.plot()->replot(QCustomPlot::rpImmediateRefresh);
        int64_t points = 0;
        for (int g = 0; g < view.plot()->graphCount(); ++g) {
            auto* graph = view.plot()->graph(g);
            if (!graph->visible()) continue;
            const auto data = graph->data();
            points += data->findEnd(upper, false) - data->findBegin(lower, false);
        }
        return points;
    };
    const int64_t graphs = view.plot()->graphCount();
    REQUIRE(graphs > 0);
    const int64_t bound = graphs * 16 * view.plot()->width();
    for (int i = 0; i < 10; ++i) {
        INFO("pan frame " << i);
        CHECK(pointsHeld(i * 50'000.0, i * 50'000.0 + 500'000.0) <= bound);
    }
    for (double span : {1'000'000.0, 100'000.0, 10'000.0}) {
        INFO("zoom to " << span << " tokens");
        CHECK(pointsHeld(400'000.0, 400'000.0 + span) <= bound);
    }
    // Zoomed in to 1000 tokens every token of the visible range is drawn.
    const int64_t zoomed = pointsHeld(400'000.0, 401'000.0);
    CHECK(zoomed >= 1000);
}

TEST_CASE("all views follow one token axis: zoom, pan and selection", "[gui]") {
    const auto r = synthetic();
    TokenAxis axis;
    BptView bpt;
    LevelsView levels;
    TextView text;
    for (AnalysisView* v : std::initializer_list<AnalysisView*>{&bpt, &levels, &text}) {
        v->setTokenAxis(&axis);
        v->setResult(r);
        settle(*v);
    }
    // Short enough that the text must scroll to follow the axis.
    text.resize(500, 160);
    QApplication::processEvents();
    REQUIRE(axis.tokenCount() == 2000);

    auto levelsAxesAt = [&](double lo, double hi) {
        bool all = true;
        for (int i = 0; i < levels.plot()->axisRectCount(); ++i) {
            const QCPRange range = levels.plot()->axisRect(i)->axis(QCPAxis::atBottom)->range();
            all = all && range.lower == Approx(lo) && range.upper == Approx(hi);
        }
        return all;
    };

    SECTION("setting the range in one plot moves the others") {
        bpt.plot()->axisRect(0)->axis(QCPAxis::atBottom)->setRange(100, 300);
        CHECK(axis.lower() == Approx(100));
        CHECK(axis.upper() == Approx(300));
        CHECK(levelsAxesAt(100, 300));
        for (int i = 0; i < bpt.plot()->axisRectCount(); ++i)
            CHECK(bpt.plot()->axisRect(i)->axis(QCPAxis::atBottom)->range().lower == Approx(100));
        // The text scrolls to the first token of the range.
        const qint64 shown = text.firstShownToken();
        CHECK(shown <= 100);
        CHECK(shown > 40);

        levels.plot()->axisRect(1)->axis(QCPAxis::atBottom)->setRange(1500, 1600);
        CHECK(bpt.plot()->axisRect(0)->axis(QCPAxis::atBottom)->range().lower == Approx(1500));
        CHECK(bpt.plot()->axisRect(0)->axis(QCPAxis::atBottom)->range().upper == Approx(1600));
    }
    SECTION("a mouse wheel zoom in one plot zooms all") {
        bpt.plot()->replot(QCustomPlot::rpImmediateRefresh);
        QCPAxisRect* rect = bpt.plot()->axisRect(0);
        const QPointF centre = rect->rect().center();
        QWheelEvent wheel(centre, bpt.plot()->mapToGlobal(centre), QPoint(), QPoint(0, 120), Qt::NoButton, Qt::NoModifier,
                          Qt::NoScrollPhase, false);
        QApplication::sendEvent(bpt.plot(), &wheel);
        const double width = axis.upper() - axis.lower();
        CHECK(width < 1999.0);
        CHECK(levelsAxesAt(axis.lower(), axis.upper()));
    }
    SECTION("panning past the end stops at the end") {
        axis.setRange(1900, 2400);
        CHECK(axis.upper() == Approx(1999.5));
        CHECK(axis.upper() - axis.lower() == Approx(500));
    }
    SECTION("selecting tokens in the text selects them in the plots") {
        const QPoint a = findToken(text, 10);
        const QPoint b = findToken(text, 20);
        REQUIRE(a.x() >= 0);
        REQUIRE(b.x() >= 0);
        sendMouse(text.canvas(), QEvent::MouseButtonPress, a, Qt::LeftButton, Qt::LeftButton);
        sendMouse(text.canvas(), QEvent::MouseMove, b, Qt::NoButton, Qt::LeftButton);
        sendMouse(text.canvas(), QEvent::MouseButtonRelease, b, Qt::LeftButton, Qt::NoButton);
        CHECK(axis.selectionBegin() == 10);
        CHECK(axis.selectionEnd() == 21);
        // Every token-axis panel of the plots shows the band.
        int bands = 0;
        for (int i = 0; i < bpt.plot()->itemCount(); ++i)
            if (auto* rect = qobject_cast<QCPItemRect*>(bpt.plot()->item(i)); rect && rect->visible()) {
                CHECK(rect->topLeft->coords().x() == Approx(9.5));
                CHECK(rect->bottomRight->coords().x() == Approx(20.5));
                ++bands;
            }
        CHECK(bands == bpt.plot()->axisRectCount());
    }
    SECTION("selecting in a plot (shift+drag) selects in the text") {
        bpt.plot()->replot(QCustomPlot::rpImmediateRefresh);
        QCPAxis* x = bpt.plot()->axisRect(0)->axis(QCPAxis::atBottom);
        const int y = bpt.plot()->axisRect(0)->rect().center().y();
        const QPoint from(static_cast<int>(x->coordToPixel(500)), y);
        const QPoint to(static_cast<int>(x->coordToPixel(700)), y);
        sendMouse(bpt.plot(), QEvent::MouseButtonPress, from, Qt::LeftButton, Qt::LeftButton, Qt::ShiftModifier);
        sendMouse(bpt.plot(), QEvent::MouseMove, to, Qt::NoButton, Qt::LeftButton, Qt::ShiftModifier);
        sendMouse(bpt.plot(), QEvent::MouseButtonRelease, to, Qt::LeftButton, Qt::NoButton, Qt::ShiftModifier);
        CHECK(axis.selectionBegin() == Approx(500).margin(2));
        CHECK(axis.selectionEnd() == Approx(701).margin(2));
        // The range did not move: shift+drag selects instead of panning.
        CHECK(axis.lower() == Approx(-0.5));
        // The text scrolled the selection into view.
        CHECK(text.firstShownToken() <= axis.selectionBegin());
    }
}

TEST_CASE("TextView colours tokens by bpt or difference and explains them on hover", "[gui]") {
    const auto r = synthetic();
    TextView view;
    view.setResult(r);
    settle(view);
    const auto& bpt = r->models[0].bpt;
    size_t lo = 1, hi = 1;
    for (size_t i = 1; i < bpt.size(); ++i) {
        if (bpt[i] < bpt[lo]) lo = i;
        if (bpt[i] > bpt[hi]) hi = i;
    }
    // Sequential map: a badly predicted token is darker (and redder) than a well predicted one.
    CHECK(view.colorValue(static_cast<qint64>(lo)) == Approx(bpt[lo]));
    CHECK(view.tokenColor(static_cast<qint64>(hi)).lightness() < view.tokenColor(static_cast<qint64>(lo)).lightness());
    CHECK(view.tokenColor(static_cast<qint64>(hi)).red() > view.tokenColor(static_cast<qint64>(hi)).blue());

    view.setColorByDifference(0, 1);
    const auto& b = r->models[1].bpt;
    size_t better = 1;  // where model 0 beats model 1 the most
    for (size_t i = 1; i < bpt.size(); ++i)
        if (bpt[i] - b[i] < bpt[better] - b[better]) better = i;
    CHECK(view.colorValue(static_cast<qint64>(better)) == Approx(bpt[better] - b[better]));
    const QColor c = view.tokenColor(static_cast<qint64>(better));
    CHECK(c.blue() > c.red());  // blue: the first model is better

    const QString tip = view.tooltipHtml(100);
    for (const auto& m : r->models) CHECK(tip.contains(QString::fromStdString(m.name)));
    // The top-5 predictions made for token 100 (at position 99) with their probabilities.
    const auto& top = r->models[2].top;
    for (int k = 0; k < 5; ++k) CHECK(tip.contains(QString::number(top[99 * 5 + static_cast<size_t>(k)].probability, 'f', 3)));
    CHECK(view.tooltipHtml(0).contains(QStringLiteral("no context")));

    SECTION("a vocabulary function names predicted ids") {
        view.setTokenTextFunction([](int32_t id) { return QStringLiteral("tok%1").arg(id); });
        CHECK(view.tooltipHtml(100).contains(QStringLiteral("tok%1").arg(top[99 * 5].token_id)));
    }
    SECTION("multi-byte characters split over byte tokens are shown once") {
        const TokenDisplay display = TokenDisplay::fromResult(*r);
        QString all;
        for (qint64 i = 0; i < display.size(); ++i) all += display.token(i);
        CHECK(all.contains(QStringLiteral("über")));
        CHECK(all.contains(QStringLiteral("naïve")));
        CHECK(!all.contains(QChar(0xFFFD)));
    }
}

TEST_CASE("LevelsView aligns every level's heatmap rows to the tokens they cover", "[gui]") {
    const auto r = synthetic();
    LevelsView view;
    view.setResult(r);
    settle(view);
    REQUIRE(view.model() == 0);
    const ModelTrace& model = r->models[0];
    for (int l = 0; l < 3; ++l) {
        const LevelTrace& level = model.levels[static_cast<size_t>(l)];
        QCPColorMap* map = view.colorMap(l);
        REQUIRE(map != nullptr);
        const auto order = view.channelOrder(l);
        // Sorted by tau: fast channels first.
        for (size_t k = 1; k < order.size(); ++k)
            CHECK(level.channel_tau[static_cast<size_t>(order[k - 1])] <= level.channel_tau[static_cast<size_t>(order[k])]);
        for (int64_t token : {0L, 17L, 500L, 1234L, 1999L}) {
            int64_t row = 0;
            while (row + 1 < level.rows && level.row_token_begin[static_cast<size_t>(row) + 1] <= token) ++row;
            for (int c : {0, 5, static_cast<int>(level.channels) - 1}) {
                int cellKey = 0, cellValue = 0;
                map->data()->coordToCell(static_cast<double>(token), c, &cellKey, &cellValue);
                const double drawn = map->data()->cell(cellKey, cellValue);
                CHECK(drawn == Approx(view.displayValue(l, row, order[static_cast<size_t>(c)])));
            }
        }
        if (!level.error_norm.empty()) {
            QCPGraph* g = view.errorGraph(l);
            REQUIRE(g != nullptr);
            const auto pts = points(*g->data());
            REQUIRE(pts.size() == level.error_norm.size());
            for (size_t j = 0; j < pts.size(); ++j) {
                REQUIRE(pts[j].first == static_cast<double>(level.error_token[j]));
                REQUIRE(pts[j].second == static_cast<double>(level.error_norm[j]));
            }
        }
    }
    // Normalised values are z-scores of the stored rows.
    const LevelTrace& level = model.levels[1];
    double s = 0, s2 = 0;
    for (int64_t row = 0; row < level.rows; ++row) {
        const double z = view.displayValue(1, row, 3);
        s += z;
        s2 += z * z;
    }
    CHECK(s / static_cast<double>(level.rows) == Approx(0).margin(1e-6));
    CHECK(s2 / static_cast<double>(level.rows) == Approx(1).epsilon(1e-6));

    SECTION("a baseline without decays shows its layers in channel order") {
        view.setModel(1);
        REQUIRE(view.colorMap(0) != nullptr);
        CHECK(view.channelOrder(0).front() == 0);
        CHECK(view.errorGraph(0) == nullptr);
    }
}

TEST_CASE("TimescaleView shows tau histograms, autocorrelation with its fit, and spectra", "[gui]") {
    const auto r = synthetic();
    TimescaleView view;
    view.setResult(r);
    settle(view);
    const ModelTrace& model = r->models[0];
    for (int l = 0; l < 3; ++l) {
        const LevelTrace& level = model.levels[static_cast<size_t>(l)];
        const auto fractions = view.histogramFractions(l);
        double total = 0;
        for (double f : fractions) total += f;
        CHECK(total == Approx(1.0));
        const auto ac = points(*view.autocorrGraph(l)->data());
        REQUIRE(ac.size() == level.autocorr.size());
        for (size_t i = 0; i < ac.size(); ++i) {
            CHECK(ac[i].first == Approx(level.autocorr_lag[i] * static_cast<double>(level.stride)));
            CHECK(ac[i].second == static_cast<double>(level.autocorr[i]));
        }
        for (const auto& [lag, fit] : points(*view.fitGraph(l)->data()))
            CHECK(fit == Approx(std::exp(-lag / level.fitted_tau_tokens)));
        const auto spectrum = points(*view.spectrumGraph(l)->data());
        CHECK(spectrum.size() == level.spectrum_power.size());
        CHECK(view.autocorrGraph(l)->name().contains(QStringLiteral("fit τ")));
    }
    CHECK(view.plot()->axisRect(1)->axis(QCPAxis::atBottom)->scaleType() == QCPAxis::stLogarithmic);
    CHECK(view.plot()->axisRect(2)->axis(QCPAxis::atLeft)->scaleType() == QCPAxis::stLogarithmic);
}

TEST_CASE("SummaryView gives mean bpt per model per context bucket", "[gui]") {
    const auto r = synthetic();
    SummaryView view;
    view.setResult(r);
    settle(view);
    const auto& buckets = view.buckets();
    REQUIRE(buckets.size() == 6);  // [1,4) ... [1024, 2000)
    CHECK(buckets.front().begin == 1);
    CHECK(buckets.back().end == 2000);
    const BarChartData& data = view.chartData();
    REQUIRE(data.series.size() == 3);
    for (int m = 0; m < 3; ++m)
        for (size_t b = 0; b < buckets.size(); ++b)
            CHECK(data.series[m].values[static_cast<qsizetype>(b)] ==
                  Approx(finiteMean(r->models[static_cast<size_t>(m)].bpt, buckets[b].begin, buckets[b].end)));
    QTableWidget* table = view.table();
    REQUIRE(table->rowCount() == 3);
    CHECK(table->item(0, 0)->text() == QStringLiteral("harmonic-28M"));
    CHECK(table->item(1, 3)->text().toDouble() == Approx(r->models[1].mean_bpt).margin(0.0006));
}

TEST_CASE("views and exports survive empty and degenerate results", "[gui]") {
    std::vector<AnalysisResult> cases;
    cases.emplace_back();  // nothing at all
    {
        AnalysisResult one;  // one token, one model, no traces
        one.token_ids = {65};
        one.byte_offsets = {0};
        one.token_text = {"A"};
        ModelTrace m;
        m.name = "only";
        m.bpt = {std::nanf("")};
        one.models.push_back(m);
        cases.push_back(one);
    }
    {
        testing::SyntheticOptions o;
        o.tokens = 50;
        AnalysisResult odd = testing::syntheticResult(o);
        // Inconsistent shapes a buggy analysis could produce: short vectors, empty levels, NaN.
        odd.models[0].levels[0].rows = 0;
        odd.models[0].levels[1].hidden.clear();
        odd.models[0].levels[2].autocorr_lag.clear();
        odd.models[1].bpt.assign(50, std::nanf(""));
        odd.models[2].top.clear();
        odd.models[2].top_k = 5;
        cases.push_back(odd);
    }
    for (const auto& c : cases) {
        const auto r = std::make_shared<const AnalysisResult>(c);
        TokenAxis axis;
        TextView text;
        BptView bpt;
        LevelsView levels;
        TimescaleView timescales;
        SummaryView summary;
        for (AnalysisView* v : std::initializer_list<AnalysisView*>{&text, &bpt, &levels, &timescales, &summary}) {
            v->setTokenAxis(&axis);
            v->setResult(r);
            settle(*v);
        }
        axis.setRange(-10, 10);
        axis.setSelection(0, 1);
        // A tooltip for every token there is, naming it; none past the end.
        if (r->token_count() > 0)
            CHECK(text.tooltipHtml(0).contains(QStringLiteral("token 0")));
        else
            CHECK(text.tooltipHtml(0).isEmpty());
        CHECK(text.tooltipHtml(r->token_count()).isEmpty());
        QTemporaryDir dir;
        CHECK_NOTHROW(export_figures(r, dir.path(), allExportFormats(), 72));
        if (r->token_count() > 0) CHECK_FALSE(QDir(dir.path()).entryList(QDir::Files).isEmpty());
    }
}
