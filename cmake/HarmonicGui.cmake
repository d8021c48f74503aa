# The desktop tool's libraries. They are required unless the build opts out with -DHARMONIC_GUI=OFF:
# a build that quietly drops the desktop tool would look green while shipping nothing a user can open.
# Each missing piece fails the configure step with the Debian package that provides it.
function(harmonic_require_gui_package what found package)
  if(NOT ${found})
    message(FATAL_ERROR
      "${what} not found, and the desktop tool needs it.\n"
      "Install it with: scripts/setup   (or: sudo apt-get install ${package})\n"
      "To build only the command-line tool and libraries instead, configure with -DHARMONIC_GUI=OFF.")
  endif()
endfunction()

# Looked up one at a time so that the message names the piece that is missing. OpenGL comes before
# Charts because Qt6Charts' CMake files load Qt6OpenGL's, and its absence would otherwise be reported
# as a missing Qt Charts.
foreach(_pair "Widgets|qt6-base-dev" "PrintSupport|qt6-base-dev" "OpenGL|libqt6opengl6-dev"
              "Charts|qt6-charts-dev" "Svg|qt6-svg-dev")
  string(REPLACE "|" ";" _pair "${_pair}")
  list(GET _pair 0 _component)
  list(GET _pair 1 _package)
  find_package(Qt6 6.4 COMPONENTS ${_component} QUIET)
  harmonic_require_gui_package("Qt 6 ${_component} (CMake package Qt6${_component})" Qt6${_component}_FOUND ${_package})
endforeach()
find_package(QCustomPlotQt6 QUIET)
harmonic_require_gui_package("QCustomPlot for Qt 6 (CMake package QCustomPlotQt6)" QCustomPlotQt6_FOUND
                             "libqcustomplot-dev libqcustomplot2.1-qt6")
