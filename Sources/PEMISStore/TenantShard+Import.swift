internal import Foundation
internal import GRDB
public import PEMISDomain

/// Batch import of the child template (docs/CHILDREN.md): planned against the shard first, then
/// applied in one transaction, so a failing file changes nothing and a re-imported row finds the
/// child it created the first time.
extension TenantShard {
  public struct ImportRow: Sendable {
    /// The data row in the file, for messages.
    public var number: Int
    public var child: ChildRecord
    public var classId: String?
    public init(number: Int, child: ChildRecord, classId: String?) {
      self.number = number
      self.child = child
      self.classId = classId
    }
  }

  public enum ImportOutcome: Sendable, Equatable {
    /// Not here yet: to be enrolled.
    case new
    /// Already enrolled here with the same information: nothing to do.
    case unchanged(recordNumber: String)
  }

  /// What importing these rows would do, or every row that cannot be imported and why (fields
  /// named as the template's columns).
  public func planImport(_ rows: [ImportRow]) async throws -> (outcomes: [ImportOutcome], failures: [(row: Int, error: DomainError)]) {
    try await read { db in
      var firstRow: [String: Int] = [:]
      var outcomes: [ImportOutcome] = []
      var failures: [(Int, DomainError)] = []
      outcomes.reserveCapacity(rows.count)
      for row in rows {
        outcomes.append(.new)
        let key = row.child.identityKey
        if let earlier = firstRow[key] {
          failures.append((row.number, DomainError(field: "id_document_number", rule: "duplicate", "the same child as row \(earlier)")))
          continue
        }
        firstRow[key] = row.number
        // Only an active record is the same child again; an earlier stay's row never blocks.
        let activeStates = [ChildState.enrolled.rawValue, ChildState.pendingTransferOut.rawValue]
        var existing = try StoredChild.filter(Column("identityKey") == key && activeStates.contains(Column("state"))).fetchOne(db).map(self.opened)
        if existing == nil, let number = row.child.identityRecordNumber {
          existing = try StoredChild.fetchOne(db, key: number).map(self.opened).flatMap { $0.state.isActive ? $0 : nil }
        }
        guard let existing else { continue }
        let masked = IDDocuments.mask(existing.recordNumber)
        if existing.data != row.child || existing.identityKey != key {
          let fields = Self.differingFields(existing.data, row.child)
          failures.append(
            (row.number,
             DomainError(
              field: fields.first ?? "id_document_number", rule: "conflict",
              "already enrolled here as \(masked) with different information (\(fields.joined(separator: ", "))); change it with `pemis child update` or a key-information request")))
        } else if let classId = row.classId, existing.classId != classId {
          failures.append(
            (row.number,
             DomainError(field: "class_id", rule: "conflict", "already enrolled here as \(masked) in class \(existing.classId ?? "none"); move it with `pemis child assign`")))
        } else {
          outcomes[outcomes.count - 1] = .unchanged(recordNumber: existing.recordNumber)
        }
      }
      return (outcomes, failures)
    }
  }

  static func differingFields(_ a: ChildRecord, _ b: ChildRecord) -> [String] {
    let before = fields(a)
    let after = fields(b)
    var names: [String] = []
    for key in Set(before.keys).union(after.keys).sorted() where before[key] != after[key] {
      // "birthDate.year" → "birth_date"; "guardians[1].phone" → "guardian2_phone".
      let snake = key.reduce(into: "") { text, c in text += c.isUppercase ? "_" + c.lowercased() : String(c) }
      let field = snake.hasPrefix("guardians[") ? snake : String(snake.split(separator: ".").first ?? "")
      let name = ChildTemplate.column(ofField: field)
      if !names.contains(name) { names.append(name) }
    }
    return names
  }

  /// Enrolls the new rows, each with its record number, in one transaction. Refuses the whole
  /// batch if any of them appeared since it was planned.
  @discardableResult
  public func applyImport(_ rows: [(row: ImportRow, recordNumber: String)], by: String, at: Int64) async throws -> [ChildRow] {
    try await write { db in
      var written: [ChildRow] = []
      written.reserveCapacity(rows.count)
      for (row, recordNumber) in rows {
        let record = ChildRow(recordNumber: recordNumber, data: row.child, state: .enrolled, classId: row.classId, createdAt: at)
        do {
          try self.refuseActiveIdentity(db, recordNumber: recordNumber, child: row.child)
        } catch {
          throw StoreError(.failedPrecondition, "row \(row.number): the child was enrolled while the file was being imported; import it again")
        }
        // Inactive rows of an earlier stay are replaced, as for a single enrollment.
        try self.save(db, record)
        written.append(record)
        try HistoryRecord(
          record: "child:\(recordNumber)", field: "enrolled", oldValue: "",
          newValue: "imported (row \(row.number))" + (row.classId.map { ", class \($0)" } ?? ""), changedBy: by, changedAt: at
        ).insert(db)
      }
      return written
    }
  }
}
