internal import PEMISDomain
public import PEMISStore

/// The district duplicate check (MISSION: 查重): a sweep over the child index finds the three kinds
/// of problem records and opens a case for each; the kindergartens resolve them by deleting,
/// modifying or giving evidence, which the Preschool Education Office arbitrates.
extension Router {
  /// The problems in these index rows: invalid IDs, the same ID in two active records, and
  /// children without an ID sharing name, gender and birth date. Pure, for tests.
  public static func problems(in rows: [ChildIndexRecord]) -> [(kind: ProblemKind, key: String, records: [CaseRecordRef])] {
    (invalidIDProblems(in: rows) + sharedProblems(in: rows)).sorted { ($0.kind.rawValue, $0.key) < ($1.kind.rawValue, $1.key) }
  }

  private static func ref(_ row: ChildIndexRecord) -> CaseRecordRef {
    CaseRecordRef(kindergartenCode: row.kindergartenCode, recordNumber: row.recordNumber)
  }

  /// (a) Each active row whose ID number breaks its document's rules; a row at a time, so the
  /// sweep can feed it the index page by page.
  static func invalidIDProblems(in rows: [ChildIndexRecord]) -> [(kind: ProblemKind, key: String, records: [CaseRecordRef])] {
    var result: [(ProblemKind, String, [CaseRecordRef])] = []
    for row in rows where row.active {
      guard let key = row.documentKey else { continue }
      let parts = key.split(separator: "|", maxSplits: 1).map(String.init)
      let person = row.personKey.split(separator: "|").map(String.init)
      guard parts.count == 2, let type = IDDocumentType(rawValue: parts[0]), type != .other else { continue }
      let birth = person.count == 3 ? CalendarDate(iso: person[2]) : nil
      let gender = person.count == 3 ? Gender(rawValue: person[1]) : nil
      do {
        try IDDocuments.validate(type: type, number: parts[1], birthDate: birth, gender: gender, field: "id_document_number")
      } catch {
        result.append((.invalidID, "\(key)@\(row.recordNumber)", [ref(row)]))
      }
    }
    return result
  }

  /// (b) and (c): active rows sharing a document number (whatever the type says), and rows
  /// without a document sharing name, gender and birth date.
  static func sharedProblems(in rows: [ChildIndexRecord]) -> [(kind: ProblemKind, key: String, records: [CaseRecordRef])] {
    var result: [(ProblemKind, String, [CaseRecordRef])] = []
    let active = rows.filter(\.active)
    let byNumber = Dictionary(grouping: active.filter { $0.documentKey != nil }) { ChildIndexRecord.documentNumber(ofKey: $0.documentKey!) }
    for (number, group) in byNumber where group.count > 1 {
      result.append((.sameID, number, group.sorted { $0.recordNumber < $1.recordNumber }.map(ref)))
    }
    let byPerson = Dictionary(grouping: active.filter { $0.documentKey == nil }, by: \.personKey)
    for (person, group) in byPerson where group.count > 1 {
      result.append((.samePerson, person, group.sorted { $0.recordNumber < $1.recordNumber }.map(ref)))
    }
    return result
  }


  /// Runs the sweep over the whole district; returns what it opened, kept and resolved. The
  /// index is read a page at a time for invalid IDs, and SQLite groups it for the shared
  /// numbers and persons, so memory stays bounded by a page and the problems found.
  public func sweep(by: String, pageSize: Int = 5_000) async throws -> (opened: Int, unchanged: Int, resolved: Int) {
    // An empty page would end the scan early, and cases of invalid IDs would close unfixed.
    let pageSize = max(1, pageSize)
    // A record mid-change (a reservation waiting for its shard) is neither what the index now
    // says nor still what it was: a problem that concerns it is judged by the next sweep, not
    // opened, changed or resolved on a row that may never be written.
    var (found, leaving) = try await midChange {
      var found: [(kind: ProblemKind, key: String, records: [CaseRecordRef])] = []
      var after: String?
      while true {
        let page = try await registry.indexRecords(after: after, limit: pageSize, activeOnly: true)
        found += Self.invalidIDProblems(in: page)
        guard page.count == pageSize, let last = page.last else { break }
        after = last.recordNumber
      }
      let sharing = try await registry.activeRowsSharingDocumentNumber() + registry.activeRowsSharingPerson()
      return found + Self.sharedProblems(in: sharing)
    }
    found.removeAll { leaving.contains("\($0.kind.rawValue)|\($0.key)") }
    found.sort { ($0.kind.rawValue, $0.key) < ($1.kind.rawValue, $1.key) }
    return try await registry.applySweep(found, leaving: leaving, by: by, at: now())
  }

  /// Runs `read` of the index, and returns with it the problem keys of the rows reserved before
  /// or after it: a reservation released while the index was read was mid-change when it was.
  func midChange<T: Sendable>(_ read: () async throws -> T) async throws -> (T, leaving: Set<String>) {
    let before = try await registry.reservedRows()
    let value = try await read()
    return (value, Self.problemKeys(of: before + (try await registry.reservedRows())))
  }

  /// Every problem key (`kind|key`) a row could take part in, whatever its state. Pure.
  static func problemKeys(of rows: [ChildIndexRecord]) -> Set<String> {
    var keys: Set<String> = []
    for row in rows {
      if let key = row.documentKey {
        keys.insert("\(ProblemKind.invalidID.rawValue)|\(key)@\(row.recordNumber)")
        keys.insert("\(ProblemKind.sameID.rawValue)|\(ChildIndexRecord.documentNumber(ofKey: key))")
      } else {
        keys.insert("\(ProblemKind.samePerson.rawValue)|\(row.personKey)")
      }
    }
    return keys
  }

  /// The active index rows a case's problem concerns, read by its key (not the whole index).
  func rows(concerning record: DuplicateCaseRecord) async throws -> [ChildIndexRecord] {
    switch record.kind {
    case .invalidID:
      guard let at = record.key.lastIndex(of: "@") else { return [] }
      return try await registry.indexRecord(String(record.key[record.key.index(after: at)...])).map { [$0] } ?? []
    case .sameID:
      return try await registry.activeRows(documentNumber: record.key)
    case .samePerson:
      return try await registry.activeRows(personKey: record.key)
    }
  }

  /// The case, if `code` is one of its kindergartens (or `code` is nil: the district).
  func caseFor(_ id: Int64, kindergarten code: String?) async throws -> DuplicateCaseRecord {
    guard let (record, _) = try await registry.duplicateCase(id), code.map({ record.kindergartens.contains($0) }) ?? true else {
      throw StoreError(.notFound, "case_id: no duplicate case \(id) of this kindergarten")
    }
    return record
  }

  /// Resolves by deleting one of the kindergarten's records in the case (soft: it stays
  /// visible); the case is resolved when its problem is gone.
  public func resolveByDeleting(_ id: Int64, recordNumber: String, at code: String, by: String) async throws -> DuplicateCaseRecord {
    let record = try await caseFor(id, kindergarten: code)
    guard record.state == .open else { throw StoreError(.failedPrecondition, "case_id: case \(id) is \(record.state.rawValue)") }
    guard record.records.contains(CaseRecordRef(kindergartenCode: code, recordNumber: recordNumber)) else {
      throw StoreError(.invalidArgument, "record_number: not one of this kindergarten's records in case \(id)")
    }
    let shard = try await shard(code)
    _ = try await softDelete(recordNumber, in: shard, reason: "duplicate case \(id)", by: by)
    return try await recheck(id, resolution: "deleted", action: "deleted \(IDDocuments.mask(recordNumber))", code: code, by: by)
  }

  /// The kindergarten corrected its record (`child update` or a key-information change): the case
  /// is resolved if its problem is gone, and refused if not.
  public func resolveByModifying(_ id: Int64, at code: String, by: String) async throws -> DuplicateCaseRecord {
    let record = try await caseFor(id, kindergarten: code)
    guard record.state == .open else { throw StoreError(.failedPrecondition, "case_id: case \(id) is \(record.state.rawValue)") }
    return try await recheck(id, resolution: "modified", action: "modified", code: code, by: by)
  }

  func recheck(_ id: Int64, resolution: String, action: String, code: String, by: String) async throws -> DuplicateCaseRecord {
    let record = try await caseFor(id, kindergarten: code)
    // A record of the case mid-change: judged once the change is written or released, as the
    // sweep does.
    let (concerned, leaving) = try await midChange { try await self.rows(concerning: record) }
    if leaving.contains("\(record.kind.rawValue)|\(record.key)") {
      if action == "modified" {
        throw StoreError(.aborted, "case_id: a record of case \(id) is being changed; try again in a moment")
      }
      let event = CaseEventRecord(
        caseId: id, action: action, actor: by, kindergartenCode: code, note: "a record is being changed; the next sweep judges the case", at: now())
      return try await registry.advanceCase(id, from: [.open], to: .open, event: event)
    }
    let remaining = Self.problems(in: concerned).first { $0.kind == record.kind && $0.key == record.key }
    // What remains may be just the records an arbitration accepted on evidence: resolved by it.
    if let remaining, let accepted = try await registry.acceptedCase(kind: record.kind, key: record.key, records: remaining.records) {
      let event = CaseEventRecord(
        caseId: id, action: action, actor: by, kindergartenCode: code,
        note: "the records left are those whose evidence case \(accepted.id ?? 0) accepted", at: now())
      return try await registry.advanceCase(id, from: [.open], to: .resolved, resolution: "evidence_accepted", event: event)
    }
    let stillThere = remaining != nil
    let event = CaseEventRecord(caseId: id, action: action, actor: by, kindergartenCode: code, note: stillThere ? "the problem remains" : "", at: now())
    if stillThere {
      if action == "modified" {
        throw StoreError(.failedPrecondition, "case_id: case \(id) still shows the problem; correct the record first (pemis child update / request-change)")
      }
      return try await registry.advanceCase(id, from: [.open], to: .open, event: event)
    }
    return try await registry.advanceCase(id, from: [.open], to: .resolved, resolution: resolution, event: event)
  }

  /// The kindergarten gives evidence (from the parents) that the records are right.
  public func submitEvidence(_ id: Int64, evidence: String, at code: String, by: String) async throws -> DuplicateCaseRecord {
    _ = try await caseFor(id, kindergarten: code)
    return try await registry.advanceCase(
      id, from: [.open], to: .evidence, evidence: evidence,
      event: CaseEventRecord(caseId: id, action: "evidence", actor: by, kindergartenCode: code, note: evidence, at: now()))
  }

  /// The Preschool Education Office arbitrates: accepted keeps the records and resolves the
  /// case; rejected sends it back to be deleted or modified.
  public func arbitrate(_ id: Int64, accept: Bool, note: String, by: String) async throws -> DuplicateCaseRecord {
    try await registry.advanceCase(
      id, from: [.evidence], to: accept ? .resolved : .open, resolution: accept ? "evidence_accepted" : nil,
      event: CaseEventRecord(caseId: id, action: accept ? "evidence accepted" : "evidence rejected", actor: by, kindergartenCode: "", note: note, at: now()))
  }
}
