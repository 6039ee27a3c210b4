internal import Foundation
/// Identity documents and their rules (MISSION: national practice; GB 11643-1999).
public enum IDDocumentType: String, CaseIterable, Hashable, Sendable, Codable {
  /// 居民身份证
  case residentID = "resident_id"
  /// Hong Kong, Macao, Taiwan residents' residence permits: resident-ID format, 810000/820000/830000.
  case hkMacaoTaiwanPermit = "hmt_residence_permit"
  /// The 2023 foreigner permanent residence ID: 18 characters, starts with 9, same check character.
  case foreignPermanentResidence = "foreign_permanent_residence"
  /// Mainland travel permits for Hong Kong, Macao and Taiwan residents.
  case travelPermit = "travel_permit"
  case passport
  /// Any other document; the number may be empty (a signed attendance certificate instead).
  case other
}

public enum Gender: String, CaseIterable, Hashable, Sendable, Codable {
  case male, female
}

public enum IDDocuments {
  static let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
  static let checkCharacters = Array("10X98765432")
  static let checkBytes = Array("10X98765432".utf8)

  /// The check character of an 18-character resident-ID-style number (GB 11643-1999).
  public static func checkCharacter(_ first17: some Collection<Character>) -> Character? {
    guard first17.count == 17 else { return nil }
    var sum = 0
    for (character, weight) in zip(first17, weights) {
      guard let digit = character.wholeNumberValue, character.isASCII else { return nil }
      sum += digit * weight
    }
    return checkCharacters[sum % 11]
  }

  /// Checks a document number against its type, and for resident-ID formats against the birth
  /// date and gender it encodes. Errors name `field` and the rule.
  public static func validate(
    type: IDDocumentType, number: String, birthDate: CalendarDate?, gender: Gender?, field: String
  ) throws(DomainError) {
    switch type {
    case .residentID, .hkMacaoTaiwanPermit, .foreignPermanentResidence:
      // Read as bytes: the sweep validates every ID in the district, and Characters cost 30×.
      // Non-ASCII input (never valid) keeps the Character rules: lengths after uppercasing
      // ("ß" is two letters), a combining mark belongs to the digit before it.
      let ascii = number.utf8.allSatisfy { $0 < 0x80 }
      let upper = ascii ? number : number.uppercased()
      let count = upper.count
      guard count == 18 else {
        throw DomainError(field: field, rule: "id.length", "must be 18 characters, got \(count)")
      }
      if !upper.utf8.allSatisfy({ $0 < 0x80 }) {
        guard Array(upper)[0..<17].allSatisfy({ $0.isASCII && $0.isNumber }) else {
          throw DomainError(field: field, rule: "id.format", "the first 17 characters must be digits")
        }
        // Seventeen ASCII digits, then a non-ASCII character: no check character is one.
        throw DomainError(field: field, rule: "id.checksum", "check character does not match (GB 11643-1999)")
      }
      let bytes = Array(upper.utf8)
      func digit(_ i: Int) -> Int { Int(bytes[i] &- 0x30) }
      guard bytes.count >= 17, bytes[0..<17].allSatisfy({ (0x30...0x39).contains($0) }) else {
        throw DomainError(field: field, rule: "id.format", "the first 17 characters must be digits")
      }
      var sum = 0
      for i in 0..<17 { sum += digit(i) * weights[i] }
      // 18 characters, the first 17 ASCII digits: more than 18 bytes means a non-ASCII last one.
      let last = bytes.count == 18 ? (bytes[17] == UInt8(ascii: "x") ? UInt8(ascii: "X") : bytes[17]) : 0
      guard last == checkBytes[sum % 11] else {
        throw DomainError(field: field, rule: "id.checksum", "check character does not match (GB 11643-1999)")
      }
      let region = digit(0) * 100_000 + digit(1) * 10_000 + digit(2) * 1_000 + digit(3) * 100 + digit(4) * 10 + digit(5)
      let hmt = region == 810_000 || region == 820_000 || region == 830_000
      switch type {
      case .hkMacaoTaiwanPermit where !hmt:
        throw DomainError(field: field, rule: "id.region", "a Hong Kong, Macao or Taiwan residence permit starts with 810000, 820000 or 830000")
      case .foreignPermanentResidence where digit(0) != 9:
        throw DomainError(field: field, rule: "id.region", "a foreigner permanent residence ID starts with 9")
      case .residentID where hmt || digit(0) == 9:
        throw DomainError(field: field, rule: "id.type", "this is not a resident ID number; choose its document type")
      default: break
      }
      let encoded = CalendarDate(
        year: digit(6) * 1000 + digit(7) * 100 + digit(8) * 10 + digit(9), month: digit(10) * 10 + digit(11), day: digit(12) * 10 + digit(13))
      guard encoded.isValid else { throw DomainError(field: field, rule: "id.birth_date", "encodes no valid birth date") }
      if let birthDate, birthDate != encoded {
        throw DomainError(field: field, rule: "id.birth_date", "encodes birth date \(encoded), not \(birthDate)")
      }
      if let gender {
        let odd = digit(16) % 2 == 1
        if odd != (gender == .male) {
          throw DomainError(field: field, rule: "id.gender", "sequence number is \(odd ? "odd (male)" : "even (female)"), not \(gender.rawValue)")
        }
      }
    case .travelPermit, .passport:
      let ok = (5...20).contains(number.count) && number.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
      guard ok else { throw DomainError(field: field, rule: "id.format", "must be 5-20 letters and digits") }
    case .other:
      guard number.count <= 30 else { throw DomainError(field: field, rule: "id.format", "must be at most 30 characters") }
    }
  }

  /// The one masking rule, for every identifier anyone sees without the right to the full value:
  /// record numbers (G, J and L), every ID document type, staff ID numbers. At most a third of
  /// the characters show, from the two ends (the end gets the larger half), the rest are '*';
  /// fewer than three characters show nothing. So a resident ID shows its province and the
  /// last three characters, never its birth date or whole sequence number — not enough to single
  /// a child out — and a passport's nine characters show three.
  public static func mask(_ number: String) -> String {
    let characters = Array(number)
    let shown = characters.count / 3
    let tail = (shown + 1) / 2
    let head = shown - tail
    return String(characters.prefix(head)) + String(repeating: "*", count: characters.count - shown)
      + String(characters.suffix(tail))
  }

  /// The visible ends of a masked identifier, for finding the full one it came from: what
  /// comes before the first '*' and after the last. Nil for text that is not a mask.
  public static func maskedEnds(_ masked: String) -> (head: String, tail: String, length: Int)? {
    guard let first = masked.firstIndex(of: "*"), let last = masked.lastIndex(of: "*") else { return nil }
    return (String(masked[..<first]), String(masked[masked.index(after: last)...]), masked.count)
  }
}

/// An ID document as the district index keys it — `type|NUMBER`, the number upper-cased and in
/// Unicode normal form C — built in this one place for every index key: enrollment, import,
/// transfer look-ups, key changes and the duplicate sweep. SQLite compares bytes, so a number
/// typed in another case or composed differently must come out the same.
public struct DocumentKey: Hashable, Sendable, CustomStringConvertible {
  public let rawValue: String

  public init(type: IDDocumentType, number: String) {
    rawValue = "\(type.rawValue)|\(number.trimmingCharacters(in: .whitespaces).uppercased().precomposedStringWithCanonicalMapping)"
  }

  /// The child's document, or nil when it has no number.
  public init?(_ child: ChildRecord) {
    guard !child.idDocumentNumber.isEmpty else { return nil }
    self.init(type: child.idDocumentType, number: child.idDocumentNumber)
  }

  /// A key as stored.
  public init(stored: String) { rawValue = stored }

  /// The number: everything after the first "|" (an `other` document's number may hold one).
  /// SQL does the same (`Registry.documentNumberSQL`).
  public var number: String { rawValue.firstIndex(of: "|").map { String(rawValue[rawValue.index(after: $0)...]) } ?? rawValue }

  public var description: String { rawValue }
}
