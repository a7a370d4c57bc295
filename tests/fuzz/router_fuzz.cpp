// libFuzzer target: arbitrary bytes become a route table and requests.
// Input: lines "METHOD PATTERN" (ANY = any method) up to an empty line, then
// one path per line. Every route is offered to add() (errors are expected);
// the frozen table must pass its invariant checker, and every path is looked
// up with several methods and through fixed_path(); ASan/UBSan catch the rest.
// When every accepted route is in the naive reference matcher's domain
// (router_reference.hpp: no typed params, standard methods or ANY), each
// lookup's status, handler, params and 405 allowed set must equal the
// reference's.
#include <portico/router.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../router_reference.hpp"

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
  std::vector<portico_test::Route> reference_routes;
  bool in_domain = true;  // the reference can answer for this table
  std::size_t i = 0;
  for (; i < lines.size() && !lines[i].empty() && i < 256; ++i) {
    const std::string_view line = lines[i];
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos) continue;
    const std::string_view method = line.substr(0, space);
    const std::string_view pattern = line.substr(space + 1);
    const int handler = static_cast<int>(i);
    const portico::RouteError error =
        method == "ANY" ? router.add_any(pattern, handler) : router.add(method, pattern, handler);
    if (error || !in_domain) continue;
    std::optional<portico_test::Route> route = portico_test::parse_route(method, pattern, handler);
    if (route) {
      reference_routes.push_back(std::move(*route));
    } else {
      in_domain = false;
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
      if (in_domain) {
        const portico_test::Outcome actual = portico_test::router_match(table, method, path);
        const portico_test::Outcome expected =
            portico_test::reference_match(reference_routes, method, path);
        if (!(actual == expected)) {
          std::fprintf(stderr, "%s %.*s\n  router:    %s\n  reference: %s\n",
                       std::string(portico::method_name(method)).c_str(),
                       static_cast<int>(path.size()), path.data(),
                       portico_test::describe(actual).c_str(),
                       portico_test::describe(expected).c_str());
          std::abort();
        }
      }
      (void)table.fixed_path(method, path);
    }
    (void)table.match("PURGE", path, params);
  }
  return 0;
}
