#include "views/model_picker_view.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QVBoxLayout>
#include <algorithm>

#include "views/derived.h"

namespace harmonic::views {

ModelPickerView::ModelPickerView(QWidget* parent) : AnalysisView(parent) {
    layout_ = new QVBoxLayout(this);
    layout_->setContentsMargins(0, 0, 0, 0);
    layout_->setSpacing(2);
    controls_ = new QHBoxLayout;
    controls_->setContentsMargins(4, 2, 4, 0);
    modelBox_ = new QComboBox(this);
    modelBox_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    controls_->addWidget(new QLabel(tr("Model:"), this));
    controls_->addWidget(modelBox_);
    layout_->addLayout(controls_);
    connect(modelBox_, &QComboBox::activated, this, [this](int i) { setModel(modelBox_->itemData(i).toInt()); });
}

QString ModelPickerView::fileStem() const {
    return result() && model_ >= 0 ? viewId() + QStringLiteral("_") + safeFileName(modelName(*result(), model_)) : viewId();
}

const ModelTrace* ModelPickerView::currentModel() const {
    if (!result() || model_ < 0 || model_ >= static_cast<int>(result()->models.size())) return nullptr;
    return &result()->models[static_cast<size_t>(model_)];
}

void ModelPickerView::setModel(int model) {
    if (model == model_) return;
    model_ = model;
    updateModelBox();
    rebuildPlot();
    emit optionsChanged();
}

void ModelPickerView::setCheckedOption(bool& option, bool value, QCheckBox* box) {
    if (value == option) return;
    option = value;
    box->setChecked(value);
    rebuildPlot();
    emit optionsChanged();
}

void ModelPickerView::onResultChanged() {
    const int n = result() ? static_cast<int>(result()->models.size()) : 0;
    if (model_ < 0 || model_ >= n || result()->models[static_cast<size_t>(model_)].levels.empty())
        model_ = result() ? firstModelWithLevels(*result()) : -1;
    updateModelBox();
    rebuildPlot();
}

void ModelPickerView::updateModelBox() {
    const QSignalBlocker block(modelBox_);
    modelBox_->clear();
    if (result())
        for (int m = 0; m < static_cast<int>(result()->models.size()); ++m)
            if (!result()->models[static_cast<size_t>(m)].levels.empty()) modelBox_->addItem(modelName(*result(), m), m);
    modelBox_->setCurrentIndex(std::max(0, modelBox_->findData(model_)));
    modelBox_->setEnabled(modelBox_->count() > 1);
}

}  // namespace harmonic::views
