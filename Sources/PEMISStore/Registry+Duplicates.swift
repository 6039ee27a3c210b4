internal import Foundation
public import GRDB
internal import PEMISDomain

/// The three kinds of problem records (MISSION: duplicate check).
public enum ProblemKind: String, CaseIterable, Hashable, Sendable, Codable {
  /// (a) an ID number that breaks its document's rules.
  case invalidID = "invalid_id"
  /// (b) the same ID number in two active records.
  case sameID = "same_id"
  /// (c) no ID, and the same name + gender + birth date in two active records.
  case samePerson = "same_person"
}

/// Where a duplicate case stands.
public enum CaseState: String, CaseIterable, Hashable, Sendable, Codable {
  /// To be resolved by the kindergartens concerned: delete, modify or evidence.
  case open
  /// Evidence submitted: the Preschool Education Office arbitrates.
  case evidence
  case resolved
}

/// One problem found by the sweep, with the records it concerns.
public struct DuplicateCaseRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "duplicate_case"
  public var id: Int64?
  public var kind: ProblemKind
  /// What the records share (the ID document, or name|gender|birth date), or the invalid number.
  public var key: String
  public var records: [CaseRecordRef]
  public var state: CaseState
  /// deleted, modified, evidence_accepted (when resolved).
  public var resolution: String?
  public var evidence: String?
  public var openedAt: Int64
  public var updatedAt: Int64

  public init(kind: ProblemKind, key: String, records: [CaseRecordRef], at: Int64) {
    self.kind = kind
    self.key = key
    self.records = records
    self.state = .open
    self.openedAt = at
    self.updatedAt = at
  }

  /// The kindergartens concerned.
  public var kindergartens: Set<String> { Set(records.map(\.kindergartenCode)) }
}

public struct CaseRecordRef: Codable, Sendable, Hashable {
  public var kindergartenCode: String
  public var recordNumber: String
  public init(kindergartenCode: String, recordNumber: String) {
    self.kindergartenCode = kindergartenCode
    self.recordNumber = recordNumber
  }
}

/// One step in a case's history.
public struct CaseEventRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "duplicate_case_event"
  public var id: Int64?
  public var caseId: Int64
  public var action: String
  public var actor: String
  public var kindergartenCode: String
  public var note: String
  public var at: Int64

  public init(caseId: Int64, action: String, actor: String, kindergartenCode: String, note: String, at: Int64) {
    self.caseId = caseId
    self.action = action
    self.actor = actor
    self.kindergartenCode = kindergartenCode
    self.note = note
    self.at = at
  }
}

extension Registry {
  static func registerDuplicateMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v7-duplicate-cases") { db in
      try db.create(table: "duplicate_case") { t in
        t.autoIncrementedPrimaryKey("id")
        t.column("kind", .text).notNull()
        t.column("key", .text).notNull()
        t.column("records", .text).notNull()
        t.column("state", .text).notNull().indexed()
        t.column("resolution", .text)
        t.column("evidence", .text)
        t.column("openedAt", .integer).notNull()
        t.column("updatedAt", .integer).notNull()
      }
      // A problem has one unresolved case at a time: the sweep can run again and again.
      try db.execute(sql: "CREATE UNIQUE INDEX duplicate_case_unresolved ON duplicate_case(kind, key) WHERE state != 'resolved'")
      // Which kindergartens a case concerns, for listing by kindergarten.
      try db.create(table: "duplicate_case_kindergarten") { t in
        t.column("caseId", .integer).notNull().references("duplicate_case", onDelete: .cascade)
        t.column("kindergartenCode", .text).notNull().indexed()
        t.primaryKey(["caseId", "kindergartenCode"])
      }
      try db.create(table: "duplicate_case_event") { t in
        t.autoIncrementedPrimaryKey("id")
        t.column("caseId", .integer).notNull().indexed().references("duplicate_case", onDelete: .cascade)
        t.column("action", .text).notNull()
        t.column("actor", .text).notNull()
        t.column("kindergartenCode", .text).notNull()
        t.column("note", .text).notNull()
        t.column("at", .integer).notNull()
      }
    }
  }

  /// What a sweep found, applied in one transaction: a case opened for each problem without an
  /// unresolved one (the records brought up to date where it has one), and unresolved cases whose
  /// problem is gone resolved as modified. A problem whose records are those an accepted
  /// arbitration covered is no problem: no case is opened for it, and an unresolved one is
  /// resolved by that arbitration. Cases of the problems in `leaving` (`kind|key`: records mid-change)
  /// are left as they are. Returns (opened, still open, resolved).
  public func applySweep(
    _ problems: [(kind: ProblemKind, key: String, records: [CaseRecordRef])], leaving: Set<String> = [], by: String, at: Int64
  ) async throws -> (opened: Int, unchanged: Int, resolved: Int) {
    try await writer.write { db in
      var opened = 0
      var unchanged = 0
      var resolved = 0
      var found: Set<String> = []
      for problem in problems {
        found.insert("\(problem.kind.rawValue)|\(problem.key)")
        let accepted = try Self.acceptedCase(db, kind: problem.kind, key: problem.key, records: problem.records)
        if var existing = try DuplicateCaseRecord.filter(
          Column("kind") == problem.kind.rawValue && Column("key") == problem.key && Column("state") != CaseState.resolved.rawValue
        ).fetchOne(db) {
          let moved = existing.records != problem.records
          existing.records = problem.records
          if accepted != nil {
            // The records went back to what the arbitration accepted (the one more left again).
            existing.state = .resolved
            existing.resolution = "evidence_accepted"
          }
          if moved || accepted != nil {
            existing.updatedAt = at
            try existing.update(db)
          }
          if moved { try Self.linkKindergartens(db, existing) }
          if let accepted {
            try CaseEventRecord(
              caseId: existing.id!, action: "resolved", actor: by, kindergartenCode: "",
              note: "the records are those whose evidence case \(accepted.id ?? 0) accepted", at: at
            ).insert(db)
            resolved += 1
          } else {
            unchanged += 1
          }
          continue
        }
        // An arbitration that accepted the parents' evidence stays accepted: the same records
        // sharing the same key are not a new problem. Only a change of the records it covered
        // (one more, one less, another kindergarten) opens a case again.
        if accepted != nil {
          unchanged += 1
          continue
        }
        let created = try DuplicateCaseRecord(kind: problem.kind, key: problem.key, records: problem.records, at: at).insertAndFetch(db)
        try Self.linkKindergartens(db, created)
        try CaseEventRecord(caseId: created.id!, action: "opened", actor: by, kindergartenCode: "", note: "found by the sweep", at: at).insert(db)
        opened += 1
      }
      for var open in try DuplicateCaseRecord.filter(Column("state") == CaseState.open.rawValue).fetchAll(db)
      where !found.contains("\(open.kind.rawValue)|\(open.key)") && !leaving.contains("\(open.kind.rawValue)|\(open.key)") {
        open.state = .resolved
        open.resolution = open.resolution ?? "modified"
        open.updatedAt = at
        try open.update(db)
        try CaseEventRecord(caseId: open.id!, action: "resolved", actor: by, kindergartenCode: "", note: "the problem is gone", at: at).insert(db)
        resolved += 1
      }
      return (opened, unchanged, resolved)
    }
  }

  /// The resolved case whose accepted evidence covers exactly these records sharing this key.
  static func acceptedCase(_ db: Database, kind: ProblemKind, key: String, records: [CaseRecordRef]) throws -> DuplicateCaseRecord? {
    try DuplicateCaseRecord.filter(
      Column("kind") == kind.rawValue && Column("key") == key && Column("state") == CaseState.resolved.rawValue
        && Column("resolution") == "evidence_accepted"
    ).fetchAll(db).first { Set($0.records) == Set(records) }
  }

  /// ``acceptedCase(_:kind:key:records:)``, for the router's re-check of a case.
  public func acceptedCase(kind: ProblemKind, key: String, records: [CaseRecordRef]) async throws -> DuplicateCaseRecord? {
    try await writer.read { db in try Self.acceptedCase(db, kind: kind, key: key, records: records) }
  }

  static func linkKindergartens(_ db: Database, _ record: DuplicateCaseRecord) throws {
    try db.execute(sql: "DELETE FROM duplicate_case_kindergarten WHERE caseId = ?", arguments: [record.id])
    for code in record.kindergartens {
      try db.execute(sql: "INSERT INTO duplicate_case_kindergarten (caseId, kindergartenCode) VALUES (?, ?)", arguments: [record.id, code])
    }
  }

  public func duplicateCase(_ id: Int64) async throws -> (DuplicateCaseRecord, [CaseEventRecord])? {
    try await writer.read { db in
      guard let record = try DuplicateCaseRecord.fetchOne(db, key: id) else { return nil }
      return (record, try CaseEventRecord.filter(Column("caseId") == id).order(Column("id")).fetchAll(db))
    }
  }

  /// Cases by kindergarten (or of any in `codes`) and state, newest first.
  public func duplicateCases(
    kindergarten code: String?, codes: Set<String>?, state: CaseState?, offset: Int, limit: Int
  ) async throws -> (cases: [DuplicateCaseRecord], total: Int) {
    try await writer.read { db in
      var request = DuplicateCaseRecord.all()
      if let code {
        request = request.filter(sql: "id IN (SELECT caseId FROM duplicate_case_kindergarten WHERE kindergartenCode = ?)", arguments: [code])
      }
      if let codes {
        request = request.filter(
          sql: "id IN (SELECT caseId FROM duplicate_case_kindergarten WHERE kindergartenCode IN (SELECT value FROM json_each(?)))",
          arguments: [Self.jsonList(codes)])
      }
      if let state { request = request.filter(Column("state") == state.rawValue) }
      return (try request.order(Column("id").desc).limit(limit, offset: offset).fetchAll(db), try request.fetchCount(db))
    }
  }

  /// A step on a case: the state it must be in, the state after, the event.
  @discardableResult
  public func advanceCase(
    _ id: Int64, from: Set<CaseState>, to: CaseState, resolution: String? = nil, evidence: String? = nil, event: CaseEventRecord
  ) async throws -> DuplicateCaseRecord {
    try await writer.write { db in
      guard var record = try DuplicateCaseRecord.fetchOne(db, key: id) else {
        throw StoreError(.notFound, "case_id: no duplicate case \(id)")
      }
      guard from.contains(record.state) else {
        throw StoreError(.failedPrecondition, "case_id: case \(id) is \(record.state.rawValue)")
      }
      record.state = to
      if let resolution { record.resolution = resolution }
      if let evidence { record.evidence = evidence }
      record.updatedAt = event.at
      try record.update(db)
      try event.insert(db)
      return record
    }
  }

  /// Unresolved cases per kindergarten, for the district summary.
  public func openCaseCounts() async throws -> [String: Int] {
    try await writer.read { db in
      var counts: [String: Int] = [:]
      for row in try Row.fetchAll(
        db,
        sql: """
          SELECT k.kindergartenCode AS code, COUNT(*) AS n FROM duplicate_case_kindergarten k
          JOIN duplicate_case c ON c.id = k.caseId WHERE c.state != 'resolved' GROUP BY k.kindergartenCode
          """)
      {
        counts[row["code"]] = row["n"]
      }
      return counts
    }
  }

  /// Unresolved cases concerning any of these kindergartens, each counted once.
  public func unresolvedCaseCount(among codes: Set<String>) async throws -> Int {
    try await writer.read { db in
      try Int.fetchOne(
        db,
        sql: """
          SELECT COUNT(DISTINCT c.id) FROM duplicate_case c JOIN duplicate_case_kindergarten k ON k.caseId = c.id
          WHERE c.state != 'resolved' AND k.kindergartenCode IN (SELECT value FROM json_each(?))
          """, arguments: [Self.jsonList(codes)]) ?? 0
    }
  }

  /// Open transfers with either side among these kindergartens, each counted once.
  public func openTransferCount(among codes: Set<String>) async throws -> Int {
    try await writer.read { db in
      try Int.fetchOne(
        db,
        sql: """
          SELECT COUNT(*) FROM transfer WHERE state NOT IN \(TransferState.finalStatesSQL)
          AND (fromCode IN (SELECT value FROM json_each(?1)) OR toCode IN (SELECT value FROM json_each(?1)))
          """, arguments: [Self.jsonList(codes)]) ?? 0
    }
  }

  /// A set of codes as one JSON array argument (any number of them, unlike `IN (?, ?, …)`).
  static func jsonList(_ codes: Set<String>) -> String {
    String(decoding: (try? JSONEncoder().encode(codes.sorted())) ?? Data("[]".utf8), as: UTF8.self)
  }

  /// Open (not final) transfers per kindergarten, either side, for the district summary.
  public func pendingTransferCounts() async throws -> [String: Int] {
    try await writer.read { db in
      var counts: [String: Int] = [:]
      for row in try Row.fetchAll(
        db, sql: "SELECT fromCode, toCode FROM transfer WHERE state NOT IN \(TransferState.finalStatesSQL)")
      {
        counts[row["fromCode"], default: 0] += 1
        counts[row["toCode"], default: 0] += 1
      }
      return counts
    }
  }
}
