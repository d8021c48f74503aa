#include "views/figure_export.h"

#include <QApplication>
#include <QDir>
#include <QFileInfo>
#include <QImage>
#include <QPageLayout>
#include <QPageSize>
#include <QPdfWriter>
#include <QSvgGenerator>
#include <cmath>
#include <qcustomplot.h>
#include <stdexcept>

#include "views/analysis_view.h"
#include "views/bpt_view.h"
#include "views/levels_view.h"
#include "views/summary_view.h"
#include "views/text_view.h"
#include "views/timescale_view.h"
#include "views/token_axis.h"

namespace harmonic::views {

namespace {

[[noreturn]] void fail(const QString& path, const QString& why) {
    throw std::runtime_error("cannot write " + QDir::toNativeSeparators(path).toStdString() + ": " + why.toStdString());
}

void checkWritten(const QString& path) {
    const QFileInfo info(path);
    if (!info.exists() || info.size() == 0) fail(path, QStringLiteral("the file is missing or empty afterwards (is the disk full?)"));
}

// Vector output: no pixel caches, no cosmetic (device-pixel) pens, which would print as
// hairlines of arbitrary width.
void prepareVectorPainter(QCPPainter& painter) {
    painter.setMode(QCPPainter::pmVectorized);
    painter.setMode(QCPPainter::pmNoCaching);
    painter.setMode(QCPPainter::pmNonCosmetic);
    painter.setRenderHint(QPainter::Antialiasing, true);
    painter.setRenderHint(QPainter::TextAntialiasing, true);
}

// Restores the view's on-screen style when an export ends, also by exception.
class StyleScope {
public:
    StyleScope(AnalysisView& view, const FigureStyle& style) : view_(view), saved_(view.figureStyle()) { view_.setFigureStyle(style); }
    ~StyleScope() { view_.setFigureStyle(saved_); }
    StyleScope(const StyleScope&) = delete;
    StyleScope& operator=(const StyleScope&) = delete;

private:
    AnalysisView& view_;
    FigureStyle saved_;
};

void ensureFolderFor(const QString& path) {
    const QFileInfo info(path);
    if (!QDir().mkpath(info.absolutePath()))
        fail(path, QStringLiteral("the folder %1 cannot be created (choose a folder you can write to)").arg(info.absolutePath()));
}

}  // namespace

void ensureGuiApplication() {
    if (qobject_cast<QApplication*>(QCoreApplication::instance())) return;
    if (QCoreApplication::instance())
        throw std::runtime_error("figure export needs a QApplication, but this program runs a QCoreApplication");
    // A figure export never needs a screen: stay offscreen unless the caller chose a platform.
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
    static int argc = 1;
    static char name[] = "harmonic";
    static char* argv[] = {name, nullptr};
    static QApplication* app = new QApplication(argc, argv);  // lives until exit, like a main()'s
    Q_UNUSED(app);
}

QSize figureSizePt(const AnalysisView& view, const FigurePreset& preset) {
    const int width = preset.widthPt();
    const int height = static_cast<int>(std::lround(width * view.figureAspect(preset)));
    return {width, std::max(height, 40)};
}

void writePdf(AnalysisView& view, const QString& path, const QSize& sizePt) {
    ensureFolderFor(path);
    {
        QPdfWriter writer(path);
        // One painter unit = one point: the figure is laid out in points (figure_style.h).
        writer.setResolution(72);
        writer.setPageSize(QPageSize(QSizeF(sizePt), QPageSize::Point, QString(), QPageSize::ExactMatch));
        writer.setPageMargins(QMarginsF(0, 0, 0, 0), QPageLayout::Point);
        writer.setCreator(QStringLiteral("Harmonic Studio"));
        writer.setTitle(view.title());
        QCPPainter painter;
        if (!painter.begin(&writer)) fail(path, QStringLiteral("the PDF cannot be opened for writing (choose a folder you can write to)"));
        prepareVectorPainter(painter);
        view.renderFigure(&painter, sizePt);
        painter.end();
    }
    checkWritten(path);
}

void writeSvg(AnalysisView& view, const QString& path, const QSize& sizePt) {
    ensureFolderFor(path);
    {
        QSvgGenerator generator;
        generator.setFileName(path);
        generator.setSize(sizePt);
        generator.setViewBox(QRect(QPoint(0, 0), sizePt));
        generator.setResolution(72);  // so width/height come out in the figure's physical size
        generator.setTitle(view.title());
        generator.setDescription(QStringLiteral("Harmonic Studio figure"));
        QCPPainter painter;
        if (!painter.begin(&generator)) fail(path, QStringLiteral("the SVG cannot be opened for writing (choose a folder you can write to)"));
        prepareVectorPainter(painter);
        view.renderFigure(&painter, sizePt);
        painter.end();
    }
    checkWritten(path);
}

void writePng(AnalysisView& view, const QString& path, const QSize& sizePt, int dpi) {
    if (dpi < 10 || dpi > 2400) throw std::invalid_argument("PNG resolution " + std::to_string(dpi) + " dpi is out of range (use 72 to 2400)");
    ensureFolderFor(path);
    const double scale = dpi / 72.0;
    const QSize pixels(static_cast<int>(std::lround(sizePt.width() * scale)), static_cast<int>(std::lround(sizePt.height() * scale)));
    QImage image(pixels, QImage::Format_ARGB32_Premultiplied);
    if (image.isNull()) fail(path, QStringLiteral("a %1 x %2 image does not fit in memory (choose a lower DPI)").arg(pixels.width()).arg(pixels.height()));
    image.fill(Qt::white);
    const int dotsPerMeter = static_cast<int>(std::lround(dpi / 0.0254));
    image.setDotsPerMeterX(dotsPerMeter);
    image.setDotsPerMeterY(dotsPerMeter);
    {
        QCPPainter painter(&image);
        painter.setMode(QCPPainter::pmNoCaching);
        if (scale > 1.0) painter.setMode(QCPPainter::pmNonCosmetic);
        painter.setRenderHint(QPainter::Antialiasing, true);
        painter.setRenderHint(QPainter::TextAntialiasing, true);
        painter.setRenderHint(QPainter::SmoothPixmapTransform, false);  // heatmap cells stay crisp
        painter.scale(scale, scale);
        view.renderFigure(&painter, sizePt);
        painter.end();
    }
    if (!image.save(path, "PNG")) fail(path, QStringLiteral("saving the PNG failed (choose a folder you can write to)"));
}

QStringList exportView(AnalysisView& view, const QString& basePath, const ExportOptions& options) {
    QStringList files;
    const StyleScope scope(view, paperStyle(options.preset));
    const QSize size = figureSizePt(view, options.preset);
    if (options.formats & ExportFormat::Pdf) {
        writePdf(view, basePath + QStringLiteral(".pdf"), size);
        files << basePath + QStringLiteral(".pdf");
    }
    if (options.formats & ExportFormat::Svg) {
        writeSvg(view, basePath + QStringLiteral(".svg"), size);
        files << basePath + QStringLiteral(".svg");
    }
    if (options.formats & ExportFormat::Png) {
        writePng(view, basePath + QStringLiteral(".png"), size, options.dpi);
        files << basePath + QStringLiteral(".png");
    }
    if (options.formats & ExportFormat::Csv) {
        ensureFolderFor(basePath + QStringLiteral(".csv"));
        files << view.writeCsv(basePath, options.csvRange);
    }
    return files;
}

QStringList export_figures(std::shared_ptr<const AnalysisResult> result, const QString& out_dir, ExportFormats formats, int dpi,
                           const FigurePreset& preset) {
    if (!result) throw std::invalid_argument("export_figures: no analysis result");
    ensureGuiApplication();
    if (!QDir().mkpath(out_dir))
        throw std::runtime_error("cannot create the output folder " + QDir::toNativeSeparators(out_dir).toStdString() +
                                 " (choose a folder you can write to)");
    const QDir dir(out_dir);
    ExportOptions options;
    options.formats = formats;
    options.dpi = dpi;
    options.preset = preset;
    options.csvRange = CsvRange::All;

    // Views that are never shown: they draw into the files only.
    TokenAxis axis;
    axis.setTokenCount(result->token_count());
    QStringList files;
    auto run = [&](AnalysisView& view) {
        view.setTokenAxis(&axis);
        view.setResult(result);
        files << exportView(view, dir.filePath(view.fileStem()), options);
    };
    {
        TextView view;
        run(view);
    }
    {
        BptView view;
        run(view);
    }
    {
        SummaryView view;
        run(view);
    }
    for (int m = 0; m < static_cast<int>(result->models.size()); ++m) {
        bool hasLevels = false;
        for (const auto& level : result->models[static_cast<size_t>(m)].levels) hasLevels = hasLevels || level.rows > 0 || !level.channel_tau.empty();
        if (!hasLevels) continue;
        {
            LevelsView view;
            view.setTokenAxis(&axis);
            view.setResult(result);
            view.setModel(m);
            files << exportView(view, dir.filePath(view.fileStem()), options);
        }
        {
            TimescaleView view;
            view.setTokenAxis(&axis);
            view.setResult(result);
            view.setModel(m);
            files << exportView(view, dir.filePath(view.fileStem()), options);
        }
    }
    return files;
}

QStringList export_figures(const AnalysisResult& result, const QString& out_dir, ExportFormats formats, int dpi,
                           const FigurePreset& preset) {
    return export_figures(std::make_shared<const AnalysisResult>(result), out_dir, formats, dpi, preset);
}

}  // namespace harmonic::views
