#include "app/studio/export_dialog.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLineEdit>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QVBoxLayout>
#include <stdexcept>

namespace harmonic::studio {

ExportDialog::ExportDialog(bool figureSet, const QString& suggestedPath, QSettings& settings, QWidget* parent)
    : QDialog(parent), figureSet_(figureSet) {
    setWindowTitle(figureSet ? tr("Export Figure Set") : tr("Export View"));
    auto* form = new QFormLayout;
    path_ = new QLineEdit(suggestedPath, this);
    auto* browse = new QPushButton(tr("Browse…"), this);
    auto* pathRow = new QHBoxLayout;
    pathRow->addWidget(path_, 1);
    pathRow->addWidget(browse);
    form->addRow(figureSet ? tr("Folder:") : tr("File (no extension):"), pathRow);

    views::ExportFormats formats = views::allExportFormats();
    try {
        formats = views::parseExportFormats(settings.value(QStringLiteral("export/formats"), QStringLiteral("pdf,svg,png,csv")).toString());
    } catch (const std::invalid_argument&) {
        // A hand-edited settings file: fall back to every format.
    }
    pdf_ = new QCheckBox(QStringLiteral("PDF"), this);
    svg_ = new QCheckBox(QStringLiteral("SVG"), this);
    png_ = new QCheckBox(QStringLiteral("PNG"), this);
    csv_ = new QCheckBox(QStringLiteral("CSV"), this);
    pdf_->setChecked(formats & views::ExportFormat::Pdf);
    svg_->setChecked(formats & views::ExportFormat::Svg);
    png_->setChecked(formats & views::ExportFormat::Png);
    csv_->setChecked(formats & views::ExportFormat::Csv);
    auto* formatRow = new QHBoxLayout;
    for (QCheckBox* box : {pdf_, svg_, png_, csv_}) formatRow->addWidget(box);
    form->addRow(tr("Formats:"), formatRow);

    dpi_ = new QSpinBox(this);
    dpi_->setRange(72, 2400);
    dpi_->setSingleStep(50);
    dpi_->setSuffix(tr(" dpi"));
    dpi_->setValue(settings.value(QStringLiteral("export/dpi"), 300).toInt());
    form->addRow(tr("PNG resolution:"), dpi_);

    preset_ = new QComboBox(this);
    preset_->addItem(tr("Single column (3.5 in)"), QStringLiteral("single"));
    preset_->addItem(tr("Double column (7.0 in)"), QStringLiteral("double"));
    preset_->setCurrentIndex(std::max(0, preset_->findData(settings.value(QStringLiteral("export/preset"), QStringLiteral("single")))));
    form->addRow(tr("Paper preset:"), preset_);

    range_ = new QComboBox(this);
    range_->addItem(tr("All tokens"), static_cast<int>(views::CsvRange::All));
    range_->addItem(tr("Visible range"), static_cast<int>(views::CsvRange::Visible));
    range_->setCurrentIndex(settings.value(QStringLiteral("export/csvVisible"), false).toBool() ? 1 : 0);
    form->addRow(tr("CSV covers:"), range_);

    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    ok_ = buttons->button(QDialogButtonBox::Ok);
    ok_->setText(tr("Export"));
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(buttons);
    connect(buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(browse, &QPushButton::clicked, this, &ExportDialog::browse);
    for (QCheckBox* box : {pdf_, svg_, png_, csv_}) connect(box, &QCheckBox::toggled, this, &ExportDialog::validate);
    connect(path_, &QLineEdit::textChanged, this, &ExportDialog::validate);
    connect(png_, &QCheckBox::toggled, dpi_, &QWidget::setEnabled);
    dpi_->setEnabled(png_->isChecked());
    validate();
}

void ExportDialog::browse() {
    QString chosen;
    if (figureSet_) {
        chosen = QFileDialog::getExistingDirectory(this, tr("Folder for the figures"), path_->text());
    } else {
        chosen = QFileDialog::getSaveFileName(this, tr("Export to"), path_->text());
        // Extensions are added per format.
        const QFileInfo info(chosen);
        if (!chosen.isEmpty() && !info.suffix().isEmpty()) chosen = info.path() + QLatin1Char('/') + info.completeBaseName();
    }
    if (!chosen.isEmpty()) path_->setText(chosen);
}

void ExportDialog::validate() {
    ok_->setEnabled(!path_->text().trimmed().isEmpty() && (pdf_->isChecked() || svg_->isChecked() || png_->isChecked() || csv_->isChecked()));
}

QString ExportDialog::path() const { return path_->text().trimmed(); }

views::ExportOptions ExportDialog::options() const {
    views::ExportOptions o;
    o.formats = {};
    if (pdf_->isChecked()) o.formats |= views::ExportFormat::Pdf;
    if (svg_->isChecked()) o.formats |= views::ExportFormat::Svg;
    if (png_->isChecked()) o.formats |= views::ExportFormat::Png;
    if (csv_->isChecked()) o.formats |= views::ExportFormat::Csv;
    o.dpi = dpi_->value();
    o.preset = views::presetByName(preset_->currentData().toString()).value_or(views::singleColumnPreset());
    o.csvRange = static_cast<views::CsvRange>(range_->currentData().toInt());
    return o;
}

void ExportDialog::remember(QSettings& settings) const {
    const auto o = options();
    settings.setValue(QStringLiteral("export/formats"), views::exportFormatsToString(o.formats));
    settings.setValue(QStringLiteral("export/dpi"), o.dpi);
    settings.setValue(QStringLiteral("export/preset"), o.preset.name);
    settings.setValue(QStringLiteral("export/csvVisible"), o.csvRange == views::CsvRange::Visible);
    if (figureSet_) settings.setValue(QStringLiteral("export/folder"), path());
    else settings.setValue(QStringLiteral("export/viewFolder"), QFileInfo(path()).path());
}

}  // namespace harmonic::studio
