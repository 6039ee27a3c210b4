internal import Foundation
public import GRDB
public import PEMISDomain

/// The district child index (registry): where each record number lives and in what state, with
/// the child's ID document and, for the duplicate check, name + gender + birth date. Derived
/// from the shards: every write to a child updates it after the shard commits, a new child is
/// reserved here first (so two kindergartens cannot enroll the same ID at once), and it can be
/// rebuilt from the shards alone (`pemis-server check --repair`).
public struct ChildIndexRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "child_index"
  public var recordNumber: String
  public var kindergartenCode: String
  public var state: ChildState
  /// "resident_id|1201…" when the child has a document number, else nil.
  public var documentKey: String?
  /// "name|gender|birth date".
  public var personKey: String
  /// Whether the record is active (enrolled or pending transfer-out): an ID is active in one
  /// kindergarten at most.
  public var active: Bool
  /// Set while a new child is reserved here and not yet confirmed in its shard: the reservation's
  /// id. Recovery confirms or releases it.
  public var reservation: String?
  /// What the row was before the reservation (JSON of the previous row), to restore on release.
  public var previous: String?
  /// The document key the row had before a reservation changed it, held until the change ends.
  public var heldKey: String?
  public var updatedAt: Int64

  public init(recordNumber: String, kindergartenCode: String, state: ChildState, child: ChildRecord, updatedAt: Int64) {
    self.recordNumber = recordNumber
    self.kindergartenCode = kindergartenCode
    self.state = state
    self.documentKey = Self.documentKey(child)
    self.personKey = Self.personKey(child)
    self.active = state.isActive
    self.updatedAt = updatedAt
  }

  /// Read column by column rather than through Codable: the sweep and the check read the whole
  /// index, and the decoder was most of their time.
  /// A damaged row throws, as the Codable decoder did, rather than trapping.
  public init(row: Row) throws {
    recordNumber = try row.decode(forColumn: "recordNumber")
    kindergartenCode = try row.decode(forColumn: "kindergartenCode")
    let stateName: String = try row.decode(forColumn: "state")
    guard let state = ChildState(rawValue: stateName) else {
      throw StoreError(.unavailable, "child_index.state: unknown state \(stateName) for \(IDDocuments.mask(recordNumber))")
    }
    self.state = state
    documentKey = try row.decode(forColumn: "documentKey")
    personKey = try row.decode(forColumn: "personKey")
    active = try row.decode(forColumn: "active")
    reservation = try row.decode(forColumn: "reservation")
    previous = try row.decode(forColumn: "previous")
    heldKey = try row.decode(forColumn: "heldKey")
    updatedAt = try row.decode(forColumn: "updatedAt")
  }

  /// Keys are in Unicode normal form C: SQLite compares bytes, so "José" typed composed and
  /// decomposed must be stored alike for the duplicate check to see one person.
  public static func documentKey(_ child: ChildRecord) -> String? { DocumentKey(child)?.rawValue }

  /// The number of a document key "type|number" (``DocumentKey/number``).
  public static func documentNumber(ofKey key: String) -> String { DocumentKey(stored: key).number }

  public static func personKey(_ child: ChildRecord) -> String {
    "\(child.name.precomposedStringWithCanonicalMapping)|\(child.gender.rawValue)|\(child.birthDate)"
  }

  /// The same facts as `other`, ignoring bookkeeping (time, reservation).
  public func agrees(with other: ChildIndexRecord) -> Bool {
    recordNumber == other.recordNumber && kindergartenCode == other.kindergartenCode && state == other.state
      && documentKey == other.documentKey && personKey == other.personKey
  }
}

extension ChildState {
  /// Enrolled or pending transfer-out: the record lives here.
  public var isActive: Bool { self == .enrolled || self == .pendingTransferOut }
}

extension Registry {
  static func registerChildIndexMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v5-child-index") { db in
      try db.create(table: "child_index") { t in
        t.primaryKey("recordNumber", .text)
        t.column("kindergartenCode", .text).notNull().indexed()
        t.column("state", .text).notNull()
        t.column("documentKey", .text)
        t.column("personKey", .text).notNull().indexed()
        t.column("active", .boolean).notNull()
        t.column("reservation", .text)
        t.column("previous", .text)
        t.column("updatedAt", .integer).notNull()
      }
      // An ID document is active in one kindergarten at most: `reserve` checks it inside the
      // registry's (serialized) write transaction. Not a UNIQUE index, so records from before the
      // rule (or repaired from shards) can still be indexed and found by the duplicate sweep.
      try db.execute(sql: "CREATE INDEX child_index_document ON child_index(documentKey) WHERE documentKey IS NOT NULL")
      try db.execute(sql: "CREATE INDEX child_index_reserved ON child_index(reservation) WHERE reservation IS NOT NULL")
    }
  }

  /// Where an ID document is active, if anywhere.
  public func activeRecord(documentKey: String) async throws -> ChildIndexRecord? {
    try await writer.read { db in
      try ChildIndexRecord.filter(Column("documentKey") == documentKey && Column("active") == true).fetchOne(db)
    }
  }

  public func indexRecord(_ recordNumber: String) async throws -> ChildIndexRecord? {
    try await writer.read { db in try ChildIndexRecord.fetchOne(db, key: recordNumber) }
  }

  /// A conflict found while reserving: the row cannot become what it would be.
  public struct IndexConflict: Sendable, Hashable {
    /// Which of the reserved rows (its position in the request).
    public var position: Int
    /// The index row it meets.
    public var existing: ChildIndexRecord
    public var reason: IndexConflictReason
    /// The open transfer the record is in (reason ``IndexConflictReason/inTransfer``).
    public var transfer: TransferRecord?

    public init(position: Int, existing: ChildIndexRecord, reason: IndexConflictReason, transfer: TransferRecord? = nil) {
      self.position = position
      self.existing = existing
      self.reason = reason
      self.transfer = transfer
    }
  }

  /// Brings index rows in line with the shard rows they describe (after a shard write).
  public func syncIndex(_ rows: [ChildIndexRecord]) async throws {
    guard !rows.isEmpty else { return }
    try await writer.write { db in
      for row in rows {
        if let existing = try ChildIndexRecord.fetchOne(db, key: row.recordNumber), existing.kindergartenCode != row.kindergartenCode,
          existing.active, !row.active
        {
          // The record lives elsewhere now (re-enrolled or transferred in): an old kindergarten's
          // closed row does not take the index back.
          continue
        }
        try row.save(db)
      }
    }
  }

  /// Index rows after `after` in record-number order, a page at a time: the check reads them
  /// all, the duplicate sweep the active ones, without holding millions of rows at once.
  public func indexRecords(after: String?, limit: Int, activeOnly: Bool = false) async throws -> [ChildIndexRecord] {
    try await writer.read { db in
      var request = ChildIndexRecord.filter(Column("recordNumber") > (after ?? ""))
      if activeOnly { request = request.filter(Column("active") == true) }
      return try request.order(Column("recordNumber")).limit(limit).fetchAll(db)
    }
  }

  /// The index rows of these record numbers, by record number.
  public func indexRecords(_ recordNumbers: [String]) async throws -> [String: ChildIndexRecord] {
    guard !recordNumbers.isEmpty else { return [:] }
    return try await writer.read { db in
      Dictionary(uniqueKeysWithValues: try ChildIndexRecord.filter(keys: recordNumbers).fetchAll(db).map { ($0.recordNumber, $0) })
    }
  }

  public func indexCount() async throws -> Int {
    try await writer.read { db in try ChildIndexRecord.fetchCount(db) }
  }

  /// The document number of `documentKey` ("type|number"), in SQL: the sweep groups by number
  /// whatever the document type says.
  private static let documentNumberSQL = "substr(documentKey, instr(documentKey, '|') + 1)"

  /// Active rows whose document number another active row also has (any document type),
  /// grouped by SQLite rather than in memory.
  public func activeRowsSharingDocumentNumber() async throws -> [ChildIndexRecord] {
    try await activeRows(sharing: Self.documentNumberSQL, among: "documentKey IS NOT NULL")
  }

  /// Active rows without a document whose name, gender and birth date another such row shares.
  public func activeRowsSharingPerson() async throws -> [ChildIndexRecord] {
    try await activeRows(sharing: "personKey", among: "documentKey IS NULL")
  }

  /// Active rows matching `condition` whose `key` (an SQL expression) another such row shares.
  private func activeRows(sharing key: String, among condition: String) async throws -> [ChildIndexRecord] {
    try await writer.read { db in
      try ChildIndexRecord.fetchAll(
        db,
        sql: """
          SELECT * FROM child_index WHERE active AND \(condition) AND \(key) IN (
            SELECT \(key) FROM child_index WHERE active AND \(condition) GROUP BY 1 HAVING count(*) > 1)
          ORDER BY recordNumber
          """)
    }
  }

  /// Active rows with this document number under any document type (uses the document index).
  public func activeRows(documentNumber: String) async throws -> [ChildIndexRecord] {
    let keys = IDDocumentType.allCases.map { "\($0.rawValue)|\(documentNumber)" }
    return try await writer.read { db in
      try ChildIndexRecord.filter(keys.contains(Column("documentKey")) && Column("active") == true).order(Column("recordNumber")).fetchAll(db)
    }
  }

  /// Active rows without a document and with this name|gender|birth date.
  public func activeRows(personKey: String) async throws -> [ChildIndexRecord] {
    try await writer.read { db in
      try ChildIndexRecord.filter(Column("personKey") == personKey && Column("documentKey") == nil && Column("active") == true)
        .order(Column("recordNumber")).fetchAll(db)
    }
  }

  /// Replaces the whole index, in one transaction, with the rows the shards say it should have
  /// (repair after `pemis-server check`); returns how many.
  public func replaceIndex(from scratch: IndexScratch, at: Int64) async throws -> Int {
    try await writer.write { db in
      try ChildIndexRecord.deleteAll(db)
      // The rebuilt index is what the shards say: reservations that were waiting are superseded.
      try IndexReservation.deleteAll(db)
      var count = 0
      var after: String?
      while true {
        let page = try scratch.queue.read { try IndexScratch.expected($0, after: after, limit: 5_000) }
        for var row in page {
          row.updatedAt = at
          try row.insert(db)
        }
        count += page.count
        guard let last = page.last else { break }
        after = last.recordNumber
      }
      return count
    }
  }
}
