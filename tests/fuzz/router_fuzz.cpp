// libFuzzer target: arbitrary bytes become a route table and requests.
// Input: lines "METHOD PATTERN" (ANY = any method) up to an empty line, then
// one path per line. Every route is offered to add() (errors are expected);
// the frozen table must pass its invariant checker, and every path is looked
// up with several methods and through fixed_path(); ASan/UBSan catch the rest.
#include <portico/router.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start <= input.size()) {
    std::size_t end = input.find('\n', start);
    if (end == std::string_view::npos) end = input.size();
    lines.push_back(input.substr(start, end - start));
    start = end + 1;
  }

  portico::Router<int> router;
  std::size_t i = 0;
  for (; i < lines.size() && !lines[i].empty() && i < 256; ++i) {
    const std::string_view line = lines[i];
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos) continue;
    const std::string_view method = line.substr(0, space);
    const std::string_view pattern = line.substr(space + 1);
    const int handler = static_cast<int>(i);
    if (method == "ANY") {
      (void)router.add_any(pattern, handler);
    } else {
      (void)router.add(method, pattern, handler);
    }
  }
  const auto table = router.freeze();
  if (const std::string problem = table.trie().check_invariants(); !problem.empty()) {
    std::fprintf(stderr, "invariant broken: %s\n", problem.c_str());
    std::abort();
  }

  portico::Params params;
  constexpr portico::Method kMethods[] = {portico::Method::Get, portico::Method::Post,
                                          portico::Method::Delete};
  for (++i; i < lines.size(); ++i) {
    const std::string_view path = lines[i];
    for (const portico::Method method : kMethods) {
      const auto match = table.match(method, path, params);
      if (match.status == portico::MatchStatus::kFound) {
        if (match.handler == nullptr) std::abort();
        for (std::size_t p = 0; p < params.size(); ++p) {
          const std::string_view value = params[p];
          // A value is a non-empty view into the path.
          if (value.empty() || value.data() < path.data() ||
              value.data() + value.size() > path.data() + path.size()) {
            std::abort();
          }
        }
      } else if (match.handler != nullptr) {
        std::abort();
      }
      (void)table.fixed_path(method, path);
    }
    (void)table.match("PURGE", path, params);
  }
  return 0;
}
