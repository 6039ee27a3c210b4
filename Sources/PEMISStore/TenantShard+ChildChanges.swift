internal import Foundation
public import GRDB
public import PEMISDomain

/// A key-information change request (MISSION: key information), kept with its decision.
public struct KeyChangeRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "key_change"
  public var id: Int64?
  public var recordNumber: String
  public var values: KeyChangeValues
  /// Old and new values at the time of the request (ID numbers masked), for review.
  public var changes: [FieldChange]
  public var evidence: String
  public var templateSignedOn: String
  public var state: KeyChangeState
  public var requestedBy: String
  public var requestedAt: Int64
  public var decidedBy: String?
  public var decidedAt: Int64?
  public var decisionNote: String?

  public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// One field of a key-information change, old and new (ID numbers masked).
public struct FieldChange: Codable, Sendable, Hashable {
  public var field: String
  public var old: String
  public var new: String
}

/// The principal's sign-off of a month (Art. 11).
public struct MonthlySignOff: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "monthly_signoff"
  public var month: String
  public var signedBy: String
  public var signedAt: Int64
  public var note: String
}

/// The paper archive of a child: the signed template, checked against the household register.
public struct PaperArchiveRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "paper_archive"
  public var recordNumber: String
  public var parentSignedOn: String
  public var checkedBy: String
  public var checkedOn: String
  public var recordedBy: String
  public var recordedAt: Int64
  /// When the paper was destroyed and by whom (the shred list); nil while it is kept.
  public var shreddedOn: String?
  public var shreddedBy: String?
}

extension TenantShard {

  /// Changes other (non-key) fields at once, each change kept in the history. `validate` checks
  /// the whole record as it would be, inside the same transaction.
  public func updateChild(
    _ recordNumber: String, fields: [OtherField], from source: ChildRecord, validate: @escaping @Sendable (ChildRecord) throws -> Void, by: String,
    at: Int64
  ) async throws -> ChildRow {
    try await write { db in
      var row = try self.requireChild(db, recordNumber)
      _ = try ChildEvent.changeInformation.apply(to: row.state)
      var changed = row.data
      for field in fields { field.copy(from: source, into: &changed) }
      try validate(changed)
      try self.recordChanges(db, record: "child:\(recordNumber)", old: row.data, new: changed, by: by, at: at, masked: ["idDocumentNumber"])
      row.data = changed
      try self.update(db, row)
      return row
    }
  }

  /// Files a key-information change request; one open request per child at a time.
  public func requestKeyChange(
    _ recordNumber: String, values: KeyChangeValues, evidence: String, templateSignedOn: CalendarDate, by: String, at: Int64
  ) async throws -> (KeyChangeRecord, ChildRow) {
    try await write { db in
      let row = try self.requireChild(db, recordNumber)
      _ = try ChildEvent.changeInformation.apply(to: row.state)
      // The new template states the birth date as changed.
      try TimeOrder.checkSigned(
        templateSignedOn, field: "template_signed_on", birth: values.applied(to: row.data).birthDate, today: CalendarDate(beijingTimeOf: at))
      let differences = values.differences(from: row.data)
      if differences.isEmpty {
        throw StoreError(.invalidArgument, "request: the values asked for are the ones on record; nothing would change")
      }
      if let open = try KeyChangeRecord.filter(Column("recordNumber") == recordNumber && Column("state") == KeyChangeState.pending.rawValue)
        .fetchOne(db)
      {
        throw StoreError(.failedPrecondition, "record_number: request #\(open.id ?? 0) for this child is still waiting for the principal")
      }
      let record = try self.sealed(
        KeyChangeRecord(
          recordNumber: recordNumber, values: values,
          changes: differences.map { FieldChange(field: $0.field.rawValue, old: $0.old, new: $0.new) }, evidence: evidence,
          templateSignedOn: templateSignedOn.description, state: .pending, requestedBy: by, requestedAt: at)
      ).insertAndFetch(db)
      return (try self.opened(record), row)
    }
  }

  public func keyChanges(state: KeyChangeState?, offset: Int, limit: Int) async throws -> (changes: [(KeyChangeRecord, ChildRow)], total: Int) {
    try await read { db in
      var request = KeyChangeRecord.all()
      if let state { request = request.filter(Column("state") == state.rawValue) }
      let records = try request.order(Column("id").desc).limit(limit, offset: offset).fetchAll(db).map(self.opened)
      return (try records.map { ($0, try self.requireChild(db, $0.recordNumber)) }, try request.fetchCount(db))
    }
  }

  /// A key-information change request and the child it concerns.
  public func keyChangeRequest(_ id: Int64) async throws -> (KeyChangeRecord, ChildRow)? {
    try await read { db in
      guard let request = try KeyChangeRecord.fetchOne(db, key: id).map(self.opened) else { return nil }
      return (request, try self.requireChild(db, request.recordNumber))
    }
  }

  /// Approves (applies the change, with history naming the request) or rejects a request.
  /// Returns the request and the child as it was before the decision (for the differences).
  public func decideKeyChange(
    _ id: Int64, approve: Bool, note: String, validate: @escaping @Sendable (ChildRecord) throws -> Void, by: String, at: Int64
  ) async throws -> (request: KeyChangeRecord, before: ChildRow, after: ChildRow) {
    try await write { db in
      guard var request = try KeyChangeRecord.fetchOne(db, key: id).map(self.opened) else {
        throw StoreError(.notFound, "id: no key-information change request #\(id) here")
      }
      guard request.state == .pending else {
        throw StoreError(.failedPrecondition, "id: request #\(id) was already \(request.state.rawValue) by \(request.decidedBy ?? "")")
      }
      // Four eyes: whoever asked for a key change cannot also approve it. Withdrawing one's own
      // request (a rejection) stays possible, so a request the principal made is never stuck.
      if approve && request.requestedBy == by {
        throw StoreError(
          .permissionDenied,
          "id: request #\(id) was made by \(by); a key-information change is approved by another account than the one that asked for it (reject it to withdraw)"
        )
      }
      var row = try self.requireChild(db, request.recordNumber)
      let before = row
      if approve {
        _ = try ChildEvent.changeInformation.apply(to: row.state)
        let changed = request.values.applied(to: row.data)
        try validate(changed)
        if changed.identityKey != row.identityKey,
          let same = try StoredChild.filter(Column("identityKey") == changed.identityKey && Column("recordNumber") != row.recordNumber).fetchOne(db).map(self.opened)
        {
          throw StoreError(.alreadyExists, "request: another child here, \(IDDocuments.mask(same.recordNumber)), has that identity")
        }
        try self.recordChanges(
          db, record: "child:\(row.recordNumber)", old: row.data, new: changed, by: "\(by) (request #\(id) by \(request.requestedBy))", at: at,
          masked: ["idDocumentNumber"])
        row.data = changed
        row.identityKey = changed.identityKey
        try self.update(db, row)
      }
      request.state = approve ? .approved : .rejected
      request.decidedBy = by
      request.decidedAt = at
      request.decisionNote = note
      try self.sealed(request).update(db)
      return (request, before, row)
    }
  }

  /// What the monthly audit shows: one page of the month's history (seconds `from..<to`), how
  /// many key-information requests were decided in it, and the sign-off if there is one.
  public func monthlyAudit(
    month: YearMonth, from: Int64, to: Int64, offset: Int, limit: Int
  ) async throws -> (changes: [HistoryRecord], total: Int, keyChangesDecided: Int, signOff: MonthlySignOff?) {
    try await read { db in
      let request = HistoryRecord.filter(Column("changedAt") >= from && Column("changedAt") < to)
      let page = try request.order(Column("id")).limit(limit, offset: offset).fetchAll(db).map(self.openedHistory)
      let decided = try KeyChangeRecord.filter(Column("decidedAt") >= from && Column("decidedAt") < to).fetchCount(db)
      return (page, try request.fetchCount(db), decided, try MonthlySignOff.fetchOne(db, key: month.description))
    }
  }

  public func signOff(month: YearMonth, note: String, by: String, at: Int64) async throws -> MonthlySignOff {
    try await write { db in
      if let existing = try MonthlySignOff.fetchOne(db, key: month.description) {
        throw StoreError(.alreadyExists, "month: \(month) was already signed off by \(existing.signedBy)")
      }
      let signOff = MonthlySignOff(month: month.description, signedBy: by, signedAt: at, note: note)
      try signOff.insert(db)
      return signOff
    }
  }

  /// Records (or corrects) a child's paper archive.
  public func recordPaperArchive(
    _ recordNumber: String, parentSignedOn: CalendarDate, checkedBy: String, checkedOn: CalendarDate, by: String, at: Int64
  ) async throws -> (PaperArchiveRecord, ChildRow) {
    try await write { db in
      let row = try self.requireChild(db, recordNumber)
      try TimeOrder.checkSigned(parentSignedOn, field: "parent_signed_on", birth: row.data.birthDate, today: CalendarDate(beijingTimeOf: at))
      let old = try PaperArchiveRecord.fetchOne(db, key: recordNumber)
      if let shredded = old?.shreddedOn {
        throw StoreError(.failedPrecondition, "record_number: the paper archive was destroyed on \(shredded); there is nothing to correct")
      }
      let record = PaperArchiveRecord(
        recordNumber: recordNumber, parentSignedOn: parentSignedOn.description, checkedBy: checkedBy, checkedOn: checkedOn.description,
        recordedBy: by, recordedAt: at)
      try HistoryRecord(
        record: "child:\(recordNumber)", field: "paper archive",
        oldValue: old.map { "signed \($0.parentSignedOn), checked by \($0.checkedBy) \($0.checkedOn)" } ?? "",
        newValue: "signed \(record.parentSignedOn), checked by \(record.checkedBy) \(record.checkedOn)", changedBy: by, changedAt: at
      ).insert(db)
      try record.save(db)
      return (record, row)
    }
  }

  public enum PaperArchiveFilter: Sendable { case all, missing, shreddable, shredded }

  /// Children with their paper archive (nil when none is recorded). Shreddable: left on or
  /// before `leftBy` (one year before today).
  public func paperArchive(
    filter: PaperArchiveFilter, leftBy: CalendarDate, offset: Int, limit: Int
  ) async throws -> (entries: [(ChildRow, PaperArchiveRecord?)], total: Int) {
    try await read { db in
      var request = StoredChild.all()
      switch filter {
      case .all: break
      case .missing: request = request.filter(sql: "recordNumber NOT IN (SELECT recordNumber FROM paper_archive)")
      case .shreddable:
        request = request.filter(
          sql: "leftOn IS NOT NULL AND leftOn <= ? AND recordNumber IN (SELECT recordNumber FROM paper_archive WHERE shreddedOn IS NULL)",
          arguments: [leftBy.description])
      case .shredded:
        request = request.filter(sql: "recordNumber IN (SELECT recordNumber FROM paper_archive WHERE shreddedOn IS NOT NULL)")
      }
      let rows = try request.order(Column("recordNumber")).limit(limit, offset: offset).fetchAll(db).map(self.opened)
      let entries = try rows.map { ($0, try PaperArchiveRecord.fetchOne(db, key: $0.recordNumber)) }
      return (entries, try request.fetchCount(db))
    }
  }
}
