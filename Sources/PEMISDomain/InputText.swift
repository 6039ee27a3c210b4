/// The rules every string from the network meets before anything uses it (docs/TENANCY.md,
/// "The input boundary"): no control characters, line breaks only where a field allows them, and
/// a length limit for each kind of field. The server checks each request once, against these
/// rules, before it stores, audits, logs or compares anything; the store and the client use
/// ``InputText/escaped(_:maxBytes:)`` so whatever slips by cannot forge a line or grow a row.
///
/// Pure rules: which field is which kind is decided by its proto name (``InputText/kind(ofField:)``),
/// the walk over a request lives in the server.
public enum InputKind: String, Sendable, Hashable, CaseIterable {
  /// Institution codes, ids, record numbers, states, months, page tokens: short, one line.
  case code
  /// Account names (3–32 ASCII characters by ``AccountRules``).
  case username
  /// Passwords (up to 128 characters by ``AccountRules``, of any script).
  case password
  /// Names of people, kindergartens and classes (at most 100 characters by the domain rules).
  case name
  /// Numbers written as text: ID documents, licences, telephones.
  case idNumber
  /// One line of text: addresses, evidence, e-mail addresses.
  case text
  /// Notes and reasons: several lines.
  case freeText
  /// Metadata a call carries, such as the session token: visible ASCII only.
  case token
  /// A field no one has classified: held to the tightest limits that still fit a short label.
  case unclassified

  /// Longest value in UTF-8 bytes (what the store pays for); a Chinese character is 3 bytes.
  public var maxBytes: Int {
    switch self {
    case .code, .username: 64
    case .password: 512
    case .name: 400
    case .idNumber: 200
    case .text: 1024
    case .freeText: 8192
    case .token: 256
    case .unclassified: 256
    }
  }

  /// Whether the value may hold line breaks (LF, CR).
  public var allowsLineBreaks: Bool { self == .freeText }

  /// Whether only visible ASCII (U+0021…U+007E and space) is allowed.
  public var asciiOnly: Bool { self == .token }
}

public enum InputText {
  /// Largest `bytes` field: a 256 KiB import chunk or an echo payload fit with room to spare.
  public static let maxBytesField = 1 << 20

  /// Largest total of unknown fields in one message: a newer client's extra fields are tolerated,
  /// a hidden payload is not.
  public static let maxUnknownBytes = 16 * 1024

  /// The first rule `value` breaks as a field of this kind, or nil when it keeps them all.
  public static func violation(_ value: String, kind: InputKind, field: String) -> DomainError? {
    let count = value.utf8.count
    if count > kind.maxBytes {
      return DomainError(
        field: field, rule: "max_bytes",
        "过长：至多 \(kind.maxBytes) 字节，实为 \(count) 字节 (too long: at most \(kind.maxBytes) bytes of UTF-8 for a \(kind.label), got \(count))")
    }
    var position = 0
    for scalar in value.unicodeScalars {
      position += 1
      let v = scalar.value
      if v == 0x0A || v == 0x0D {
        if kind.allowsLineBreaks { continue }
        return DomainError(
          field: field, rule: "single_line",
          "不允许换行（第 \(position) 个字符）(must be one line: a line break at character \(position); only notes and reasons may have several lines)")
      }
      if isForbidden(scalar) {
        return DomainError(
          field: field, rule: "control_character",
          "含有不允许的控制字符 \(codePoint(scalar))（第 \(position) 个字符）(contains the control character \(codePoint(scalar)) at character \(position), which is not allowed)")
      }
      if kind.asciiOnly && !(0x20...0x7E).contains(v) {
        return DomainError(
          field: field, rule: "ascii",
          "只能包含可见的 ASCII 字符（第 \(position) 个字符为 \(codePoint(scalar))）(may contain only visible ASCII characters; character \(position) is \(codePoint(scalar)))")
      }
    }
    return nil
  }

  /// The rule a `bytes` field of `count` bytes breaks, or nil.
  public static func violation(byteCount count: Int, field: String) -> DomainError? {
    guard count > maxBytesField else { return nil }
    return DomainError(
      field: field, rule: "max_bytes", "过长：至多 \(maxBytesField) 字节，实为 \(count) 字节 (too long: at most \(maxBytesField) bytes, got \(count))")
  }

  /// The rule a message whose unknown fields take `count` bytes breaks, or nil.
  public static func violation(unknownByteCount count: Int, field: String) -> DomainError? {
    guard count > maxUnknownBytes else { return nil }
    return DomainError(
      field: field, rule: "unknown_fields",
      "含有过多未知字段：至多 \(maxUnknownBytes) 字节，实为 \(count) 字节 (carries \(count) bytes of fields this server does not know; at most \(maxUnknownBytes))")
  }

  /// Refused in every field: C0 controls (line breaks are decided by the kind), DEL, C1 controls,
  /// the Unicode line and paragraph separators, and the bidirectional overrides and isolates
  /// that reorder what a terminal shows.
  public static func isForbidden(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x00...0x1F, 0x7F...0x9F: true
    case 0x2028, 0x2029: true
    case 0x202A...0x202E, 0x2066...0x2069: true
    default: false
    }
  }

  /// `text` as it may be stored or printed: every control character, line break and bidi
  /// control written as an escape (`\n`, `\u{1B}`), a backslash doubled so an escape cannot be
  /// faked, and at most `maxBytes` bytes of UTF-8, cut on a character with a note of what was
  /// left out. Values without such characters that fit come back unchanged.
  public static func escaped(_ text: String, maxBytes: Int) -> String {
    let limit = max(maxBytes, 64)
    if text.utf8.count <= limit, !text.unicodeScalars.contains(where: { isForbidden($0) || $0 == "\\" }) {
      return text
    }
    let total = text.utf8.count
    let reserve = 32  // room for the note of what was cut
    var out = ""
    var outBytes = 0
    var consumed = 0
    var kept: (bytes: Int, consumed: Int)?
    for scalar in text.unicodeScalars {
      let piece: String =
        switch scalar {
        case "\\": "\\\\"
        case "\n": "\\n"
        case "\r": "\\r"
        case "\t": "\\t"
        case _ where isForbidden(scalar): "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
        default: String(scalar)
        }
      let cost = piece.utf8.count
      if kept == nil, outBytes + cost > limit - reserve { kept = (outBytes, consumed) }
      out += piece
      outBytes += cost
      consumed += UTF8.width(scalar)
      if outBytes > limit { break }
    }
    if outBytes <= limit && consumed == total { return out }
    let cut = kept ?? (outBytes, consumed)
    return String(decoding: out.utf8.prefix(cut.bytes), as: UTF8.self) + "…[+\(total - cut.consumed) bytes]"
  }

  /// The kind of a request field by its proto name; fields nobody listed are ``InputKind/unclassified``.
  public static func kind(ofField name: String) -> InputKind {
    fieldKinds[name] ?? .unclassified
  }

  /// Every string field name of the `pemis.v1` protos and its kind. A field added to a proto
  /// without an entry gets the tight ``InputKind/unclassified`` limits (and a test says so).
  public static let fieldKinds: [String: InputKind] = {
    var table: [String: InputKind] = [:]
    let groups: [(InputKind, [String])] = [
      (
        .code,
        [
          "kindergarten_code", "institution_code", "to_kindergarten_code", "from_kindergarten_code",
          "kindergarten_codes", "application_id", "record_number", "child_ref", "class_id", "classes", "transfer_id", "staff_id",
          "head_teacher_staff_id", "id", "key", "state", "status", "kind", "gender", "id_document_type", "encoding",
          "phase", "month", "term", "school_year", "level", "area", "step", "action", "role", "ownership",
          "report_status", "page_token", "next_page_token", "service", "method", "result", "hash", "field", "fields",
          "rule", "filter", "record", "resolution", "household_type", "hmt_status", "only_child", "full_fields",
          "full_fields_requested", "full_fields_approved", "sha256", "file_name",
        ]
      ),
      (.username, ["username", "principal_username", "administrator_username"]),
      (
        .password,
        [
          "password", "current_password", "new_password", "one_time_password", "principal_one_time_password",
          "administrator_one_time_password",
        ]
      ),
      (
        .name,
        [
          "name", "display_name", "principal_name", "administrator_name", "signatory", "actor", "checked_by", "shredded_by",
          "done_by", "updated_by", "confirmed_by", "changed_by", "requested_by", "decided_by", "signed_off_by",
          "grade", "category", "post", "qualification", "certificate", "relation", "nationality", "ethnicity",
        ]
      ),
      (.idNumber, ["id_document_number", "licence_number", "phone", "contact_phone"]),
      (
        .text,
        [
          "address", "sponsor", "property", "contact_email", "evidence", "birth_place", "household_register",
          "health", "subject", "article", "old_value", "new_value", "targets", "peer", "version", "text", "recipient",
        ]
      ),
      (
        .freeText,
        ["note", "reason", "return_reason", "decision_note", "summary", "message", "description", "warnings", "purpose"]
      ),
      (.token, ["token"]),
    ]
    for (kind, names) in groups { for name in names { table[name] = kind } }
    return table
  }()
}

extension InputKind {
  /// How a message names the kind.
  var label: String {
    switch self {
    case .code: "code or identifier"
    case .username: "username"
    case .password: "password"
    case .name: "name"
    case .idNumber: "document or telephone number"
    case .text: "line of text"
    case .freeText: "note"
    case .token: "session token"
    case .unclassified: "field"
    }
  }
}

private func codePoint(_ scalar: Unicode.Scalar) -> String {
  let hex = String(scalar.value, radix: 16, uppercase: true)
  return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
}
