// A time-ordered event queue for the deterministic simulator. Ties are broken by insertion order (a sequence
// number), never by pointer, hash order or the wall clock, so a seed replays event for event.
#pragma once

#include <cstdint>
#include <queue>
#include <utility>
#include <vector>

namespace gwtf::sim {

template <class Event>
class EventQueue {
 public:
  void push(double time, Event e) { heap_.push(Item{time, seq_++, std::move(e)}); }
  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }
  double next_time() const { return heap_.top().time; }
  // Removes and returns the earliest event.
  std::pair<double, Event> pop() {
    Item top = std::move(const_cast<Item&>(heap_.top()));
    heap_.pop();
    return {top.time, std::move(top.event)};
  }

 private:
  struct Item {
    double time;
    uint64_t seq;
    Event event;
  };
  struct Later {
    bool operator()(const Item& a, const Item& b) const {
      return a.time != b.time ? a.time > b.time : a.seq > b.seq;
    }
  };
  std::priority_queue<Item, std::vector<Item>, Later> heap_;
  uint64_t seq_ = 0;
};

}  // namespace gwtf::sim
