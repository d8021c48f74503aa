// Paper presets and the styles views apply for the screen or for a figure.
//
// Figures are laid out in points: one painter unit is 1 pt on paper (PDF and SVG are written at
// 72 units per inch; PNG scales the same drawing by dpi / 72). Fonts are set in pixel sizes so
// that QCustomPlot's layout (which measures text with screen font metrics) and the drawing
// agree on every device.
#pragma once

#include <QFlags>
#include <QFont>
#include <QString>
#include <QStringList>
#include <optional>

namespace harmonic::views {

struct FigurePreset {
    QString name;               // "single" or "double"
    double widthInches = 3.5;   // the journal's column width
    int titlePt = 9;
    int labelPt = 8;            // axis labels
    int tickPt = 7;             // tick labels
    int legendPt = 7;
    double lineWidthPt = 0.9;   // data curves
    double thinLineWidthPt = 0.4;  // raw per-token curves, grids
    double axisLineWidthPt = 0.5;

    int widthPt() const { return static_cast<int>(widthInches * 72.0 + 0.5); }
};

FigurePreset singleColumnPreset();  // 3.5 in
FigurePreset doubleColumnPreset();  // 7.0 in
QStringList presetNames();
std::optional<FigurePreset> presetByName(const QString& name);

// What a view needs to draw itself for one medium.
struct FigureStyle {
    bool paper = false;  // paper: no interactive decorations (hover markers), titles on panels
    QFont titleFont;
    QFont labelFont;
    QFont tickFont;
    QFont legendFont;
    double lineWidth = 1.5;
    double thinLineWidth = 1.0;
    double axisLineWidth = 1.0;
};

FigureStyle screenStyle();
FigureStyle paperStyle(const FigurePreset& preset);

enum class ExportFormat { Pdf = 1, Svg = 2, Png = 4, Csv = 8 };
Q_DECLARE_FLAGS(ExportFormats, ExportFormat)
Q_DECLARE_OPERATORS_FOR_FLAGS(ExportFormats)
constexpr ExportFormats allExportFormats() {
    return ExportFormats(ExportFormat::Pdf) | ExportFormat::Svg | ExportFormat::Png | ExportFormat::Csv;
}
// "pdf,svg,png,csv" <-> flags; throws std::invalid_argument naming the bad entry.
ExportFormats parseExportFormats(const QString& text);
QString exportFormatsToString(ExportFormats formats);

// The tokens a CSV covers.
enum class CsvRange { All, Visible };

}  // namespace harmonic::views
