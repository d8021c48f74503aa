// The base of the views that show the levels of one model at a time (LevelsView, TimescaleView):
// the "Model:" picker among the result's models with levels, the chosen model, and the common
// shape of their option setters.
#pragma once

#include "views/analysis_view.h"

class QCheckBox;
class QComboBox;
class QHBoxLayout;
class QVBoxLayout;

namespace harmonic::views {

class ModelPickerView : public AnalysisView {
    Q_OBJECT
public:
    // The model shown: an index into result()->models, or -1 when no model of the result has levels.
    void setModel(int model);
    int model() const { return model_; }
    // viewId() followed by the model's name.
    QString fileStem() const override;

protected:
    // Lays out a row of controls that starts with the model picker (a subclass adds its own
    // controls and the row's stretch through controls()) above what the subclass adds to viewLayout().
    explicit ModelPickerView(QWidget* parent = nullptr);
    QVBoxLayout* viewLayout() const { return layout_; }
    QHBoxLayout* controls() const { return controls_; }
    const ModelTrace* currentModel() const;
    // Keeps the model when it still has levels in the new result, else picks the first that has.
    void onResultChanged() override;
    // Draws the plot for the current model and options.
    virtual void rebuildPlot() = 0;
    // Sets a view option shown by a check box: unless it is unchanged, the box follows, the plot
    // is drawn again and optionsChanged() emitted.
    void setCheckedOption(bool& option, bool value, QCheckBox* box);

private:
    void updateModelBox();

    QVBoxLayout* layout_ = nullptr;
    QHBoxLayout* controls_ = nullptr;
    QComboBox* modelBox_ = nullptr;
    int model_ = -1;
};

}  // namespace harmonic::views
