// "a,b,c" -> {"a", "b", "c"}: the comma lists of flags (--policies, --sizes); empty items are dropped.
#pragma once

#include <sstream>
#include <string>
#include <vector>

namespace gwtf {

inline std::vector<std::string> split_list(const std::string& s, char sep = ',') {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace gwtf
