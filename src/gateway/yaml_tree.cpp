#include "gateway/yaml_tree.hpp"

#include <yaml.h>

#include <cstring>
#include <memory>

namespace portico {
inline namespace v0 {
namespace detail {
namespace {

YamlMark to_mark(const yaml_mark_t& mark) {
  return {static_cast<std::uint32_t>(mark.line + 1), static_cast<std::uint32_t>(mark.column + 1)};
}

struct ParserDeleter {
  void operator()(yaml_parser_t* parser) const {
    yaml_parser_delete(parser);
    delete parser;
  }
};

struct EventGuard {
  yaml_event_t event{};
  ~EventGuard() { yaml_event_delete(&event); }
};

}  // namespace

bool YamlTree::is_null(const YamlNode& node) const noexcept {
  if (node.kind != YamlNode::Kind::kScalar || !node.plain) return false;
  const std::string_view value = text(node);
  return value.empty() || value == "~" || value == "null" || value == "Null" || value == "NULL";
}

bool YamlTree::parse(std::string_view text, std::vector<YamlError>& errors, ItemSink* sink) {
  nodes_.clear();
  children_.clear();
  text_.clear();
  const std::size_t errors_before = errors.size();
  // Offsets into the text are 32-bit; no config comes near this.
  constexpr std::size_t kMaxText = std::size_t{1} << 30;
  if (text.size() > kMaxText) {
    errors.push_back({{1, 1}, "a config file is at most 1 GiB"});
    return false;
  }

  std::unique_ptr<yaml_parser_t, ParserDeleter> parser(new yaml_parser_t);
  if (yaml_parser_initialize(parser.get()) == 0) {
    errors.push_back({{1, 1}, "out of memory"});
    return false;
  }
  yaml_parser_set_input_string(parser.get(), reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());

  // Open collections: their node and where their children start in `pending`.
  struct Open {
    std::uint32_t node;
    std::size_t pending_start;
  };
  std::vector<Open> open;
  std::vector<std::uint32_t> pending;  // children of the open collections
  bool have_root = false;
  int documents = 0;
  // The streaming list, when open: open[1] is it (open[0] is the root
  // mapping). Where the tree stood when its current item began.
  bool streaming = false;
  std::size_t item_text_start = 0;
  std::size_t item_children_start = 0;

  const auto add_node = [&](const YamlNode& node) {
    const auto index = static_cast<std::uint32_t>(nodes_.size());
    if (streaming && open.size() == 2) {
      item_text_start = text_.size();
      item_children_start = children_.size();
    }
    nodes_.push_back(node);
    if (!open.empty()) {
      pending.push_back(index);
    } else {
      have_root = true;
    }
    return index;
  };
  // A node is complete: if it is an item of the streaming list, hand it over
  // and forget it.
  const auto completed = [&](std::uint32_t index) {
    if (!streaming || open.size() != 2) return;
    sink->item(*this, nodes_[index]);
    nodes_.resize(index);
    text_.resize(item_text_start);
    children_.resize(item_children_start);
    pending.pop_back();
  };
  const auto refuse_features = [&](const yaml_event_t& event, const unsigned char* anchor,
                                   const unsigned char* tag, bool implicit_tag) {
    if (anchor != nullptr)
      errors.push_back({to_mark(event.start_mark), "anchors are not supported"});
    if (tag != nullptr && !implicit_tag)
      errors.push_back({to_mark(event.start_mark), "tags are not supported"});
  };

  for (;;) {
    EventGuard guard;
    yaml_event_t& event = guard.event;
    if (yaml_parser_parse(parser.get(), &event) == 0) {
      std::string message = parser->problem != nullptr ? parser->problem : "invalid YAML";
      if (parser->context != nullptr) {
        message += ' ';
        message += parser->context;
      }
      errors.push_back({to_mark(parser->problem_mark), std::move(message)});
      return false;
    }
    switch (event.type) {
      case YAML_STREAM_END_EVENT:
        if (!have_root) {
          nodes_.clear();
          nodes_.push_back({YamlNode::Kind::kMapping, false, false, {1, 1}, 0, 0});
        }
        return errors.size() == errors_before;
      case YAML_DOCUMENT_START_EVENT:
        if (++documents > 1) {
          errors.push_back({to_mark(event.start_mark), "a config file holds one YAML document"});
          return false;
        }
        break;
      case YAML_ALIAS_EVENT:
        errors.push_back({to_mark(event.start_mark), "aliases are not supported"});
        completed(
            add_node({YamlNode::Kind::kScalar, true, false, to_mark(event.start_mark), 0, 0}));
        break;
      case YAML_SCALAR_EVENT: {
        const auto& scalar = event.data.scalar;
        const bool plain = scalar.style == YAML_PLAIN_SCALAR_STYLE;
        refuse_features(event, scalar.anchor, scalar.tag,
                        plain ? scalar.plain_implicit != 0 : scalar.quoted_implicit != 0);
        YamlNode node{YamlNode::Kind::kScalar,
                      plain,
                      false,
                      to_mark(event.start_mark),
                      static_cast<std::uint32_t>(text_.size()),
                      static_cast<std::uint32_t>(scalar.length)};
        const std::uint32_t index = add_node(node);
        text_.append(reinterpret_cast<const char*>(scalar.value), scalar.length);
        completed(index);
        break;
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        const bool mapping = event.type == YAML_MAPPING_START_EVENT;
        if (mapping) {
          refuse_features(event, event.data.mapping_start.anchor, event.data.mapping_start.tag,
                          event.data.mapping_start.implicit != 0);
        } else {
          refuse_features(event, event.data.sequence_start.anchor, event.data.sequence_start.tag,
                          event.data.sequence_start.implicit != 0);
        }
        // A list as the value of a top-level key the sink wants: stream it.
        bool stream = false;
        if (!mapping && sink != nullptr && open.size() == 1 &&
            nodes_[open[0].node].kind == YamlNode::Kind::kMapping &&
            (pending.size() - open[0].pending_start) % 2 == 1) {
          const YamlNode& key = nodes_[pending.back()];
          stream = key.kind == YamlNode::Kind::kScalar && sink->wants(this->text(key));
        }
        const std::uint32_t index =
            add_node({mapping ? YamlNode::Kind::kMapping : YamlNode::Kind::kSequence, false, stream,
                      to_mark(event.start_mark), 0, 0});
        open.push_back({index, pending.size()});
        streaming = streaming || stream;
        break;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT: {
        const Open top = open.back();
        open.pop_back();
        YamlNode& node = nodes_[top.node];
        if (node.streamed) streaming = false;
        node.first = static_cast<std::uint32_t>(children_.size());
        node.count = static_cast<std::uint32_t>(pending.size() - top.pending_start);
        children_.insert(children_.end(),
                         pending.begin() + static_cast<std::ptrdiff_t>(top.pending_start),
                         pending.end());
        pending.resize(top.pending_start);
        if (node.kind == YamlNode::Kind::kMapping) {
          for (std::uint32_t i = 0; i < node.count; i += 2) {
            const YamlNode& key = nodes_[children_[node.first + i]];
            if (key.kind != YamlNode::Kind::kScalar) {
              errors.push_back({key.mark, "a key must be a scalar"});
            }
          }
        }
        completed(top.node);
        break;
      }
      default:
        break;
    }
  }
}

}  // namespace detail
}  // namespace v0
}  // namespace portico
