#include "common/json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"

namespace depot {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// The fast printer covers the field kinds our API uses. Anything else (maps, bytes, floating
// point, well-known types) goes to protobuf's own printer, which is correct but ~10x slower.
bool FastPrintable(const Descriptor* d, int depth = 0) {
  if (depth > 16) return false;
  if (d->well_known_type() != Descriptor::WELLKNOWNTYPE_UNSPECIFIED) return false;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_map()) return false;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_FLOAT:
      case FieldDescriptor::CPPTYPE_DOUBLE:
        return false;
      case FieldDescriptor::CPPTYPE_STRING:
        if (f->type() == FieldDescriptor::TYPE_BYTES) return false;
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (f->message_type() != d && !FastPrintable(f->message_type(), depth + 1)) return false;
        break;
      default:
        break;
    }
  }
  return true;
}

void AppendString(std::string* out, const std::string& s) {
  static const char* kHex = "0123456789abcdef";
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default:
        if (c < 0x20 || c == '<' || c == '>') {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void AppendMessage(std::string* out, const Message& m);

void AppendValue(std::string* out, const Message& m, const Reflection* r, const FieldDescriptor* f,
                 int index) {
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      absl::StrAppend(out, rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      absl::StrAppend(out, rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
      break;
    case FieldDescriptor::CPPTYPE_INT64:  // 64-bit integers are strings in proto3 JSON
      absl::StrAppend(out, "\"", rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f),
                      "\"");
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      absl::StrAppend(out, "\"", rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f),
                      "\"");
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out->append((rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false");
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      int v = rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f);
      const auto* ev = f->enum_type()->FindValueByNumber(v);
      if (ev) {
        AppendString(out, ev->name());
      } else {
        absl::StrAppend(out, v);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
                                 : r->GetStringReference(m, f, &scratch);
      AppendString(out, s);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      AppendMessage(out, rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f));
      break;
    default:
      out->append("null");
  }
}

// proto3 JSON with preserve_proto_field_names and always_print_primitive_fields: fields in
// declaration order; singular scalars always; repeated fields always ([] when empty); message,
// oneof and optional fields only when set.
void AppendMessage(std::string* out, const Message& m) {
  const Descriptor* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  out->push_back('{');
  bool first = true;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (!f->is_repeated() && f->has_presence() && !r->HasField(m, f)) continue;
    if (!first) out->push_back(',');
    first = false;
    out->push_back('"');
    out->append(f->name());
    out->append("\":");
    if (f->is_repeated()) {
      out->push_back('[');
      int n = r->FieldSize(m, f);
      for (int j = 0; j < n; ++j) {
        if (j) out->push_back(',');
        AppendValue(out, m, r, f, j);
      }
      out->push_back(']');
    } else {
      AppendValue(out, m, r, f, -1);
    }
  }
  out->push_back('}');
}

}  // namespace

absl::Status JsonToMessage(std::string_view json, google::protobuf::Message* message) {
  message->Clear();
  if (json.find_first_not_of(" \t\r\n") == std::string_view::npos) return absl::OkStatus();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message, options);
  if (!status.ok()) {
    message->Clear();
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON for ", message->GetDescriptor()->name(), ": ",
                     std::string(status.message())));
  }
  return absl::OkStatus();
}

std::string MessageToJson(const google::protobuf::Message& message) {
  std::string out;
  if (FastPrintable(message.GetDescriptor())) {
    out.reserve(256);
    AppendMessage(&out, message);
    return out;
  }
  return ProtobufMessageToJson(message);
}

std::string ProtobufMessageToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

}  // namespace depot
