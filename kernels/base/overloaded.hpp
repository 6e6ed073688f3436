// The visitor idiom for std::visit over the state machines' input variants: one lambda per alternative.
#pragma once

namespace gwtf {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace gwtf
