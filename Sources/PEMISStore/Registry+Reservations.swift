internal import Foundation
public import GRDB
public import PEMISDomain

/// A change of children's index rows that waits for a shard write (docs/ROUTING.md): the rows
/// are written to the index *as they will be* before the shard, each holding what it was
/// (`previous`), so that no other kindergarten can take an identity in the meantime. The change
/// is then confirmed — with the obligations it reports, in the same transaction — or released.
///
/// A reservation has an **owner** (the process that made it) and a **lease**: recovery finishes
/// only reservations of another process or past their lease, never one a live enrollment or
/// import is about to confirm.
public struct IndexReservation: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "index_reservation"
  public var id: String
  public var kindergartenCode: String
  /// The process that made it (``Router`` instance id).
  public var owner: String
  /// Seconds since 1970 after which recovery may end it even if its owner lives.
  public var leaseUntil: Int64
  /// What it is for, in words (enroll, import, leave, key change #3, …), for the check's report.
  public var purpose: String
  /// Obligations the change reports when it is confirmed (opened and discharged at once).
  public var obligations: [ObligationRecord]
  /// Open obligations of the kindergarten the change discharges when it is confirmed.
  public var completions: [ObligationCompletion]
  /// Who made the change: the obligations are discharged in their name.
  public var reportedBy: String
  public var createdAt: Int64

  public init(
    id: String, kindergartenCode: String, owner: String, leaseUntil: Int64, purpose: String, obligations: [ObligationRecord],
    completions: [ObligationCompletion] = [], reportedBy: String, createdAt: Int64
  ) {
    self.completions = completions
    self.id = id
    self.kindergartenCode = kindergartenCode
    self.owner = owner
    self.leaseUntil = leaseUntil
    self.purpose = purpose
    self.obligations = obligations
    self.reportedBy = reportedBy
    self.createdAt = createdAt
  }
}

/// An open obligation a change discharges: its kind and subject.
public struct ObligationCompletion: Codable, Sendable, Hashable {
  public var kind: ObligationKind
  public var subject: String
  public init(kind: ObligationKind, subject: String) {
    self.kind = kind
    self.subject = subject
  }
}

/// Why a reserved row cannot be had: the identity rules of the district index, in one place.
public enum IndexConflictReason: String, Sendable, Hashable {
  /// The record number or ID document is active in a kindergarten.
  case active
  /// Another change of the same record (or identity) is waiting for its shard.
  case beingChanged = "being_changed"
  /// The identity belongs to a child recorded as deceased.
  case deceased
  /// A child without an ID document with the same name, gender and birth date is enrolled in the
  /// same kindergarten.
  case samePersonHere = "same_person_here"
  /// The record is in a transfer that has not ended: until it does, the index cannot say which
  /// kindergarten holds the child (the sender may have closed its record, the receiver may
  /// already hold it), so nothing but the transfer brings the record to life anywhere.
  case inTransfer = "in_transfer"
}

extension Registry {
  static func registerReservationMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v8-reservation-leases") { db in
      try db.create(table: "index_reservation") { t in
        t.primaryKey("id", .text)
        t.column("kindergartenCode", .text).notNull()
        t.column("owner", .text).notNull()
        t.column("leaseUntil", .integer).notNull()
        t.column("purpose", .text).notNull()
        t.column("obligations", .text).notNull()
        t.column("completions", .text).notNull().defaults(to: "[]")
        t.column("reportedBy", .text).notNull()
        t.column("createdAt", .integer).notNull()
      }
      // The document key a reserved row had before the change: held until the change ends, so
      // a released key change gets its old identity back, never someone else's.
      try db.alter(table: "child_index") { t in t.add(column: "heldKey", .text) }
      try db.execute(sql: "CREATE INDEX child_index_held ON child_index(heldKey) WHERE heldKey IS NOT NULL")
      // Reservations made before leases existed: owned by nobody, so recovery ends them.
      try db.execute(
        sql: """
          INSERT INTO index_reservation (id, kindergartenCode, owner, leaseUntil, purpose, obligations, reportedBy, createdAt)
          SELECT reservation, min(kindergartenCode), '', 0, 'enroll', '[]', '', 0 FROM child_index
          WHERE reservation IS NOT NULL GROUP BY reservation
          """)
    }
  }

  /// Checks each row (as it will be) against the identity rules and, when none conflicts,
  /// writes them all under `reservation`, in one transaction. Returns the conflicts; when there
  /// are any nothing is written.
  public func reserve(_ rows: [ChildIndexRecord], as reservation: IndexReservation) async throws -> [IndexConflict] {
    try await writer.write { db in
      var conflicts: [IndexConflict] = []
      for (position, row) in rows.enumerated() {
        if let conflict = try Self.conflict(db, row) {
          conflicts.append(IndexConflict(position: position, existing: conflict.existing, reason: conflict.reason, transfer: conflict.transfer))
        }
      }
      guard conflicts.isEmpty else { return conflicts }
      try reservation.insert(db)
      for var row in rows {
        row.reservation = reservation.id
        row.heldKey = nil
        if let existing = try ChildIndexRecord.fetchOne(db, key: row.recordNumber) {
          row.previous = String(decoding: try JSONEncoder().encode(existing), as: UTF8.self)
          if existing.documentKey != row.documentKey { row.heldKey = existing.documentKey }
        }
        try row.save(db)
      }
      return []
    }
  }

  /// The identity rules (docs/ROUTING.md): the one place that says whether a row may become
  /// what it will be. A row that brings a record to life in a kindergarten (new, re-enrolled,
  /// transferred in) or gives it another identity must not meet an active, deceased or
  /// held identity; a record being changed by another reservation waits for it.
  /// `movingFrom`: a transfer's sender, where the record is active by right until it arrives.
  /// A record in an open transfer is changed by that transfer only: at its sender and its
  /// receiver nothing else may keep, close or bring the record to life until the transfer ends
  /// (a leave or departure at the sender cancels the transfer first). Elsewhere the usual rules
  /// answer, so a third kindergarten is not told where the child is going.
  static func conflict(
    _ db: Database, _ row: ChildIndexRecord, movingFrom: String? = nil
  ) throws -> (existing: ChildIndexRecord, reason: IndexConflictReason, transfer: TransferRecord?)? {
    let existing = try ChildIndexRecord.fetchOne(db, key: row.recordNumber)
    if let existing, existing.reservation != nil { return (existing, .beingChanged, nil) }
    if movingFrom == nil, let existing, let open = try openTransfer(db, recordNumber: row.recordNumber),
      row.kindergartenCode == open.fromCode || row.kindergartenCode == open.toCode
    {
      return (existing, .inTransfer, open)
    }
    guard row.active else { return nil }
    let arrives = existing.map { !$0.active || $0.kindergartenCode != row.kindergartenCode } ?? true
    if arrives, let existing {
      if existing.active && existing.kindergartenCode != movingFrom { return (existing, .active, nil) }
      if existing.state == .deceased { return (existing, .deceased, nil) }
    }
    if let key = row.documentKey, arrives || key != existing?.documentKey {
      let others = try ChildIndexRecord.fetchAll(
        db.cachedStatement(
          sql: """
            SELECT * FROM child_index WHERE recordNumber != ? AND (
              (documentKey = ? AND (active OR reservation IS NOT NULL OR state = 'deceased')) OR heldKey = ?)
            ORDER BY active DESC LIMIT 1
            """),
        arguments: [row.recordNumber, key, key])
      if let other = others.first {
        return (other, other.reservation != nil ? .beingChanged : other.state == .deceased ? .deceased : .active, nil)
      }
    } else if row.documentKey == nil, arrives || row.personKey != existing?.personKey {
      if let other = try ChildIndexRecord.fetchOne(
        db.cachedStatement(
          sql: """
            SELECT * FROM child_index WHERE recordNumber != ? AND personKey = ? AND documentKey IS NULL AND kindergartenCode = ?
            AND active LIMIT 1
            """),
        arguments: [row.recordNumber, row.personKey, row.kindergartenCode])
      {
        return (other, .samePersonHere, nil)
      }
    }
    return nil
  }

  /// The index rows of changes waiting for their shards, each as it will be and, when it had
  /// one, as it was: the records whose index rows are not yet the truth either way.
  public func reservedRows() async throws -> [ChildIndexRecord] {
    try await writer.read { db in
      try ChildIndexRecord.fetchAll(db, sql: "SELECT * FROM child_index WHERE reservation IS NOT NULL").flatMap { row in
        [row] + (row.previous.flatMap { try? JSONDecoder().decode(ChildIndexRecord.self, from: Data($0.utf8)) }.map { [$0] } ?? [])
      }
    }
  }

  /// The identity rules for a child arriving by transfer from `sender`: the same check as an
  /// enrollment's, the record being active at its sender by right. Nothing is written.
  public func transferConflict(_ row: ChildIndexRecord, from sender: String) async throws -> IndexConflict? {
    try await writer.read { db in
      try Self.conflict(db, row, movingFrom: sender).map { IndexConflict(position: 0, existing: $0.existing, reason: $0.reason, transfer: $0.transfer) }
    }
  }

  /// The shard write happened: the index takes the rows the shard now holds (`rows`, the truth),
  /// reserved rows the write did not touch go back to what they were, and the change's
  /// obligations are opened and discharged — one transaction. A reservation that is no longer
  /// open (recovery ended it, the lease having run out) is an error, never a quiet no-op.
  public func confirm(reservation id: String, rows: [ChildIndexRecord], at: Int64) async throws {
    try await writer.write { db in
      guard let reservation = try IndexReservation.fetchOne(db, key: id) else {
        throw StoreError(
          .aborted, "the change was ended by recovery before it was confirmed (reservation \(id)); check the record and try again")
      }
      try Self.finish(db, reservation, rows: rows, report: true, at: at)
    }
  }

  /// The shard write failed or never happened: every reserved row goes back to what it was.
  public func release(reservation id: String) async throws {
    try await writer.write { db in
      guard let reservation = try IndexReservation.fetchOne(db, key: id) else { return }
      try Self.finish(db, reservation, rows: [], report: false, at: 0)
    }
  }

  /// Ends a reservation: rows given are written as the shard holds them; the others reserved
  /// under it are restored; its obligations are recorded when `report`.
  static func finish(_ db: Database, _ reservation: IndexReservation, rows: [ChildIndexRecord], report: Bool, at: Int64) throws {
    var written: Set<String> = []
    for var row in rows {
      row.reservation = nil
      row.previous = nil
      row.heldKey = nil
      if let existing = try ChildIndexRecord.fetchOne(db, key: row.recordNumber), existing.reservation != reservation.id,
        existing.kindergartenCode != row.kindergartenCode, existing.active, !row.active
      {
        continue  // lives elsewhere now: a closed row does not take the index back
      }
      try row.save(db)
      written.insert(row.recordNumber)
    }
    for row in try ChildIndexRecord.filter(Column("reservation") == reservation.id).fetchAll(db) where !written.contains(row.recordNumber) {
      if let previous = row.previous, var old = try? JSONDecoder().decode(ChildIndexRecord.self, from: Data(previous.utf8)) {
        old.reservation = nil
        old.previous = nil
        old.heldKey = nil
        try old.update(db)
      } else {
        try row.delete(db)
      }
    }
    if report && !reservation.obligations.isEmpty {
      _ = try recordReported(db, reservation.obligations, by: reservation.reportedBy, at: at, on: CalendarDate(beijingTimeOf: at))
    }
    if report {
      for item in reservation.completions {
        try db.execute(
          sql: """
            UPDATE obligation SET doneAt = ?, doneBy = ?, doneOn = ?
            WHERE kindergartenCode = ? AND kind = ? AND subject = ? AND doneAt IS NULL
            """,
          arguments: [at, reservation.reportedBy, CalendarDate(beijingTimeOf: at).description, reservation.kindergartenCode, item.kind.rawValue, item.subject])
      }
    }
    try reservation.delete(db)
  }

  /// Reservations recovery may end: another process's, or past their lease; with their rows.
  public func reservationsToRecover(owner: String, now: Int64) async throws -> [(reservation: IndexReservation, rows: [ChildIndexRecord])] {
    try await writer.read { db in
      try IndexReservation.filter(Column("owner") != owner || Column("leaseUntil") < now).order(Column("createdAt")).fetchAll(db).map {
        ($0, try ChildIndexRecord.filter(Column("reservation") == $0.id).fetchAll(db))
      }
    }
  }

  /// Every open reservation (the check's report; the kill harness).
  public func openReservations() async throws -> [IndexReservation] {
    try await writer.read { db in try IndexReservation.order(Column("createdAt")).fetchAll(db) }
  }

  /// Recovery of a reservation: each row as its shard holds it (nil: the shard has no such
  /// record, so the row goes back to what it was), and the obligations recorded only when the
  /// shard shows the change happened.
  public func recover(reservation id: String, rows: [ChildIndexRecord], happened: Bool, at: Int64) async throws {
    try await writer.write { db in
      guard let reservation = try IndexReservation.fetchOne(db, key: id) else { return }
      try Self.finish(db, reservation, rows: rows, report: happened, at: at)
    }
  }
}
