internal import Foundation
public import GRDB
public import PEMISDomain

/// An obligation of one kindergarten under one of the regulation's time limits.
public struct ObligationRecord: Codable, Sendable, Hashable, FetchableRecord, PersistableRecord {
  public static let databaseTableName = "obligation"
  public var id: Int64?
  public var kindergartenCode: String
  public var kind: ObligationKind
  public var subject: String
  public var triggeredOn: String
  /// Nil while the calendar lacks the year the due date falls in (docs/DEADLINES.md).
  public var dueOn: String?
  public var createdAt: Int64
  public var doneAt: Int64?
  public var doneBy: String?
  public var doneOn: String?

  public init(kindergartenCode: String, kind: ObligationKind, subject: String, triggeredOn: CalendarDate, dueOn: CalendarDate?, createdAt: Int64) {
    self.kindergartenCode = kindergartenCode
    self.kind = kind
    self.subject = subject
    self.triggeredOn = triggeredOn.description
    self.dueOn = dueOn?.description
    self.createdAt = createdAt
  }

  public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

  public func status(today: CalendarDate) -> ObligationStatus {
    // Without a due date yet (calendar year missing) nothing can be late.
    let due = dueOn.flatMap(CalendarDate.init(iso:)) ?? CalendarDate(year: 9999, month: 12, day: 31)
    return ObligationStatus.of(due: due, doneOn: doneOn.flatMap(CalendarDate.init(iso:)), today: today)
  }
}

extension Registry {
  static func registerDeadlineMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v2-obligations") { db in
      try db.create(table: "obligation") { t in
        t.autoIncrementedPrimaryKey("id")
        t.column("kindergartenCode", .text).notNull()
        t.column("kind", .text).notNull()
        t.column("subject", .text).notNull()
        t.column("triggeredOn", .text).notNull()
        t.column("dueOn", .text)
        t.column("createdAt", .integer).notNull()
        t.column("doneAt", .integer)
        t.column("doneBy", .text)
        t.column("doneOn", .text)
        // The same event never opens the same obligation twice (idempotent triggers).
        t.uniqueKey(["kindergartenCode", "kind", "subject", "triggeredOn"])
      }
      try db.create(index: "obligation_open_by_due", on: "obligation", columns: ["doneAt", "dueOn"])
      try db.create(table: "term") { t in
        t.primaryKey("name", .text)
        t.column("startsOn", .text).notNull()
        t.column("setBy", .text).notNull()
        t.column("setAt", .integer).notNull()
      }
    }
  }

  /// Computes the due dates that were left open because the calendar lacked their year (run at
  /// start, after a new `Config/calendar/<year>.json` was added). Returns how many it filled.
  @discardableResult
  public func fillMissingDueDates(_ calendar: WorkingDayCalendar) async throws -> Int {
    try await writer.write { db in
      var filled = 0
      for var obligation in try ObligationRecord.filter(Column("dueOn") == nil).fetchAll(db) {
        guard let triggered = CalendarDate(iso: obligation.triggeredOn),
          let due = try? obligation.kind.due(after: triggered, in: calendar)
        else { continue }
        obligation.dueOn = due.description
        try obligation.update(db)
        filled += 1
      }
      return filled
    }
  }

  static func registerRecordNumberMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v3-record-numbers") { db in
      // District-wide sequences for "J" record numbers, one per division and birth date.
      try db.create(table: "record_number_sequence") { t in
        t.primaryKey("prefix", .text)
        t.column("next", .integer).notNull()
      }
    }
  }

  /// The next sequence number for a record-number prefix, unique across the district.
  public func nextRecordSequence(prefix: String) async throws -> Int {
    try await writer.write { db in
      let current = try Int.fetchOne(db, sql: "SELECT next FROM record_number_sequence WHERE prefix = ?", arguments: [prefix]) ?? 0
      try db.execute(
        sql: "INSERT INTO record_number_sequence (prefix, next) VALUES (?, ?) ON CONFLICT(prefix) DO UPDATE SET next = excluded.next",
        arguments: [prefix, current + 1])
      return current
    }
  }

  /// A sequence number for each prefix, `count` of them in a row: returns the first of each.
  /// One transaction, for batch imports.
  public func nextRecordSequences(_ counts: [String: Int]) async throws -> [String: Int] {
    try await writer.write { db in
      var first: [String: Int] = [:]
      for (prefix, count) in counts {
        let current = try Int.fetchOne(db, sql: "SELECT next FROM record_number_sequence WHERE prefix = ?", arguments: [prefix]) ?? 0
        try db.execute(
          sql: "INSERT INTO record_number_sequence (prefix, next) VALUES (?, ?) ON CONFLICT(prefix) DO UPDATE SET next = excluded.next",
          arguments: [prefix, current + count])
        first[prefix] = current
      }
      return first
    }
  }

  /// Events whose entry is their own report: opens each obligation (unless the same event
  /// already did) and discharges it, in one transaction. Returns those this call discharged (an
  /// event reported twice is discharged once).
  @discardableResult
  public func recordReported(_ obligations: [ObligationRecord], by: String, at: Int64, on day: CalendarDate) async throws -> [ObligationRecord] {
    try await writer.write { db in try Self.recordReported(db, obligations, by: by, at: at, on: day) }
  }

  static func recordReported(_ db: Database, _ obligations: [ObligationRecord], by: String, at: Int64, on day: CalendarDate) throws -> [ObligationRecord] {
    var discharged: [ObligationRecord] = []
    for obligation in obligations {
      try obligation.insert(db, onConflict: .ignore)
      let key: StatementArguments = [obligation.kindergartenCode, obligation.kind.rawValue, obligation.subject, obligation.triggeredOn]
      try db.cachedStatement(
        sql: """
          UPDATE obligation SET doneAt = ?, doneBy = ?, doneOn = ?
          WHERE kindergartenCode = ? AND kind = ? AND subject = ? AND triggeredOn = ? AND doneAt IS NULL
          """
      ).execute(arguments: [at, by, day.description] + key)
      if db.changesCount > 0,
        let done = try db.cachedRecord(
          ObligationRecord.self, "SELECT * FROM obligation WHERE kindergartenCode = ? AND kind = ? AND subject = ? AND triggeredOn = ?", key)
      {
        discharged.append(done)
      }
    }
    return discharged
  }


  static func registerMonthlyAuditMigrations(_ migrator: inout DatabaseMigrator) {
    migrator.registerMigration("v4-monthly-audits") { db in
      // Settings the registry keeps for itself: how far the monthly audits are opened.
      try db.create(table: "registry_meta") { t in
        t.primaryKey("key", .text)
        t.column("value", .text).notNull()
      }
    }
  }

  /// A value the registry keeps for itself (`registry_meta`).
  public func meta(_ key: String) async throws -> String? {
    try await writer.read { db in try String.fetchOne(db, sql: "SELECT value FROM registry_meta WHERE key = ?", arguments: [key]) }
  }

  public func setMeta(_ key: String, _ value: String) async throws {
    try await writer.write { db in
      try db.execute(
        sql: "INSERT INTO registry_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", arguments: [key, value])
    }
  }

  /// The subject of a month's audit obligation.
  public static func monthlyAuditSubject(_ month: YearMonth) -> String { "month:\(month)" }

  /// Opens the principal's monthly audit (Art. 11) of every month that has ended, through
  /// `last`, for every kindergarten active in it: due 3 working days after the month. Months
  /// opened before are skipped. Returns how many obligations it opened.
  @discardableResult
  public func openMonthlyAudits(through last: YearMonth, calendar: WorkingDayCalendar, at: Int64) async throws -> Int {
    try await writer.write { db in
      let through = try String.fetchOne(db, sql: "SELECT value FROM registry_meta WHERE key = 'monthlyAuditsOpenedThrough'")
        .flatMap(YearMonth.init(text:))
      if let through, through >= last { return 0 }
      var opened = 0
      for row in try Row.fetchAll(db, sql: "SELECT code, activatedAt FROM kindergarten") {
        var month = YearMonth(CalendarDate(beijingTimeOf: row["activatedAt"]))
        if let through, month <= through { month = through.next }
        while month <= last {
          let due = try? ObligationKind.monthlyAudit.due(after: month.last, in: calendar)
          let obligation = ObligationRecord(
            kindergartenCode: row["code"], kind: .monthlyAudit, subject: Self.monthlyAuditSubject(month), triggeredOn: month.last, dueOn: due,
            createdAt: at)
          try obligation.insert(db, onConflict: .ignore)
          opened += db.changesCount
          month = month.next
        }
      }
      try db.execute(
        sql: "INSERT INTO registry_meta (key, value) VALUES ('monthlyAuditsOpenedThrough', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        arguments: [last.description])
      return opened
    }
  }

  /// One obligation of a kindergarten, by kind and subject.
  public func obligation(kindergarten code: String, kind: ObligationKind, subject: String) async throws -> ObligationRecord? {
    try await writer.read { db in
      try ObligationRecord.filter(Column("kindergartenCode") == code && Column("kind") == kind.rawValue && Column("subject") == subject).fetchOne(db)
    }
  }

  /// Opens obligations, ignoring any the same event already opened.
  public func openObligations(_ obligations: [ObligationRecord]) async throws {
    try await writer.write { db in
      for obligation in obligations { try obligation.insert(db, onConflict: .ignore) }
    }
  }

  /// Records a term's start and opens the re-verification obligations of every kindergarten
  /// that had its accounts by the start (``TimeOrder/owesTermVerification(accountsIssuedOn:termStartsOn:)``),
  /// in one transaction. Returns how many kindergartens owe it.
  public func startTerm(
    name: String, startsOn: CalendarDate, dueOn: CalendarDate, by: String, at: Int64
  ) async throws -> Int {
    try await writer.write { db in
      if let existing = try Row.fetchOne(db, sql: "SELECT startsOn FROM term WHERE name = ?", arguments: [name]) {
        throw StoreError(.alreadyExists, "term: '\(name)' already started on \(existing["startsOn"] as String)")
      }
      try db.execute(sql: "INSERT INTO term (name, startsOn, setBy, setAt) VALUES (?, ?, ?, ?)", arguments: [name, startsOn.description, by, at])
      let codes = try Row.fetchAll(db, sql: "SELECT code, activatedAt FROM kindergarten").filter {
        TimeOrder.owesTermVerification(accountsIssuedOn: CalendarDate(beijingTimeOf: $0["activatedAt"]), termStartsOn: startsOn)
      }.map { $0["code"] as String }
      for code in codes {
        for area in DataArea.allCases {
          let obligation = ObligationRecord(
            kindergartenCode: code, kind: .termVerification, subject: "\(name):\(area.rawValue)", triggeredOn: startsOn,
            dueOn: dueOn, createdAt: at)
          try obligation.insert(db, onConflict: .ignore)
        }
      }
      return codes.count
    }
  }

  /// Marks a kindergarten's open obligations of these kinds done, where the subject matches.
  @discardableResult
  public func completeObligations(
    kindergarten code: String, kinds: [ObligationKind], subject: @Sendable @escaping (String) -> Bool, by: String, at: Int64,
    on day: CalendarDate
  ) async throws -> [ObligationRecord] {
    try await writer.write { db in
      let open = try ObligationRecord
        .filter(Column("kindergartenCode") == code && kinds.map(\.rawValue).contains(Column("kind")) && Column("doneAt") == nil)
        .fetchAll(db)
      var done: [ObligationRecord] = []
      for var obligation in open where subject(obligation.subject) {
        obligation.doneAt = at
        obligation.doneBy = by
        obligation.doneOn = day.description
        try obligation.update(db)
        done.append(obligation)
      }
      return done
    }
  }

  public enum ObligationFilter: Sendable { case all, open, due, overdue, done }

  /// One kindergarten's obligations, or every kindergarten's in `codes` when `code` is nil.
  public func obligations(
    kindergarten code: String?, filter: ObligationFilter, today: CalendarDate, ownership: Ownership? = nil,
    offset: Int, limit: Int
  ) async throws -> (obligations: [ObligationRecord], total: Int) {
    try await writer.read { db in
      var request = ObligationRecord.all()
      if let code { request = request.filter(Column("kindergartenCode") == code) }
      if let ownership {
        request = request.filter(
          sql: "kindergartenCode IN (SELECT code FROM kindergarten WHERE ownership = ?)", arguments: [ownership.rawValue])
      }
      let todayText = today.description
      switch filter {
      case .all: break
      case .open: request = request.filter(Column("doneAt") == nil)
      case .due: request = request.filter(Column("doneAt") == nil && (Column("dueOn") >= todayText || Column("dueOn") == nil))
      case .overdue: request = request.filter(Column("doneAt") == nil && Column("dueOn") < todayText)
      case .done: request = request.filter(Column("doneAt") != nil)
      }
      let page = try request.order(Column("dueOn"), Column("kindergartenCode"), Column("id")).limit(limit, offset: offset).fetchAll(db)
      return (page, try request.fetchCount(db))
    }
  }
}
