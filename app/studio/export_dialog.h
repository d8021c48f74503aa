// Options for exporting one view or the figure set: where, which formats, DPI, paper preset,
// and which tokens the CSV covers.
#pragma once

#include <QDialog>

#include "views/figure_export.h"

class QCheckBox;
class QComboBox;
class QLineEdit;
class QPushButton;
class QSpinBox;
class QSettings;

namespace harmonic::studio {

class ExportDialog : public QDialog {
    Q_OBJECT
public:
    // figureSet: the path is a folder; otherwise a file name without extension.
    ExportDialog(bool figureSet, const QString& suggestedPath, QSettings& settings, QWidget* parent = nullptr);

    QString path() const;
    views::ExportOptions options() const;
    void remember(QSettings& settings) const;

private:
    void browse();
    void validate();

    bool figureSet_;
    QLineEdit* path_ = nullptr;
    QCheckBox* pdf_ = nullptr;
    QCheckBox* svg_ = nullptr;
    QCheckBox* png_ = nullptr;
    QCheckBox* csv_ = nullptr;
    QSpinBox* dpi_ = nullptr;
    QComboBox* preset_ = nullptr;
    QComboBox* range_ = nullptr;
    QPushButton* ok_ = nullptr;
};

}  // namespace harmonic::studio
