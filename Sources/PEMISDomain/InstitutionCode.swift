/// A kindergarten's institution code (机构代码), assigned by the Development Planning Office when it
/// admits the kindergarten to the education statistics database.
///
/// Format (docs/TENANCY.md): exactly 10 ASCII digits, the first of which is 1, as the national
/// school identification code is written. The code names the kindergarten's shard file
/// (`shards/<code>.sqlite`), so the format is checked before any file is touched: digits only means
/// no path separator, no "..", nothing that could leave the shards folder.
public struct InstitutionCode: Hashable, Sendable, Comparable, CustomStringConvertible {
  public let rawValue: String

  public init(validating text: String) throws(DomainError) {
    guard text.utf8.count == 10 else {
      throw DomainError(field: "institution_code", rule: "format", "must be exactly 10 digits, got \(text.utf8.count) characters")
    }
    guard text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
      throw DomainError(field: "institution_code", rule: "format", "must contain digits only")
    }
    guard text.utf8.first == UInt8(ascii: "1") else {
      throw DomainError(field: "institution_code", rule: "format", "must start with 1")
    }
    self.rawValue = text
  }

  public var description: String { rawValue }
  public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// A rule of the regulation or of the system that a request broke, naming the field and the rule,
/// for a status message a person can act on.
///
/// The ``kind`` says what sort of rule it is, so the server picks the status from it (in
/// PEMISServer, which speaks gRPC; these rules stay free of any transport) instead of reading the
/// rule's name.
public struct DomainError: Error, Hashable, Sendable, CustomStringConvertible {
  /// What sort of rule was broken; each becomes one gRPC status.
  public enum Kind: Sendable, Hashable, CaseIterable {
    /// The request itself is wrong (a format, a required field, a range): fix it and send again.
    case invalidArgument
    /// The request is right but the record is not in a state that allows it (an application
    /// not yet approved, a child who already left): it may succeed once the state changes.
    case failedPrecondition
    /// The request names something that does not exist.
    case notFound
    /// The request would create something that already exists.
    case alreadyExists
  }

  /// Path of the offending field in the request, e.g. "form.name".
  public var field: String
  /// Short rule name, e.g. "required", "format", "state".
  public var rule: String
  public var message: String
  public var kind: Kind

  /// `kind` defaults to ``Kind/invalidArgument``: most rules are about what the request says;
  /// rules about the state of a record pass ``Kind/failedPrecondition``.
  public init(field: String, rule: String, kind: Kind = .invalidArgument, _ message: String) {
    self.field = field
    self.rule = rule
    self.kind = kind
    self.message = message
  }

  public var description: String { "\(field): \(message)" }
}
