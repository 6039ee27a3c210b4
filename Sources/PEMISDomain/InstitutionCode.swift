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
public struct DomainError: Error, Hashable, Sendable, CustomStringConvertible {
  /// Path of the offending field in the request, e.g. "form.name".
  public var field: String
  /// Short rule name, e.g. "required", "format", "state".
  public var rule: String
  public var message: String

  public init(field: String, rule: String, _ message: String) {
    self.field = field
    self.rule = rule
    self.message = message
  }

  public var description: String { "\(field): \(message)" }
}
