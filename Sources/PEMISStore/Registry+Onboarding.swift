internal import Foundation
public import GRDB
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
    _ change: @Sendable (inout ApplicationRecord, Database) throws -> Void = { _, _ in }
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

  public func kindergarten(_ code: String) async throws -> KindergartenRecord? {
    try await writer.read { db in try KindergartenRecord.fetchOne(db, key: code) }
  }

  public func kindergartens(ownership: Ownership?, offset: Int, limit: Int) async throws -> (kindergartens: [KindergartenRecord], total: Int) {
    try await writer.read { db in
      let request = ownership.map { KindergartenRecord.filter(Column("ownership") == $0.rawValue) } ?? KindergartenRecord.all()
      return (try request.order(Column("code")).limit(limit, offset: offset).fetchAll(db), try request.fetchCount(db))
    }
  }
}
