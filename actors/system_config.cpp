#include "actors/system_config.hpp"

#include <caf/io/middleman.hpp>
#include <caf/timespan.hpp>

#include "actors/frame.hpp"

namespace gwtf {

SystemConfig::SystemConfig(const RuntimeOptions& options) {
  load<caf::io::middleman>();
  add_message_type<Frame>("gwtf.frame");
  set("scheduler.max-threads", options.scheduler_threads);
  set("middleman.workers", size_t{0});
  set("middleman.heartbeat-interval", caf::timespan{options.heartbeat_interval});
  set("middleman.connection-timeout", caf::timespan{options.connection_timeout});
}

}  // namespace gwtf
