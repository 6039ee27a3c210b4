internal import Foundation
public import PEMISDomain
public import PEMISStore

/// Keeping the district child index in step with the shards. A new child is reserved in the
/// index first (refused if its ID is active elsewhere), then written to its shard, then the
/// reservation is confirmed; a crash in between leaves a reservation that recovery confirms or
/// releases by looking at the shard. Later changes write the shard first and then bring the
/// index row in line.
extension Router {
  /// A child already active in another kindergarten (or here): where, masked.
  public struct DuplicateError: Error, Sendable, CustomStringConvertible {
    public var field: String
    public var existing: ChildIndexRecord
    /// Where the child is, and what to do instead.
    public var message: String {
      "this child is already enrolled at kindergarten \(existing.kindergartenCode) as \(IDDocuments.mask(existing.recordNumber))"
        + " (\(existing.state.rawValue)); to move the child here, that kindergarten transfers it out (pemis transfer out)"
    }
    public var description: String { "\(field): \(message)" }
  }

  /// Enrolls one child: index reservation, shard write, confirmation.
  public func enroll(
    _ child: ChildRecord, recordNumber: String, in shard: TenantShard, classId: String?, midTerm: Bool, by: String
  ) async throws -> ChildRow {
    let reservation = "R" + UUID().uuidString
    let conflicts = try await registry.reserve(
      [(recordNumber, child)], kindergarten: shard.code.rawValue, reservation: reservation, at: now())
    if let conflict = conflicts.first {
      if conflict.existing.kindergartenCode == shard.code.rawValue {
        throw StoreError(.alreadyExists, "child.id_document_number: \(IDDocuments.mask(conflict.existing.recordNumber)) is already enrolled here")
      }
      throw StoreError(.alreadyExists, DuplicateError(field: "child.id_document_number", existing: conflict.existing).description)
    }
    do {
      let row = try await shard.enroll(child, recordNumber: recordNumber, classId: classId, midTerm: midTerm, by: by, at: now())
      try await registry.confirm(reservation: reservation)
      return row
    } catch {
      try? await registry.release(reservation: reservation)
      throw error
    }
  }

  /// Import: reserves every new child at once; the conflicts come back as row failures.
  public func reserveImport(
    _ rows: [(row: TenantShard.ImportRow, recordNumber: String)], in code: String
  ) async throws -> (reservation: String, failures: [(row: Int, error: DomainError)]) {
    let reservation = "R" + UUID().uuidString
    let conflicts = try await registry.reserve(
      rows.map { ($0.recordNumber, $0.row.child) }, kindergarten: code, reservation: reservation, at: now())
    let failures = conflicts.map { conflict in
      let row = rows[conflict.position].row
      return (row.number, DomainError(field: "id_document_number", rule: "duplicate", DuplicateError(field: "id_document_number", existing: conflict.existing).message))
    }
    return (reservation, failures)
  }

  public func confirm(reservation: String) async throws {
    try await registry.confirm(reservation: reservation)
  }

  public func release(reservation: String) async throws {
    try await registry.release(reservation: reservation)
  }

  /// After a shard write that changed children's state or identity: the index follows.
  public func sync(_ code: String, _ rows: [ChildRow]) async throws {
    try await registry.syncIndex(rows.map { Self.indexRow($0, code: code, at: now()) })
  }

  static func indexRow(_ row: ChildRow, code: String, at: Int64) -> ChildIndexRecord {
    ChildIndexRecord(recordNumber: row.recordNumber, kindergartenCode: code, state: row.state, child: row.data, updatedAt: at)
  }

  /// Reservations a crash left: confirmed when the shard has the child, released when not.
  func recoverReservations() async throws -> Int {
    var finished = 0
    let open = try await registry.openReservations()
    for reservation in Set(open.compactMap(\.reservation)) {
      let rows = open.filter { $0.reservation == reservation }
      guard let code = rows.first?.kindergartenCode else { continue }
      let shard = try await shard(code)
      var present = true
      for row in rows where try await shard.child(row.recordNumber) == nil { present = false }
      if present {
        try await registry.confirm(reservation: reservation)
      } else {
        try await registry.release(reservation: reservation)
      }
      finished += 1
    }
    return finished
  }
}
