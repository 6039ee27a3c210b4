internal import Crypto
internal import Foundation
internal import GRDB
internal import PEMISDomain

/// Opaque child references (issue 13, "Identifiers"): what obligation subjects, audit targets,
/// duplicate cases and lists name a child by, instead of its record number (which carries the ID
/// number). `C-` and ten characters of Crockford base32, from a keyed hash (HMAC-SHA256) of the
/// record number under a key kept in the registry: the same child has the same reference in
/// every kindergarten it passes through, nobody without the key can compute one from a guessed
/// ID number, and only the child's kindergarten — which holds the record numbers — can turn one
/// back into a child (``TenantShard/recordNumber(forReference:references:)``).
public struct ChildReferences: Sendable {
  let key: SymmetricKey
  static let metaKey = "childReferenceKey"
  static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

  init(keyHex: String) {
    var bytes: [UInt8] = []
    var index = keyHex.startIndex
    while index < keyHex.endIndex, let next = keyHex.index(index, offsetBy: 2, limitedBy: keyHex.endIndex) {
      bytes.append(UInt8(keyHex[index..<next], radix: 16) ?? 0)
      index = next
    }
    key = SymmetricKey(data: bytes)
  }

  /// The reference of a record number.
  public func reference(_ recordNumber: String) -> String { code("C-", recordNumber) }

  /// A pseudonym of a record number that holds within one export only ("P-…"): rows of one
  /// file can be told apart, but not joined to lists, cases or another export, which name the
  /// child by its reference.
  public func pseudonym(_ recordNumber: String, export: String) -> String { code("P-", "export \(export)|\(recordNumber)") }

  private func code(_ prefix: String, _ text: String) -> String {
    let mac = HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: key)
    var bits: UInt64 = 0
    for byte in mac.prefix(8) { bits = bits << 8 | UInt64(byte) }
    var characters = Array(prefix.utf8)
    for i in 0..<10 { characters.append(Self.alphabet[Int((bits >> UInt64(59 - 5 * i)) & 31)]) }
    return String(decoding: characters, as: UTF8.self)
  }

  /// Whether a text has the form of a reference (any case; the hyphen may be left out).
  public static func normalized(_ text: String) -> String? {
    var t = text.trimmingCharacters(in: .whitespaces).uppercased()
    if t.hasPrefix("C-") { t.removeFirst(2) } else if t.hasPrefix("C"), t.count == 11 { t.removeFirst() } else { return nil }
    guard t.count == 10, t.utf8.allSatisfy({ Self.alphabet.contains($0) }) else { return nil }
    return "C-" + t
  }

  /// The subject of an obligation about a child: its reference, and what follows the record
  /// number in the old form ("child:G…:key-change#3").
  public func subject(recordNumber: String, suffix: String = "") -> String {
    "child:\(reference(recordNumber))\(suffix)"
  }

  /// v10: creates the key, and rewrites the obligation subjects that named a child by its record
  /// number ("child:G120…", "child:G120…:key-change#3") to name it by reference.
  static func registerMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v10-child-references") { db in
      let keyHex = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.lowercaseHex
      try db.execute(sql: "INSERT INTO registry_meta (key, value) VALUES (?, ?)", arguments: [metaKey, keyHex])
      let references = ChildReferences(keyHex: keyHex)
      let rows = try Row.fetchAll(db, sql: "SELECT id, subject FROM obligation WHERE subject LIKE 'child:%'")
      for row in rows {
        let subject: String = row["subject"]
        let rest = subject.dropFirst("child:".count)
        let number = rest.prefix { $0 != ":" }
        let suffix = rest.dropFirst(number.count)
        try db.execute(
          sql: "UPDATE obligation SET subject = ? WHERE id = ?",
          arguments: [references.subject(recordNumber: String(number), suffix: String(suffix)), row["id"] as Int64])
      }
    }
  }

  /// The key is kept sealed (v12): with it and the registry, an ID number could be guessed
  /// from a reference by trying numbers.
  static let keyContext = "registry_meta.childReferenceKey"

  static func load(_ db: Database, keys: DataKeys) throws -> ChildReferences {
    guard let sealed = try String.fetchOne(db, sql: "SELECT value FROM registry_meta WHERE key = ?", arguments: [metaKey]) else {
      throw StoreError(.internal, "the registry has no child reference key (migration v10)")
    }
    return ChildReferences(keyHex: try keys.open(sealed, context: keyContext))
  }
}

extension TenantShard {
  /// The record number of the child here whose reference this is, if any.
  public func recordNumber(forReference reference: String, references: ChildReferences) async throws -> String? {
    let numbers = try await read { db in try String.fetchAll(db, sql: "SELECT recordNumber FROM child") }
    return numbers.first { references.reference($0) == reference }
  }
}
