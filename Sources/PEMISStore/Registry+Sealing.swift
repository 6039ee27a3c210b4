internal import Foundation
internal import GRDB

/// Sealing at rest in the registry (issue 13; ``DataKeys``).
extension Registry {
  /// v12: records the index key's fingerprint, and seals what was kept in the clear: the child
  /// reference key and approved export files.
  static func registerSealingMigration(_ migrator: inout DatabaseMigrator, keys: DataKeys) {
    migrator.registerMigration("v12-sealed-at-rest") { db in
      try db.execute(
        sql: "INSERT OR REPLACE INTO registry_meta (key, value) VALUES (?, ?)", arguments: [DataKeys.fingerprintMetaKey, keys.fingerprint])
      try db.execute(
        sql: "UPDATE registry_meta SET value = ? WHERE key = ?",
        arguments: [
          keys.seal(try String.fetchOne(db, sql: "SELECT value FROM registry_meta WHERE key = ?", arguments: [ChildReferences.metaKey]) ?? "", context: ChildReferences.keyContext),
          ChildReferences.metaKey,
        ])
      for row in try Row.fetchAll(db, sql: "SELECT id, file FROM export_request WHERE file IS NOT NULL") {
        try db.execute(
          sql: "UPDATE export_request SET file = ? WHERE id = ?",
          arguments: [keys.seal(data: row["file"] as Data, context: exportFileContext), row["id"] as String])
      }
    }
    // v13: the child reference key sealed again in the padded format (``DataKeys/prefix``).
    migrator.registerMigration("v13-padded-sealing") { db in
      guard let stored = try String.fetchOne(db, sql: "SELECT value FROM registry_meta WHERE key = ?", arguments: [ChildReferences.metaKey]),
        let sealed = try keys.resealed(stored, context: ChildReferences.keyContext, active: keys.activeKey)
      else { return }
      try db.execute(sql: "UPDATE registry_meta SET value = ? WHERE key = ?", arguments: [sealed, ChildReferences.metaKey])
    }
  }

  /// Re-seals under the active key what an older key sealed here; returns how many values.
  /// In small transactions, so the server goes on while it runs (`pemis-server key rotate`).
  public func reseal() async throws -> Int {
    let active = keys.activeKey
    var count = 0
    count += try await writer.write { [keys] db -> Int in
      guard let stored = try String.fetchOne(db, sql: "SELECT value FROM registry_meta WHERE key = ?", arguments: [ChildReferences.metaKey]),
        let sealed = try keys.resealed(stored, context: ChildReferences.keyContext, active: active)
      else { return 0 }
      try db.execute(sql: "UPDATE registry_meta SET value = ? WHERE key = ?", arguments: [sealed, ChildReferences.metaKey])
      return 1
    }
    let ids = try await writer.read { db in try String.fetchAll(db, sql: "SELECT id FROM export_request WHERE file IS NOT NULL") }
    for id in ids {
      count += try await writer.write { [keys] db -> Int in
        guard let file = try Data.fetchOne(db, sql: "SELECT file FROM export_request WHERE id = ?", arguments: [id]),
          DataKeys.sealingKey(of: file) != active
        else { return 0 }
        // A file stored unsealed (written behind the server's back) is sealed as it is.
        let plain = DataKeys.sealingKey(of: file) == nil ? file : try keys.open(data: file, context: Self.exportFileContext)
        try db.execute(sql: "UPDATE export_request SET file = ? WHERE id = ?", arguments: [keys.seal(data: plain, context: Self.exportFileContext), id])
        return 1
      }
    }
    return count
  }
}

extension Registry {
  /// How many protected values here are sealed under each data key (0: not sealed).
  public func sealedValueCounts() async throws -> [UInt32: Int] {
    try await writer.read { db in
      var counts: [UInt32: Int] = [:]
      if let key = try String.fetchOne(db, sql: "SELECT value FROM registry_meta WHERE key = ?", arguments: [ChildReferences.metaKey]) {
        counts[DataKeys.sealingKey(of: key) ?? 0, default: 0] += 1
      }
      for file in try Data.fetchAll(db, sql: "SELECT file FROM export_request WHERE file IS NOT NULL") {
        counts[DataKeys.sealingKey(of: file) ?? 0, default: 0] += 1
      }
      return counts
    }
  }
}
