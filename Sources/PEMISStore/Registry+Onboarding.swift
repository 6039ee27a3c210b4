internal import Foundation
internal import GRDB
internal import Synchronization
public import PEMISDomain

extension Registry {
  /// Inserts a new application with the next id ("A000001", …) and its first event.
  public func submitApplication(
    form: ApplicationForm, actor: String, actorRole: Role, at: Int64
  ) async throws -> ApplicationRecord {
    try await writer.write { db in
      let count = try ApplicationRecord.fetchCount(db)
      let id = "A" + String(format: "%06d", count + 1)
      let record = ApplicationRecord(id: id, form: form, createdAt: at)
      try record.insert(db)
      try OnboardingEventRecord(applicationId: id, step: OnboardingStep.submit.rawValue, actor: actor, actorRole: actorRole, at: at)
        .insert(db)
      return record
    }
  }

  public func application(_ id: String) async throws -> ApplicationRecord? {
    try await writer.read { db in try ApplicationRecord.fetchOne(db, key: id) }
  }

  public func onboardingEvents(_ id: String) async throws -> [OnboardingEventRecord] {
    try await writer.read { db in
      try OnboardingEventRecord.filter(Column("applicationId") == id).order(Column("id")).fetchAll(db)
    }
  }

  /// Takes one onboarding step in one transaction: checks the state machine against the stored
  /// state (so two clerks racing cannot both succeed), applies `change`, records the event.
  public func takeStep(
    _ step: OnboardingStep, application id: String, actor: String, actorRole: Role, at: Int64, note: String = "",
    _ change: @escaping @Sendable (inout ApplicationRecord) throws -> Void = { _ in }
  ) async throws -> ApplicationRecord {
    try await takeStep(step, application: id, actor: actor, actorRole: actorRole, at: at, note: note) { record, _ in try change(&record) }
  }

  /// Admits an application with its institution code (Appendix 1): the code is given to one
  /// kindergarten only, checked in the step's own transaction.
  public func admit(application id: String, code: String, actor: String, actorRole: Role, at: Int64) async throws -> ApplicationRecord {
    try await takeStep(.admit, application: id, actor: actor, actorRole: actorRole, at: at, note: code) { record, db in
      if let other = try String.fetchOne(
        db, sql: "SELECT id FROM application WHERE institutionCode = ? AND id <> ?", arguments: [code, record.id])
      {
        throw StoreError(.alreadyExists, "institution_code: \(code) is already assigned to application \(other)")
      }
      record.institutionCode = code
    }
  }

  func takeStep(
    _ step: OnboardingStep, application id: String, actor: String, actorRole: Role, at: Int64, note: String = "",
    _ change: @Sendable (inout ApplicationRecord, Database) throws -> Void
  ) async throws -> ApplicationRecord {
    try await writer.write { db in
      guard var record = try ApplicationRecord.fetchOne(db, key: id) else {
        throw StoreError(.notFound, "application_id: no application '\(id)'")
      }
      record.state = try step.apply(to: record.state)
      try change(&record, db)
      record.updatedAt = at
      try record.update(db)
      try OnboardingEventRecord(applicationId: id, step: step.rawValue, actor: actor, actorRole: actorRole, at: at, note: note)
        .insert(db)
      return record
    }
  }

  /// Issues a kindergarten's accounts (Appendix 1, the last step), in one transaction: the
  /// application's step, its two accounts, the kindergarten's activation and the obligations
  /// that activation starts (Art. 13) — all or nothing, so no kindergarten is active without
  /// its deadlines. The shard exists before this is called (the routing layer's order).
  public func issueAccounts(
    application id: String, code: String, accounts: [AccountRecord], obligations: [ObligationRecord], actor: String, actorRole: Role,
    at: Int64
  ) async throws -> ApplicationRecord {
    try await takeStep(.issueAccounts, application: id, actor: actor, actorRole: actorRole, at: at, note: accounts.map(\.username).joined(separator: ", ")) {
      record, db in
      for account in accounts where try AccountRecord.exists(db, key: account.username) {
        throw StoreError(.alreadyExists, "username: '\(account.username)' is already taken")
      }
      for account in accounts { try account.insert(db) }
      try KindergartenRecord(code: code, name: record.name, ownership: record.ownership, applicationId: record.id, activatedAt: at).insert(db)
      for obligation in obligations { try obligation.insert(db, onConflict: .ignore) }
    }
  }

  public func applications(
    state: OnboardingState?, ownership: Ownership?, offset: Int, limit: Int
  ) async throws -> (applications: [ApplicationRecord], total: Int) {
    try await writer.read { db in
      var request = ApplicationRecord.all()
      if let state { request = request.filter(Column("state") == state.rawValue) }
      if let ownership { request = request.filter(Column("ownership") == ownership.rawValue) }
      return (try request.order(Column("id")).limit(limit, offset: offset).fetchAll(db), try request.fetchCount(db))
    }
  }

  /// Load tools only: registers many active kindergartens at once (application, kindergarten and
  /// one principal account each, sharing a password hash), in one transaction. Real kindergartens
  /// come through onboarding.
  public func seedActiveKindergartens(
    _ kindergartens: [(code: String, name: String, ownership: Ownership)], principalPasswordHash: String, at: Int64
  ) async throws {
    try await writer.write { db in
      var next = try ApplicationRecord.fetchCount(db) + 1
      for k in kindergartens {
        let id = "A" + String(format: "%06d", next)
        next += 1
        let form = ApplicationForm(
          name: k.name, ownership: k.ownership, licenceNumber: "seed-\(k.code)", address: "seeded", sponsor: "seeded",
          approvalDate: CalendarDate(year: 2020, month: 1, day: 1), openingDate: CalendarDate(year: 2020, month: 9, day: 1),
          childrenCount: 300, staffCount: 40, property: "owned")
        var application = ApplicationRecord(id: id, form: form, createdAt: at)
        application.state = .active
        application.institutionCode = k.code
        try application.insert(db)
        try KindergartenRecord(code: k.code, name: k.name, ownership: k.ownership, applicationId: id, activatedAt: at).insert(db)
        var principal = AccountRecord(
          username: "p\(k.code)", role: .principal, kindergartenCode: k.code, displayName: "principal \(k.code)",
          passwordHash: principalPasswordHash, createdAt: at)
        principal.mustChangePassword = false
        try principal.insert(db)
      }
    }
  }

  /// An active kindergarten. Found ones are kept in memory: a kindergarten row is written once,
  /// when its accounts are issued, and never changed, and every call's authorization asks.
  public func kindergarten(_ code: String) async throws -> KindergartenRecord? {
    if let known = knownKindergartens.withLock({ $0[code] }) { return known }
    let found = try await writer.read { db in
      try db.cachedRecord(KindergartenRecord.self, "SELECT * FROM kindergarten WHERE code = ?", [code])
    }
    if let found { knownKindergartens.withLock { $0[code] = found } }
    return found
  }

  public func kindergartens(ownership: Ownership?, offset: Int, limit: Int) async throws -> (kindergartens: [KindergartenRecord], total: Int) {
    try await writer.read { db in
      let request = ownership.map { KindergartenRecord.filter(Column("ownership") == $0.rawValue) } ?? KindergartenRecord.all()
      return (try request.order(Column("code")).limit(limit, offset: offset).fetchAll(db), try request.fetchCount(db))
    }
  }
}
