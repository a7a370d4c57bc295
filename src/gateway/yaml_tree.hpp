// gateway/yaml_tree.hpp — one YAML document as a compact tree with the line
// and column of every node, read from libyaml's event stream. It gives every
// scalar as text: it interprets no booleans, numbers or nulls (the config
// decoder does, by the key's type).
// Thread-safety: a YamlTree is a value owned by one thread.
// Lifetimes: text() views stay valid as long as the tree.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace portico {
inline namespace v0 {
namespace detail {

struct YamlMark {
  std::uint32_t line = 0;    // 1-based
  std::uint32_t column = 0;  // 1-based
};

struct YamlNode {
  enum class Kind : std::uint8_t { kScalar, kMapping, kSequence };
  Kind kind = Kind::kScalar;
  bool plain = false;     // a plain (unquoted, non-block) scalar
  bool streamed = false;  // a sequence whose items went to an ItemSink
  YamlMark mark;
  // kScalar: the text. kMapping: children alternate key, value.
  std::uint32_t first = 0;
  std::uint32_t count = 0;
};

// A syntax error, or a YAML feature the config does not take.
struct YamlError {
  YamlMark mark;
  std::string message;
};

class YamlTree;

// Takes the items of a top-level list one at a time, as each completes, so a
// list of 100,000 routes never lives in the tree whole: the tree drops each
// item once item() returns, and the list's node is left empty, `streamed`.
class ItemSink {
 public:
  // Whether the list under this key of the top-level mapping is to stream.
  virtual bool wants(std::string_view top_level_key) = 0;
  // One item; `item` and the nodes below it are valid during the call.
  virtual void item(const YamlTree& tree, const YamlNode& item) = 0;

 protected:
  ~ItemSink() = default;
};

class YamlTree {
 public:
  // Parses `text`, which holds at most one document; an empty stream is an
  // empty mapping. Anchors, aliases, tags and non-scalar keys are errors
  // (`errors` gets each); a syntax error ends the parse (and is the last).
  // Returns false when `errors` is not empty. With a sink, lists it wants
  // stream through it (see ItemSink).
  bool parse(std::string_view text, std::vector<YamlError>& errors, ItemSink* sink = nullptr);

  const YamlNode& root() const noexcept { return nodes_[0]; }
  std::string_view text(const YamlNode& scalar) const noexcept {
    return std::string_view(text_).substr(scalar.first, scalar.count);
  }
  // Mapping: key, value, key, value...; sequence: the items.
  std::span<const std::uint32_t> children(const YamlNode& node) const noexcept {
    return std::span<const std::uint32_t>(children_).subspan(node.first, node.count);
  }
  const YamlNode& node(std::uint32_t index) const noexcept { return nodes_[index]; }

  // True for a plain scalar that says nothing: `key:` with no value, `~`, `null`.
  bool is_null(const YamlNode& node) const noexcept;

 private:
  std::vector<YamlNode> nodes_;
  std::vector<std::uint32_t> children_;
  std::string text_;
};

}  // namespace detail
}  // namespace v0
}  // namespace portico
