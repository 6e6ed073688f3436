// Plots for the reports (gwtf demo; later gwtf-sim run): gnuplot (Debian's gnuplot-nox, installed by
// scripts/setup) draws PNGs from the CSV files a report writes anyway, so the figures can be redrawn by hand.
#pragma once

#include <string>

#include "kernels/base/result.hpp"

namespace gwtf::app {

// Writes `script` to `script_path` and runs gnuplot on it (at most `timeout_s` seconds). The error says why no
// plot was drawn (gnuplot missing, or its own message).
Result<void*, std::string> run_gnuplot(const std::string& script_path, const std::string& script, double timeout_s = 30);

// A string as a gnuplot string literal (single quotes; a quote is doubled).
std::string gnuplot_quote(const std::string& s);

}  // namespace gwtf::app
