import Foundation
import PEMISDomain
import PropertyBased
import Testing

@testable import PEMISRouting
@testable import PEMISStore

/// Issue 11 item 7: the integrity guarantees of docs/ROUTING.md, tested on random sequences of
/// operations over three kindergartens, with random fault points armed (`.fail` or `.crash`) and
/// several operations of a sequence running at once. After each sequence the district is
/// recovered by a restarted router (another process) past the lease, and then: the check finds
/// nothing; the active children are the enrollments minus the departures of a model of what was
/// acknowledged (an operation that failed or crashed is resolved by reading the shards); no
/// transfer is left mid-step; no duplicate case accepted on evidence is opened again for the same
/// records. `PEMIS_PROPERTY_SEQUENCES` sets the number of sequences (`tools/property-test.sh N`).
@Suite("Integrity property")
struct IntegrityPropertyTests {
  static var sequences: Int { Int(ProcessInfo.processInfo.environment["PEMIS_PROPERTY_SEQUENCES"] ?? "") ?? 10 }
  /// Two minutes and one more per 100 sequences, so a long run from the script is not cut short;
  /// `PEMIS_PROPERTY_MINUTES` raises it for a run that shares a loaded machine.
  static var minutes: Int {
    max(2 + sequences / 100, Int(ProcessInfo.processInfo.environment["PEMIS_PROPERTY_MINUTES"] ?? "") ?? 0)
  }

  /// A line written at once (print is buffered when the output is a pipe or a file).
  static func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

  // The time limit turns a hang into a failure rather than a blocked CI run.
  @Test("random operation sequences with fault points and concurrency keep the district consistent", .timeLimit(.minutes(Self.minutes)))
  func randomSequences() async throws {
    let figures = PropertyFigures()
    await propertyCheck(count: Self.sequences, input: Gen.int(in: 0...Int.max).array(of: 10...40)) { steps in
      let run = try await PropertySequence(steps: steps)
      let violations = await run.run()
      let done = figures.sequence(
        operations: run.operations, refusals: run.refusals, uncertain: run.uncertainCount, faultHits: run.faultHits, armed: run.armed,
        byKind: run.byKind, violations: violations)
      // A long run (tools/property-test.sh) says how far it is every 250 sequences, and the
      // first violation at once: the library reports issues only after shrinking, at the end.
      if Self.sequences >= 1_000 && done % 250 == 0 { Self.say(figures.progress) }
      if Self.sequences >= 1_000, let first = violations.first, figures.violations.count == violations.count {
        Self.say("integrity property: first violation: \(first)")
      }
      for violation in violations { Issue.record("\(violation)") }
    }
    print(figures.summary)
    #expect(figures.violations.isEmpty, "\(figures.summary)")
  }
}

/// A sequence a long run reported, run again: `PEMIS_PROPERTY_REPLAY` holds its steps as printed
/// (`[steps [n, n, …]]`), `PEMIS_PROPERTY_REPLAYS` how many times (the batches run at once, so a
/// violation may need several tries). Not part of the suite's run without the variable.
@Suite("Integrity property replay")
struct IntegrityPropertyReplay {
  static var steps: [Int]? {
    guard let text = ProcessInfo.processInfo.environment["PEMIS_PROPERTY_REPLAY"] else { return nil }
    return text.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
  }

  @Test("a reported sequence, run again", .enabled(if: Self.steps != nil))
  func replay() async throws {
    let steps = try #require(Self.steps)
    let times = Int(ProcessInfo.processInfo.environment["PEMIS_PROPERTY_REPLAYS"] ?? "") ?? 1
    var found = 0
    for time in 1...max(1, times) {
      let run = try await PropertySequence(steps: steps)
      let violations = await run.run()
      IntegrityPropertyTests.say("replay \(time): \(run.operations) operations, \(violations.count) violations")
      for violation in violations { IntegrityPropertyTests.say("  \(violation.components(separatedBy: " [steps ")[0])") }
      found += violations.count
    }
    #expect(found == 0)
  }
}

/// One operation of a sequence, with what it concerns (for resolving it when it fails).
enum PropertyOperation: Sendable {
  case enroll(record: String, child: ChildRecord, code: String, classId: String?)
  case importChildren(rows: [(record: String, child: ChildRecord)], code: String, classId: String?)
  case moveClass(record: String, code: String, classId: String)
  case promote(code: String, classId: String)
  case leave(record: String, code: String)
  case depart(record: String, code: String, death: Bool)
  case keyChange(record: String, code: String, values: KeyChangeValues)
  case transferOut(record: String, from: String, to: String, id: String)
  case transferIn(id: String, record: String, to: String, classId: String?)
  case cancel(id: String, record: String, from: String)
  case decline(id: String, record: String, to: String)
  case abort(id: String, record: String)
  case sweep
  case resolveByDeleting(caseId: Int64, record: String, code: String)
  case arbitrate(caseId: Int64, code: String, accept: Bool)

  var kind: String {
    switch self {
    case .enroll: "enroll"
    case .importChildren: "import"
    case .moveClass: "move"
    case .promote: "promote"
    case .leave: "leave"
    case .depart: "depart"
    case .keyChange: "key-change"
    case .transferOut: "transfer-out"
    case .transferIn: "transfer-in"
    case .cancel: "cancel"
    case .decline: "decline"
    case .abort: "abort"
    case .sweep: "sweep"
    case .resolveByDeleting: "resolve-delete"
    case .arbitrate: "arbitrate"
    }
  }

  var records: [String] {
    switch self {
    case .enroll(let r, _, _, _), .moveClass(let r, _, _), .leave(let r, _), .depart(let r, _, _), .keyChange(let r, _, _),
      .transferOut(let r, _, _, _), .transferIn(_, let r, _, _), .cancel(_, let r, _), .decline(_, let r, _), .abort(_, let r),
      .resolveByDeleting(_, let r, _):
      [r]
    case .importChildren(let rows, _, _): rows.map(\.record)
    case .promote, .sweep, .arbitrate: []
    }
  }

  /// The children an enrollment or import would make (for resolving one that failed).
  var newChildren: [(record: String, child: ChildRecord)] {
    switch self {
    case .enroll(let r, let child, _, _): [(r, child)]
    case .importChildren(let rows, _, _): rows
    default: []
    }
  }

  var transfer: String? {
    switch self {
    case .transferOut(_, _, _, let id), .transferIn(let id, _, _, _), .cancel(let id, _, _), .decline(let id, _, _), .abort(let id, _): id
    default: nil
    }
  }

  /// The fault points this operation passes (docs/ROUTING.md, "Fault points").
  var points: [String] {
    switch self {
    case .enroll: ["enroll.reserved", "enroll.written"]
    case .importChildren: ["import.reserved", "import.written"]
    case .moveClass: []
    case .promote: ["promote.reserved", "promote.written"]
    case .leave: ["leave.reserved", "leave.written", "transfer.reverted"]
    case .depart: ["depart.reserved", "depart.written", "transfer.reverted"]
    case .keyChange: ["key-change.reserved", "key-change.written"]
    case .transferOut: ["transfer.requested", "transfer.marked"]
    case .transferIn: ["transfer.accepting", "transfer.received", "transfer.sent"]
    case .cancel, .decline: ["transfer.reverted"]
    case .abort: ["transfer.reverted", "transfer.received", "transfer.sent"]
    case .sweep, .arbitrate: []
    case .resolveByDeleting: ["delete.reserved", "delete.written"]
    }
  }

  static let allPoints = [
    "enroll.reserved", "enroll.written", "import.reserved", "import.written", "leave.reserved", "leave.written", "depart.reserved",
    "depart.written", "key-change.reserved", "key-change.written", "delete.reserved", "delete.written", "promote.reserved",
    "promote.written", "transfer.requested", "transfer.marked", "transfer.accepting", "transfer.received", "transfer.sent",
    "transfer.reverted",
  ]
}

/// What an acknowledged operation did, for the model.
enum PropertyEffect: Sendable {
  /// The record is active at `code` (nil: nowhere), with this data when known.
  case at(record: String, code: String?, data: ChildRecord?, deceased: Bool)
  case transferOpen(id: String, record: String, from: String, to: String)
  case transferClosed(id: String)
  case accepted(kind: ProblemKind, key: String, records: Set<CaseRecordRef>)
}

/// One random sequence: the district, the model of what was acknowledged, and the figures.
final class PropertySequence: @unchecked Sendable {
  struct Kid {
    var data: ChildRecord
    var code: String?
    var deceased = false
    var uncertain = false
  }

  let steps: [Int]
  let district: PropertyDistrict
  var kids: [String: Kid] = [:]
  var open: [String: (record: String, from: String, to: String)] = [:]
  var uncertainTransfers: Set<String> = []
  var accepted: [(kind: ProblemKind, key: String, records: Set<CaseRecordRef>)] = []
  var nextChild = 0
  var nextSerial = 0
  var nextTransfer = 0
  var enrollments = 0
  var departures = 0
  var operations = 0
  var refusals = 0
  var uncertainCount = 0
  var armed = 0
  var faultHits = 0
  var byKind: [String: Int] = [:]
  var violations: [String] = []

  /// `PEMIS_PROPERTY_TRACE=1` prints each operation and its outcome (for a replay).
  static let tracing = ProcessInfo.processInfo.environment["PEMIS_PROPERTY_TRACE"] == "1"

  init(steps: [Int]) async throws {
    self.steps = steps
    district = try await PropertyDistrict()
  }

  var codes: [String] { PropertyDistrict.codes }
  var today: CalendarDate { CalendarDate(beijingTimeOf: district.clock.now) }

  func violation(_ text: String) {
    violations.append("\(text) [steps \(steps)]")
  }

  // MARK: Running

  func run() async -> [String] {
    defer { district.remove() }
    do {
      var index = 0
      while index < steps.count {
        let size = 1 + (steps[index] >> 58) % 3
        let batch = Array(steps[index..<min(index + size, steps.count)])
        index += size
        try await runBatch(batch)
      }
      try await finish()
    } catch {
      violation("the harness itself failed: \(type(of: error)) \(error)")
    }
    return violations
  }

  /// Plans the batch on the model (distinct records), arms its fault points, runs it at once.
  func runBatch(_ batch: [Int]) async throws {
    var busy: Set<String> = []
    var busyTransfers: Set<String> = []
    var planned: [PropertyOperation] = []
    let faults = district.router.faults
    for n in batch {
      // A step with nothing to act on (no child there yet, no open transfer) enrolls one.
      var chosen = try await plan(n, busy: busy, busyTransfers: busyTransfers)
      if chosen == nil { chosen = try await plan(n - n % 20, busy: busy, busyTransfers: busyTransfers) }
      guard let op = chosen else { continue }
      busy.formUnion(op.records)
      if let t = op.transfer { busyTransfers.insert(t) }
      planned.append(op)
      if (n >> 52) % 10 < 3 {
        let points = (n >> 44) % 4 == 0 || op.points.isEmpty ? PropertyOperation.allPoints : op.points
        let point = points[(n >> 46) % points.count]
        faults.arm(point, (n >> 56) & 1 == 0 ? .fail : .crash)
        armed += 1
        if Self.tracing { IntegrityPropertyTests.say("  armed \(point) \((n >> 56) & 1 == 0 ? "fail" : "crash")") }
      }
    }
    let router = district.router
    let outcomes = await withTaskGroup(of: (Int, Result<[PropertyEffect], any Error>).self) { group in
      for (i, op) in planned.enumerated() {
        group.addTask { (i, await Result { try await self.execute(op, router: router) }) }
      }
      var all: [(Int, Result<[PropertyEffect], any Error>)] = []
      for await outcome in group { all.append(outcome) }
      return all.sorted { $0.0 < $1.0 }
    }
    faults.disarmAll()
    var crashed = false
    for (i, outcome) in outcomes {
      let op = planned[i]
      if Self.tracing { IntegrityPropertyTests.say("  \(op) → \(outcome)") }
      operations += 1
      byKind[op.kind, default: 0] += 1
      switch outcome {
      case .success(let effects):
        for effect in effects { apply(effect) }
      case .failure(let error):
        if let fault = error as? FaultInjected {
          if fault.kind == .crash { crashed = true }
          uncertainCount += 1
        } else if let store = error as? StoreError, store.kind != .unavailable {
          refusals += 1
        } else if error is DomainError {
          refusals += 1
        } else {
          violation("\(op.kind): unexpected error \(type(of: error)): \(error)")
        }
        // Failed or crashed: it may or may not have happened; the shards will say.
        for record in op.records { kids[record]?.uncertain = true }
        for (record, child) in op.newChildren where kids[record] == nil { kids[record] = Kid(data: child, code: nil, uncertain: true) }
        if let t = op.transfer { uncertainTransfers.insert(t) }
      }
    }
    // A crash ends the process: sometimes it restarts at once (the new process recovers the
    // old one's reservations without waiting for the lease), sometimes only at the end.
    if crashed && (batch[0] >> 40) & 1 == 0 {
      if Self.tracing { IntegrityPropertyTests.say("  restart and recover") }
      try await recoverAndResolve(advance: false)
    }
  }

  func apply(_ effect: PropertyEffect) {
    switch effect {
    case .at(let record, let code, let data, let deceased):
      let was = kids[record]?.code != nil
      guard var kid = kids[record] ?? data.map({ Kid(data: $0, code: nil) }) else {
        violation("\(record): a change acknowledged for a record the sequence never made")
        return
      }
      if let data { kid.data = data }
      kid.code = code
      kid.deceased = deceased
      // Where the child is, the answer says; what its record holds, only if it carries the data.
      // A key change that failed after its shard write did happen: a later transfer's answer
      // (no data) must not make the model forget that (found by the 10,000-sequence run).
      if data != nil { kid.uncertain = false }
      kids[record] = kid
      if !was && code != nil { enrollments += 1 }
      if was && code == nil { departures += 1 }
      // A child who left or departed has no open transfer (the router cancelled it).
      if code == nil {
        for (id, t) in open where t.record == record { open[id] = nil }
      }
    case .transferOpen(let id, let record, let from, let to):
      open[id] = (record, from, to)
      uncertainTransfers.remove(id)
    case .transferClosed(let id):
      open[id] = nil
      uncertainTransfers.remove(id)
    case .accepted(let kind, let key, let records):
      accepted.append((kind, key, records))
    }
  }

  /// Recovery by a restarted router, then every uncertain record and transfer read back.
  func recoverAndResolve(advance: Bool) async throws {
    district.router.faults.disarmAll()
    if advance { district.clock.advance(601) }
    let router = district.restart()
    do {
      try await router.recover()
    } catch {
      violation("recovery failed: \(error)")
    }
    for (record, kid) in kids where kid.uncertain {
      let truth = try await district.truth(record)
      if truth.active.count > 1 { violation("\(record) active in \(truth.active)") }
      apply(.at(record: record, code: truth.active.first, data: truth.row?.data ?? kid.data, deceased: truth.row?.state == .deceased))
    }
    for id in uncertainTransfers {
      guard let transfer = try await district.registry.transfer(id) else {
        uncertainTransfers.remove(id)
        continue
      }
      if transfer.state == .out {
        apply(.transferOpen(id: id, record: transfer.recordNumber, from: transfer.fromCode, to: transfer.toCode))
      } else {
        apply(.transferClosed(id: id))
      }
    }
    // Open transfers the model knows: still open?
    for (id, _) in open {
      if let transfer = try await district.registry.transfer(id), transfer.state != .out { open[id] = nil }
    }
  }

  /// The end of a sequence: recover past the lease with a restarted router, then the checks.
  func finish() async throws {
    try await recoverAndResolve(advance: true)
    faultHits = district.router.faults.hits.values.reduce(0, +)
    let router = district.router
    // Every acknowledged change is there, once; nothing else is active.
    var expected = 0
    for (record, kid) in kids {
      let truth = try await district.truth(record)
      let want = kid.code.map { [$0] } ?? []
      if truth.active != want {
        violation("\(record): acknowledged active at \(want), the shards say \(truth.active)")
      }
      if kid.code != nil {
        expected += 1
        if let row = truth.row, row.data.idDocumentNumber != kid.data.idDocumentNumber || row.data.name != kid.data.name {
          violation("\(record): acknowledged identity \(kid.data.name) \(kid.data.idDocumentNumber), the shard holds \(row.data.name) \(row.data.idDocumentNumber)")
        }
      }
    }
    let report = try await router.check()
    if !report.findings.isEmpty { violation("check: \(report.findings)") }
    if report.activeChildren != enrollments - departures || report.activeChildren != expected {
      violation("active children \(report.activeChildren), enrollments \(enrollments) − departures \(departures) = \(enrollments - departures), model \(expected)")
    }
    let inFlight = try await district.registry.inFlightTransfers()
    if !inFlight.isEmpty { violation("transfers left mid-step: \(inFlight.map { "\($0.id) \($0.state.rawValue)" })") }
    // A last sweep: no case accepted on evidence opened again for the same records.
    _ = try await router.sweep(by: "office")
    try await checkAccepted()
  }

  func checkAccepted() async throws {
    guard !accepted.isEmpty else { return }
    for state in [CaseState.open, .evidence] {
      for found in try await district.registry.duplicateCases(kindergarten: nil, codes: nil, state: state, offset: 0, limit: 500).cases {
        if accepted.contains(where: { $0.kind == found.kind && $0.key == found.key && $0.records == Set(found.records) }) {
          violation("duplicate case \(found.id ?? 0) (\(found.kind.rawValue)) reopened for the records an accepted arbitration covered")
        }
      }
    }
  }

  // MARK: Planning

  func pick<T>(_ items: [T], _ n: Int, _ shift: Int) -> T? {
    items.isEmpty ? nil : items[(n >> shift) % items.count]
  }

  func active(at code: String? = nil, excluding busy: Set<String>) -> [String] {
    kids.filter { $0.value.code != nil && (code == nil || $0.value.code == code) && !busy.contains($0.key) }.map(\.key).sorted()
  }

  func newChild() -> (recordNumber: String, child: ChildRecord) {
    nextChild += 1
    return PropertyChildren.withID(nextChild)
  }

  func classId(_ code: String, _ n: Int, _ shift: Int) -> String? {
    let choice = (n >> shift) % 4
    return choice == 3 ? nil : district.classes[code]![choice]
  }

  func plan(_ n: Int, busy: Set<String>, busyTransfers: Set<String>) async throws -> PropertyOperation? {
    let code = codes[(n >> 8) % codes.count]
    let other = codes[((n >> 8) % codes.count + 1 + (n >> 10) % 2) % codes.count]
    switch n % 20 {
    case 0, 1:
      let (record, child) = newChild()
      return .enroll(record: record, child: child, code: code, classId: classId(code, n, 12))
    case 2, 3:
      nextSerial += 1
      let (record, child) = PropertyChildren.withoutID(person: (n >> 14) % 3, serial: nextSerial)
      return .enroll(record: record, child: child, code: code, classId: classId(code, n, 12))
    case 4:
      // An identity the model knows: back after leaving (or deceased: refused), or enrolled
      // elsewhere already (refused).
      guard let record = pick(kids.keys.sorted().filter { !busy.contains($0) }, n, 14), let kid = kids[record] else { return nil }
      return .enroll(record: record, child: kid.data, code: code, classId: classId(code, n, 12))
    case 5:
      var rows = (0..<(1 + (n >> 14) % 3)).map { _ in newChild() }
      if (n >> 16) % 4 == 0, let taken = pick(active(excluding: busy), n, 18) {
        rows.append((recordNumber: taken, child: kids[taken]!.data))  // an identity active somewhere: nothing written
      }
      return .importChildren(rows: rows.map { (record: $0.recordNumber, child: $0.child) }, code: code, classId: classId(code, n, 12))
    case 6:
      guard let record = pick(active(at: code, excluding: busy), n, 14) else { return nil }
      return .moveClass(record: record, code: code, classId: district.classes[code]![(n >> 12) % 3])
    case 7:
      return .promote(code: code, classId: district.classes[code]![(n >> 12) % 3])
    case 8:
      guard let record = pick(active(at: code, excluding: busy), n, 14) else { return nil }
      return .leave(record: record, code: code)
    case 9:
      guard let record = pick(active(at: code, excluding: busy), n, 14) else { return nil }
      return .depart(record: record, code: code, death: (n >> 12) % 3 == 0)
    case 10, 11:
      guard let record = pick(active(at: code, excluding: busy), n, 14) else { return nil }
      var values = KeyChangeValues()
      switch (n >> 12) % 4 {
      case 0:
        values.name = PropertyChildren.names[(n >> 16) % PropertyChildren.names.count]
      case 1:
        // An ID another child holds: refused while that child is active.
        guard let taken = pick(active(excluding: busy.union([record])).filter { kids[$0]!.data.idDocumentNumber != "" }, n, 16) else { return nil }
        let data = kids[taken]!.data
        values = KeyChangeValues(gender: data.gender, birthDate: data.birthDate, idDocumentType: data.idDocumentType, idDocumentNumber: data.idDocumentNumber)
      default:
        // The ID changes (an ID document issued, or corrected): a fresh valid one.
        nextChild += 1
        let (id, birth, gender) = PropertyChildren.idNumber(nextChild)
        values = KeyChangeValues(gender: gender, birthDate: birth, idDocumentType: .residentID, idDocumentNumber: id)
      }
      return .keyChange(record: record, code: code, values: values)
    case 12, 13:
      guard let record = pick(active(at: code, excluding: busy), n, 14) else { return nil }
      nextTransfer += 1
      return .transferOut(record: record, from: code, to: other, id: "TPROP" + String(format: "%06d", nextTransfer))
    case 14, 15, 16, 17:
      let candidates = open.filter { !busyTransfers.contains($0.key) && !busy.contains($0.value.record) }.sorted { $0.key < $1.key }
      guard let (id, t) = pick(candidates, n, 14) else { return nil }
      switch (n % 20, (n >> 12) % 3) {
      case (14, _), (15, _): return .transferIn(id: id, record: t.record, to: t.to, classId: classId(t.to, n, 16))
      case (16, 0): return .decline(id: id, record: t.record, to: t.to)
      case (16, _): return .cancel(id: id, record: t.record, from: t.from)
      default: return .abort(id: id, record: t.record)
      }
    case 18:
      return .sweep
    default:
      let cases = try await district.registry.duplicateCases(kindergarten: nil, codes: nil, state: .open, offset: 0, limit: 50).cases
      guard let found = pick(cases, n, 14), let id = found.id else { return .sweep }
      if (n >> 12) % 2 == 0 {
        guard let ref = pick(found.records, n, 16), !busy.contains(ref.recordNumber) else { return nil }
        return .resolveByDeleting(caseId: id, record: ref.recordNumber, code: ref.kindergartenCode)
      }
      return .arbitrate(caseId: id, code: found.records[0].kindergartenCode, accept: (n >> 16) % 4 != 0)
    }
  }

  // MARK: Executing

  func execute(_ op: PropertyOperation, router: Router) async throws -> [PropertyEffect] {
    let at = district.clock.now
    switch op {
    case .enroll(let record, let child, let code, let classId):
      let row = try await router.enroll(child, recordNumber: record, in: try await district.shard(code), classId: classId, midTerm: false, by: "administrator.\(code)")
      return [.at(record: record, code: code, data: row.data, deceased: false)]

    case .importChildren(let rows, let code, let classId):
      let numbered = rows.enumerated().map {
        (row: TenantShard.ImportRow(number: $0.offset + 1, child: $0.element.child, classId: classId), recordNumber: $0.element.record)
      }
      let failures = try await router.importChildren(numbered, in: try await district.shard(code), by: "administrator.\(code)")
      return failures.isEmpty ? rows.map { .at(record: $0.record, code: code, data: $0.child, deceased: false) } : []

    case .moveClass(let record, let code, let classId):
      _ = try await district.shard(code).assignClass(record, classId: classId, by: "administrator.\(code)", at: at)
      return []

    case .promote(let code, let classId):
      let shard = try await district.shard(code)
      _ = try await router.reportedChange(
        "promote", in: shard, obligations: [router.reportedObligation(.promotion, in: shard, subject: "class:\(classId) \(at)", on: today)],
        by: "principal.\(code)"
      ) { try await shard.promoteClass(classId, apply: true, by: "principal.\(code)", at: at) }
      return []

    case .leave(let record, let code):
      let row = try await router.endAttendance(
        record, in: try await district.shard(code), ending: .leave, on: today, reason: "moved away", by: "administrator.\(code)")
      return [.at(record: record, code: nil, data: row.data, deceased: false)]

    case .depart(let record, let code, let death):
      let row = try await router.endAttendance(
        record, in: try await district.shard(code), ending: .accidentalDeparture(death: death), on: today,
        reason: death ? "death certificate" : "hospital report", by: "administrator.\(code)")
      return [.at(record: record, code: nil, data: row.data, deceased: row.state == .deceased)]

    case .keyChange(let record, let code, let values):
      let shard = try await district.shard(code)
      // A request an earlier failure left pending is decided first (one open request a child).
      let pending = try await shard.keyChanges(state: .pending, offset: 0, limit: 100).changes.first { $0.1.recordNumber == record }?.0
      let request: KeyChangeRecord
      if let pending {
        request = pending
      } else {
        request = try await shard.requestKeyChange(
          record, values: values, evidence: "household register", templateSignedOn: today, by: "administrator.\(code)", at: at
        ).0
      }
      let decided = try await router.decideKeyChange(
        request.id!, in: shard, approve: true, note: "", validate: { _ in }, by: "principal.\(code)")
      return [.at(record: record, code: code, data: decided.after.data, deceased: false)]

    case .transferOut(let record, let from, let to, let id):
      let transfer = try await router.transferOut(from: from, recordNumber: record, to: to, appliedOn: today, id: id, by: "administrator.\(from)")
      return transfer.state == .out ? [.transferOpen(id: id, record: record, from: from, to: to)] : [.transferClosed(id: id)]

    case .transferIn(let id, let record, let to, let classId):
      let transfer = try await router.transferIn(id, at: to, classId: classId, by: "administrator.\(to)")
      guard transfer.state == .completed else { throw PropertyUnexpected("transfer-in acknowledged in state \(transfer.state.rawValue)") }
      return [.transferClosed(id: id), .at(record: record, code: to, data: nil, deceased: false)]

    case .cancel(let id, let record, let from):
      let transfer = try await router.cancel(id, at: from, by: "administrator.\(from)")
      guard transfer.state == .cancelled else { throw PropertyUnexpected("cancel acknowledged in state \(transfer.state.rawValue)") }
      return [.transferClosed(id: id), .at(record: record, code: from, data: nil, deceased: false)]

    case .decline(let id, let record, let to):
      let transfer = try await router.decline(id, at: to, reason: "no place", by: "administrator.\(to)")
      guard transfer.state == .declined else { throw PropertyUnexpected("decline acknowledged in state \(transfer.state.rawValue)") }
      return [.transferClosed(id: id), .at(record: record, code: transfer.fromCode, data: nil, deceased: false)]

    case .abort(let id, let record):
      let transfer = try await router.abort(id, reason: "the parents withdrew", by: "office")
      switch transfer.state {
      case .aborted: return [.transferClosed(id: id), .at(record: record, code: transfer.fromCode, data: nil, deceased: false)]
      case .completed: return [.transferClosed(id: id), .at(record: record, code: transfer.toCode, data: nil, deceased: false)]
      default: throw PropertyUnexpected("abort acknowledged in state \(transfer.state.rawValue)")
      }

    case .sweep:
      _ = try await router.sweep(by: "office")
      return []

    case .resolveByDeleting(let caseId, let record, let code):
      _ = try await router.resolveByDeleting(caseId, recordNumber: record, at: code, by: "administrator.\(code)")
      return [.at(record: record, code: nil, data: nil, deceased: false)]

    case .arbitrate(let caseId, let code, let accept):
      _ = try await router.submitEvidence(caseId, evidence: "twins' birth certificates", at: code, by: "administrator.\(code)")
      let decided = try await router.arbitrate(caseId, accept: accept, note: accept ? "" : "not convincing", by: "office")
      return accept ? [.accepted(kind: decided.kind, key: decided.key, records: Set(decided.records))] : []
    }
  }
}

/// An acknowledged answer the saga's rules do not allow (a violation, never a refusal).
struct PropertyUnexpected: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}
