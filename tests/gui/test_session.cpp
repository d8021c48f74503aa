// The studio's models as independent items and its state matching what is on screen: a bad
// checkpoint fails on its own row and never blocks the others, Remove, Recent only for folders
// that loaded; Clear and failed runs clear the plots, Cancel keeps the title on the text shown,
// both comparisons name the same pair. Synthetic backend, offscreen.
#include <QComboBox>
#include <QEventLoop>
#include <QFile>
#include <QListWidget>
#include <QSettings>
#include <QTemporaryDir>
#include <QTimer>
#include <catch2/catch.hpp>

#include "app/studio/main_window.h"
#include "wait_for_analysis.h"
#include "synthetic_backend.h"
#include "views/bpt_view.h"
#include "views/levels_view.h"
#include "views/summary_view.h"
#include "views/text_view.h"

using namespace harmonic;
using namespace harmonic::studio;

namespace {

struct Session {
    QTemporaryDir dir;
    QString harmonic, transformer, bad, text, other, settings;
    Session() {
        REQUIRE(dir.isValid());
        harmonic = testing::makeFolder(dir.path(), QStringLiteral("harmonic"));
        transformer = testing::makeFolder(dir.path(), QStringLiteral("transformer"));
        bad = testing::makeFolder(dir.path(), QStringLiteral("bad-checkpoint"));
        text = write(QStringLiteral("first.txt"));
        other = write(QStringLiteral("second.txt"));
        settings = dir.filePath(QStringLiteral("settings.ini"));
    }
    QString write(const QString& name) {
        QFile f(dir.filePath(name));
        REQUIRE(f.open(QIODevice::WriteOnly));
        f.write("Some text to analyse.\n");
        return f.fileName();
    }
};


QStringList rowTexts(const MainWindow& window) {
    QStringList rows;
    for (int i = 0; i < window.modelList()->count(); ++i) rows << window.modelList()->item(i)->text();
    return rows;
}

}  // namespace

TEST_CASE("a bad checkpoint fails on its own row and the others still run", "[gui][studio][session]") {
    Session s;
    MainWindow window(testing::syntheticBackend(), s.settings);
    window.setQuietErrors(true);
    QStringList errors;
    QObject::connect(&window, &MainWindow::errorReported, [&](const QString& e) { errors << e; });
    window.setAutoRun(false);
    REQUIRE(window.addCheckpoints({s.harmonic, s.bad, s.transformer}));
    REQUIRE(window.openTextFile(s.text));
    window.runAnalysis();
    bool ok = false;
    REQUIRE(waitForFinish(window, 30000, &ok));
    CHECK(ok);
    REQUIRE(window.result() != nullptr);
    REQUIRE(window.result()->models.size() == 2);  // the two good ones are drawn
    CHECK(window.bptView()->smoothedGraph(1) != nullptr);
    CHECK(window.modelState(s.harmonic) == MainWindow::ModelState::Loaded);
    CHECK(window.modelState(s.transformer) == MainWindow::ModelState::Loaded);
    CHECK(window.modelState(s.bad) == MainWindow::ModelState::Failed);
    CHECK(window.modelError(s.bad).contains(QStringLiteral("unknown model family")));
    // Its own row says so, the others' rows do not.
    const QStringList rows = rowTexts(window);
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].contains(QStringLiteral("loaded")));
    CHECK(rows[1].contains(QStringLiteral("unknown model family")));
    CHECK(rows[2].contains(QStringLiteral("loaded")));
    CHECK(!errors.isEmpty());
    CHECK(errors.back().contains(QStringLiteral("bad-checkpoint")));

    // Recent holds only the folders that loaded.
    const QStringList recent = QSettings(s.settings, QSettings::IniFormat).value(QStringLiteral("recent/checkpoints")).toStringList();
    CHECK(recent.contains(s.harmonic));
    CHECK(recent.contains(s.transformer));
    CHECK(!recent.contains(s.bad));

    SECTION("a later run leaves the failed one out and succeeds") {
        REQUIRE(window.openTextFile(s.other));
        window.runAnalysis();
        ok = false;
        REQUIRE(waitForFinish(window, 30000, &ok));
        CHECK(ok);
        CHECK(window.result()->text_name == "second.txt");
        CHECK(window.result()->models.size() == 2);
        CHECK(window.modelState(s.bad) == MainWindow::ModelState::Failed);
    }
    SECTION("removing the selected failed model leaves the others and their plots") {
        window.modelList()->item(1)->setSelected(true);
        window.removeSelectedModels();
        CHECK(window.checkpoints() == QStringList({s.harmonic, s.transformer}));
        CHECK(rowTexts(window).size() == 2);
        CHECK(window.result()->models.size() == 2);
    }
    SECTION("removing a loaded model takes it off the plots at once") {
        REQUIRE(window.removeCheckpoint(s.transformer));
        REQUIRE(window.result() != nullptr);
        REQUIRE(window.result()->models.size() == 1);
        CHECK(window.result()->models[0].name == "harmonic");
        CHECK(window.bptView()->smoothedGraph(1) == nullptr);
        CHECK(window.summaryView()->table()->rowCount() == 1);
    }
}

TEST_CASE("Clear and a failed run leave no plots of an earlier run", "[gui][studio][session]") {
    Session s;
    MainWindow window(testing::syntheticBackend(), s.settings);
    window.setQuietErrors(true);
    REQUIRE(window.addCheckpoints({s.harmonic, s.transformer}));
    REQUIRE(window.openTextFile(s.text));
    REQUIRE(waitForFinish(window, 30000));
    REQUIRE(window.result() != nullptr);
    REQUIRE(window.bptView()->plot()->graphCount() > 0);

    SECTION("Clear Checkpoints") {
        window.clearCheckpoints();
        CHECK(window.result() == nullptr);
        CHECK(window.bptView()->result() == nullptr);
        CHECK(window.bptView()->plot()->graphCount() == 0);
        CHECK(window.summaryView()->table()->rowCount() == 0);
        CHECK(window.modelList()->count() == 0);
    }
    SECTION("a run in which every model fails") {
        window.clearCheckpoints();
        REQUIRE(window.addCheckpoints({s.bad}));
        bool ok = true;
        REQUIRE(waitForFinish(window, 30000, &ok));
        CHECK(!ok);
        CHECK(window.result() == nullptr);
        CHECK(window.bptView()->plot()->graphCount() == 0);
        CHECK(window.levelsView()->result() == nullptr);
        CHECK(window.modelState(s.bad) == MainWindow::ModelState::Failed);
        CHECK(rowTexts(window).front().contains(QStringLiteral("unknown model family")));
    }
}

TEST_CASE("after Cancel the title names the text on screen", "[gui][studio][session]") {
    Session s;
    // Slow chunks, so the second run is still going when it is cancelled.
    MainWindow window(testing::syntheticBackend(200), s.settings);
    window.setQuietErrors(true);
    REQUIRE(window.addCheckpoints({s.harmonic}));
    REQUIRE(window.openTextFile(s.text));
    REQUIRE(waitForFinish(window, 30000));
    CHECK(window.windowTitle().startsWith(QStringLiteral("first.txt")));
    REQUIRE(window.openTextFile(s.other));
    REQUIRE(window.isAnalysing());
    window.cancelAnalysis();
    bool ok = true;
    REQUIRE(waitForFinish(window, 30000, &ok));
    CHECK(!ok);
    REQUIRE(window.result() != nullptr);
    CHECK(window.result()->text_name == "first.txt");
    CHECK(window.shownTextName() == QStringLiteral("first.txt"));
    CHECK(window.windowTitle().startsWith(QStringLiteral("first.txt")));
    CHECK(!window.windowTitle().contains(QStringLiteral("second.txt")));
    CHECK(window.statusText().contains(QStringLiteral("first.txt")));
}

TEST_CASE("the difference panel and the text colouring compare the same pair", "[gui][studio][session]") {
    Session s;
    const QString mamba = testing::makeFolder(s.dir.path(), QStringLiteral("mamba"));
    MainWindow window(testing::syntheticBackend(), s.settings);
    window.setQuietErrors(true);
    window.setAutoRun(false);
    // Baselines first: the pair is still the Harmonic model against the first baseline.
    REQUIRE(window.addCheckpoints({s.transformer, mamba, s.harmonic}));
    REQUIRE(window.openTextFile(s.text));
    window.runAnalysis();
    REQUIRE(waitForFinish(window, 30000));
    REQUIRE(window.result()->models.size() == 3);
    auto* diffA = window.bptView()->findChildren<QComboBox*>().at(1);
    auto* diffB = window.bptView()->findChildren<QComboBox*>().at(2);
    CHECK(diffA->currentText() == QStringLiteral("harmonic"));
    CHECK(diffB->currentText() == QStringLiteral("transformer"));
    CHECK(window.textView()->colorMode() == views::TextView::ColorMode::Difference);
    CHECK(window.textView()->modelA() == 2);
    CHECK(window.textView()->modelB() == 0);
    CHECK(window.textView()->colorScaleLabel().contains(QStringLiteral("harmonic")));

    // Running again with the same models keeps what the user chose.
    window.bptView()->setDifferenceModels(1, 0);
    window.runAnalysis();
    REQUIRE(waitForFinish(window, 30000));
    CHECK(diffA->currentText() == QStringLiteral("mamba"));
}
