internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import SwiftProtobuf
internal import Synchronization

/// The input boundary (docs/TENANCY.md): every request message is walked field by field, nested
/// messages and repeated fields included, and every string and bytes field is held to the rules
/// of its kind (``InputText``) before the handler, the audit or the log sees the request. The
/// access-control interceptor runs it for every method, authenticated or not.
///
/// Structural on purpose: a new request message or field is checked without anyone writing a
/// check for it; a field whose name is in no table gets the tight ``InputKind/unclassified`` limits.
enum InputBoundary {
  /// More broken rules than this in one message are not listed one by one.
  static let maxViolations = 10

  /// Throws ``FieldViolationsError`` (INVALID_ARGUMENT, naming each field and rule) when any
  /// field of `message` breaks the rules of its kind.
  static func check(_ message: any SwiftProtobuf.Message, path: String = "") throws {
    var walker = Walker(type: type(of: message), path: path)
    do {
      try message.traverse(visitor: &walker)
    } catch is Walker.Enough {
      // Enough listed; the rest of the message does not matter.
    }
    if !walker.violations.isEmpty { throw FieldViolationsError(walker.violations) }
  }

  /// The metadata the server reads: the session token ("authorization: Bearer …").
  static func check(metadata: Metadata) throws {
    var violations: [DomainError] = []
    for value in metadata[stringValues: "authorization"] {
      if let violation = InputText.violation(value, kind: .token, field: "authorization") { violations.append(violation) }
    }
    if !violations.isEmpty { throw FieldViolationsError(violations) }
  }

  /// A request that swift-protobuf could not decode (its bytes never became a message), as a
  /// status naming the rule. Invalid UTF-8 in a string field is refused there already: Swift
  /// strings hold only valid UTF-8, so no string the boundary walks can hold anything else.
  static func decodingFailure(_ error: RPCError) -> (any Error)? {
    guard let cause = error.cause as? BinaryDecodingError else { return nil }
    let violation =
      switch cause {
      case .invalidUTF8:
        DomainError(field: "request", rule: "utf8", "字符串字段含有无效的 UTF-8 (a string field is not valid UTF-8)")
      case .messageDepthLimit:
        DomainError(field: "request", rule: "depth", "嵌套过深 (messages are nested too deeply)")
      default:
        DomainError(field: "request", rule: "encoding", "不是有效的 protobuf 消息 (is not a valid protobuf message: \(cause))")
      }
    return FieldViolationsError([violation])
  }
}

/// Walks one message (and, recursively, the messages it holds) for ``InputBoundary``.
private struct Walker: SwiftProtobuf.Visitor {
  struct Enough: Error {}

  /// The message whose fields are being visited, and its path from the request ("child.guardians[1]").
  var type: any SwiftProtobuf.Message.Type
  var path: String
  var violations: [DomainError] = []

  init(type: any SwiftProtobuf.Message.Type, path: String) {
    self.type = type
    self.path = path
  }

  private func field(_ number: Int, nested: Bool = false) -> (path: String, name: String) {
    let name = FieldNames.name(of: type, number: number, nested: nested)
    return (path.isEmpty ? name : "\(path).\(name)", name)
  }

  private mutating func add(_ violation: DomainError?) throws {
    guard let violation else { return }
    violations.append(violation)
    if violations.count >= InputBoundary.maxViolations { throw Enough() }
  }

  private mutating func string(_ value: String, path: String, name: String) throws {
    try add(InputText.violation(value, kind: InputText.kind(ofField: name), field: path))
  }

  private mutating func walk<M: SwiftProtobuf.Message>(_ value: M, path: String) throws {
    let saved = (type, self.path)
    type = M.self
    self.path = path
    defer { (type, self.path) = saved }
    try value.traverse(visitor: &self)
  }

  mutating func visitSingularStringField(value: String, fieldNumber: Int) throws {
    let (path, name) = field(fieldNumber)
    try string(value, path: path, name: name)
  }

  mutating func visitRepeatedStringField(value: [String], fieldNumber: Int) throws {
    let (path, name) = field(fieldNumber)
    for (i, element) in value.enumerated() { try string(element, path: "\(path)[\(i)]", name: name) }
  }

  mutating func visitSingularBytesField(value: Data, fieldNumber: Int) throws {
    try add(InputText.violation(byteCount: value.count, field: field(fieldNumber).path))
  }

  mutating func visitRepeatedBytesField(value: [Data], fieldNumber: Int) throws {
    let path = field(fieldNumber).path
    for (i, element) in value.enumerated() { try add(InputText.violation(byteCount: element.count, field: "\(path)[\(i)]")) }
  }

  mutating func visitSingularMessageField<M: SwiftProtobuf.Message>(value: M, fieldNumber: Int) throws {
    try walk(value, path: field(fieldNumber, nested: true).path)
  }

  mutating func visitRepeatedMessageField<M: SwiftProtobuf.Message>(value: [M], fieldNumber: Int) throws {
    let path = field(fieldNumber, nested: true).path
    for (i, element) in value.enumerated() { try walk(element, path: "\(path)[\(i)]") }
  }

  mutating func visitSingularGroupField<G: SwiftProtobuf.Message>(value: G, fieldNumber: Int) throws {
    try walk(value, path: field(fieldNumber, nested: true).path)
  }

  mutating func visitRepeatedGroupField<G: SwiftProtobuf.Message>(value: [G], fieldNumber: Int) throws {
    let path = field(fieldNumber, nested: true).path
    for (i, element) in value.enumerated() { try walk(element, path: "\(path)[\(i)]") }
  }

  mutating func visitMapField<KeyType, ValueType: MapValueType>(
    fieldType: _ProtobufMap<KeyType, ValueType>.Type, value: _ProtobufMap<KeyType, ValueType>.BaseType, fieldNumber: Int
  ) throws {
    let (path, name) = field(fieldNumber, nested: true)
    for (key, element) in value {
      if let key = key as? String { try string(key, path: "\(path).key", name: name) }
      if let element = element as? String { try string(element, path: "\(path)[\(key)]", name: name) }
      if let element = element as? Data { try add(InputText.violation(byteCount: element.count, field: "\(path)[\(key)]")) }
    }
  }

  mutating func visitMapField<KeyType, ValueType>(
    fieldType: _ProtobufEnumMap<KeyType, ValueType>.Type, value: _ProtobufEnumMap<KeyType, ValueType>.BaseType,
    fieldNumber: Int
  ) throws where ValueType.RawValue == Int {
    let (path, name) = field(fieldNumber, nested: true)
    for key in value.keys {
      if let key = key as? String { try string(key, path: "\(path).key", name: name) }
    }
  }

  mutating func visitMapField<KeyType, ValueType>(
    fieldType: _ProtobufMessageMap<KeyType, ValueType>.Type, value: _ProtobufMessageMap<KeyType, ValueType>.BaseType,
    fieldNumber: Int
  ) throws {
    let (path, name) = field(fieldNumber, nested: true)
    for (key, element) in value {
      if let key = key as? String { try string(key, path: "\(path).key", name: name) }
      try walk(element, path: "\(path)[\(key)]")
    }
  }

  mutating func visitUnknown(bytes: Data) throws {
    try add(InputText.violation(unknownByteCount: bytes.count, field: path.isEmpty ? "request" : path))
  }

  // Numbers, booleans and enums carry no text.
  mutating func visitSingularDoubleField(value: Double, fieldNumber: Int) throws {}
  mutating func visitSingularInt64Field(value: Int64, fieldNumber: Int) throws {}
  mutating func visitSingularUInt64Field(value: UInt64, fieldNumber: Int) throws {}
  mutating func visitSingularBoolField(value: Bool, fieldNumber: Int) throws {}
  mutating func visitSingularEnumField<E: SwiftProtobuf.Enum>(value: E, fieldNumber: Int) throws {}
}

/// Proto field names by message type and field number, for the boundary's classification and
/// messages. swift-protobuf keeps its name maps internal; its text format prints them, so the
/// name of a field is read once from a one-field message in text format, then remembered.
enum FieldNames {
  private struct Key: Hashable {
    let type: ObjectIdentifier
    let number: Int
  }
  private static let cache = Mutex<[Key: String]>([:])

  /// `nested`: the field holds a message (probed empty) rather than a string or bytes (probed "a").
  static func name(of type: any SwiftProtobuf.Message.Type, number: Int, nested: Bool) -> String {
    let key = Key(type: ObjectIdentifier(type), number: number)
    if let known = cache.withLock({ $0[key] }) { return known }
    let name = probe(type, number: number, nested: nested) ?? "field_\(number)"
    cache.withLock { $0[key] = name }
    return name
  }

  private static func probe(_ type: any SwiftProtobuf.Message.Type, number: Int, nested: Bool) -> String? {
    var bytes: [UInt8] = []
    var tag = UInt64(number) << 3 | 2  // length-delimited: strings, bytes and messages alike
    while tag >= 0x80 {
      bytes.append(UInt8(tag & 0x7F) | 0x80)
      tag >>= 7
    }
    bytes.append(UInt8(tag))
    bytes += nested ? [0] : [1, UInt8(ascii: "a")]
    var message = type.init()
    guard (try? message.merge(serializedBytes: bytes)) != nil else { return nil }
    let text = message.textFormatString()
    let name = text.prefix { $0 != ":" && $0 != " " && $0 != "{" && $0 != "\n" }
    guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else { return nil }
    return String(name)
  }
}

/// The request stream as the interceptor and the handler read it: each message passes the
/// boundary as it arrives, so the rows of a streamed import are checked like the first message.
struct BoundaryCheckedMessages<Element: Sendable>: AsyncSequence, Sendable {
  typealias Failure = any Error
  let base: RPCAsyncSequence<Element, any Error>

  func makeAsyncIterator() -> Iterator { Iterator(base: base.makeAsyncIterator()) }

  struct Iterator: AsyncIteratorProtocol {
    var base: RPCAsyncSequence<Element, any Error>.AsyncIterator
    var index = 0

    mutating func next() async throws -> Element? {
      let element: Element?
      do {
        element = try await base.next()
      } catch let error as RPCError {
        throw InputBoundary.decodingFailure(error) ?? error
      }
      guard let element else { return nil }
      guard let message = element as? any SwiftProtobuf.Message else {
        // Fail closed: only protobuf messages are served, and only they can be checked.
        throw RPCError(code: .internalError, message: "request: \(Element.self) has no input check")
      }
      // Messages after the first of a stream are named by their place in it.
      try InputBoundary.check(message, path: index == 0 ? "" : "message[\(index)]")
      index += 1
      return element
    }
  }
}
