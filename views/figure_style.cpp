#include "views/figure_style.h"

#include <QApplication>
#include <QFontInfo>
#include <stdexcept>

namespace harmonic::views {

namespace {
QFont pixelFont(int pixels, bool bold = false) {
    QFont font(QStringLiteral("DejaVu Sans"));
    font.setStyleHint(QFont::SansSerif);
    font.setPixelSize(std::max(pixels, 1));
    font.setBold(bold);
    return font;
}
}  // namespace

FigurePreset singleColumnPreset() {
    FigurePreset p;
    p.name = QStringLiteral("single");
    p.widthInches = 3.5;
    return p;
}

FigurePreset doubleColumnPreset() {
    FigurePreset p;
    p.name = QStringLiteral("double");
    p.widthInches = 7.0;
    p.titlePt = 10;
    p.labelPt = 9;
    p.tickPt = 8;
    p.legendPt = 8;
    p.lineWidthPt = 1.0;
    p.thinLineWidthPt = 0.5;
    p.axisLineWidthPt = 0.6;
    return p;
}

QStringList presetNames() { return {QStringLiteral("single"), QStringLiteral("double")}; }

std::optional<FigurePreset> presetByName(const QString& name) {
    const QString n = name.trimmed().toLower();
    if (n == QLatin1String("single") || n == QLatin1String("single-column")) return singleColumnPreset();
    if (n == QLatin1String("double") || n == QLatin1String("double-column")) return doubleColumnPreset();
    return std::nullopt;
}

FigureStyle screenStyle() {
    // Follow the desktop's font size so the plots read like the rest of the window.
    const QFont base = QApplication::font();
    const int px = QFontInfo(base).pixelSize() > 0 ? QFontInfo(base).pixelSize() : 13;
    FigureStyle s;
    s.paper = false;
    s.titleFont = pixelFont(px, true);
    s.labelFont = pixelFont(px);
    s.tickFont = pixelFont(std::max(px - 2, 8));
    s.legendFont = pixelFont(std::max(px - 2, 8));
    s.lineWidth = 1.5;
    s.thinLineWidth = 1.0;
    s.axisLineWidth = 1.0;
    return s;
}

FigureStyle paperStyle(const FigurePreset& preset) {
    FigureStyle s;
    s.paper = true;
    s.titleFont = pixelFont(preset.titlePt, true);
    s.labelFont = pixelFont(preset.labelPt);
    s.tickFont = pixelFont(preset.tickPt);
    s.legendFont = pixelFont(preset.legendPt);
    s.lineWidth = preset.lineWidthPt;
    s.thinLineWidth = preset.thinLineWidthPt;
    s.axisLineWidth = preset.axisLineWidthPt;
    return s;
}

ExportFormats parseExportFormats(const QString& text) {
    ExportFormats formats;
    for (const QString& part : text.split(QLatin1Char(','), Qt::SkipEmptyParts)) {
        const QString p = part.trimmed().toLower();
        if (p == QLatin1String("pdf")) formats |= ExportFormat::Pdf;
        else if (p == QLatin1String("svg")) formats |= ExportFormat::Svg;
        else if (p == QLatin1String("png")) formats |= ExportFormat::Png;
        else if (p == QLatin1String("csv")) formats |= ExportFormat::Csv;
        else if (p == QLatin1String("all")) formats |= allExportFormats();
        else
            throw std::invalid_argument("unknown export format '" + p.toStdString() +
                                        "': use a comma-separated list of pdf, svg, png, csv");
    }
    if (!formats) throw std::invalid_argument("no export format given: use e.g. pdf,svg,png,csv");
    return formats;
}

QString exportFormatsToString(ExportFormats formats) {
    QStringList parts;
    if (formats & ExportFormat::Pdf) parts << QStringLiteral("pdf");
    if (formats & ExportFormat::Svg) parts << QStringLiteral("svg");
    if (formats & ExportFormat::Png) parts << QStringLiteral("png");
    if (formats & ExportFormat::Csv) parts << QStringLiteral("csv");
    return parts.join(QLatin1Char(','));
}

}  // namespace harmonic::views
