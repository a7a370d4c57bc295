// portico-route: the router embedded in the smallest possible program.
//
//   portico-route ROUTES [REQUESTS]        route each "METHOD PATH" line
//   portico-route --bench ROUTES REQUESTS  time the lookups, print one line
//
// ROUTES holds one "METHOD PATTERN" per line ('#' comments and blank lines
// ignored; METHOD "*" or "ANY" means any method). For each request line it
// prints "200 PATTERN name=value ...", "404", "405 METHOD,METHOD" (sorted) or
// "400" for a line without a path. Exit status: 0, or 2 for usage errors,
// unreadable files and invalid routes ("ROUTES:LINE: message" on stderr).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "portico/router.hpp"

namespace {

constexpr int kExitUsage = 2;

void usage() {
  std::fputs(
      "usage: portico-route ROUTES [REQUESTS]\n"
      "       portico-route --bench ROUTES REQUESTS\n",
      stderr);
}

bool read_file(const char* name, std::string& out) {
  std::ifstream in(name, std::ios::binary);
  if (!in) return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  out = buffer.str();
  return true;
}

bool is_space(char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');  // \t \n \v \f \r
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Splits off the first whitespace-separated word of `s`.
std::string_view next_word(std::string_view& s) {
  s = trim(s);
  std::size_t end = 0;
  while (end < s.size() && !is_space(s[end])) ++end;
  std::string_view word = s.substr(0, end);
  s = trim(s.substr(end));
  return word;
}

// Calls f(line_number, line) for each line of `text`.
template <class F>
void for_each_line(std::string_view text, F&& f) {
  std::size_t line_number = 0;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    f(++line_number, line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

struct Table {
  // By route index, as written: views into the ROUTES text, which outlives
  // the table.
  std::vector<std::string_view> patterns;
  portico::FrozenRouter<std::uint32_t> frozen;
};

// One non-blank, non-comment line of ROUTES, split into words.
struct RouteLine {
  std::size_t line_number;
  std::string_view method;
  std::string_view pattern;
  std::string_view text;  // the whole line, trimmed, for the error message
  bool well_formed;       // exactly two words
};

// Splits ROUTES into route lines (blank and '#' lines dropped).
std::vector<RouteLine> parse_routes(std::string_view text) {
  std::vector<RouteLine> lines;
  lines.reserve(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1);
  for_each_line(text, [&](std::size_t line_number, std::string_view line) {
    std::string_view rest = trim(line);
    if (rest.empty() || rest.front() == '#') return;
    const std::string_view whole = rest;
    const std::string_view method = next_word(rest);
    const std::string_view pattern = next_word(rest);
    lines.push_back({line_number, method, pattern, whole, !pattern.empty() && rest.empty()});
  });
  return lines;
}

// Builds the table; on an invalid route prints "ROUTES:LINE: message".
bool build(const char* routes_name, const std::vector<RouteLine>& lines, std::size_t text_bytes,
           Table& table) {
  portico::Router<std::uint32_t> router;
  // The lines' bytes bound the patterns'.
  router.reserve(lines.size(), text_bytes);
  table.patterns.reserve(lines.size());
  for (const RouteLine& line : lines) {
    portico::RouteError error;
    if (!line.well_formed) {
      error = portico::RouteError(portico::RouteErrc::kBadSyntax, 0,
                                  "expected \"METHOD PATTERN\", got \"" + std::string(line.text) +
                                      "\"");
    } else {
      const auto index = static_cast<std::uint32_t>(table.patterns.size());
      if (line.method == "*" || line.method == "ANY") {
        error = router.add_any(line.pattern, index);
      } else {
        error = router.add(line.method, line.pattern, index);
      }
      if (!error) table.patterns.emplace_back(line.pattern);
    }
    if (error) {
      std::fprintf(stderr, "%s:%zu: %s\n", routes_name, line.line_number, error.message().c_str());
      return false;
    }
  }
  table.frozen = std::move(router).freeze();
  return true;
}

struct Request {
  std::string_view method;
  std::string_view path;  // without "?query" or "#fragment"
};

// Parses a request line. Returns false for blank and comment lines; sets
// `valid` false for a line without a path.
bool parse_request(std::string_view line, Request& request, bool& valid) {
  std::string_view rest = trim(line);
  if (rest.empty() || rest.front() == '#') return false;
  request.method = next_word(rest);
  std::string_view path = next_word(rest);
  path = path.substr(0, path.find_first_of("?#"));
  request.path = path;
  valid = !path.empty();
  return true;
}

int route(const Table& table, std::string_view requests) {
  std::string out;
  out.reserve(1 << 16);
  portico::Params params;
  for_each_line(requests, [&](std::size_t, std::string_view line) {
    Request request;
    bool valid = false;
    if (!parse_request(line, request, valid)) return;
    if (!valid) {
      out.append("400\n");
    } else {
      const auto m = table.frozen.match(request.method, request.path, params);
      switch (m.status) {
        case portico::MatchStatus::kFound:
          out.append("200 ");
          out.append(table.patterns[*m.handler]);
          for (std::size_t i = 0; i < params.size(); ++i) {
            out.push_back(' ');
            out.append(params.name(i));
            out.push_back('=');
            out.append(params[i]);
          }
          out.push_back('\n');
          break;
        case portico::MatchStatus::kMethodNotAllowed:
          out.append("405 ");
          out.append(table.frozen.allow_header(m.allowed, ","));
          out.push_back('\n');
          break;
        case portico::MatchStatus::kNotFound:
          out.append("404\n");
          break;
      }
    }
    if (out.size() > (1 << 15)) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  });
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

int bench(const char* routes_name, const std::string& routes_text,
          const std::string& requests_text) {
  using Clock = std::chrono::steady_clock;
  Table table;
  // Timed like the peers in bench/router/peers: from route lines already split
  // into words to the frozen table.
  const std::vector<RouteLine> lines = parse_routes(routes_text);
  const auto build_start = Clock::now();
  if (!build(routes_name, lines, routes_text.size(), table)) return kExitUsage;
  const auto build_end = Clock::now();

  std::vector<Request> requests;
  for_each_line(requests_text, [&](std::size_t, std::string_view line) {
    Request request;
    bool valid = false;
    if (parse_request(line, request, valid) && valid) requests.push_back(request);
  });

  portico::Params params;
  auto pass = [&]() {
    std::size_t matched = 0;
    for (const Request& r : requests) {
      matched +=
          table.frozen.match(r.method, r.path, params).status == portico::MatchStatus::kFound;
    }
    return matched;
  };
  std::size_t matched = pass();  // warm-up
  double best_ns = 0;
  for (int round = 0; round < 5; ++round) {
    const auto start = Clock::now();
    matched = pass();
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
    if (round == 0 || ns < best_ns) best_ns = ns;
  }
  const double per_lookup = requests.empty() ? 0.0 : best_ns / static_cast<double>(requests.size());
  const double build_ms =
      std::chrono::duration<double, std::milli>(build_end - build_start).count();
  std::printf(
      "routes=%zu build_ms=%.2f memory_bytes=%zu requests=%zu ns_per_lookup=%.1f matched=%zu\n",
      table.patterns.size(), build_ms, table.frozen.memory_bytes(), requests.size(), per_lookup,
      matched);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  const bool bench_mode = !args.empty() && args[0] == "--bench";
  if (bench_mode) args.erase(args.begin());
  if (args.empty() || args.size() > 2 || (bench_mode && args.size() != 2) ||
      (!args.empty() && !args[0].empty() && args[0][0] == '-')) {
    usage();
    return kExitUsage;
  }
  const char* routes_name = bench_mode ? argv[2] : argv[1];
  std::string routes_text;
  if (!read_file(routes_name, routes_text)) {
    std::fprintf(stderr, "portico-route: cannot read routes file %s: %s\n", routes_name,
                 std::strerror(errno));
    return kExitUsage;
  }
  std::string requests_text;
  if (args.size() == 2) {
    const char* requests_name = bench_mode ? argv[3] : argv[2];
    if (!read_file(requests_name, requests_text)) {
      std::fprintf(stderr, "portico-route: cannot read requests file %s: %s\n", requests_name,
                   std::strerror(errno));
      return kExitUsage;
    }
  } else {
    std::ostringstream buffer;
    buffer << std::cin.rdbuf();
    requests_text = buffer.str();
  }
  if (bench_mode) return bench(routes_name, routes_text, requests_text);
  Table table;
  if (!build(routes_name, parse_routes(routes_text), routes_text.size(), table)) {
    return kExitUsage;
  }
  return route(table, requests_text);
}
