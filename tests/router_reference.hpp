// router_reference.hpp — a naive reference matcher for portico's router,
// shared by the differential test and the libFuzzer target: routes are lists
// of segments, a lookup scans them all and keeps the best by the router's
// priority rules (static > param > catch-all, segment by segment from the
// left; a method-specific route before an any-method one).
// Its domain: static segments, untyped params, catch-alls, the standard
// methods and any-method; parse_route() says when a route is outside it
// (typed params, custom method tokens). Everything here allocates freely.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "portico/router.hpp"

namespace portico_test {

using portico::FrozenRouter;
using portico::MatchStatus;
using portico::Method;
using portico::MethodSet;
using portico::Params;

enum class Kind { kStatic = 0, kParam = 1, kCatchAll = 2 };

struct Segment {
  Kind kind;
  std::string text;  // the static text, or the parameter name
};

struct Route {
  std::optional<Method> method;  // nullopt: any-method (add_any)
  std::vector<Segment> segments;
  int handler = 0;

  std::string pattern() const {
    std::string out;
    for (const auto& s : segments) {
      out += '/';
      if (s.kind == Kind::kParam) out += ':';
      if (s.kind == Kind::kCatchAll) out += '*';
      out += s.text;
    }
    return out;
  }
  std::string method_text() const {
    return method ? std::string(portico::method_name(*method)) : std::string("ANY");
  }
  // Same method and the same segments, parameters compared without names.
  bool same_route(const Route& other) const {
    if (method != other.method || segments.size() != other.segments.size()) return false;
    for (std::size_t i = 0; i < segments.size(); ++i) {
      if (segments[i].kind != other.segments[i].kind) return false;
      if (segments[i].kind == Kind::kStatic && segments[i].text != other.segments[i].text) {
        return false;
      }
    }
    return true;
  }
};

struct Outcome {
  MatchStatus status = MatchStatus::kNotFound;
  int handler = -1;
  std::vector<std::pair<std::string, std::string>> params;  // name, value
  MethodSet allowed;

  friend bool operator==(const Outcome&, const Outcome&) = default;
};

inline std::string status_name(MatchStatus s) {
  switch (s) {
    case MatchStatus::kFound:
      return "200";
    case MatchStatus::kMethodNotAllowed:
      return "405";
    case MatchStatus::kNotFound:
      return "404";
  }
  return "?";
}

inline std::string describe(const Outcome& o) {
  std::ostringstream out;
  out << status_name(o.status) << " handler=" << o.handler;
  for (const auto& [name, value] : o.params) out << " " << name << "=" << value;
  out << " allowed=0x" << std::hex << o.allowed.bits();
  return out.str();
}

// ---- the reference ----------------------------------------------------------

// Does `route` match `path`? Fills `values` with the parameter values.
inline bool route_matches(const Route& route, std::string_view path,
                          std::vector<std::string>& values) {
  values.clear();
  if (path.empty() || path.front() != '/') return false;
  // Segment starts and lengths of path[1:] split by '/'.
  std::vector<std::pair<std::size_t, std::size_t>> segs;
  std::size_t start = 1;
  for (;;) {
    const std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      segs.emplace_back(start, path.size() - start);
      break;
    }
    segs.emplace_back(start, slash - start);
    start = slash + 1;
  }
  for (std::size_t i = 0; i < route.segments.size(); ++i) {
    const Segment& s = route.segments[i];
    if (i >= segs.size()) return false;
    const std::string_view seg = path.substr(segs[i].first, segs[i].second);
    switch (s.kind) {
      case Kind::kStatic:
        if (seg != s.text) return false;
        break;
      case Kind::kParam:
        if (seg.empty()) return false;
        values.emplace_back(seg);
        break;
      case Kind::kCatchAll: {
        const std::string_view rest = path.substr(segs[i].first);
        if (rest.empty()) return false;
        values.emplace_back(rest);
        return true;
      }
    }
  }
  return route.segments.size() == segs.size();
}

// Is `a` a better match than `b` (both matching the same path)?
inline bool better(const Route& a, const Route& b) {
  const std::size_t n = std::min(a.segments.size(), b.segments.size());
  for (std::size_t i = 0; i < n; ++i) {
    const int ka = static_cast<int>(a.segments[i].kind);
    const int kb = static_cast<int>(b.segments[i].kind);
    if (ka != kb) return ka < kb;
  }
  // The same shape: a method-specific route beats an any-method one.
  return a.method.has_value() && !b.method.has_value();
}

inline Outcome reference_match(const std::vector<Route>& routes, Method method,
                               std::string_view path) {
  Outcome out;
  const Route* best = nullptr;
  std::vector<std::string> best_values;
  std::vector<std::string> values;
  MethodSet allowed;
  for (const Route& r : routes) {
    if (!route_matches(r, path, values)) continue;
    if (!r.method || *r.method == method) {
      if (best == nullptr || better(r, *best)) {
        best = &r;
        best_values = values;
      }
    } else {
      allowed.insert(*r.method);
    }
  }
  if (best != nullptr) {
    out.status = MatchStatus::kFound;
    out.handler = best->handler;
    std::size_t v = 0;
    for (const auto& s : best->segments) {
      if (s.kind != Kind::kStatic) out.params.emplace_back(s.text, best_values[v++]);
    }
  } else if (!allowed.empty()) {
    out.status = MatchStatus::kMethodNotAllowed;
    out.allowed = allowed;
  }
  return out;
}

inline Outcome router_match(const FrozenRouter<int>& frozen, Method method, std::string_view path) {
  Outcome out;
  Params params;
  const auto m = frozen.match(method, path, params);
  out.status = m.status;
  out.allowed = m.allowed;
  if (m.status == MatchStatus::kFound) {
    out.handler = m.handler == nullptr ? -2 : *m.handler;
    for (std::size_t i = 0; i < params.size(); ++i) {
      out.params.emplace_back(std::string(params.name(i)), std::string(params[i]));
    }
  } else if (m.handler != nullptr) {
    out.handler = -3;  // a handler without kFound: always a mismatch
  }
  return out;
}

// A route as the router's pattern syntax spells it (":x", "{x}", "*x",
// "{*x}", static text), for `method_token` ("ANY" = any-method). nullopt
// when the route is outside the reference's domain (a typed param, a method
// token that is not a standard method) or not a pattern at all.
// REQUIRES: the router accepted the pattern (syntax errors are not checked).
inline std::optional<Route> parse_route(std::string_view method_token, std::string_view pattern,
                                        int handler) {
  Route r;
  r.handler = handler;
  if (method_token != "ANY") {
    r.method = portico::parse_method(method_token);
    if (!r.method) return std::nullopt;
  }
  if (pattern.empty() || pattern.front() != '/') return std::nullopt;
  std::size_t start = 1;
  for (;;) {
    std::size_t end = pattern.find('/', start);
    if (end == std::string_view::npos) end = pattern.size();
    std::string_view seg = pattern.substr(start, end - start);
    Segment s{Kind::kStatic, std::string(seg)};
    if (!seg.empty() && (seg.front() == ':' || seg.front() == '*')) {
      s.kind = seg.front() == ':' ? Kind::kParam : Kind::kCatchAll;
      s.text = std::string(seg.substr(1));
    } else if (!seg.empty() && seg.front() == '{') {
      seg = seg.substr(1, seg.size() - 2);  // the braces span the segment
      s.kind = Kind::kParam;
      if (!seg.empty() && seg.front() == '*') {
        s.kind = Kind::kCatchAll;
        seg.remove_prefix(1);
      }
      if (seg.find(':') != std::string_view::npos) return std::nullopt;  // typed
      s.text = std::string(seg);
    }
    r.segments.push_back(std::move(s));
    if (end == pattern.size()) break;
    start = end + 1;
  }
  return r;
}

}  // namespace portico_test
