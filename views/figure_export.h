// Exporting views: one view to PDF/SVG (vector), PNG at a chosen DPI and the CSV behind it;
// and the figure set, every view of an analysis written into one folder with one paper preset.
// export_figures works without a window (it creates an offscreen QApplication when there is
// none), so the CLI `harmonic analyze --out DIR` uses it too.
#pragma once

#include <QSize>
#include <QString>
#include <QStringList>
#include <memory>

#include "model/analysis_result.h"
#include "views/figure_style.h"

namespace harmonic::views {

class AnalysisView;

struct ExportOptions {
    ExportFormats formats = allExportFormats();
    int dpi = 300;
    FigurePreset preset = singleColumnPreset();
    CsvRange csvRange = CsvRange::All;
};

// Figure size of a view under a preset, in points.
QSize figureSizePt(const AnalysisView& view, const FigurePreset& preset);

// Writes basePath + ".pdf" / ".svg" / ".png" and the CSV file(s) of one view, drawn with the
// preset's paper style. Returns the files written; throws std::runtime_error with a message
// that names the file and what to do.
QStringList exportView(AnalysisView& view, const QString& basePath, const ExportOptions& options);

// The single formats (the view is drawn in its current style).
void writePdf(AnalysisView& view, const QString& path, const QSize& sizePt);
void writeSvg(AnalysisView& view, const QString& path, const QSize& sizePt);
void writePng(AnalysisView& view, const QString& path, const QSize& sizePt, int dpi);

// The figure set: text, bpt, summary, and levels + timescales of every model that has level
// traces, each in every requested format, into out_dir (created when missing).
QStringList export_figures(std::shared_ptr<const AnalysisResult> result, const QString& out_dir,
                           ExportFormats formats = allExportFormats(), int dpi = 300,
                           const FigurePreset& preset = singleColumnPreset());
QStringList export_figures(const AnalysisResult& result, const QString& out_dir,
                           ExportFormats formats = allExportFormats(), int dpi = 300,
                           const FigurePreset& preset = singleColumnPreset());

// Makes sure a QApplication exists (offscreen when the caller has none and no platform was
// chosen). Throws when a non-GUI QCoreApplication is running, which cannot draw widgets.
void ensureGuiApplication();

}  // namespace harmonic::views
