internal import Foundation
internal import Logging
public import PEMISDomain
public import PEMISStore

/// Every change of a child that touches the district index and a shard, in one fixed order:
/// **reserve** the index rows as they will be (checked against the identity rules; the
/// reservation has an owner and a lease) → **write the shard** → **confirm** (the index takes
/// what the shard now holds, and the change's obligations are reported, in one registry
/// transaction). A failed shard write releases the reservation; a crash leaves it to recovery,
/// which looks at the shard and finishes it either way. Services call these methods; none of
/// them writes the index or two files itself.
extension Router {
  /// A child's identity is already taken (active elsewhere, deceased, being changed, or the same
  /// person enrolled here): where, masked, and what to do instead.
  public struct IdentityConflict: Sendable, CustomStringConvertible {
    public var field: String
    public var conflict: Registry.IndexConflict
    public var here: String

    public var message: String {
      let existing = conflict.existing
      let masked = IDDocuments.mask(existing.recordNumber)
      switch conflict.reason {
      case .active where existing.kindergartenCode == here:
        return "already enrolled here as \(masked) (\(existing.state.rawValue))"
      case .active:
        return "this child is already enrolled at kindergarten \(existing.kindergartenCode) as \(masked)"
          + " (\(existing.state.rawValue)); to move the child here, that kindergarten transfers it out (pemis transfer out)"
      case .deceased:
        return "the record \(masked) at kindergarten \(existing.kindergartenCode) with this identity was closed by death;"
          + " if that record is wrong, the Preschool Education Office corrects it before the child is enrolled"
      case .beingChanged:
        return "the record \(masked) with this identity is being changed at kindergarten \(existing.kindergartenCode); try again in a moment"
      case .samePersonHere:
        return "a child with the same name, gender and birth date and no ID document is already enrolled here as \(masked)"
      case .inTransfer:
        let transfer = conflict.transfer
        return "the record \(masked) is in transfer \(transfer?.id ?? "") from kindergarten \(transfer?.fromCode ?? existing.kindergartenCode)"
          + " to \(transfer?.toCode ?? "another") (\(transfer?.state.rawValue ?? "open")), which has not ended; it is changed again only"
          + " after the receiver takes the child in or the transfer is cancelled, declined or aborted (pemis transfer list)"
      }
    }
    public var description: String { "\(field): \(message)" }

    /// The status it is given: a change in progress is worth retrying, the rest are not.
    public var storeError: StoreError {
      switch conflict.reason {
      case .beingChanged: StoreError(.aborted, description)
      // A transfer mid-step is ended by recovery within a minute: worth retrying. One waiting
      // for the receiver (`out`) waits for people.
      case .inTransfer where conflict.transfer?.state.isInFlight ?? false: StoreError(.aborted, description)
      case .deceased, .inTransfer: StoreError(.failedPrecondition, description)
      case .active, .samePersonHere: StoreError(.alreadyExists, description)
      }
    }
  }

  /// A new reservation of this process, its lease starting now.
  func newReservation(
    _ code: String, purpose: String, obligations: [ObligationRecord], completions: [ObligationCompletion] = [], by: String
  ) -> IndexReservation {
    IndexReservation(
      id: "R" + UUID().uuidString, kindergartenCode: code, owner: instance, leaseUntil: now() + leaseSeconds, purpose: purpose,
      obligations: obligations, completions: completions, reportedBy: by, createdAt: now())
  }

  /// A change of one kindergarten's shard that the registry must hear of (its own report of an
  /// obligation, or the discharge of one): the same order as a child's change, with no index
  /// rows — reserve → shard (marked with the reservation) → confirm, recovered alike.
  public func reportedChange<T: Sendable>(
    _ operation: String, in shard: TenantShard, obligations: [ObligationRecord] = [], completions: [ObligationCompletion] = [], by: String,
    write: @Sendable () async throws -> T
  ) async throws -> T {
    try await indexedChange(operation, in: shard.code.rawValue, rows: [], obligations: obligations, completions: completions, by: by) {
      (try await write(), [])
    }
  }

  /// An obligation its own entry discharges, due by the rule of its kind (for `reportedChange`).
  public func reportedObligation(_ kind: ObligationKind, in shard: TenantShard, subject: String, on date: CalendarDate) -> ObligationRecord {
    reported(kind, shard.code.rawValue, subject: subject, on: date)
  }

  /// The fixed order of every indexed change: reserve `rows` (as they will be), run `write` on
  /// the shard, confirm with what the shard returned. Named fault points sit between the steps.
  func indexedChange<T: Sendable>(
    _ operation: String, in code: String, rows: [ChildIndexRecord], obligations: [ObligationRecord],
    completions: [ObligationCompletion] = [], by: String, field: String = "record_number",
    write: () async throws -> (T, [ChildRow])
  ) async throws -> T {
    let reservation = newReservation(code, purpose: operation, obligations: obligations, completions: completions, by: by)
    let conflicts = try await registry.reserve(rows, as: reservation)
    if let conflict = conflicts.first {
      throw IdentityConflict(field: field, conflict: conflict, here: code).storeError
    }
    return try await writeReserved(operation, reservation, in: code, write: write)
  }

  /// The steps after a reservation: the shard write marked with it, then the confirmation; a
  /// failed write releases it. Named fault points sit before and after the write.
  func writeReserved<T: Sendable>(
    _ operation: String, _ reservation: IndexReservation, in code: String, write: () async throws -> (T, [ChildRow])
  ) async throws -> T {
    let result: T
    let written: [ChildRow]
    do {
      try faults.hit("\(operation).reserved")
      // Marked: the shard records the reservation in the same transaction, so recovery can ask
      // the shard whether this change happened.
      (result, written) = try await TenantShard.$changeMarker.withValue(reservation.id) { try await write() }
    } catch let crash as FaultInjected where crash.kind == .crash {
      throw crash  // a simulated crash does no cleanup: recovery must
    } catch {
      try? await registry.release(reservation: reservation.id)
      throw error
    }
    try faults.hit("\(operation).written")
    try await registry.confirm(reservation: reservation.id, rows: written.map { Self.indexRow($0, code: code, at: now()) }, at: now())
    return result
  }

  static func indexRow(_ row: ChildRow, code: String, at: Int64) -> ChildIndexRecord {
    ChildIndexRecord(recordNumber: row.recordNumber, kindergartenCode: code, state: row.state, child: row.data, updatedAt: at)
  }

  /// An obligation that its own entry discharges (enrollment, leaving, …), for a reservation.
  func reported(_ kind: ObligationKind, _ code: String, subject: String, on date: CalendarDate) -> ObligationRecord {
    ObligationRecord(kindergartenCode: code, kind: kind, subject: subject, triggeredOn: date, dueOn: try? kind.due(after: date, in: calendar), createdAt: now())
  }

  // MARK: New children

  /// "G" numbers from the ID; "J" numbers for the others, their sequences taken from the
  /// registry in one transaction (a number a failed enrollment took is skipped, never reused).
  func recordNumbers(for children: [ChildRecord]) async throws -> [String] {
    var counts: [String: Int] = [:]
    for child in children where child.identityRecordNumber == nil {
      counts[child.householdRegister + child.birthDate.description, default: 0] += 1
    }
    var next = counts.isEmpty ? [:] : try await registry.nextRecordSequences(counts)
    return try children.map { child in
      if let number = child.identityRecordNumber { return number }
      let prefix = child.householdRegister + child.birthDate.description
      let sequence = next[prefix, default: 0]
      next[prefix] = sequence + 1
      guard let number = RecordNumbers.jNumber(division: child.householdRegister, birthDate: child.birthDate, gender: child.gender, sequence: sequence)
      else {
        throw StoreError(.resourceExhausted, "record_number: no J record number left for \(prefix)")
      }
      return number
    }
  }

  /// Enrolls one child (Art. 15(3): its entry is its own report), numbering it first.
  public func enroll(_ child: ChildRecord, in shard: TenantShard, classId: String?, midTerm: Bool, by: String) async throws -> ChildRow {
    let recordNumber = try await recordNumbers(for: [child])[0]
    return try await enroll(child, recordNumber: recordNumber, in: shard, classId: classId, midTerm: midTerm, by: by)
  }

  /// Enrolls one child under a record number already given.
  public func enroll(
    _ child: ChildRecord, recordNumber: String, in shard: TenantShard, classId: String?, midTerm: Bool, by: String
  ) async throws -> ChildRow {
    let code = shard.code.rawValue
    let row = ChildIndexRecord(recordNumber: recordNumber, kindergartenCode: code, state: .enrolled, child: child, updatedAt: now())
    return try await indexedChange(
      "enroll", in: code, rows: [row], obligations: [reported(.enrollment, code, subject: registry.childReferences.subject(recordNumber: recordNumber), on: child.entryDate)], by: by,
      field: "child.id_document_number"
    ) {
      let written = try await shard.enroll(child, recordNumber: recordNumber, classId: classId, midTerm: midTerm, by: by, at: now())
      return (written, [written])
    }
  }

  /// Imports new children, all or none, numbering them first.
  public func importChildren(_ rows: [TenantShard.ImportRow], in shard: TenantShard, by: String) async throws -> [(row: Int, error: DomainError)] {
    let numbers = try await recordNumbers(for: rows.map(\.child))
    return try await importChildren(Array(zip(rows, numbers)).map { (row: $0.0, recordNumber: $0.1) }, in: shard, by: by)
  }

  /// Imports new children under record numbers already given, all or none. Rows whose identity
  /// is taken come back as row failures (nothing is written then); otherwise they are enrolled.
  public func importChildren(
    _ rows: [(row: TenantShard.ImportRow, recordNumber: String)], in shard: TenantShard, by: String
  ) async throws -> [(row: Int, error: DomainError)] {
    let code = shard.code.rawValue
    let indexRows = rows.map {
      ChildIndexRecord(recordNumber: $0.recordNumber, kindergartenCode: code, state: .enrolled, child: $0.row.child, updatedAt: now())
    }
    let reservation = newReservation(
      code, purpose: "import", obligations: rows.map { reported(.enrollment, code, subject: registry.childReferences.subject(recordNumber: $0.recordNumber), on: $0.row.child.entryDate) },
      by: by)
    let conflicts = try await registry.reserve(indexRows, as: reservation)
    guard conflicts.isEmpty else {
      return conflicts.map { conflict in
        (rows[conflict.position].row.number,
         DomainError(field: "id_document_number", rule: "duplicate", IdentityConflict(field: "id_document_number", conflict: conflict, here: code).message))
      }
    }
    try await writeReserved("import", reservation, in: code) {
      let written = try await shard.applyImport(rows, by: by, at: now())
      return ((), written)
    }
    return []
  }

  // MARK: Children leaving

  /// How a child's attendance ends.
  public enum Ending: Sendable, Hashable {
    case leave
    case accidentalDeparture(death: Bool)

    var event: ChildEvent {
      switch self {
      case .leave: .leave
      case .accidentalDeparture(let death): death ? .recordDeath : .accidentalDeparture
      }
    }
    var obligation: ObligationKind {
      switch self {
      case .leave: .otherChange
      case .accidentalDeparture: .accidentalDeparture
      }
    }
  }

  /// A child leaves or departs. A child pending transfer-out is first returned to enrolled by
  /// cancelling its transfer (so no transfer waits for a child who left); one whose transfer the
  /// receiver is taking in right now is refused.
  public func endAttendance(
    _ recordNumber: String, in shard: TenantShard, ending: Ending, on date: CalendarDate, reason: String, by: String
  ) async throws -> ChildRow {
    let code = shard.code.rawValue
    guard var current = try await shard.child(recordNumber) else {
      throw StoreError(.notFound, "record_number: no child \(IDDocuments.mask(recordNumber)) here")
    }
    if current.state == .pendingTransferOut, let transferId = current.transferId {
      let why = ending == .leave ? "the child left" : "an accidental departure was recorded"
      _ = try await cancel(transferId, at: code, reason: why, by: by)
      guard let reverted = try await shard.child(recordNumber) else { throw StoreError(.notFound, "record_number: no child here") }
      current = reverted
    }
    let next = try ending.event.apply(to: current.state)
    var after = Self.indexRow(current, code: code, at: now())
    after.state = next
    after.active = next.isActive
    let subject = registry.childReferences.subject(recordNumber: recordNumber, suffix: ending == .leave ? ":left" : "")
    return try await indexedChange(
      ending == .leave ? "leave" : "depart", in: code, rows: [after], obligations: [reported(ending.obligation, code, subject: subject, on: date)],
      by: by
    ) {
      let row = try await shard.endAttendance(recordNumber, event: ending.event, on: date, reason: reason, by: by, at: now())
      return (row, [row])
    }
  }

  /// Graduates a class's enrolled children (Art. 15: the promotion report). With `apply: false`
  /// only says what it would do.
  public func graduateClass(
    _ classId: String, in shard: TenantShard, on date: CalendarDate, apply: Bool, by: String
  ) async throws -> TenantShard.ClassStep {
    let preview = try await shard.graduateClass(classId, on: date, apply: false, by: by, at: now())
    guard apply else { return preview }
    let code = shard.code.rawValue
    let rows = preview.children.map { Self.indexRow($0, code: code, at: now()) }
    return try await indexedChange(
      "graduate", in: code, rows: rows,
      obligations: [reported(.promotion, code, subject: "class:\(classId) graduation", on: date)], by: by
    ) {
      let step = try await shard.graduateClass(classId, on: date, apply: true, by: by, at: now())
      return (step, step.children)
    }
  }

  /// Soft-deletes a record to resolve a duplicate case (it stays visible, and never blocks).
  func softDelete(_ recordNumber: String, in shard: TenantShard, reason: String, by: String) async throws -> ChildRow {
    let code = shard.code.rawValue
    guard let current = try await shard.child(recordNumber) else {
      throw StoreError(.notFound, "record_number: no child \(IDDocuments.mask(recordNumber)) here")
    }
    if current.state == .pendingTransferOut {
      throw StoreError(
        .failedPrecondition, "record_number: \(IDDocuments.mask(recordNumber)) is pending transfer-out (\(current.transferId ?? "")); cancel the transfer first")
    }
    var after = Self.indexRow(current, code: code, at: now())
    after.state = try ChildEvent.delete.apply(to: current.state)
    after.active = false
    return try await indexedChange("delete", in: code, rows: [after], obligations: [], by: by) {
      let row = try await shard.softDelete(recordNumber, reason: reason, by: by, at: now())
      return (row, [row])
    }
  }

  // MARK: Key information

  /// Decides a key-information change. An approval gives the child a new identity in the index
  /// (refused when another child has it) and is its own Art. 17(2) report, on the clock of the
  /// day it was requested; a rejection touches the shard alone.
  public func decideKeyChange(
    _ id: Int64, in shard: TenantShard, approve: Bool, note: String, validate: @escaping @Sendable (ChildRecord) throws -> Void, by: String
  ) async throws -> (request: KeyChangeRecord, before: ChildRow, after: ChildRow) {
    guard approve else {
      return try await shard.decideKeyChange(id, approve: false, note: note, validate: validate, by: by, at: now())
    }
    guard let (request, child) = try await shard.keyChangeRequest(id) else {
      throw StoreError(.notFound, "id: no key-information change request #\(id) here")
    }
    let code = shard.code.rawValue
    var after = Self.indexRow(child, code: code, at: now())
    let changed = request.values.applied(to: child.data)
    after.documentKey = ChildIndexRecord.documentKey(changed)
    after.personKey = ChildIndexRecord.personKey(changed)
    // Art. 17(2): the clock runs from the request, not the approval.
    let requestedOn = TimeOrder.keyChangeClockStart(requestedOn: CalendarDate(beijingTimeOf: request.requestedAt), decidedOn: today)
    return try await indexedChange(
      "key-change", in: code, rows: [after],
      obligations: [reported(.otherChange, code, subject: registry.childReferences.subject(recordNumber: child.recordNumber, suffix: ":key-change#\(id)"), on: requestedOn)], by: by,
      field: "request"
    ) {
      let decided = try await shard.decideKeyChange(id, approve: true, note: note, validate: validate, by: by, at: now())
      return (decided, [decided.after])
    }
  }

  // MARK: Onboarding

  /// Issues a kindergarten's accounts: its shard first (created, or reopened when an earlier
  /// attempt made it), then one registry transaction with the accounts, the activation and its
  /// obligations. A failed registry step removes a shard this call made; a crash between the
  /// two leaves a shard nothing refers to, which the next attempt reuses.
  public func issueAccounts(
    application id: String, code: InstitutionCode, accounts: [AccountRecord], obligations: [ObligationRecord], actor: String,
    actorRole: Role
  ) async throws -> ApplicationRecord {
    let existed = shards.exists(code)
    try await shards.create(code, createdAt: now())
    do {
      try faults.hit("onboarding.shard-created")
      return try await registry.issueAccounts(
        application: id, code: code.rawValue, accounts: accounts, obligations: obligations, actor: actor, actorRole: actorRole, at: now())
    } catch let crash as FaultInjected where crash.kind == .crash {
      throw crash
    } catch {
      if !existed { shards.discard(code) }
      throw error
    }
  }

  // MARK: Recovery

  /// Reservations a crash (or a lost confirmation) left: each row takes what its shard holds;
  /// the change's obligations are reported when the shard shows it happened. Reservations of
  /// this process within their lease are live work and are left alone.
  func recoverReservations() async throws -> Int {
    var finished = 0
    for (reservation, rows) in try await registry.reservationsToRecover(owner: instance, now: now()) {
      do {
        try await recover(reservation, rows)
        finished += 1
      } catch {
        // One reservation that cannot be finished now (its shard unreadable) does not keep
        // recovery from the others, nor from the transfers.
        logger.error("reservation recovery failed", metadata: ["reservation": "\(reservation.id)", "error": "\(error)"])
      }
    }
    return finished
  }

  /// One reservation: the shard says whether its change committed.
  func recover(_ reservation: IndexReservation, _ rows: [ChildIndexRecord]) async throws {
    var truth: [ChildIndexRecord] = []
    let shard = try await shard(reservation.kindergartenCode)
    // The shard says whether the change committed: it wrote the reservation's marker in the
    // change's own transaction. If it did, the index takes what the shard holds; if not, every
    // row goes back to what it was (and no obligation is reported).
    let happened = try await shard.hasApplied(reservation.id)
    if happened {
      for row in rows {
        guard let held = try await shard.child(row.recordNumber) else { continue }
        truth.append(Self.indexRow(held, code: reservation.kindergartenCode, at: now()))
      }
    }
    try await registry.recover(reservation: reservation.id, rows: truth, happened: happened, at: now())
  }
}
