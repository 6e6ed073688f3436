// `gwtf demo`: a local swarm of gwtf-node processes on loopback — 2 data holders and 3 relay stages of 2
// replicas — trains the tiny GPT on the default corpus. A relay is killed in the middle of a backward pass, a fresh
// node later joins its stage and receives the stage's state, and the run ends with a report in runs/<time>/ that
// sets the loss curve beside the run without churn (the reference trainer on the same data and schedule).
#pragma once

#include <string>

#include "apps/common/run_config.hpp"

namespace gwtf::app {

struct DemoOptions {
  bool quick = false;        // the same story, shorter (CI)
  std::string out;           // run directory (default runs/<time>)
  std::string node_binary;   // default: gwtf-node beside this binary
  double timeout = 0;        // seconds before the swarm is stopped (0: 5 per iteration, at least 270; quick 150)
  bool no_churn = false;     // no kill, no join (the swarm alone)
  // What happens to the victim (a relay of stage 2, or with kill-holder a data holder) at iteration I = iterations/3:
  //   kill         SIGKILL as it starts a backward pass (gwtf-node --die-at)
  //   stop         SIGSTOP once iteration I is stepped: a hang, found only by the heartbeat timeout
  //   term         SIGTERM once iteration I is stepped: a graceful leave
  //   kill-holder  a data holder SIGKILLed as it starts computing a loss (--die-at end-backward)
  std::string fault = "kill";

  // Its keys in a config file ([demo] quick, no_churn, out, fault, timeout).
  void declare(ConfigSchema& schema);
};

// Returns the exit code: 0 when every iteration committed, nothing was lost or counted twice and the loss curve
// matches the run without churn.
int run_demo(RunConfig run, const DemoOptions& options);

}  // namespace gwtf::app
