// Every view exports to PDF, SVG, PNG and CSV, and the files are what they claim to be.
#include <QDir>
#include <QFile>
#include <QImage>
#include <QProcess>
#include <QSet>
#include <QStandardPaths>
#include <QSvgRenderer>
#include <QTemporaryDir>
#include <QTextStream>
#include <QXmlStreamReader>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <memory>

#include "synthetic_result.h"
#include "views/bpt_view.h"
#include "views/csv.h"
#include "views/figure_export.h"
#include "views/levels_view.h"
#include "views/text_view.h"

using namespace harmonic;
using namespace harmonic::views;

namespace {

std::shared_ptr<const AnalysisResult> synthetic() {
    return std::make_shared<const AnalysisResult>(testing::syntheticResult());
}

// Minimal RFC 4180 reader (quoted cells, doubled quotes).
std::vector<QStringList> readCsv(const QString& path) {
    QFile file(path);
    REQUIRE(file.open(QIODevice::ReadOnly | QIODevice::Text));
    const QString text = QString::fromUtf8(file.readAll());
    std::vector<QStringList> rows;
    QStringList row;
    QString cell;
    bool quoted = false;
    for (qsizetype i = 0; i < text.size(); ++i) {
        const QChar c = text[i];
        if (quoted) {
            if (c == QLatin1Char('"') && i + 1 < text.size() && text[i + 1] == QLatin1Char('"')) {
                cell += c;
                ++i;
            } else if (c == QLatin1Char('"')) {
                quoted = false;
            } else {
                cell += c;
            }
        } else if (c == QLatin1Char('"')) {
            quoted = true;
        } else if (c == QLatin1Char(',')) {
            row << cell;
            cell.clear();
        } else if (c == QLatin1Char('\n')) {
            row << cell;
            rows.push_back(row);
            row.clear();
            cell.clear();
        } else {
            cell += c;
        }
    }
    return rows;
}

void checkPdf(const QString& path, int widthPt) {
    QFile file(path);
    REQUIRE(file.open(QIODevice::ReadOnly));
    const QByteArray bytes = file.readAll();
    REQUIRE(bytes.startsWith("%PDF-"));
    CHECK(bytes.contains("%%EOF"));
    const QString pdfinfo = QStandardPaths::findExecutable(QStringLiteral("pdfinfo"));
    if (pdfinfo.isEmpty()) return;
    QProcess process;
    process.start(pdfinfo, {path});
    REQUIRE(process.waitForFinished(20000));
    const QString info = QString::fromUtf8(process.readAllStandardOutput());
    CHECK(process.exitCode() == 0);
    CHECK(info.contains(QRegularExpression(QStringLiteral("Pages:\\s+1\\b"))));
    // The page is the figure: exactly the preset's width in points.
    CHECK(info.contains(QRegularExpression(QStringLiteral("Page size:\\s+%1 x ").arg(widthPt))));
}

void checkSvg(const QString& path) {
    QFile file(path);
    REQUIRE(file.open(QIODevice::ReadOnly));
    QXmlStreamReader xml(&file);
    bool sawSvg = false;
    int texts = 0;
    while (!xml.atEnd()) {
        xml.readNext();
        if (xml.isStartElement() && xml.name() == QLatin1String("svg")) sawSvg = true;
        if (xml.isStartElement() && xml.name() == QLatin1String("text")) ++texts;
    }
    INFO(path.toStdString() << ": " << xml.errorString().toStdString());
    CHECK(!xml.hasError());
    CHECK(sawSvg);
    CHECK(texts > 3);  // labels stay text (vector), not pixels
    QSvgRenderer renderer(path);
    CHECK(renderer.isValid());
}

void checkPng(const QString& path, int expectedWidth, int dpi) {
    QImage image(path);
    REQUIRE(!image.isNull());
    CHECK(image.width() == expectedWidth);
    CHECK(std::abs(image.dotsPerMeterX() - dpi / 0.0254) < 2.0);
    // Not blank: a figure has many colours (curves, labels, antialiasing).
    QSet<QRgb> colors;
    for (int y = 0; y < image.height(); y += 3)
        for (int x = 0; x < image.width(); x += 3) colors.insert(image.pixel(x, y));
    CHECK(colors.size() > 20);
}

}  // namespace

TEST_CASE("export_figures writes every view in every format", "[gui][export]") {
    const auto r = synthetic();
    QTemporaryDir dir;
    REQUIRE(dir.isValid());
    const QString out = dir.filePath(QStringLiteral("figures"));
    const int dpi = 150;
    const QStringList files = export_figures(r, out, allExportFormats(), dpi, singleColumnPreset());

    const QStringList stems = {QStringLiteral("text"), QStringLiteral("bpt"), QStringLiteral("summary"),
                               QStringLiteral("levels_harmonic-28M"), QStringLiteral("timescales_harmonic-28M"),
                               QStringLiteral("levels_transformer-28M"), QStringLiteral("levels_mamba-28M"),
                               QStringLiteral("timescales_mamba-28M")};
    for (const QString& stem : stems) {
        INFO(stem.toStdString());
        const QString base = QDir(out).filePath(stem);
        REQUIRE(files.contains(base + QStringLiteral(".pdf")));
        checkPdf(base + QStringLiteral(".pdf"), 252);
        checkSvg(base + QStringLiteral(".svg"));
        checkPng(base + QStringLiteral(".png"), static_cast<int>(std::lround(3.5 * dpi)), dpi);
    }
    for (const QString& f : files) CHECK(QFileInfo(f).size() > 0);

    SECTION("the bpt CSV holds exactly the analysed values") {
        const auto rows = readCsv(QDir(out).filePath(QStringLiteral("bpt.csv")));
        REQUIRE(rows.size() == 2001);
        const QStringList& header = rows[0];
        for (size_t m = 0; m < r->models.size(); ++m) {
            const auto column = header.indexOf(QStringLiteral("bpt_") + QString::fromStdString(r->models[m].name));
            REQUIRE(column >= 0);
            CHECK(rows[1][column].isEmpty());  // token 0: NaN
            for (size_t i = 1; i < 2000; ++i) REQUIRE(rows[i + 1][column].toFloat() == r->models[m].bpt[i]);
        }
        CHECK(rows[1 + 5][0] == QStringLiteral("5"));
        CHECK(rows[1 + 5][1] == QString::number(r->byte_offsets[5]));
    }
    SECTION("the heatmap and error CSVs hold the level traces") {
        const auto error = readCsv(QDir(out).filePath(QStringLiteral("levels_harmonic-28M_error.csv")));
        const auto& level = r->models[0].levels[1];
        size_t row = 1;
        for (size_t j = 0; j < level.error_norm.size(); ++j, ++row) {
            REQUIRE(error[row][0] == QStringLiteral("level 2"));
            REQUIRE(error[row][2].toLongLong() == level.error_token[j]);
            REQUIRE(error[row][3].toFloat() == level.error_norm[j]);
        }
        const auto heat = readCsv(QDir(out).filePath(QStringLiteral("levels_harmonic-28M_heatmap_level_3.csv")));
        CHECK(static_cast<int64_t>(heat.size()) == r->models[0].levels[2].rows + 1);
        CHECK(heat[0].size() == 3 + r->models[0].levels[2].channels);
        // Every cell is what the view draws there, written as CsvWriter::number writes it.
        LevelsView view;
        view.setResult(r);
        view.setModel(0);
        const auto order = view.channelOrder(2);
        for (int64_t row = 0; row < r->models[0].levels[2].rows; ++row)
            for (size_t k = 0; k < order.size(); ++k)
                REQUIRE(heat[static_cast<size_t>(row) + 1][static_cast<qsizetype>(3 + k)] ==
                        CsvWriter::number(view.displayValue(2, row, order[k])));
    }
    SECTION("the summary CSV matches the table") {
        const auto summary = readCsv(QDir(out).filePath(QStringLiteral("summary.csv")));
        REQUIRE(summary.size() == 4);
        CHECK(summary[2][0] == QStringLiteral("transformer-28M"));
        CHECK(summary[2][5].toDouble() == Approx(r->models[1].mean_bpt).epsilon(1e-6));
    }
}

TEST_CASE("CSV rows of numbers are written as CsvWriter::number writes each value", "[gui][export]") {
    std::vector<double> values{0.0, -0.0, 1.0, -1.5, 0.1, 1.0 / 3.0, 1e-5, 1.5e-310, 123456789.0, 1234567890123.0,
                               std::nan(""), 6.02214076e23, -2.5e-8, std::numeric_limits<double>::infinity(),
                               -std::numeric_limits<double>::infinity(), static_cast<double>(0.1f), 99999.9999};
    for (int i = 0; i < 2000; ++i) values.push_back(std::ldexp(std::sin(i * 12.9898) * 43758.5453, (i % 90) - 45));
    QTemporaryDir dir;
    REQUIRE(dir.isValid());
    const QString path = dir.filePath(QStringLiteral("numbers.csv"));
    {
        CsvWriter csv(path);
        csv.row({QStringLiteral("a, b"), QStringLiteral("7")}, values);
        csv.row({}, {1.0, std::nan(""), 2.0});
        csv.close();
    }
    const auto rows = readCsv(path);
    REQUIRE(rows.size() == 2);
    REQUIRE(rows[0].size() == static_cast<qsizetype>(2 + values.size()));
    CHECK(rows[0][0] == QStringLiteral("a, b"));  // leading cells are quoted as row() quotes them
    for (size_t i = 0; i < values.size(); ++i) {
        INFO(values[i]);
        CHECK(rows[0][static_cast<qsizetype>(2 + i)] == CsvWriter::number(values[i]));
    }
    CHECK(rows[1] == QStringList{QStringLiteral("1"), QString(), QStringLiteral("2")});
}

TEST_CASE("the double-column preset makes 7 inch figures", "[gui][export]") {
    const auto r = synthetic();
    QTemporaryDir dir;
    const QStringList files = export_figures(r, dir.path(), ExportFormats(ExportFormat::Png) | ExportFormat::Pdf, 100,
                                             doubleColumnPreset());
    checkPng(dir.filePath(QStringLiteral("bpt.png")), 700, 100);
    checkPdf(dir.filePath(QStringLiteral("bpt.pdf")), 504);
    CHECK(!QFile::exists(dir.filePath(QStringLiteral("bpt.svg"))));
}

TEST_CASE("a view exports the visible range of its CSV", "[gui][export]") {
    const auto r = synthetic();
    TextView view;
    view.setResult(r);
    view.tokenAxis()->setRange(99.5, 199.5);
    QTemporaryDir dir;
    ExportOptions options;
    options.formats = ExportFormat::Csv;
    options.csvRange = CsvRange::Visible;
    const QStringList files = exportView(view, dir.filePath(QStringLiteral("text")), options);
    REQUIRE(files.size() == 1);
    const auto rows = readCsv(files[0]);
    REQUIRE(rows.size() == 101);
    CHECK(rows[1][0] == QStringLiteral("100"));
    CHECK(rows.back()[0] == QStringLiteral("199"));
    CHECK(rows[1][4].toFloat() == r->models[0].bpt[100]);
}

TEST_CASE("export failures say which file and what to do", "[gui][export]") {
    const auto r = synthetic();
    BptView view;
    view.setResult(r);
    ExportOptions options;
    options.formats = ExportFormat::Pdf;
    try {
        exportView(view, QStringLiteral("/proc/no-such-dir/figure"), options);
        FAIL("export to an unwritable folder did not throw");
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        CHECK(what.find("/proc/no-such-dir") != std::string::npos);
        CHECK(what.find("choose a folder") != std::string::npos);
    }
    CHECK_THROWS_AS(parseExportFormats(QStringLiteral("pdf,jpeg")), std::invalid_argument);
    CHECK(parseExportFormats(QStringLiteral("pdf, png")) == (ExportFormats(ExportFormat::Pdf) | ExportFormat::Png));
}
