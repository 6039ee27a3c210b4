internal import Crypto
public import Foundation
public import GRDB
public import PEMISDomain

/// An export request and, once approved, its file (Art. 20; docs/TENANCY.md, "Exports").
public struct ExportRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "export_request"
  public var id: String
  /// Nil for a district export.
  public var kindergartenCode: String?
  /// For a district export by the Vocational Office: private kindergartens only.
  public var ownershipScope: String?
  public var purpose: String
  public var recipient: String
  /// Comma-separated ``ExportField`` names.
  public var fields: String
  public var fullRequested: String
  public var fullApproved: String
  public var state: ExportState
  public var requestedBy: String
  public var requestedRole: String
  public var requestedAt: Int64
  public var decidedBy: String?
  public var decidedRole: String?
  public var decidedAt: Int64?
  public var note: String?
  public var rows: Int
  public var sha256: String?
  public var expiresAt: Int64?
  public var downloads: Int
  /// The CSV bytes while downloadable; removed when the export expires.
  public var file: Data?

  public init(
    kindergartenCode: String?, ownershipScope: String?, purpose: String, recipient: String, fields: [ExportField],
    fullRequested: [ExportField], requestedBy: String, requestedRole: String, requestedAt: Int64
  ) {
    id = ""
    self.kindergartenCode = kindergartenCode
    self.ownershipScope = ownershipScope
    self.purpose = purpose
    self.recipient = recipient
    self.fields = fields.map(\.rawValue).joined(separator: ",")
    self.fullRequested = fullRequested.map(\.rawValue).joined(separator: ",")
    fullApproved = ""
    state = .requested
    self.requestedBy = requestedBy
    self.requestedRole = requestedRole
    self.requestedAt = requestedAt
    rows = 0
    downloads = 0
  }

  public var fieldList: [ExportField] { Self.list(fields) }
  public var fullRequestedList: [ExportField] { Self.list(fullRequested) }
  public var fullApprovedList: [ExportField] { Self.list(fullApproved) }
  static func list(_ text: String) -> [ExportField] { text.split(separator: ",").compactMap { ExportField(rawValue: String($0)) } }
}

extension Registry {
  static func registerExportMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v11-exports") { db in
      try db.create(table: "export_request") { t in
        t.primaryKey("id", .text)
        t.column("kindergartenCode", .text).indexed()
        t.column("ownershipScope", .text)
        t.column("purpose", .text).notNull()
        t.column("recipient", .text).notNull()
        t.column("fields", .text).notNull()
        t.column("fullRequested", .text).notNull()
        t.column("fullApproved", .text).notNull()
        t.column("state", .text).notNull().indexed()
        t.column("requestedBy", .text).notNull()
        t.column("requestedRole", .text).notNull()
        t.column("requestedAt", .integer).notNull()
        t.column("decidedBy", .text)
        t.column("decidedRole", .text)
        t.column("decidedAt", .integer)
        t.column("note", .text)
        t.column("rows", .integer).notNull()
        t.column("sha256", .text)
        t.column("expiresAt", .integer)
        t.column("downloads", .integer).notNull()
        t.column("file", .blob)
      }
    }
  }

  /// Stores a new request with the next id ("E000001").
  public func createExport(_ record: ExportRecord) async throws -> ExportRecord {
    try await writer.write { db in
      var record = record
      let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM export_request") ?? 0
      record.id = "E" + String(format: "%06d", count + 1)
      try record.insert(db)
      return record
    }
  }

  public func exportRequest(_ id: String) async throws -> ExportRecord? {
    try await writer.read { db in try ExportRecord.fetchOne(db, key: id) }
  }

  /// The request `id`, still waiting for its decision (checked inside the deciding transaction).
  static func waitingExport(_ db: Database, _ id: String) throws -> ExportRecord {
    guard let record = try ExportRecord.fetchOne(db, key: id) else { throw StoreError(.notFound, "id: no export '\(id)'") }
    guard record.state == .requested else {
      throw StoreError(.failedPrecondition, "id: export \(id) is \(record.state.rawValue), not waiting for a decision")
    }
    return record
  }

  static let exportFileContext = "export_request.file"

  /// Approves a request still waiting, with its file, in one transaction: two approvers racing
  /// cannot both decide.
  public func approveExport(
    _ id: String, fullApproved: [ExportField], note: String?, file: Data, rows: Int, by: String, role: Role, at: Int64
  ) async throws -> ExportRecord {
    try await writer.write { db in
      var record = try Self.waitingExport(db, id)
      record.state = .approved
      record.fullApproved = fullApproved.map(\.rawValue).joined(separator: ",")
      record.note = note
      record.decidedBy = by
      record.decidedRole = role.rawValue
      record.decidedAt = at
      // Kept sealed (it may hold approved full fields); the hash is of what the requester gets.
      record.file = keys.seal(data: file, context: Self.exportFileContext)
      record.rows = rows
      record.sha256 = SHA256.hash(data: file).lowercaseHex
      record.expiresAt = at + Int64(ExportRules.downloadDays) * 86400
      try record.update(db)
      record.file = file
      return record
    }
  }

  public func rejectExport(_ id: String, note: String, by: String, role: Role, at: Int64) async throws -> ExportRecord {
    try await writer.write { db in
      var record = try Self.waitingExport(db, id)
      record.state = .rejected
      record.note = note
      record.decidedBy = by
      record.decidedRole = role.rawValue
      record.decidedAt = at
      try record.update(db)
      return record
    }
  }

  /// The file for a download, counted; an export past its window expires here (its file goes).
  public func downloadExport(_ id: String, at: Int64) async throws -> ExportRecord {
    try await writer.write { db in
      guard var record = try ExportRecord.fetchOne(db, key: id) else { throw StoreError(.notFound, "id: no export '\(id)'") }
      if record.state == .approved, let expires = record.expiresAt, expires <= at {
        record.state = .expired
        record.file = nil
        try record.update(db)
      }
      guard record.state == .approved, record.file != nil else {
        throw StoreError(.failedPrecondition, "id: export \(id) is \(record.state.rawValue); only an approved export can be downloaded, within \(ExportRules.downloadDays) days")
      }
      record.downloads += 1
      try record.update(db)
      record.file = try record.file.map { try keys.open(data: $0, context: Self.exportFileContext) }
      return record
    }
  }

  /// Approved exports past their window: expired, files removed. Returns how many.
  @discardableResult
  public func expireExports(at: Int64) async throws -> Int {
    try await writer.write { db in
      try db.execute(
        sql: "UPDATE export_request SET state = 'expired', file = NULL WHERE state = 'approved' AND expiresAt <= ?", arguments: [at])
      return db.changesCount
    }
  }

  /// Requests, newest first: of one kindergarten, or of the district (nil), optionally in one
  /// state; `requestedBy` narrows to one requester.
  public func exports(
    kindergartenCode: String??, requestedBy: String?, ownership: Ownership?, state: ExportState?, offset: Int, limit: Int
  ) async throws -> (exports: [ExportRecord], total: Int) {
    try await writer.read { db in
      var request = ExportRecord.all()
      if let code = kindergartenCode {
        request = code.map { request.filter(Column("kindergartenCode") == $0) } ?? request.filter(Column("kindergartenCode") == nil)
      }
      if let requestedBy { request = request.filter(Column("requestedBy") == requestedBy) }
      if let ownership {
        request = request.filter(
          sql: "(kindergartenCode IN (SELECT code FROM kindergarten WHERE ownership = ?) OR (kindergartenCode IS NULL AND ownershipScope = ?))",
          arguments: [ownership.rawValue, ownership.rawValue])
      }
      if let state { request = request.filter(Column("state") == state.rawValue) }
      let total = try request.fetchCount(db)
      var rows = try request.order(Column("requestedAt").desc, Column("id").desc).limit(limit, offset: offset).fetchAll(db)
      for i in rows.indices { rows[i].file = nil }
      return (rows, total)
    }
  }
}
